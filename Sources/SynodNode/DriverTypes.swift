import SynodCore
import SynodKV

/// Why a client request failed before or instead of an etcd result.
public enum NodeError: Error, Hashable, Sendable, CustomStringConvertible {
    case noLeader
    case timedOut
    case tooManyRequests
    case stopped
    case requestTooLarge
    /// A learner serves serializable reads only (etcd's interceptor refuses the rest).
    case notSupportedForLearner
    /// This member joined with an empty data directory and has no state from the cluster yet.
    case joining
    /// This member's removal from the cluster was chosen; it stops soon.
    case removed
    /// A leader transfer did not finish within the request timeout.
    case transferTimedOut
    /// This member stopped leading while the request waited (its outcome is unknown, as
    /// with etcd's "leader changed": the client may retry).
    case leaderChanged
    case kv(KVError)

    /// The message etcd clients recognize.
    public var description: String {
        switch self {
        case .noLeader: return "etcdserver: no leader"
        case .timedOut: return "etcdserver: request timed out"
        case .tooManyRequests: return "etcdserver: too many requests"
        case .stopped: return "etcdserver: server stopped"
        case .requestTooLarge: return "etcdserver: request is too large"
        case .notSupportedForLearner: return "etcdserver: rpc not supported for learner"
        case .joining: return "etcdserver: not ready: the member is still joining the cluster"
        case .removed: return "etcdserver: the member has been permanently removed from the cluster"
        case .transferTimedOut: return "etcdserver: request timed out, leader transfer took too long"
        case .leaderChanged: return "etcdserver: leader changed"
        case .kv(let error): return error.message
        }
    }
}

/// This member's place in the cluster, as the admission checks need it.
public enum LocalRole: UInt8, Hashable, Sendable {
    /// Started with an empty data directory to join a running cluster; no snapshot from it yet.
    case joining
    case voter
    /// Receives the log but votes in no quorum: serves serializable reads only, as etcd's learners.
    case learner
    /// A membership without this member was chosen; the node stops once it takes effect.
    case removed

    /// Whether the member publishes its name and client URLs through the log.
    public var mayPublish: Bool { self == .voter || self == .learner }

    /// Why a client request is refused here, if it is: `needsVoter` for writes, linearizable
    /// reads and everything but Status and serializable Range (etcd's learner interceptor).
    public func refusal(needsVoter: Bool) -> NodeError? {
        switch self {
        case .voter: return nil
        case .learner: return needsVoter ? .notSupportedForLearner : nil
        case .joining: return .joining
        case .removed: return .removed
        }
    }
}

/// The driver's settings: who this member is, what it publishes, and its timings. Durations
/// are nanoseconds of the driver's clock (the clock handed to every step).
public struct DriverSettings: Sendable {
    /// This member's name and client URLs, published through the log.
    public var name: String
    public var advertiseClientURLs: [String]
    /// etcd's member id of this member.
    public var memberID: UInt64
    /// A client request fails after this long (etcd: request timed out).
    public var requestTimeoutNanoseconds: UInt64 = 5_000_000_000
    /// A write not applied this long after it was proposed is proposed again (the session
    /// table applies it at most once).
    public var retryAfterNanoseconds: UInt64 = 1_000_000_000
    /// Applied slots between snapshots.
    public var snapshotEverySlots: UInt64 = 10_000
    /// The leader starts a replicated integrity check this often; 0 turns the checks off.
    public var integrityCheckNanoseconds: UInt64 = 5_000_000_000
    /// A member's published attributes are proposed again after this long without applying.
    public var publishRetryNanoseconds: UInt64 = 3_000_000_000
    /// A member that has known no leader this long asks its peers whether it was removed.
    public var orphanQuietNanoseconds: UInt64 = 2_000_000_000
    /// A removed member stops at the latest this long after it noticed its removal.
    public var removalGraceNanoseconds: UInt64 = 3_000_000_000
    /// At most this many client sessions are remembered for exactly-once retries.
    public var sessionCapacity = 65_536
    /// Report every applied (slot, value) in `DriverOutput.applied` (for the simulator's
    /// agreement check; off in a server).
    public var reportApplies = false
    /// Negative control only (the simulator's `unsafe-decode-reads` break): reads are
    /// answered while a snapshot's state is still being decoded, from the empty state that
    /// stands in for it. Off everywhere else.
    public var unsafeReadsWhileDecoding = false

    public init(name: String, advertiseClientURLs: [String], memberID: UInt64) {
        self.name = name
        self.advertiseClientURLs = advertiseClientURLs
        self.memberID = memberID
    }
}

/// Everything that can happen to a node driver. Tokens are chosen by the shell, unique among
/// its requests in flight, and come back in `DriverOutput` with the outcome.
public enum DriverInput: Sendable {
    /// First input: replays recovered state.
    case start
    /// One firing of the node's timer (one per firing; a stall is not replayed).
    case tick
    /// Messages from peers.
    case receive([Envelope])
    /// Persist batch `through` (and every earlier one) is durable.
    case durable(through: UInt64)
    /// A client write (an encoded `KVCommand`). `requestID` identifies the request across
    /// retries: attempts with the same id and payload are applied at most once.
    case write(token: UInt64, payload: [UInt8], requestID: UInt64?)
    /// A client read barrier: the answer says when the state may be read.
    case read(token: UInt64, consistency: ReadConsistency)
    /// The writes gathered since the last flush go to the replica together (they share
    /// slots). A shell flushes once per turn of its loop.
    case flush
    case reconfigure(token: UInt64, change: MembershipChange, force: Bool)
    case transferLeadership(token: UInt64, target: NodeID)
    /// The snapshot the driver asked for (`DriverOutput.encodeSnapshot`) is encoded;
    /// `checksum`, computed with it off the loop, is `Snapshot.checksum(of: bytes)` (see `Input.snapshot`).
    case snapshotEncoded(slot: Slot, bytes: SnapshotBytes, checksum: UInt64? = nil)
    /// Storage made the snapshot through `slot` durable; its bytes can be read from the file
    /// (`Input.snapshotStored`).
    case snapshotStored(slot: Slot, bytes: SnapshotBytes, checksum: UInt64?)
    /// The answer to `DriverOutput.decodeSnapshot`: the state decoded from the snapshot
    /// through `slot`, or why it could not be.
    case snapshotDecoded(slot: Slot, result: Result<KVStateMachine, SnapshotDecodeFailure>)
    /// The answer to `DriverOutput.probeMembership`: the cluster's membership if it no longer
    /// has this member, else nil.
    case probeAnswered(removedFrom: Membership?)
}

/// Something worth logging or counting, in the order it happened.
public enum DriverEvent: Hashable, Sendable {
    case leaderElected(leader: NodeID, round: UInt64)
    case becameLeader
    case stoppedLeading
    case roleChanged(LocalRole)
    case membershipChanged(Membership, chosenAt: Slot, activeFrom: Slot)
    case snapshotTaken(slot: Slot, revision: Int64, bytes: Int)
    case snapshotInstalled(slot: Slot, revision: Int64)
    case undecodableSnapshot(slot: Slot, reason: String)
    case integrityCheckRecorded
    case integrityMismatch(IntegrityMismatch, memberName: String, isLocal: Bool)
    case leaseExpired(id: Int64)
    case corruptAlarm(raised: Bool)
    case peerHalted(node: NodeID, name: String, reason: String)
    case removalNoticed
    case removedByCluster
    case committed(commands: Int)
    case proposed
    /// The replica finished repairing damaged synced records and votes again.
    case repairFinished
}

/// The effects of one step, for the shell to carry out: persist before sending what waited
/// for it (the driver releases `messagesAfterDurable` itself once `.durable` arrives, into
/// `send`), then send, then answer.
public struct DriverOutput: Sendable {
    public var persist: [PersistBatch] = []
    public var send: [Envelope] = []
    public var writes: [(token: UInt64, result: Result<KVResponse, NodeError>)] = []
    /// Reads that may be answered from `NodeDriver.kv` now (nil), or failed.
    public var reads: [(token: UInt64, failure: NodeError?)] = []
    public var reconfigurations: [(token: UInt64, result: Result<Reconfiguration, any Error>)] = []
    public var transfers: [(token: UInt64, result: Result<NodeID, any Error>)] = []
    /// Watch events, in order, with the revision after them.
    public var watchEvents: [(events: [WatchEvent], revision: Int64)] = []
    /// The state was replaced by a snapshot: watches cannot continue.
    public var stateReplaced: Int64?
    /// Encode this state (as of `slot`) off the shell's loop and answer `.snapshotEncoded`.
    public var encodeSnapshot: (slot: Slot, state: KVStateMachine)?
    /// Decode this snapshot into a state off the shell's loop (`SnapshotDecodeRequest.decode`)
    /// and answer `.snapshotDecoded`.
    public var decodeSnapshot: SnapshotDecodeRequest?
    /// Ask the peers (discovery) whether this member was removed; answer `.probeAnswered`.
    public var probeMembership = false
    /// The replica found its safety broken and halted; `send` holds only the alarms to peers.
    public var halted: String?
    /// This member's removal took effect: stop after letting this step's messages leave.
    public var removed = false
    /// The membership changed (peers, role, a new membership, or one taking effect): the
    /// shell publishes the latest and governing membership and the role (API admission and
    /// discovery answers read them) and redials the peers if their addresses changed.
    public var peersChanged = false
    /// Writes wait to be proposed: the shell sends `.flush` (at the end of its loop's turn).
    public var flushWanted = false
    /// Every slot applied, when `DriverSettings.reportApplies` is on.
    public var applied: [(slot: Slot, value: Value)] = []
    public var events: [DriverEvent] = []

    public init() {}
}

/// A snapshot to decode into the state machine, off the shell's loop.
public struct SnapshotDecodeRequest: Sendable {
    public var slot: Slot
    public var bytes: SnapshotBytes
    public var sessionCapacity: Int

    /// Decodes it (seconds for gigabytes: not on a loop that serves anything).
    public func decode() -> Result<KVStateMachine, SnapshotDecodeFailure> {
        do {
            return .success(try KVStateMachine(snapshot: bytes, sessionCapacity: sessionCapacity))
        } catch {
            return .failure(SnapshotDecodeFailure(reason: "\(error)"))
        }
    }
}

/// Why a snapshot did not decode (its file could not be read, or its bytes are not a state).
public struct SnapshotDecodeFailure: Error, Hashable, Sendable {
    public var reason: String
    public init(reason: String) { self.reason = reason }
}

/// A snapshot's state being decoded off the shell's loop, and what waits for it: the chosen
/// entries above the snapshot (applied once the state is there), the reads found ready, and
/// the answers to membership changes chosen meanwhile.
struct StateDecoding: Sendable {
    var slot: Slot
    var entries: [Apply] = []
    var reads: [UInt64] = []
    var reconfigurations: [(token: UInt64, result: Result<Reconfiguration, any Error>)] = []
}
