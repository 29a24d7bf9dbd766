import SynodBytes

/// The one binary encoding of `Ballot`, `Command` and `Value`, shared by the write-ahead log
/// (SynodStore's `RecordCodec`) and the peer protocol (SynodTransport's `PeerFrameCodec`), so
/// a value is the same bytes on disk and on the wire. Little-endian:
///
///     ballot   = round: UInt64, node: UInt32
///     value    = tag: UInt8 = 0 (noop)
///              | tag: UInt8 = 1 (batch), count: UInt32, count × command
///              | tag: UInt8 = 2 (reconfigure), length: UInt32, reconfiguration (MembershipCoding)
///     command  = clientID: UInt64, sequence: UInt64, payloadLength: UInt32, payload bytes
///
/// Versions: this layout has no version byte of its own. It is part of WAL payload format 1
/// (`RecordCodec.payloadVersion`) and of peer protocol version 3
/// (`PeerFrameCodec.protocolVersion`), whose version bytes stay in their frames. Any change
/// to these bytes is a new version of both formats: bump both version bytes, and keep a
/// decoder for the old layout in the WAL, because existing data directories must still open.
///
/// Decoding is total and bounded: every count and length is checked against the caller's
/// `ValueDecodingLimits` and against the bytes left before anything is reserved or copied.
public enum ValueCoding {
    public static let ballotLength = 8 + 4
    /// The smallest encoding of one command (an empty payload); bounds how many commands the
    /// remaining bytes could hold before any array is reserved.
    public static let commandLengthMin = 8 + 8 + 4

    // MARK: Encoding

    /// The bytes `append(_:to:)` writes for `value`.
    public static func encodedLength(of value: Value) -> Int {
        switch value {
        case .noop: return 1
        case .batch(let commands): return 1 + encodedLength(of: commands)
        case .reconfigure(let change): return 1 + 4 + change.encoded().count
        }
    }

    /// The bytes `append(_:to:)` writes for `commands`, their count field included.
    public static func encodedLength(of commands: [Command]) -> Int {
        var length = 4
        for command in commands { length += commandLengthMin + command.payload.count }
        return length
    }

    public static func append(_ ballot: Ballot, to buffer: inout [UInt8]) {
        LittleEndianWriter.append(ballot.round, to: &buffer)
        LittleEndianWriter.append(ballot.node.rawValue, to: &buffer)
    }

    /// - Precondition: counts and lengths fit their UInt32 fields (the callers bound their
    ///   records and frames far below that).
    public static func append(_ value: Value, to buffer: inout [UInt8]) {
        switch value {
        case .noop:
            buffer.append(0)
        case .batch(let commands):
            buffer.append(1)
            append(commands, to: &buffer)
        case .reconfigure(let change):
            let bytes = change.encoded()
            buffer.append(2)
            LittleEndianWriter.append(UInt32(bytes.count), to: &buffer)
            buffer.append(contentsOf: bytes)
        }
    }

    /// The count, then each command. Also the body of a peer `forward`.
    public static func append(_ commands: [Command], to buffer: inout [UInt8]) {
        LittleEndianWriter.append(UInt32(commands.count), to: &buffer)
        for command in commands {
            LittleEndianWriter.append(command.clientID, to: &buffer)
            LittleEndianWriter.append(command.sequence, to: &buffer)
            LittleEndianWriter.append(UInt32(command.payload.count), to: &buffer)
            buffer.append(contentsOf: command.payload)
        }
    }

    // MARK: Decoding

    public static func readBallot(from reader: inout LittleEndianReader) throws(ByteDecodingError) -> Ballot {
        let round = try reader.readUInt64("ballot round")
        return Ballot(round: round, node: NodeID(try reader.readUInt32("ballot node")))
    }

    public static func readValue(
        from reader: inout LittleEndianReader, limits: ValueDecodingLimits
    ) throws(ByteDecodingError) -> Value {
        let tag = try reader.readUInt8("value tag")
        switch tag {
        case 0:
            return .noop
        case 1:
            return .batch(try readCommands(from: &reader, limits: limits))
        case 2:
            let length = try reader.readUInt32("reconfiguration length")
            let bytes = try reader.readBytes(count: UInt64(length), "reconfiguration", limit: limits.membershipBytesMax)
            do {
                return .reconfigure(try Reconfiguration(decoding: bytes))
            } catch {
                throw ByteDecodingError(error.description)
            }
        default:
            throw ByteDecodingError("unknown value tag \(tag)")
        }
    }

    /// Reads what `append(_ commands:to:)` wrote.
    public static func readCommands(
        from reader: inout LittleEndianReader, limits: ValueDecodingLimits
    ) throws(ByteDecodingError) -> [Command] {
        let count = try reader.readCount("command count", limit: limits.commandsPerValueMax, elementLengthMin: commandLengthMin)
        var commands: [Command] = []
        commands.reserveCapacity(count)
        for _ in 0..<count {
            let clientID = try reader.readUInt64("command client id")
            let sequence = try reader.readUInt64("command sequence")
            let payloadLength = try reader.readUInt32("command payload length")
            let payload = try reader.readBytes(count: UInt64(payloadLength), "command payload", limit: limits.payloadBytesMax)
            commands.append(Command(clientID: clientID, sequence: sequence, payload: payload))
        }
        return commands
    }
}

/// Upper bounds a decoder of `Value` enforces before allocating; a count or length over its
/// bound makes the bytes invalid. Each bound is in `0...UInt32.max` (the fields are UInt32).
public struct ValueDecodingLimits: Hashable, Sendable {
    /// Most commands in one batch (or one peer `forward`).
    public var commandsPerValueMax: Int
    /// Largest payload of one command.
    public var payloadBytesMax: Int
    /// Largest encoded reconfiguration.
    public var membershipBytesMax: Int

    public init(commandsPerValueMax: Int, payloadBytesMax: Int, membershipBytesMax: Int) {
        self.commandsPerValueMax = commandsPerValueMax
        self.payloadBytesMax = payloadBytesMax
        self.membershipBytesMax = membershipBytesMax
    }

    /// Only the bytes present bound the counts and lengths: for a reader whose frame length
    /// is already bounded and checksummed (the write-ahead log).
    public static let unbounded = ValueDecodingLimits(
        commandsPerValueMax: Int(UInt32.max), payloadBytesMax: Int(UInt32.max), membershipBytesMax: Int(UInt32.max))
}
