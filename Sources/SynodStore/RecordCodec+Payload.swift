import SynodBytes
import SynodCore

/// The frame's type byte: which `DurableRecord` case the payload holds.
enum RecordType: UInt8, CustomStringConvertible {
    case promised = 1
    case accepted = 2
    case chosen = 3
    case snapshot = 4
    case membership = 5

    var description: String {
        switch self {
        case .promised: return "promised"
        case .accepted: return "accepted"
        case .chosen: return "chosen"
        case .snapshot: return "snapshot"
        case .membership: return "membership"
        }
    }
}

/// Payload encoding of `DurableRecord`, format version 1 (all integers little-endian):
///
///     payload  = version: UInt8 = 1, then by type:
///       promised (1)  ballot
///       accepted (2)  slot: UInt64, ballot, value
///       chosen   (3)  slot: UInt64, value
///       snapshot (4)  slot: UInt64, dataLength: UInt64, data: dataLength bytes
///                     [, membershipLength: UInt32, membership history (MembershipCoding)]
///       membership (5) membership history (MembershipCoding), to the end of the payload
///     ballot   = round: UInt64, node: UInt32
///     value    = tag: UInt8 = 0 (noop)
///              | tag: UInt8 = 1 (batch), count: UInt32, count × command
///              | tag: UInt8 = 2 (reconfigure), length: UInt32, reconfiguration (MembershipCoding)
///     command  = clientID: UInt64, sequence: UInt64, payloadLength: UInt32, payload bytes
///
/// The payload must be consumed exactly: trailing bytes are corruption, so each record has
/// one encoding and a decoded record re-encodes to the same bytes.
///
/// A new format gets a new version byte; a reader rejects versions it does not know as
/// corruption rather than guessing.
extension RecordCodec {
    /// The payload format version this build writes and reads.
    static let payloadVersion: UInt8 = 1

    /// The smallest encoding of one command (an empty payload); bounds how many commands the
    /// remaining bytes could hold before any array is reserved.
    static let commandLengthMin = 8 + 8 + 4

    static func recordType(of record: DurableRecord) -> RecordType {
        switch record {
        case .promised: return .promised
        case .accepted: return .accepted
        case .chosen: return .chosen
        case .snapshot: return .snapshot
        case .membership: return .membership
        }
    }

    // MARK: Encoding

    static func payloadLength(of record: DurableRecord) -> Int {
        let ballotLength = 8 + 4
        switch record {
        case .promised:
            return 1 + ballotLength
        case .accepted(_, _, let value):
            return 1 + 8 + ballotLength + valueLength(value)
        case .chosen(_, let value):
            return 1 + 8 + valueLength(value)
        case .snapshot(let snapshot):
            return 1 + 8 + 8 + snapshot.data.count + (snapshot.membership.map { 4 + $0.encoded().count } ?? 0)
        case .membership(let history):
            return 1 + history.encoded().count
        }
    }

    static func valueLength(_ value: Value) -> Int {
        switch value {
        case .noop:
            return 1
        case .batch(let commands):
            var length = 1 + 4
            for command in commands { length += commandLengthMin + command.payload.count }
            return length
        case .reconfigure(let change):
            return 1 + 4 + change.encoded().count
        }
    }

    /// Appends the payload. The caller has checked that it is at most `payloadMaxDefault`
    /// bytes, so every count and length below fits its UInt32 field.
    static func appendPayload(of record: DurableRecord, to buffer: inout [UInt8]) {
        buffer.append(payloadVersion)
        switch record {
        case .promised(let ballot):
            appendBallot(ballot, to: &buffer)
        case .accepted(let slot, let ballot, let value):
            LittleEndianWriter.append(slot, to: &buffer)
            appendBallot(ballot, to: &buffer)
            appendValue(value, to: &buffer)
        case .chosen(let slot, let value):
            LittleEndianWriter.append(slot, to: &buffer)
            appendValue(value, to: &buffer)
        case .snapshot(let snapshot):
            LittleEndianWriter.append(snapshot.slot, to: &buffer)
            LittleEndianWriter.append(UInt64(snapshot.data.count), to: &buffer)
            buffer.append(contentsOf: snapshot.data)
            if let membership = snapshot.membership {
                let bytes = membership.encoded()
                LittleEndianWriter.append(UInt32(bytes.count), to: &buffer)
                buffer.append(contentsOf: bytes)
            }
        case .membership(let history):
            buffer.append(contentsOf: history.encoded())
        }
    }

    static func appendBallot(_ ballot: Ballot, to buffer: inout [UInt8]) {
        LittleEndianWriter.append(ballot.round, to: &buffer)
        LittleEndianWriter.append(ballot.node.rawValue, to: &buffer)
    }

    static func appendValue(_ value: Value, to buffer: inout [UInt8]) {
        switch value {
        case .noop:
            buffer.append(0)
        case .batch(let commands):
            buffer.append(1)
            LittleEndianWriter.append(UInt32(commands.count), to: &buffer)
            for command in commands {
                LittleEndianWriter.append(command.clientID, to: &buffer)
                LittleEndianWriter.append(command.sequence, to: &buffer)
                LittleEndianWriter.append(UInt32(command.payload.count), to: &buffer)
                buffer.append(contentsOf: command.payload)
            }
        case .reconfigure(let change):
            let bytes = change.encoded()
            buffer.append(2)
            LittleEndianWriter.append(UInt32(bytes.count), to: &buffer)
            buffer.append(contentsOf: bytes)
        }
    }

    // MARK: Decoding

    /// Decodes a payload whose frame passed its CRC and type checks; `reader` spans exactly
    /// the payload.
    static func decodePayload(type: RecordType, from reader: inout LittleEndianReader) throws(ByteDecodingError) -> DurableRecord {
        let version = try reader.readUInt8("format version")
        guard version == payloadVersion else {
            throw ByteDecodingError("unknown format version \(version) (this build reads version \(payloadVersion))")
        }
        let record: DurableRecord
        switch type {
        case .promised:
            record = .promised(try readBallot(from: &reader))
        case .accepted:
            let slot = try reader.readUInt64("slot")
            let ballot = try readBallot(from: &reader)
            record = .accepted(slot: slot, ballot: ballot, value: try readValue(from: &reader))
        case .chosen:
            let slot = try reader.readUInt64("slot")
            record = .chosen(slot: slot, value: try readValue(from: &reader))
        case .snapshot:
            let slot = try reader.readUInt64("snapshot slot")
            let dataLength = try reader.readUInt64("snapshot data length")
            let data = try reader.readBytes(count: dataLength, "snapshot data")
            var membership: MembershipHistory?
            if reader.remaining > 0 {
                let length = try reader.readUInt32("snapshot membership length")
                membership = try decodeMembership(try reader.readBytes(count: UInt64(length), "snapshot membership"))
            }
            record = .snapshot(Snapshot(slot: slot, data: data, membership: membership))
        case .membership:
            record = .membership(try decodeMembership(try reader.readBytes(count: UInt64(reader.remaining), "membership")))
        }
        guard reader.remaining == 0 else {
            throw ByteDecodingError("\(reader.remaining) trailing bytes after the record")
        }
        return record
    }

    static func readBallot(from reader: inout LittleEndianReader) throws(ByteDecodingError) -> Ballot {
        let round = try reader.readUInt64("ballot round")
        let node = try reader.readUInt32("ballot node")
        return Ballot(round: round, node: NodeID(node))
    }

    static func readValue(from reader: inout LittleEndianReader) throws(ByteDecodingError) -> Value {
        let tag = try reader.readUInt8("value tag")
        switch tag {
        case 0:
            return .noop
        case 1:
            let count = try reader.readUInt32("command count")
            // Checked before reserving: a damaged count must not allocate more commands than
            // the remaining bytes could possibly hold.
            guard UInt64(count) * UInt64(commandLengthMin) <= UInt64(reader.remaining) else {
                throw ByteDecodingError("command count \(count) cannot fit in the \(reader.remaining) remaining bytes")
            }
            var commands: [Command] = []
            commands.reserveCapacity(Int(count))
            for _ in 0..<count {
                let clientID = try reader.readUInt64("command client id")
                let sequence = try reader.readUInt64("command sequence")
                let payloadLength = try reader.readUInt32("command payload length")
                let payload = try reader.readBytes(count: UInt64(payloadLength), "command payload")
                commands.append(Command(clientID: clientID, sequence: sequence, payload: payload))
            }
            return .batch(commands)
        case 2:
            let length = try reader.readUInt32("reconfiguration length")
            let bytes = try reader.readBytes(count: UInt64(length), "reconfiguration")
            do {
                return .reconfigure(try Reconfiguration(decoding: bytes))
            } catch {
                throw ByteDecodingError(error.description)
            }
        default:
            throw ByteDecodingError("unknown value tag \(tag)")
        }
    }

    static func decodeMembership(_ bytes: [UInt8]) throws(ByteDecodingError) -> MembershipHistory {
        do {
            return try MembershipHistory(decoding: bytes)
        } catch {
            throw ByteDecodingError(error.description)
        }
    }
}
