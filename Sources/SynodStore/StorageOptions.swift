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
        return parts.joined(separator: "; ")
    }
}

import SynodCore
