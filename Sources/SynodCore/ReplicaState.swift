import SynodBytes

/// One slot of the replica's log: what this acceptor accepted, and what it knows was chosen.
struct LogEntry: Hashable, Sendable {
    var acceptedBallot: Ballot?
    var acceptedValue: Value?
    var chosen: Value?
}

/// A proposer collecting promises for its ballot (phase 1).
struct CandidateState: Hashable, Sendable {
    var ballot: Ballot
    var firstSlot: Slot
    /// Promises from peers, by node.
    var promises: [NodeID: PromiseReport] = [:]
    /// Whether this replica's own promise is durable (it then counts toward the quorum).
    var selfPromised = false
    var prepareSentAt: UInt64
}

/// A follower asking whether the voters would promise `ballot` (pre-vote), before it
/// raises its promise and campaigns for real.
struct PreCandidateState: Hashable, Sendable {
    var ballot: Ballot
    var firstSlot: Slot
    /// Voters that would promise (this replica included).
    var grantedBy: Set<NodeID>
    /// Voters that answered either way.
    var answeredBy: Set<NodeID> = []
    var sentAt: UInt64
}

/// What one acceptor told a candidate in its Promise.
struct PromiseReport: Hashable, Sendable {
    var chosenThrough: Slot
    var entries: [PromisedEntry]
}

/// One slot the leader proposed in its ballot and has not yet seen chosen.
struct Proposal: Hashable, Sendable {
    var value: Value
    var votes: [NodeID] = []
    var selfAccepted = false
    var sentAt: UInt64
}

/// A linearizable read waiting at the leader for a heartbeat round to confirm leadership.
struct LeaderRead: Hashable, Sendable {
    var readID: UInt64
    /// Who asked: this replica, or a follower that forwarded the read.
    var requester: NodeID
    var index: Slot
    /// The heartbeat round whose confirmation proves leadership after the read arrived.
    var sequence: UInt64
    var startedAt: UInt64
}

/// A read waiting for this replica to apply through `index`.
struct ReadAwaitingApply: Hashable, Sendable {
    var readID: UInt64
    var index: Slot
    var startedAt: UInt64
}

/// The leader's state for its ballot (phase 2).
struct LeaderState: Hashable, Sendable {
    var ballot: Ballot
    /// First slot this leader fills with new commands; every slot below was either chosen
    /// before or recovered in phase 1. The leader serves reads only once it has chosen all of them.
    var startSlot: Slot
    var nextSlot: Slot
    var proposals: [Slot: Proposal] = [:]
    /// Client commands waiting for a slot, oldest first; `queueHead` indexes the oldest.
    var queue: [Command] = []
    var queueHead = 0
    var heartbeatSequence: UInt64 = 0
    var lastHeartbeatAt: UInt64
    /// When this replica became leader (ticks): check-quorum waits an election timeout.
    var electedAt: UInt64
    /// Send time (clock) of heartbeat rounds not yet confirmed, oldest first. Bounded: only
    /// rounds young enough to still start a lease are kept (see `sendHeartbeat`).
    var heartbeatSentAt: [HeartbeatRound] = []
    /// Highest heartbeat sequence each peer acknowledged.
    var ackedSequence: [NodeID: UInt64] = [:]
    /// Highest heartbeat round acknowledged by a lease quorum.
    var confirmedSequence: UInt64 = 0
    /// The leader may answer reads locally while its clock is below `leaseExpiresAt`.
    var leaseExpiresAt: ClockTime = .zero
    var reads: [LeaderRead] = []
    /// A read waits for a heartbeat round that has not been sent yet.
    var readRoundDue = false
    /// The chosen prefix last announced in a Commit notice.
    var commitNoticeThrough: Slot = 0

    // Phase 1 across memberships (see Replica+Membership).
    /// The `firstSlot` of this ballot's Prepare; later Prepares to new voters use it too.
    var prepareFirstSlot: Slot = 1
    /// Voters (and this replica) that promised this ballot.
    var promisedBy: Set<NodeID> = []
    /// Values recovered in phase 1 for slots not yet proposed (highest ballot wins).
    var recovered: [Slot: PromisedEntry] = [:]
    /// Highest slot any promise reported accepted: the leader re-proposes through it.
    var recoverThrough: Slot = 0
    /// Highest chosen prefix any promise reported: slots through it are fetched, not proposed.
    var maxChosenReported: Slot = 0
    var catchUpSource: NodeID?
    /// When Prepare last went to voters of a newer membership that had not promised.
    var latePrepareSentAt: UInt64?

    // Followers' progress, from heartbeat acks.
    var peerChosenThrough: [NodeID: Slot] = [:]
    var lastAckAt: [NodeID: UInt64] = [:]

    /// Membership changes waiting for their slot, oldest first.
    var changeQueue: [PendingChange] = []
    /// A leader transfer in progress: no new commands are proposed meanwhile.
    var transfer: PendingTransfer?

    var queuedCount: Int { queue.count - queueHead }
}

/// A heartbeat round the leader sent and a lease quorum has not confirmed yet.
struct HeartbeatRound: Hashable, Sendable {
    var sequence: UInt64
    /// The leader's clock when it sent the round: a lease it confirms counts from here.
    var sentAt: ClockTime
}

/// A membership change waiting at the leader.
struct PendingChange: Hashable, Sendable {
    var origin: NodeID
    var requestID: UInt64
    var change: MembershipChange
    var force: Bool
}

/// A leader transfer waiting for the target to catch up.
struct PendingTransfer: Hashable, Sendable {
    var requestID: UInt64
    var target: NodeID
    var startedAt: UInt64
}

/// The replica's role in the protocol, as seen from outside.
public enum RoleKind: String, Hashable, Sendable {
    case follower, candidate, leader
}

/// A vote of this replica for its own ballot, counted only once its record is durable.
enum SelfVote: Hashable, Sendable {
    case promise(Ballot)
    case accepted(Ballot, Slot)
}

/// A snapshot arriving in chunks (see `SnapshotChunk`): the bytes so far, in order.
struct IncomingSnapshot: Sendable {
    /// Who sends it; the next chunk is asked of it.
    var from: NodeID
    var slot: Slot
    var total: UInt64
    var checksum: UInt64
    var membership: MembershipHistory?
    /// The bytes so far: written to `spool` when the node gave the replica one (a file),
    /// otherwise collected here.
    var spool: (any SnapshotSpool)?
    var data: [UInt8] = []
    /// How many bytes arrived so far.
    var received: UInt64 = 0
    /// The checksum of `data` so far, folded in chunk by chunk: hashing a large snapshot whole
    /// once it is complete would hold the node's loop for as long as that takes.
    var hash = Snapshot.ChecksumHash()
    /// The tick of the last chunk (or of the first): a transfer that brings nothing new for
    /// `Replica.snapshotStallRetries` retry intervals is abandoned (`snapshotTransferStalled`),
    /// whichever path keeps asking for the next chunk.
    var progressAt: UInt64
}

/// A snapshot a peer is fetching in chunks, pinned while the fetch goes on: when the replica
/// takes (or installs) a newer snapshot meanwhile, the fetcher still gets the rest of this one,
/// and the chosen values between it and the newer snapshot are kept (`entries`) so the fetcher
/// catches up from them instead of starting over with the newer snapshot. Without the pin, a
/// snapshot that takes longer to send than the interval between snapshots is never received
/// (seen: a member joining a 1 GiB state under writes). Released once nobody asked for it (or
/// for its entries) for the stall window, or when its last fetcher asks for slots above them.
struct ServedSnapshot: Sendable {
    var snapshot: Snapshot
    var checksum: UInt64
    /// The peers fetching it or its entries.
    var fetchers: Set<NodeID>
    /// Chosen values above `snapshot.slot`, through the replica's current snapshot, which
    /// compaction would otherwise have dropped. Contiguous: every slot from
    /// `snapshot.slot + 1` through `entriesThrough`.
    var entries: [Slot: Value] = [:]
    var entriesThrough: Slot
    /// The tick a chunk or one of its entries was last sent.
    var lastServedAt: UInt64
    /// Fetchers that were sent the last chunk and have not asked for anything since, with the
    /// tick: they are installing (decoding) the snapshot, which takes about a second per
    /// 64 MiB, before they ask for the entries above it. The pin waits for them
    /// (`Replica.pinInstallGraceTicks`).
    var installingSince: [NodeID: UInt64] = [:]

    init(snapshot: Snapshot, checksum: UInt64, now: UInt64) {
        self.snapshot = snapshot
        self.checksum = checksum
        self.fetchers = []
        self.entriesThrough = snapshot.slot
        self.lastServedAt = now
    }

    /// A chunk or entries of it went to `fetcher` at `now`.
    mutating func served(to fetcher: NodeID, now: UInt64) {
        fetchers.insert(fetcher)
        lastServedAt = now
        installingSince[fetcher] = nil
    }
}

/// The checksum of the replica's snapshot: handed in with it (computed off the driver's loop),
/// kept from verifying it when it was received, or computed once when it is first sent in chunks.
struct SnapshotChecksum: Hashable, Sendable {
    var slot: Slot
    var value: UInt64
}

/// A repair of damaged synced records in progress (see `Replica+Repair`).
struct RepairState: Hashable, Sendable {
    /// Ties reports to this incarnation's queries.
    var nonce: UInt64
    /// The promise to take before voting again: the highest promise known.
    var fence: Ballot
    /// The chosen prefix to reach before voting again: the highest slot known.
    var horizon: Slot
    /// Voters (not repairing themselves) that reported.
    var answered: Set<NodeID> = []
    var queriedAt: UInt64?
}
