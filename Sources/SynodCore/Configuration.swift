/// How linearizable reads are confirmed by the leader.
public enum ReadMode: String, Hashable, Sendable, CaseIterable {
    /// The leader answers locally while it holds a lease granted by the acceptors' heartbeat acks.
    case lease
    /// The leader confirms its leadership with one heartbeat round per read batch (read index).
    case readIndex = "read-index"
}

/// Static protocol configuration: membership, quorum sizes and the timing and size bounds.
///
/// Timers are given in ticks. Timers that only decide when the replica acts (heartbeats,
/// elections, retransmissions) count `.tick` inputs; the two that safety rests on, the lease
/// and the lease guard, are measured on the driver's clock (`ClockTime`), as `ticks ×
/// tickNanoseconds`, so a stalled process cannot stretch them.
///
/// **The lease rule.** A leader answers linearizable reads locally until
/// `t_sent + leaseTicks × tick` on its clock, where `t_sent` is its clock when it sent a heartbeat
/// round that a lease quorum of every governing membership acknowledged. An acceptor that
/// acknowledged a heartbeat of the leader (or that restarted) promises no other proposer until
/// `t_received + electionTimeoutTicks × tick` on its own clock. Receiving happens after sending,
/// so while `leaseTicks + maxClockDriftTicks < electionTimeoutTicks` and the two clocks' rates
/// differ by at most `maxClockDriftTicks` per election timeout, every lease expires (in real
/// time) before the guard of any acceptor that confirmed it, and no new leader can finish
/// phase 1 while the old one still reads locally. A pause of any length is then safe: both
/// clocks keep running through it (CLOCK_BOOTTIME), so a leader that wakes finds its lease
/// expired when it checks it, at the moment it would answer a read, and confirms its
/// leadership with a heartbeat round instead.
public struct Configuration: Hashable, Sendable {
    /// Every voting member, in a fixed order.
    public var members: [NodeID]
    /// Acceptors that must promise before a proposer may lead (phase 1).
    public var phase1Quorum: Int
    /// Acceptors that must accept a value for it to be chosen (phase 2).
    public var phase2Quorum: Int

    /// A follower suspects the leader after a random number of ticks in
    /// `electionTimeoutTicks ..< 2 * electionTimeoutTicks` without hearing from it.
    /// It is also the window in which an acceptor that heard from the leader refuses to
    /// promise anyone else (the lease guard).
    public var electionTimeoutTicks: Int
    /// The leader sends a heartbeat (carrying the commit notice) this often.
    public var heartbeatIntervalTicks: Int
    /// A leader answers reads locally for this many ticks after sending a heartbeat that a
    /// lease quorum acknowledged. Must be below `electionTimeoutTicks - maxClockDriftTicks`.
    public var leaseTicks: Int
    /// The most two replicas' clocks may diverge over one `electionTimeoutTicks` interval.
    public var maxClockDriftTicks: Int
    /// The nominal length of a tick on the driver's clock, in nanoseconds: converts the lease
    /// and the lease guard from ticks to `ClockTime`.
    public var tickNanoseconds: UInt64
    /// Before campaigning, a follower asks the voters whether they would promise a higher
    /// ballot (pre-vote). Without it, a node cut off from the leader raises its ballot while
    /// alone and, once back, makes the healthy leader step down (Raft's pre-vote fixes the
    /// same problem). Off only in tests that show the difference.
    public var preVote: Bool
    /// A leader that has heard from fewer than a phase-2 quorum of a governing membership for
    /// an election timeout steps down (check-quorum), so clients stop waiting on it.
    public var checkQuorum: Bool
    /// How linearizable reads are served.
    public var readMode: ReadMode

    /// At most this many slots are proposed and not yet chosen at once (phase-2 pipelining).
    public var windowSlots: Int
    /// At most this many commands go into one slot (batching).
    public var batchCommandsMax: Int
    /// At most this many payload bytes go into one slot (a single larger command still fits alone).
    public var batchBytesMax: Int
    /// At most this many client commands wait at the leader for a slot; more are refused as busy.
    public var pendingCommandsMax: Int
    /// At most this many linearizable reads wait at one replica.
    public var pendingReadsMax: Int
    /// An Accept without enough Accepted replies is sent again after this many ticks.
    public var retransmitTicks: Int
    /// A catch-up request without reply is sent again after this many ticks.
    public var catchUpRetryTicks: Int
    /// At most this many chosen entries in one catch-up reply.
    public var catchUpEntriesMax: Int
    /// A catch-up reply stops adding entries once their payloads pass this many bytes (it
    /// always carries at least one), so a tail of large values never exceeds a frame.
    public var catchUpBytesMax: Int
    /// A snapshot larger than this travels as chunks of this size (`Message.snapshotChunk`);
    /// a smaller one rides whole in a catch-up reply.
    public var snapshotChunkBytes: Int
    /// A read forwarded to the leader fails if not confirmed within this many ticks.
    public var readTimeoutTicks: Int

    /// A learner is promoted only when its chosen prefix is within this many slots of the
    /// leader's (etcd: "in sync with leader").
    public var promoteLagSlotsMax: Int
    /// At most this many learners at once (etcd's default is 1).
    public var learnersMax: Int
    /// A leader transfer that has not handed off within this many ticks fails.
    public var transferTimeoutTicks: Int

    /// Test-only negative control (`--break unsafe-reconfig`): a membership change governs
    /// the slot right after it, and changes may overlap. Never set this in a real deployment.
    public var unsafeImmediateReconfiguration: Bool

    /// Test-only negative control (`--break stale-change-base`): the leader validates a new
    /// membership change against the chosen prefix and its unchosen proposals only, missing a
    /// change chosen out of order above a gap. Never set this in a real deployment.
    public var unsafeChangeBaseIgnoresChosenAboveGap: Bool

    /// Test-only negative control: a replica installs a chunked snapshot without checking
    /// its bytes against the sender's checksum. Never set this in a real deployment.
    public var unsafeSkipSnapshotChecksum: Bool

    /// Test-only escape hatch for the simulator's `non-intersecting-quorums` negative control:
    /// skips the quorum-intersection check in `validate()`. Never set this in a real deployment.
    public var unsafeAllowNonIntersectingQuorums: Bool

    /// A configuration with majority quorums and default timings (a tick of about 10 ms).
    public init(members: [NodeID]) {
        self.members = members
        let majority = members.count / 2 + 1
        self.phase1Quorum = majority
        self.phase2Quorum = majority
        self.electionTimeoutTicks = 10
        self.heartbeatIntervalTicks = 2
        self.leaseTicks = 6
        self.maxClockDriftTicks = 2
        self.tickNanoseconds = 10_000_000
        self.preVote = true
        self.checkQuorum = true
        self.readMode = .lease
        self.windowSlots = 32
        self.batchCommandsMax = 256
        self.batchBytesMax = 1 << 20
        self.pendingCommandsMax = 8192
        self.pendingReadsMax = 8192
        self.retransmitTicks = 4
        self.catchUpRetryTicks = 4
        self.catchUpEntriesMax = 512
        self.catchUpBytesMax = 4 << 20
        self.snapshotChunkBytes = 1 << 20
        self.readTimeoutTicks = 20
        self.promoteLagSlotsMax = 64
        self.learnersMax = 1
        self.transferTimeoutTicks = 40
        self.unsafeImmediateReconfiguration = false
        self.unsafeChangeBaseIgnoresChosenAboveGap = false
        self.unsafeAllowNonIntersectingQuorums = false
        self.unsafeSkipSnapshotChecksum = false
    }

    /// How long a lease lasts on the leader's clock, from the send time of the confirmed heartbeat.
    public var leaseNanoseconds: UInt64 { UInt64(max(0, leaseTicks)) &* tickNanoseconds }
    /// How long an acceptor's lease guard lasts on its clock, from the heartbeat it acknowledged.
    public var guardNanoseconds: UInt64 { UInt64(max(0, electionTimeoutTicks)) &* tickNanoseconds }

    /// Acks needed for a lease or a read index: enough acceptors that every phase-1 quorum
    /// contains one of them, so no other proposer can finish phase 1 without them.
    public var leaseQuorum: Int { members.count - phase1Quorum + 1 }

    /// The membership of a new cluster: every member of `members` votes, with these quorums.
    public var initialMembership: Membership {
        Membership(members: members.map { Member(id: $0) }, phase1Quorum: phase1Quorum, phase2Quorum: phase2Quorum)
    }

    /// Checks every relation the protocol's safety and liveness rely on.
    /// - Throws: `ConfigurationError` naming the first broken relation.
    public func validate() throws(ConfigurationError) {
        let n = members.count
        guard n >= 1 else { throw .noMembers }
        guard Set(members).count == n else { throw .duplicateMember }
        guard (1...n).contains(phase1Quorum) else { throw .quorumOutOfRange(name: "phase-1", size: phase1Quorum, members: n) }
        guard (1...n).contains(phase2Quorum) else { throw .quorumOutOfRange(name: "phase-2", size: phase2Quorum, members: n) }
        // Flexible Paxos: any phase-1 quorum must intersect any phase-2 quorum.
        if !unsafeAllowNonIntersectingQuorums && phase1Quorum + phase2Quorum <= n {
            throw .quorumsDoNotIntersect(phase1: phase1Quorum, phase2: phase2Quorum, members: n)
        }
        guard heartbeatIntervalTicks >= 1 else { throw .nonPositive("heartbeatIntervalTicks") }
        guard electionTimeoutTicks > heartbeatIntervalTicks else {
            throw .timing("electionTimeoutTicks (\(electionTimeoutTicks)) must exceed heartbeatIntervalTicks (\(heartbeatIntervalTicks))")
        }
        guard maxClockDriftTicks >= 0 else { throw .nonPositive("maxClockDriftTicks") }
        guard tickNanoseconds >= 1 else { throw .nonPositive("tickNanoseconds") }
        guard leaseTicks >= 0, leaseTicks + maxClockDriftTicks < electionTimeoutTicks else {
            throw .timing("leaseTicks (\(leaseTicks)) must be below electionTimeoutTicks (\(electionTimeoutTicks)) - maxClockDriftTicks (\(maxClockDriftTicks))")
        }
        for (name, value) in [("windowSlots", windowSlots), ("batchCommandsMax", batchCommandsMax),
                              ("batchBytesMax", batchBytesMax), ("pendingCommandsMax", pendingCommandsMax),
                              ("pendingReadsMax", pendingReadsMax), ("retransmitTicks", retransmitTicks),
                              ("catchUpRetryTicks", catchUpRetryTicks), ("catchUpEntriesMax", catchUpEntriesMax),
                              ("catchUpBytesMax", catchUpBytesMax), ("snapshotChunkBytes", snapshotChunkBytes),
                              ("readTimeoutTicks", readTimeoutTicks), ("transferTimeoutTicks", transferTimeoutTicks)] where value < 1 {
            throw .nonPositive(name)
        }
    }
}

/// A configuration the protocol cannot run safely with.
public enum ConfigurationError: Error, Hashable, Sendable, CustomStringConvertible {
    case noMembers
    case duplicateMember
    case quorumOutOfRange(name: String, size: Int, members: Int)
    case quorumsDoNotIntersect(phase1: Int, phase2: Int, members: Int)
    case nonPositive(String)
    case timing(String)
    case notAMember(NodeID)

    public var description: String {
        switch self {
        case .noMembers: return "configuration has no members"
        case .duplicateMember: return "configuration lists a member twice"
        case .quorumOutOfRange(let name, let size, let n):
            return "\(name) quorum \(size) is out of range 1...\(n)"
        case .quorumsDoNotIntersect(let q1, let q2, let n):
            return "unsafe quorums: phase-1 quorum \(q1) + phase-2 quorum \(q2) must exceed the \(n) members, or two leaders could choose different values"
        case .nonPositive(let name): return "\(name) must be at least 1"
        case .timing(let text): return text
        case .notAMember(let id): return "node \(id) is not a member of the configuration"
        }
    }
}
