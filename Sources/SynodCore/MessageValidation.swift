/// Checks on messages from the network before the replica acts on them. A peer that is
/// buggy (or a frame that decodes to nonsense) must never crash a replica: a message that
/// fails here is ignored, like a lost one.
extension Message {
    /// Ballot rounds stay far below `UInt64.max`, so `round + 1` can never overflow.
    public static let ballotRoundMax: UInt64 = 1 << 62

    /// True when every ballot is in range and names a node, and every slot is >= 1. Ballots
    /// of nodes this replica does not know yet are allowed: membership changes while
    /// messages are in flight, and an acceptor needs no membership to keep its promises.
    public func isWellFormed() -> Bool {
        func valid(_ ballot: Ballot) -> Bool {
            ballot.round >= 1 && ballot.round <= Self.ballotRoundMax && ballot.node.rawValue >= 1
        }
        switch self {
        case .prepare(let ballot, let firstSlot):
            return valid(ballot) && firstSlot >= 1
        case .promise(let ballot, _, let entries):
            return valid(ballot) && entries.allSatisfy { $0.slot >= 1 && ($0.ballot.map(valid) ?? true) }
        case .accept(let ballot, let slot, _, _):
            return valid(ballot) && slot >= 1
        case .accepted(let ballot, let slot):
            return valid(ballot) && slot >= 1
        case .reject(let ballot, let promised):
            return valid(ballot) && valid(promised)
        case .heartbeat(let ballot, _, _), .heartbeatAck(let ballot, _, _), .commit(let ballot, _):
            return valid(ballot)
        case .catchUpRequest(let firstSlot):
            return firstSlot >= 1
        case .catchUpReply(_, let entries, _):
            return entries.allSatisfy { $0.slot >= 1 }
        case .snapshotChunk(let chunk):
            // The chunk lies inside the snapshot (no overflow: both are checked first).
            return chunk.slot >= 1 && chunk.offset <= chunk.total
                && UInt64(chunk.data.count) <= chunk.total - chunk.offset && (chunk.total == 0 || !chunk.data.isEmpty)
        case .snapshotChunkRequest(let slot, _, _):
            return slot >= 1
        case .forward, .readIndexRequest, .readIndexReply, .reconfigureRequest, .reconfigureRefused:
            return true
        case .handOff(let ballot, let target):
            return valid(ballot) && target.rawValue >= 1
        case .preVote(let ballot):
            return valid(ballot)
        case .preVoteReply(let ballot, _, let promised):
            return valid(ballot) && (promised == .zero || valid(promised))
        case .safetyAlarm(let reason):
            return reason.utf8.count <= Self.safetyAlarmReasonBytesMax
        case .repairQuery:
            return true
        case .repairReport(_, let promised, _, _):
            return promised == .zero || valid(promised)
        }
    }
}
