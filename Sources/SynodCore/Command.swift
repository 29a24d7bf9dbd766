import SynodBytes

/// One client command, opaque to the protocol.
///
/// `(clientID, sequence)` identifies the command for exactly-once application: a retried
/// command carries the same pair, and the state machine's `SessionTable` applies it once.
public struct Command: Hashable, Sendable, CustomStringConvertible {
    public var clientID: UInt64
    public var sequence: UInt64
    public var payload: [UInt8]

    public init(clientID: UInt64, sequence: UInt64, payload: [UInt8]) {
        self.clientID = clientID
        self.sequence = sequence
        self.payload = payload
    }

    public var description: String { "c\(clientID)#\(sequence)" }
}

/// The value of one slot: a no-op (used by a new leader to fill holes) or a batch of commands.
public enum Value: Hashable, Sendable, CustomStringConvertible {
    case noop
    case batch([Command])
    /// A membership change (see `Reconfiguration`); it carries no client command.
    case reconfigure(Reconfiguration)

    public var commands: [Command] {
        switch self {
        case .noop, .reconfigure: return []
        case .batch(let commands): return commands
        }
    }

    /// The commands' payload bytes (0 for a no-op).
    public var payloadBytes: Int {
        switch self {
        case .noop, .reconfigure: return 0
        case .batch(let commands): return commands.reduce(0) { $0 + $1.payload.count }
        }
    }

    public var description: String {
        switch self {
        case .noop: return "noop"
        case .reconfigure(let change): return "reconfigure(\(change.change) -> voters \(change.membership.voters.map(\.description).joined(separator: ",")) from \(change.activeFrom))"
        case .batch(let commands):
            if commands.count <= 3 { return "[" + commands.map(\.description).joined(separator: ",") + "]" }
            return "[\(commands[0]) +\(commands.count - 1)]"
        }
    }
}

/// Snapshot of the applied state machine through `slot`: opaque bytes supplied by the state machine.
public struct Snapshot: Hashable, Sendable {
    /// Every slot `<= slot` is covered (chosen and applied) by `bytes`.
    public var slot: Slot
    /// The state machine's encoding of its state, in memory or (once durable, on a node) in
    /// the snapshot file.
    public var bytes: SnapshotBytes
    /// The memberships governing the slots after `slot` (nil in snapshots written before
    /// membership changes existed: the replica's own initial membership then applies).
    public var membership: MembershipHistory?

    public init(slot: Slot, data: [UInt8], membership: MembershipHistory? = nil) {
        self.init(slot: slot, bytes: SnapshotBytes(data), membership: membership)
    }

    public init(slot: Slot, bytes: SnapshotBytes, membership: MembershipHistory? = nil) {
        self.slot = slot
        self.bytes = bytes
        self.membership = membership
    }

    /// The hash behind `checksum(of:)`, for those who fold a snapshot in piece by piece (the
    /// receiver of chunks, the encoder): XXH64, which reads 32 bytes a step and hashes a GiB in
    /// a fraction of a second (byte-at-a-time FNV-1a, used until peer protocol version 5, took
    /// about one and a half: `synod bench snapshot`).
    public typealias ChecksumHash = XXHash64

    /// The checksum a chunked transfer of snapshot bytes carries (`SnapshotChunk.checksum`):
    /// `ChecksumHash` (XXH64) of all of them. Senders, receivers and the shells that compute
    /// it off their loop all use this, so they cannot disagree.
    public static func checksum(of data: [UInt8]) -> UInt64 {
        var hash = ChecksumHash()
        hash.combine(data)
        return hash.value
    }

    /// `checksum(of:)` of bytes in memory or in a file, read a piece at a time (never the
    /// whole file at once); nil when the file cannot be read.
    public static func checksum(of bytes: SnapshotBytes) -> UInt64? {
        var hash = ChecksumHash()
        var offset = 0
        let piece = 4 << 20
        while offset < bytes.count {
            guard let part = bytes.read(offset..<(offset + piece)), !part.isEmpty else { return nil }
            hash.combine(part)
            offset += part.count
        }
        return hash.value
    }
}
