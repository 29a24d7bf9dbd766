import SynodBytes
import SynodCore

/// The frame's type byte: which `DurableRecord` case the payload holds.
enum RecordType: UInt8, CustomStringConvertible {
    case promised = 1
    case accepted = 2
    case chosen = 3
    case snapshot = 4
    case membership = 5
    case repaired = 6

    var description: String {
        switch self {
        case .promised: return "promised"
        case .accepted: return "accepted"
        case .chosen: return "chosen"
        case .snapshot: return "snapshot"
        case .membership: return "membership"
        case .repaired: return "repaired"
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
///       repaired (6)  nothing
///     ballot, value: `ValueCoding` in SynodCore (the same bytes as on the peer wire)
///
/// The payload must be consumed exactly: trailing bytes are corruption, so each record has
/// one encoding and a decoded record re-encodes to the same bytes.
///
/// A new format gets a new version byte; a reader rejects versions it does not know as
/// corruption rather than guessing. A change to `ValueCoding`'s layout is a new version here
/// too (see its version rules).
extension RecordCodec {
    /// The payload format version this build writes and reads.
    static let payloadVersion: UInt8 = 1

    static func recordType(of record: DurableRecord) -> RecordType {
        switch record {
        case .promised: return .promised
        case .accepted: return .accepted
        case .chosen: return .chosen
        case .snapshot: return .snapshot
        case .membership: return .membership
        case .repaired: return .repaired
        }
    }

    // MARK: Encoding

    static func payloadLength(of record: DurableRecord) -> Int {
        let ballotLength = ValueCoding.ballotLength
        switch record {
        case .promised:
            return 1 + ballotLength
        case .accepted(_, _, let value):
            return 1 + 8 + ballotLength + ValueCoding.encodedLength(of: value)
        case .chosen(_, let value):
            return 1 + 8 + ValueCoding.encodedLength(of: value)
        case .snapshot(let snapshot):
            // Only in-memory snapshots reach the log's records (storage writes snapshots as
            // files); one that is not is written as empty, the same in length and payload.
            return 1 + 8 + 8 + (snapshot.bytes.inMemory?.count ?? 0) + (snapshot.membership.map { 4 + $0.encoded().count } ?? 0)
        case .membership(let history):
            return 1 + history.encoded().count
        case .repaired:
            return 1
        }
    }

    /// Appends the payload. The caller has checked that it is at most `payloadMaxDefault`
    /// bytes, so every count and length below fits its UInt32 field.
    static func appendPayload(of record: DurableRecord, to buffer: inout [UInt8]) {
        buffer.append(payloadVersion)
        switch record {
        case .promised(let ballot):
            ValueCoding.append(ballot, to: &buffer)
        case .accepted(let slot, let ballot, let value):
            LittleEndianWriter.append(slot, to: &buffer)
            ValueCoding.append(ballot, to: &buffer)
            ValueCoding.append(value, to: &buffer)
        case .chosen(let slot, let value):
            LittleEndianWriter.append(slot, to: &buffer)
            ValueCoding.append(value, to: &buffer)
        case .snapshot(let snapshot):
            LittleEndianWriter.append(snapshot.slot, to: &buffer)
            let data = snapshot.bytes.inMemory ?? []
            LittleEndianWriter.append(UInt64(data.count), to: &buffer)
            buffer.append(contentsOf: data)
            if let membership = snapshot.membership {
                let bytes = membership.encoded()
                LittleEndianWriter.append(UInt32(bytes.count), to: &buffer)
                buffer.append(contentsOf: bytes)
            }
        case .membership(let history):
            buffer.append(contentsOf: history.encoded())
        case .repaired:
            break
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
            record = .promised(try ValueCoding.readBallot(from: &reader))
        case .accepted:
            let slot = try reader.readUInt64("slot")
            let ballot = try ValueCoding.readBallot(from: &reader)
            record = .accepted(slot: slot, ballot: ballot, value: try ValueCoding.readValue(from: &reader, limits: .unbounded))
        case .chosen:
            let slot = try reader.readUInt64("slot")
            record = .chosen(slot: slot, value: try ValueCoding.readValue(from: &reader, limits: .unbounded))
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
        case .repaired:
            record = .repaired
        }
        guard reader.remaining == 0 else {
            throw ByteDecodingError("\(reader.remaining) trailing bytes after the record")
        }
        return record
    }

    static func decodeMembership(_ bytes: [UInt8]) throws(ByteDecodingError) -> MembershipHistory {
        do {
            return try MembershipHistory(decoding: bytes)
        } catch {
            throw ByteDecodingError(error.description)
        }
    }
}
