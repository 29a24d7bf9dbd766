import Foundation
import SynodCore

/// One peer message as the live page shows it: small, fixed-size, no allocation to record.
struct LiveMessageRecord: Sendable {
    /// Wall-clock time, microseconds since 1970.
    var wallMicros: Int64
    var outgoing: Bool
    var peer: NodeID
    /// `Message.kind`: a string literal, so storing it allocates nothing.
    var type: String
    var ballot: Ballot?
    var slot: Slot?
    var slotEnd: Slot?

    static let empty = LiveMessageRecord(wallMicros: 0, outgoing: false, peer: NodeID(0), type: "", ballot: nil, slot: nil, slotEnd: nil)
}

/// The last peer messages this member sent and received, for the live page: a fixed ring
/// written on the node's loop (no allocation per message once created). Heartbeats and their
/// acknowledgements are sampled (one in `heartbeatSampling` of each direction is kept), or
/// they would crowd out everything else in an idle cluster.
struct LiveMessageLog {
    static let capacity = 128
    static let heartbeatSampling = 10

    private var ring = [LiveMessageRecord](repeating: .empty, count: LiveMessageLog.capacity)
    private var next = 0
    private var count = 0
    private var heartbeatsSeen = [0, 0]

    /// Records `envelopes`, sent (`outgoing`) or received by this member, at `wallMicros`.
    mutating func record(_ envelopes: [Envelope], outgoing: Bool, wallMicros: Int64) {
        for envelope in envelopes {
            let message = envelope.message
            switch message {
            case .heartbeat, .heartbeatAck:
                let direction = outgoing ? 1 : 0
                heartbeatsSeen[direction] &+= 1
                if heartbeatsSeen[direction] % Self.heartbeatSampling != 1 { continue }
            default:
                break
            }
            let (ballot, slot, slotEnd) = Self.fields(message)
            ring[next] = LiveMessageRecord(wallMicros: wallMicros, outgoing: outgoing, peer: outgoing ? envelope.to : envelope.from,
                                           type: message.kind, ballot: ballot, slot: slot, slotEnd: slotEnd)
            next = (next + 1) % Self.capacity
            count = min(count + 1, Self.capacity)
        }
    }

    /// The newest `limit` records, oldest first.
    func recent(_ limit: Int) -> [LiveMessageRecord] {
        let take = min(limit, count)
        var out: [LiveMessageRecord] = []
        out.reserveCapacity(take)
        for offset in stride(from: take, to: 0, by: -1) {
            out.append(ring[(next - offset + Self.capacity) % Self.capacity])
        }
        return out
    }

    /// The ballot and slot (range) a message is about, where it names them.
    static func fields(_ message: Message) -> (Ballot?, Slot?, Slot?) {
        switch message {
        case .prepare(let ballot, let firstSlot): return (ballot, firstSlot, nil)
        case .promise(let ballot, let chosenThrough, let entries):
            if let first = entries.first, let last = entries.last { return (ballot, first.slot, last.slot) }
            return (ballot, chosenThrough, nil)
        case .accept(let ballot, let slot, _, _): return (ballot, slot, nil)
        case .accepted(let ballot, let slot): return (ballot, slot, nil)
        case .reject(let ballot, _): return (ballot, nil, nil)
        case .heartbeat(let ballot, let chosenThrough, _): return (ballot, chosenThrough, nil)
        case .heartbeatAck(let ballot, _, let chosenThrough): return (ballot, chosenThrough, nil)
        case .commit(let ballot, let chosenThrough): return (ballot, chosenThrough, nil)
        case .catchUpRequest(let firstSlot): return (nil, firstSlot, nil)
        case .catchUpReply(let snapshot, let entries, let chosenThrough):
            if let first = entries.first, let last = entries.last { return (nil, first.slot, last.slot) }
            return (nil, snapshot?.slot ?? chosenThrough, nil)
        case .snapshotChunk(let chunk): return (nil, chunk.slot, nil)
        case .snapshotChunkRequest(let slot, _, _): return (nil, slot, nil)
        case .readIndexReply(_, let index): return (nil, index, nil)
        case .handOff(let ballot, _): return (ballot, nil, nil)
        case .preVote(let ballot): return (ballot, nil, nil)
        case .preVoteReply(let ballot, _, _): return (ballot, nil, nil)
        case .repairReport(_, let promised, let highestSlot, _): return (promised, highestSlot, nil)
        case .forward, .readIndexRequest, .reconfigureRequest, .reconfigureRefused, .safetyAlarm, .repairQuery:
            return (nil, nil, nil)
        }
    }

    /// Microseconds since 1970, now.
    static func wallMicrosNow() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1_000_000 + Int64(spec.tv_nsec) / 1_000
    }
}
