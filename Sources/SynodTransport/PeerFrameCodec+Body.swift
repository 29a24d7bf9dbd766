import SynodBytes
import SynodCore

/// The frame's message type byte: which `Message` case the body holds. 0 is never used, so an
/// all-zero header is not a valid frame.
enum PeerMessageType: UInt8, CaseIterable {
    case prepare = 1
    case promise = 2
    case accept = 3
    case accepted = 4
    case reject = 5
    case heartbeat = 6
    case heartbeatAck = 7
    case catchUpRequest = 8
    case catchUpReply = 9
    case forward = 10
    case readIndexRequest = 11
    case readIndexReply = 12
    case commit = 13
    case reconfigureRequest = 14
    case reconfigureRefused = 15
    case handOff = 16
    case preVote = 17
    case preVoteReply = 18
    case safetyAlarm = 19
    case snapshotChunk = 20
    case snapshotChunkRequest = 21
    case repairQuery = 22
    case repairReport = 23

    init(of message: Message) {
        switch message {
        case .prepare: self = .prepare
        case .promise: self = .promise
        case .accept: self = .accept
        case .accepted: self = .accepted
        case .reject: self = .reject
        case .heartbeat: self = .heartbeat
        case .heartbeatAck: self = .heartbeatAck
        case .catchUpRequest: self = .catchUpRequest
        case .catchUpReply: self = .catchUpReply
        case .snapshotChunk: self = .snapshotChunk
        case .snapshotChunkRequest: self = .snapshotChunkRequest
        case .forward: self = .forward
        case .readIndexRequest: self = .readIndexRequest
        case .readIndexReply: self = .readIndexReply
        case .commit: self = .commit
        case .reconfigureRequest: self = .reconfigureRequest
        case .reconfigureRefused: self = .reconfigureRefused
        case .handOff: self = .handOff
        case .preVote: self = .preVote
        case .preVoteReply: self = .preVoteReply
        case .safetyAlarm: self = .safetyAlarm
        case .repairQuery: self = .repairQuery
        case .repairReport: self = .repairReport
        }
    }
}

/// Body encoding of `Message`, protocol version 4 (all integers little-endian). Fields follow
/// the order of the `Message` case's associated values:
///
///     prepare (1)          ballot, firstSlot: UInt64
///     promise (2)          ballot, chosenThrough: UInt64, count: UInt32, count × promisedEntry
///     accept (3)           ballot, slot: UInt64, value, chosenThrough: UInt64
///     accepted (4)         ballot, slot: UInt64
///     reject (5)           ballot, promised: ballot
///     heartbeat (6)        ballot, chosenThrough: UInt64, sequence: UInt64
///     heartbeatAck (7)     ballot, sequence: UInt64, chosenThrough: UInt64
///     catchUpRequest (8)   firstSlot: UInt64
///     catchUpReply (9)     present: UInt8 [, snapshotSlot: UInt64, dataLength: UInt32, data,
///                          membershipLength: UInt32, membership history (0 bytes = none)],
///                          count: UInt32, count × chosenEntry, chosenThrough: UInt64
///     forward (10)         count: UInt32, count × command
///     readIndexRequest (11) readID: UInt64
///     readIndexReply (12)  readID: UInt64, present: UInt8 [, index: UInt64]
///     commit (13)          ballot, chosenThrough: UInt64
///     reconfigureRequest (14) requestID: UInt64, force: UInt8, length: UInt32, change
///     reconfigureRefused (15) requestID: UInt64, length: UInt32, error
///     handOff (16)         ballot, target: UInt32
///     preVote (17)         ballot
///     preVoteReply (18)    ballot, granted: UInt8 (0 or 1), promised: ballot
///     safetyAlarm (19)     length: UInt32, reason: UTF-8 (at most Message.safetyAlarmReasonBytesMax)
///     snapshotChunk (20)   slot: UInt64, total: UInt64, checksum: UInt64, offset: UInt64,
///                          dataLength: UInt32, data, membershipLength: UInt32, membership
///                          history (0 bytes = none), chosenThrough: UInt64
///     snapshotChunkRequest (21) slot: UInt64, checksum: UInt64, offset: UInt64
///     repairQuery (22)     nonce: UInt64
///     repairReport (23)    nonce: UInt64, promised: ballot, highestSlot: UInt64, repairing: UInt8 (0 or 1)
///     (change, error, membership history and reconfiguration: `MembershipCoding` in SynodCore)
///
///     promisedEntry = slot: UInt64, present: UInt8 [, ballot], value
///     chosenEntry   = slot: UInt64, value
///     present       = 0 (absent) | 1 (present); any other byte is invalid
///     ballot, value, command (count: UInt32, count × command): `ValueCoding` in SynodCore,
///                   the same bytes as in the write-ahead log; a change to that layout is a
///                   new protocol version (see its version rules)
///
/// The body must be consumed exactly, so each message has one encoding and a decoded message
/// re-encodes to the same bytes.
extension PeerFrameCodec {
    static let ballotLength = ValueCoding.ballotLength
    /// The smallest encodings of the repeated elements; they bound how many elements the
    /// remaining bytes could hold before any array is reserved.
    static let promisedEntryLengthMin = 8 + 1 + 1
    static let chosenEntryLengthMin = 8 + 1

    // MARK: Encoding

    /// The exact body length, after checking every count and length against `limits` (so a
    /// message the receiver would reject is refused here, before any byte is written).
    static func bodyLength(of message: Message, limits: PeerCodecLimits) throws(PeerEncodingError) -> Int {
        switch message {
        case .prepare, .accepted:
            return ballotLength + 8
        case .promise(_, _, let entries):
            try checkCount(entries.count, limits.entriesPerMessageMax, "promised entries")
            var length = ballotLength + 8 + 4
            for entry in entries {
                length += 8 + 1 + (entry.ballot == nil ? 0 : ballotLength) + (try valueLength(entry.value, limits: limits))
            }
            return length
        case .accept(_, _, let value, _):
            return ballotLength + 8 + (try valueLength(value, limits: limits)) + 8
        case .reject:
            return 2 * ballotLength
        case .heartbeat, .heartbeatAck:
            return ballotLength + 8 + 8
        case .commit:
            return ballotLength + 8
        case .catchUpRequest, .readIndexRequest, .repairQuery:
            return 8
        case .repairReport:
            return 8 + ballotLength + 8 + 1
        case .catchUpReply(let snapshot, let entries, _):
            var length = 1 + 4 + 8
            if let snapshot {
                guard let data = snapshot.bytes.inMemory else {
                    throw PeerEncodingError("snapshot at slot \(snapshot.slot) is not in memory (larger ones go in chunks)")
                }
                guard data.count <= limits.snapshotBytesMax else {
                    throw PeerEncodingError("snapshot of \(data.count) bytes exceeds the limit \(limits.snapshotBytesMax)")
                }
                length += 8 + 4 + data.count + 4 + (snapshot.membership?.encoded().count ?? 0)
            }
            try checkCount(entries.count, limits.entriesPerMessageMax, "chosen entries")
            for entry in entries { length += 8 + (try valueLength(entry.value, limits: limits)) }
            return length
        case .snapshotChunk(let chunk):
            guard chunk.data.count <= limits.snapshotBytesMax else {
                throw PeerEncodingError("snapshot chunk of \(chunk.data.count) bytes exceeds the limit \(limits.snapshotBytesMax)")
            }
            return 4 * 8 + 4 + chunk.data.count + 4 + (chunk.membership?.encoded().count ?? 0) + 8
        case .snapshotChunkRequest:
            return 3 * 8
        case .forward(let commands):
            try checkCommands(commands, limits: limits)
            return ValueCoding.encodedLength(of: commands)
        case .readIndexReply(_, let index):
            return 8 + 1 + (index == nil ? 0 : 8)
        case .reconfigureRequest(_, let change, _):
            return 8 + 1 + 4 + change.encoded().count
        case .reconfigureRefused(_, let error):
            return 8 + 4 + error.encoded().count
        case .handOff:
            return ballotLength + 4
        case .preVote:
            return ballotLength
        case .preVoteReply:
            return 2 * ballotLength + 1
        case .safetyAlarm(let reason):
            let length = reason.utf8.count
            guard length <= Message.safetyAlarmReasonBytesMax else {
                throw PeerEncodingError("safety alarm reason of \(length) bytes exceeds the limit \(Message.safetyAlarmReasonBytesMax)")
            }
            return 4 + length
        }
    }

    static func valueLength(_ value: Value, limits: PeerCodecLimits) throws(PeerEncodingError) -> Int {
        if case .batch(let commands) = value { try checkCommands(commands, limits: limits) }
        return ValueCoding.encodedLength(of: value)
    }

    /// Refuses the commands a decoder with `limits` would refuse.
    static func checkCommands(_ commands: [Command], limits: PeerCodecLimits) throws(PeerEncodingError) {
        try checkCount(commands.count, limits.commandsPerValueMax, "commands")
        for command in commands where command.payload.count > limits.payloadBytesMax {
            throw PeerEncodingError("command payload of \(command.payload.count) bytes exceeds the limit \(limits.payloadBytesMax)")
        }
    }

    static func checkCount(_ count: Int, _ limit: Int, _ field: StaticString) throws(PeerEncodingError) {
        guard count <= limit else { throw PeerEncodingError("\(count) \(field) exceed the limit \(limit)") }
    }

    /// Appends the body. `bodyLength(of:limits:)` has accepted the message, so every count and
    /// length fits its UInt32 field (the limits are at most UInt32.max).
    static func appendBody(of message: Message, to buffer: inout [UInt8]) {
        switch message {
        case .prepare(let ballot, let firstSlot):
            ValueCoding.append(ballot, to: &buffer)
            LittleEndianWriter.append(firstSlot, to: &buffer)
        case .promise(let ballot, let chosenThrough, let entries):
            ValueCoding.append(ballot, to: &buffer)
            LittleEndianWriter.append(chosenThrough, to: &buffer)
            LittleEndianWriter.append(UInt32(entries.count), to: &buffer)
            for entry in entries {
                LittleEndianWriter.append(entry.slot, to: &buffer)
                if let ballot = entry.ballot {
                    buffer.append(1)
                    ValueCoding.append(ballot, to: &buffer)
                } else {
                    buffer.append(0)
                }
                ValueCoding.append(entry.value, to: &buffer)
            }
        case .accept(let ballot, let slot, let value, let chosenThrough):
            ValueCoding.append(ballot, to: &buffer)
            LittleEndianWriter.append(slot, to: &buffer)
            ValueCoding.append(value, to: &buffer)
            LittleEndianWriter.append(chosenThrough, to: &buffer)
        case .accepted(let ballot, let slot):
            ValueCoding.append(ballot, to: &buffer)
            LittleEndianWriter.append(slot, to: &buffer)
        case .reject(let ballot, let promised):
            ValueCoding.append(ballot, to: &buffer)
            ValueCoding.append(promised, to: &buffer)
        case .heartbeat(let ballot, let first, let second), .heartbeatAck(let ballot, let first, let second):
            // heartbeat: (chosenThrough, sequence); heartbeatAck: (sequence, chosenThrough).
            ValueCoding.append(ballot, to: &buffer)
            LittleEndianWriter.append(first, to: &buffer)
            LittleEndianWriter.append(second, to: &buffer)
        case .commit(let ballot, let chosenThrough):
            ValueCoding.append(ballot, to: &buffer)
            LittleEndianWriter.append(chosenThrough, to: &buffer)
        case .catchUpRequest(let firstSlot):
            LittleEndianWriter.append(firstSlot, to: &buffer)
        case .catchUpReply(let snapshot, let entries, let chosenThrough):
            if let snapshot {
                buffer.append(1)
                LittleEndianWriter.append(snapshot.slot, to: &buffer)
                // In memory: `bodyLength` refused any other.
                let data = snapshot.bytes.inMemory ?? []
                LittleEndianWriter.append(UInt32(data.count), to: &buffer)
                buffer.append(contentsOf: data)
                appendBlob(snapshot.membership?.encoded() ?? [], to: &buffer)
            } else {
                buffer.append(0)
            }
            LittleEndianWriter.append(UInt32(entries.count), to: &buffer)
            for entry in entries {
                LittleEndianWriter.append(entry.slot, to: &buffer)
                ValueCoding.append(entry.value, to: &buffer)
            }
            LittleEndianWriter.append(chosenThrough, to: &buffer)
        case .snapshotChunk(let chunk):
            for field in [chunk.slot, chunk.total, chunk.checksum, chunk.offset] { LittleEndianWriter.append(field, to: &buffer) }
            appendBlob(chunk.data, to: &buffer)
            appendBlob(chunk.membership?.encoded() ?? [], to: &buffer)
            LittleEndianWriter.append(chunk.chosenThrough, to: &buffer)
        case .snapshotChunkRequest(let slot, let checksum, let offset):
            for field in [slot, checksum, offset] { LittleEndianWriter.append(field, to: &buffer) }
        case .forward(let commands):
            ValueCoding.append(commands, to: &buffer)
        case .readIndexRequest(let readID):
            LittleEndianWriter.append(readID, to: &buffer)
        case .readIndexReply(let readID, let index):
            LittleEndianWriter.append(readID, to: &buffer)
            if let index {
                buffer.append(1)
                LittleEndianWriter.append(index, to: &buffer)
            } else {
                buffer.append(0)
            }
        case .reconfigureRequest(let requestID, let change, let force):
            LittleEndianWriter.append(requestID, to: &buffer)
            buffer.append(force ? 1 : 0)
            appendBlob(change.encoded(), to: &buffer)
        case .reconfigureRefused(let requestID, let error):
            LittleEndianWriter.append(requestID, to: &buffer)
            appendBlob(error.encoded(), to: &buffer)
        case .handOff(let ballot, let target):
            ValueCoding.append(ballot, to: &buffer)
            LittleEndianWriter.append(target.rawValue, to: &buffer)
        case .preVote(let ballot):
            ValueCoding.append(ballot, to: &buffer)
        case .preVoteReply(let ballot, let granted, let promised):
            ValueCoding.append(ballot, to: &buffer)
            buffer.append(granted ? 1 : 0)
            ValueCoding.append(promised, to: &buffer)
        case .safetyAlarm(let reason):
            appendBlob(Array(reason.utf8), to: &buffer)
        case .repairQuery(let nonce):
            LittleEndianWriter.append(nonce, to: &buffer)
        case .repairReport(let nonce, let promised, let highestSlot, let repairing):
            LittleEndianWriter.append(nonce, to: &buffer)
            ValueCoding.append(promised, to: &buffer)
            LittleEndianWriter.append(highestSlot, to: &buffer)
            buffer.append(repairing ? 1 : 0)
        }
    }

    static func appendBlob(_ bytes: [UInt8], to buffer: inout [UInt8]) {
        LittleEndianWriter.append(UInt32(bytes.count), to: &buffer)
        buffer.append(contentsOf: bytes)
    }

    // MARK: Decoding

    /// Decodes a body of `type`; `reader` spans exactly the body.
    static func readBody(
        type: PeerMessageType, from reader: inout LittleEndianReader, limits: PeerCodecLimits
    ) throws(ByteDecodingError) -> Message {
        let message: Message
        switch type {
        case .prepare:
            message = .prepare(ballot: try ValueCoding.readBallot(from: &reader), firstSlot: try reader.readUInt64("first slot"))
        case .promise:
            let ballot = try ValueCoding.readBallot(from: &reader)
            let chosenThrough = try reader.readUInt64("chosen through")
            let count = try reader.readCount("promised entry count", limit: limits.entriesPerMessageMax, elementLengthMin: promisedEntryLengthMin)
            var entries: [PromisedEntry] = []
            entries.reserveCapacity(count)
            for _ in 0..<count {
                let slot = try reader.readUInt64("promised entry slot")
                let ballot = try reader.readPresence("promised entry ballot") ? try ValueCoding.readBallot(from: &reader) : nil
                entries.append(PromisedEntry(slot: slot, ballot: ballot, value: try ValueCoding.readValue(from: &reader, limits: limits.valueLimits)))
            }
            message = .promise(ballot: ballot, chosenThrough: chosenThrough, entries: entries)
        case .accept:
            let ballot = try ValueCoding.readBallot(from: &reader)
            let slot = try reader.readUInt64("slot")
            let value = try ValueCoding.readValue(from: &reader, limits: limits.valueLimits)
            message = .accept(ballot: ballot, slot: slot, value: value, chosenThrough: try reader.readUInt64("chosen through"))
        case .accepted:
            message = .accepted(ballot: try ValueCoding.readBallot(from: &reader), slot: try reader.readUInt64("slot"))
        case .reject:
            message = .reject(ballot: try ValueCoding.readBallot(from: &reader), promised: try ValueCoding.readBallot(from: &reader))
        case .heartbeat:
            let ballot = try ValueCoding.readBallot(from: &reader)
            let chosenThrough = try reader.readUInt64("chosen through")
            message = .heartbeat(ballot: ballot, chosenThrough: chosenThrough, sequence: try reader.readUInt64("sequence"))
        case .heartbeatAck:
            let ballot = try ValueCoding.readBallot(from: &reader)
            let sequence = try reader.readUInt64("sequence")
            message = .heartbeatAck(ballot: ballot, sequence: sequence, chosenThrough: try reader.readUInt64("chosen through"))
        case .commit:
            message = .commit(ballot: try ValueCoding.readBallot(from: &reader), chosenThrough: try reader.readUInt64("chosen through"))
        case .catchUpRequest:
            message = .catchUpRequest(firstSlot: try reader.readUInt64("first slot"))
        case .catchUpReply:
            var snapshot: Snapshot?
            if try reader.readPresence("snapshot") {
                let slot = try reader.readUInt64("snapshot slot")
                let data = try reader.readBytes("snapshot data", limit: limits.snapshotBytesMax)
                let blob = try reader.readBytes("snapshot membership", limit: membershipBytesMax)
                snapshot = Snapshot(slot: slot, data: data,
                                    membership: blob.isEmpty ? nil : try decodeMembership { () throws(MembershipDecodingError) in try MembershipHistory(decoding: blob) })
            }
            let count = try reader.readCount("chosen entry count", limit: limits.entriesPerMessageMax, elementLengthMin: chosenEntryLengthMin)
            var entries: [ChosenEntry] = []
            entries.reserveCapacity(count)
            for _ in 0..<count {
                let slot = try reader.readUInt64("chosen entry slot")
                entries.append(ChosenEntry(slot: slot, value: try ValueCoding.readValue(from: &reader, limits: limits.valueLimits)))
            }
            message = .catchUpReply(snapshot: snapshot, entries: entries, chosenThrough: try reader.readUInt64("chosen through"))
        case .snapshotChunk:
            let slot = try reader.readUInt64("snapshot slot")
            let total = try reader.readUInt64("snapshot size")
            let checksum = try reader.readUInt64("snapshot checksum")
            let offset = try reader.readUInt64("chunk offset")
            let data = try reader.readBytes("chunk data", limit: limits.snapshotBytesMax)
            let blob = try reader.readBytes("snapshot membership", limit: membershipBytesMax)
            let membership = blob.isEmpty ? nil : try decodeMembership { () throws(MembershipDecodingError) in try MembershipHistory(decoding: blob) }
            message = .snapshotChunk(SnapshotChunk(slot: slot, total: total, checksum: checksum, offset: offset, data: data,
                                                   membership: membership, chosenThrough: try reader.readUInt64("chosen through")))
        case .snapshotChunkRequest:
            message = .snapshotChunkRequest(slot: try reader.readUInt64("snapshot slot"),
                                            checksum: try reader.readUInt64("snapshot checksum"),
                                            offset: try reader.readUInt64("chunk offset"))
        case .forward:
            message = .forward(commands: try ValueCoding.readCommands(from: &reader, limits: limits.valueLimits))
        case .readIndexRequest:
            message = .readIndexRequest(readID: try reader.readUInt64("read id"))
        case .readIndexReply:
            let readID = try reader.readUInt64("read id")
            let index = try reader.readPresence("read index") ? try reader.readUInt64("read index") : nil
            message = .readIndexReply(readID: readID, index: index)
        case .reconfigureRequest:
            let requestID = try reader.readUInt64("request id")
            let force = try reader.readPresence("force flag")
            let blob = try reader.readBytes("membership change", limit: membershipBytesMax)
            let change = try decodeMembership { () throws(MembershipDecodingError) in try MembershipChange(decoding: blob) }
            message = .reconfigureRequest(requestID: requestID, change: change, force: force)
        case .reconfigureRefused:
            let requestID = try reader.readUInt64("request id")
            let blob = try reader.readBytes("refusal", limit: membershipBytesMax)
            message = .reconfigureRefused(requestID: requestID, error: try decodeMembership { () throws(MembershipDecodingError) in try ReconfigurationError(decoding: blob) })
        case .handOff:
            message = .handOff(ballot: try ValueCoding.readBallot(from: &reader), target: NodeID(try reader.readUInt32("hand-off target")))
        case .preVote:
            message = .preVote(ballot: try ValueCoding.readBallot(from: &reader))
        case .preVoteReply:
            let ballot = try ValueCoding.readBallot(from: &reader)
            let granted = try reader.readPresence("pre-vote granted flag")
            message = .preVoteReply(ballot: ballot, granted: granted, promised: try ValueCoding.readBallot(from: &reader))
        case .safetyAlarm:
            let bytes = try reader.readBytes("safety alarm reason", limit: Message.safetyAlarmReasonBytesMax)
            guard let reason = String(validating: bytes, as: UTF8.self) else {
                throw ByteDecodingError("safety alarm reason is not UTF-8")
            }
            message = .safetyAlarm(reason: reason)
        case .repairQuery:
            message = .repairQuery(nonce: try reader.readUInt64("repair nonce"))
        case .repairReport:
            let nonce = try reader.readUInt64("repair nonce")
            let promised = try ValueCoding.readBallot(from: &reader)
            let highestSlot = try reader.readUInt64("highest slot")
            message = .repairReport(nonce: nonce, promised: promised, highestSlot: highestSlot,
                                    repairing: try reader.readPresence("repairing flag"))
        }
        guard reader.remaining == 0 else {
            throw ByteDecodingError("\(reader.remaining) trailing bytes after the \(message.kind) body")
        }
        return message
    }

    /// Membership blobs are small (a member list); this bounds a hostile length field.
    static let membershipBytesMax = 1 << 20

    static func decodeMembership<T>(_ body: () throws(MembershipDecodingError) -> T) throws(ByteDecodingError) -> T {
        do {
            return try body()
        } catch {
            throw ByteDecodingError(error.description)
        }
    }
}

extension PeerCodecLimits {
    /// The limits `ValueCoding` checks values against while decoding a frame.
    var valueLimits: ValueDecodingLimits {
        ValueDecodingLimits(commandsPerValueMax: commandsPerValueMax, payloadBytesMax: payloadBytesMax,
                            membershipBytesMax: PeerFrameCodec.membershipBytesMax)
    }
}
