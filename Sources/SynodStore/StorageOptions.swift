/// Sizes and retention of a node's storage.
public struct StorageOptions: Hashable, Sendable {
    /// A WAL segment is preallocated to this size and a new one starts when the next write
    /// would not fit (a single larger batch still goes into one segment).
    public var segmentBytes: UInt64 = 64 << 20
    /// Snapshot files kept; older ones are deleted after a newer one is durable.
    public var snapshotsRetained: Int = 2
    /// Largest record payload accepted when reading the log.
    public var recordPayloadMax: Int = RecordCodec.payloadMaxDefault
    /// Negative control only (`synod sim --break truncate-damaged-log`): recovery cuts the last
    /// segment off at the first damaged write, whatever the damage, instead of refusing to
    /// start — trusting a damaged log, which hides the loss of synced records.
    public var unsafeTruncateAtDamage = false
    /// Damage to synced log writes (a closed segment's, or a write followed by later ones) is
    /// skipped, and a damaged snapshot file passed over for the next older one, and both are
    /// reported (`RecoveryReport.damage`, `repairNeeded`) instead of refusing to start: the
    /// replica then repairs what it may have lost from its peers (`Replica(repairing:)`).
    /// Only for members with peers to repair from.
    public var repairDamage = false

    public init() {}
}

/// What recovery found and did, for the node's log.
public struct RecoveryReport: Hashable, Sendable, CustomStringConvertible {
    /// True when the data directory was created by this start.
    public var created = false
    public var segmentsRead = 0
    public var recordsRead = 0
    /// The snapshot recovery started from, if any.
    public var snapshotSlot: Slot?
    /// A torn tail (an incomplete last write) that was cut off: file and offset.
    public var tornTail: (path: String, offset: UInt64)? {
        get { tornTailPath.map { ($0, tornTailOffset) } }
        set {
            tornTailPath = newValue?.path
            tornTailOffset = newValue?.offset ?? 0
        }
    }
    /// Segment files left by a crash during their creation (no valid header) and removed.
    public var removedEmptySegments: [String] = []
    /// Temporary snapshot files left by a crash during a snapshot write and removed.
    public var removedTemporaryFiles: [String] = []
    /// Bytes of a torn last write that recovery discarded (it cannot have been acknowledged).
    public var discardedBytes: UInt64 = 0
    /// Synced writes found damaged or missing and skipped (with `StorageOptions.repairDamage`).
    public var damage: [WALDamage] = []
    /// Damage not yet repaired (found now, or found at an earlier start whose repair did not
    /// finish): the replica must repair before it votes.
    public var repairNeeded = false
    /// Damaged writes found again that an earlier repair already covered.
    public var damageAlreadyRepaired = 0

    private var tornTailPath: String?
    private var tornTailOffset: UInt64 = 0

    public init() {}

    public var description: String {
        var parts = [created ? "created a new data directory" : "read \(segmentsRead) segment(s), \(recordsRead) record(s)"]
        if let snapshotSlot { parts.append("snapshot through slot \(snapshotSlot)") }
        if let tornTail {
            parts.append("truncated a torn tail in \(tornTail.path) at offset \(tornTail.offset)"
                         + (discardedBytes > 0 ? " (\(discardedBytes) bytes of an unsynced write)" : ""))
        }
        if !removedEmptySegments.isEmpty { parts.append("removed \(removedEmptySegments.count) segment(s) left half-created") }
        if !removedTemporaryFiles.isEmpty { parts.append("removed \(removedTemporaryFiles.count) unfinished snapshot file(s)") }
        if !damage.isEmpty {
            parts.append("skipped \(damage.count) damaged synced write(s): " + damage.map(\.description).joined(separator: "; "))
        }
        if damageAlreadyRepaired > 0 { parts.append("\(damageAlreadyRepaired) of them repaired before") }
        if repairNeeded { parts.append("repair from the other members needed before voting") }
        return parts.joined(separator: "; ")
    }
}

import SynodCore

/// A synced log write recovery found damaged or missing, or a damaged snapshot file: where,
/// and what was wrong.
public struct WALDamage: Hashable, Sendable, CustomStringConvertible {
    /// The segment's file name, or `snap/` and the snapshot's file name (not a full path, so a
    /// moved data directory keeps the identity).
    public var segment: String
    /// Where the damaged write starts in it.
    public var offset: UInt64
    public var reason: String

    public init(segment: String, offset: UInt64, reason: String) {
        self.segment = segment
        self.offset = offset
        self.reason = reason
    }

    /// What identifies this damage across restarts (the repair ledger's key).
    public var identity: String { "\(segment)@\(offset)" }

    public var description: String { "\(segment) at offset \(offset): \(reason)" }
}
