import SynodCore
import SynodTransport

/// Messages for the codec tests: every `Message` case with edge values, and seeded random ones.
enum PeerCodecFixtures {
    static let maxBallot = Ballot(round: .max, node: NodeID(.max))
    static let ballot = Ballot(round: 7, node: NodeID(2))

    static let emptyCommand = Command(clientID: 0, sequence: 0, payload: [])
    static let maxCommand = Command(clientID: .max, sequence: .max, payload: [0xFF, 0x00, 0xA5])

    /// Every case at least twice, with empty, noop, large and extreme values and both sides of
    /// every optional.
    static let edgeMessages: [Message] = {
        let big = Command(clientID: 9, sequence: 1, payload: (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        return [
            .prepare(ballot: .zero, firstSlot: 0),
            .prepare(ballot: maxBallot, firstSlot: .max),
            .promise(ballot: ballot, chosenThrough: 0, entries: []),
            .promise(ballot: maxBallot, chosenThrough: .max, entries: [
                PromisedEntry(slot: 1, ballot: nil, value: .noop),
                PromisedEntry(slot: .max, ballot: maxBallot, value: .batch([])),
                PromisedEntry(slot: 3, ballot: ballot, value: .batch([emptyCommand, maxCommand])),
                PromisedEntry(slot: 4, ballot: nil, value: .batch([big])),
            ]),
            .accept(ballot: ballot, slot: 1, value: .noop, chosenThrough: 0),
            .accept(ballot: maxBallot, slot: .max, value: .batch([]), chosenThrough: .max),
            .accept(ballot: ballot, slot: 5, value: .batch([emptyCommand, maxCommand, big]), chosenThrough: 4),
            .accepted(ballot: .zero, slot: 0),
            .accepted(ballot: maxBallot, slot: .max),
            .reject(ballot: ballot, promised: maxBallot),
            .reject(ballot: .zero, promised: .zero),
            .heartbeat(ballot: ballot, chosenThrough: 0, sequence: .max),
            .heartbeat(ballot: maxBallot, chosenThrough: .max, sequence: 0),
            .heartbeatAck(ballot: ballot, sequence: .max, chosenThrough: 0),
            .heartbeatAck(ballot: maxBallot, sequence: 0, chosenThrough: .max),
            .commit(ballot: ballot, chosenThrough: 0),
            .commit(ballot: maxBallot, chosenThrough: .max),
            .catchUpRequest(firstSlot: 0),
            .catchUpRequest(firstSlot: .max),
            .catchUpReply(snapshot: nil, entries: [], chosenThrough: 0),
            .catchUpReply(snapshot: Snapshot(slot: 0, data: []), entries: [], chosenThrough: .max),
            .catchUpReply(snapshot: Snapshot(slot: .max, data: big.payload), entries: [
                ChosenEntry(slot: 1, value: .noop),
                ChosenEntry(slot: .max, value: .batch([maxCommand, emptyCommand])),
            ], chosenThrough: .max),
            .catchUpReply(snapshot: nil, entries: [ChosenEntry(slot: 2, value: .batch([]))], chosenThrough: 2),
            .forward(commands: []),
            .forward(commands: [emptyCommand, maxCommand, big]),
            .readIndexRequest(readID: 0),
            .readIndexRequest(readID: .max),
            .readIndexReply(readID: 1, index: nil),
            .readIndexReply(readID: .max, index: .max),
            .readIndexReply(readID: 0, index: 0),
            .catchUpReply(snapshot: Snapshot(slot: 9, data: [1, 2], membership: membershipHistory), entries: [
                ChosenEntry(slot: 10, value: .reconfigure(reconfiguration)),
            ], chosenThrough: 10),
            .accept(ballot: ballot, slot: 11, value: .reconfigure(reconfiguration), chosenThrough: 10),
            .reconfigureRequest(requestID: 0, change: .add(peerURLs: ["http://h:1", ""], isLearner: true, memberID: .max), force: false),
            .reconfigureRequest(requestID: .max, change: .remove(NodeID(.max)), force: true),
            .reconfigureRequest(requestID: 3, change: .update(NodeID(2), peerURLs: [], name: "n2"), force: false),
            .reconfigureRefused(requestID: 1, error: .memberNotFound),
            .reconfigureRefused(requestID: .max, error: .transferFailed("why")),
            .handOff(ballot: ballot, target: NodeID(3)),
            .handOff(ballot: maxBallot, target: NodeID(.max)),
            .preVote(ballot: ballot),
            .preVote(ballot: maxBallot),
            .preVoteReply(ballot: ballot, granted: true, promised: .zero),
            .preVoteReply(ballot: maxBallot, granted: false, promised: maxBallot),
            .safetyAlarm(reason: ""),
            .safetyAlarm(reason: "slot 7 learned chosen as noop but was chosen as [c1#1] — é"),
            .safetyAlarm(reason: String(repeating: "x", count: Message.safetyAlarmReasonBytesMax)),
            .snapshotChunk(SnapshotChunk(slot: 1, total: 0, checksum: 0, offset: 0, data: [], membership: nil, chosenThrough: 0)),
            .snapshotChunk(SnapshotChunk(slot: .max, total: .max, checksum: .max, offset: .max - 3, data: [1, 2, 3],
                                         membership: membershipHistory, chosenThrough: .max)),
            .snapshotChunkRequest(slot: 0, checksum: 0, offset: 0),
            .snapshotChunkRequest(slot: .max, checksum: .max, offset: .max),
            .repairQuery(nonce: 0),
            .repairQuery(nonce: .max),
            .repairReport(nonce: 1, promised: .zero, highestSlot: 0, repairing: false),
            .repairReport(nonce: .max, promised: maxBallot, highestSlot: .max, repairing: true),
        ]
    }()

    static let membershipHistory: MembershipHistory = {
        let three = Configuration(members: [NodeID(1), NodeID(2), NodeID(3)]).initialMembership
        let four = Membership(members: three.members + [Member(id: NodeID(4), isLearner: true, peerURLs: ["http://h:4"], memberID: 44)])
        return MembershipHistory(epochs: [MembershipEpoch(chosenAt: 0, activeFrom: 1, membership: three),
                                          MembershipEpoch(chosenAt: 8, activeFrom: 40, membership: four)])
    }()

    static let reconfiguration = Reconfiguration(origin: NodeID(2), requestID: 5, change: .promote(NodeID(4)),
                                                 membership: membershipHistory.latest, activeFrom: 42)

    static let edgeEnvelopes: [Envelope] = edgeMessages.enumerated().map { index, message in
        let from = NodeID(index % 3 == 0 ? .max : UInt32(index))
        return Envelope(from: from, to: NodeID(UInt32(index % 2)), message: message)
    }

    static func encode(_ envelopes: [Envelope], limits: PeerCodecLimits = .standard) -> [UInt8] {
        var bytes: [UInt8] = []
        let skipped = PeerFrameCodec.encode(envelopes, into: &bytes, limits: limits)
        precondition(skipped.isEmpty, "fixture envelopes must fit the limits: \(skipped.map(\.error.reason))")
        return bytes
    }

    static func littleEndian(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
    static func littleEndian(_ value: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }

    // MARK: Random messages

    /// Small random values, biased towards the edges (0 and the maxima) where codecs go wrong.
    static func randomUInt64<R: RandomNumberGenerator>(using random: inout R) -> UInt64 {
        switch UInt8.random(in: 0..<4, using: &random) {
        case 0: return 0
        case 1: return .max
        default: return UInt64.random(in: 0...1_000, using: &random)
        }
    }

    static func randomBallot<R: RandomNumberGenerator>(using random: inout R) -> Ballot {
        Ballot(round: randomUInt64(using: &random), node: NodeID(UInt32.random(in: 0...4, using: &random)))
    }

    static func randomCommands<R: RandomNumberGenerator>(using random: inout R) -> [Command] {
        (0..<Int.random(in: 0...3, using: &random)).map { _ in
            Command(clientID: randomUInt64(using: &random), sequence: randomUInt64(using: &random),
                    payload: randomBytes(Int.random(in: 0...12, using: &random), using: &random))
        }
    }

    static func randomValue<R: RandomNumberGenerator>(using random: inout R) -> Value {
        Bool.random(using: &random) ? .noop : .batch(randomCommands(using: &random))
    }

    static func randomMessage<R: RandomNumberGenerator>(using random: inout R) -> Message {
        let ballot = randomBallot(using: &random)
        let a = randomUInt64(using: &random)
        let b = randomUInt64(using: &random)
        switch UInt8.random(in: 1...20, using: &random) {
        case 1: return .prepare(ballot: ballot, firstSlot: a)
        case 2:
            let entries = (0..<Int.random(in: 0...3, using: &random)).map { _ in
                PromisedEntry(slot: randomUInt64(using: &random),
                              ballot: Bool.random(using: &random) ? randomBallot(using: &random) : nil,
                              value: randomValue(using: &random))
            }
            return .promise(ballot: ballot, chosenThrough: a, entries: entries)
        case 3: return .accept(ballot: ballot, slot: a, value: randomValue(using: &random), chosenThrough: b)
        case 4: return .accepted(ballot: ballot, slot: a)
        case 5: return .reject(ballot: ballot, promised: randomBallot(using: &random))
        case 6: return .heartbeat(ballot: ballot, chosenThrough: a, sequence: b)
        case 7: return .heartbeatAck(ballot: ballot, sequence: a, chosenThrough: b)
        case 8: return .catchUpRequest(firstSlot: a)
        case 9:
            let snapshot = Bool.random(using: &random)
                ? Snapshot(slot: b, data: randomBytes(Int.random(in: 0...16, using: &random), using: &random)) : nil
            let entries = (0..<Int.random(in: 0...3, using: &random)).map { _ in
                ChosenEntry(slot: randomUInt64(using: &random), value: randomValue(using: &random))
            }
            return .catchUpReply(snapshot: snapshot, entries: entries, chosenThrough: a)
        case 10: return .forward(commands: randomCommands(using: &random))
        case 11: return .readIndexRequest(readID: a)
        case 12: return .commit(ballot: ballot, chosenThrough: b)
        case 14: return .preVote(ballot: ballot)
        case 15: return .preVoteReply(ballot: ballot, granted: Bool.random(using: &random), promised: randomBallot(using: &random))
        case 16: return .safetyAlarm(reason: String(decoding: randomBytes(Int.random(in: 0...40, using: &random), using: &random).map { 0x20 + $0 % 0x5F }, as: UTF8.self))
        case 17:
            return .snapshotChunk(SnapshotChunk(slot: a, total: b, checksum: randomUInt64(using: &random), offset: randomUInt64(using: &random),
                                                data: randomBytes(Int.random(in: 0...16, using: &random), using: &random),
                                                membership: nil, chosenThrough: randomUInt64(using: &random)))
        case 18: return .snapshotChunkRequest(slot: a, checksum: b, offset: randomUInt64(using: &random))
        case 19: return .repairQuery(nonce: a)
        case 20: return .repairReport(nonce: a, promised: ballot, highestSlot: b, repairing: Bool.random(using: &random))
        default: return .readIndexReply(readID: a, index: Bool.random(using: &random) ? b : nil)
        }
    }

    static func randomEnvelope<R: RandomNumberGenerator>(using random: inout R) -> Envelope {
        Envelope(from: NodeID(UInt32.random(in: 0...4, using: &random)), to: NodeID(UInt32.random(in: 0...4, using: &random)),
                 message: randomMessage(using: &random))
    }

    static func randomBytes<R: RandomNumberGenerator>(_ count: Int, using random: inout R) -> [UInt8] {
        (0..<count).map { _ in UInt8.random(in: 0...255, using: &random) }
    }
}
