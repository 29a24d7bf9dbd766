/// Upper bounds the peer codec enforces, on decode before anything is allocated and on encode
/// before anything is written.
///
/// Both ends of a connection must use limits at least as large as what the other sends: a
/// decoder that sees a frame over its limits closes the connection.
///
/// The defaults sit well above what a replica with the default `Configuration` sends
/// (`batchCommandsMax` 256, `batchBytesMax` 1 MiB, `catchUpEntriesMax` 512), so they only stop
/// damaged or hostile input, while keeping the worst-case allocation per connection bounded.
public struct PeerCodecLimits: Hashable, Sendable {
    /// Largest accepted frame length field: the bytes after the 4-byte length prefix (header
    /// and body). A damaged or hostile length above it closes the connection at once, without
    /// waiting for (or buffering) the bytes it announces.
    public let frameBytesMax: Int
    /// Most commands in one `Value.batch` or one `forward`.
    public let commandsPerValueMax: Int
    /// Most entries in one `promise` or `catchUpReply`.
    public let entriesPerMessageMax: Int
    /// Largest payload of one command.
    public let payloadBytesMax: Int
    /// Largest snapshot data in one `catchUpReply`.
    public let snapshotBytesMax: Int

    public static let frameBytesMaxDefault = 64 << 20
    public static let commandsPerValueMaxDefault = 1 << 16
    public static let entriesPerMessageMaxDefault = 1 << 16
    public static let payloadBytesMaxDefault = 8 << 20
    /// Below `frameBytesMaxDefault` so that a full snapshot still leaves room in its frame for
    /// the catch-up entries sent with it.
    public static let snapshotBytesMaxDefault = 48 << 20

    /// The defaults.
    public static let standard = PeerCodecLimits()

    /// - Precondition: every limit is in `0...UInt32.max`: lengths and counts travel as UInt32.
    public init(
        frameBytesMax: Int = frameBytesMaxDefault,
        commandsPerValueMax: Int = commandsPerValueMaxDefault,
        entriesPerMessageMax: Int = entriesPerMessageMaxDefault,
        payloadBytesMax: Int = payloadBytesMaxDefault,
        snapshotBytesMax: Int = snapshotBytesMaxDefault
    ) {
        for (name, value) in [("frameBytesMax", frameBytesMax), ("commandsPerValueMax", commandsPerValueMax),
                              ("entriesPerMessageMax", entriesPerMessageMax), ("payloadBytesMax", payloadBytesMax),
                              ("snapshotBytesMax", snapshotBytesMax)] {
            precondition(value >= 0 && UInt64(value) <= UInt64(UInt32.max), "\(name) \(value) outside 0...UInt32.max")
        }
        self.frameBytesMax = frameBytesMax
        self.commandsPerValueMax = commandsPerValueMax
        self.entriesPerMessageMax = entriesPerMessageMax
        self.payloadBytesMax = payloadBytesMax
        self.snapshotBytesMax = snapshotBytesMax
    }
}
