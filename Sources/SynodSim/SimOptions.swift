import SynodCore

/// A deliberately unsafe deviation from the protocol (a negative control): the simulator must
/// catch each of them, which shows its checks can fail.
public enum Break: String, CaseIterable, Hashable, Sendable {
    /// The driver sends promises and acceptances (and counts its own votes) before they are durable.
    case noPromiseFsync = "no-promise-fsync"
    /// Phase-1 and phase-2 quorums that need not intersect (q1 + q2 <= n).
    case nonIntersectingQuorums = "non-intersecting-quorums"
    /// Real clock drift far beyond the configured bound while lease reads are on.
    case staleLease = "stale-lease"
    /// The driver hands the replica a clock that counts its ticks (the lease is then measured
    /// in ticks, which stop while the process is stalled) instead of a clock that keeps
    /// running. The nemesis stalls the leader with its peer links cut and wakes it still cut
    /// off, reachable by clients.
    case tickLease = "tick-lease"
    /// Membership changes govern the slot right after the one they are chosen at, on the
    /// replica that learns them, and a leader proposes a change without waiting for the
    /// previous one to govern (changes overlap). The operator churns: a script every 50 ms at
    /// most, each two voter changes sent at once.
    case unsafeReconfig = "unsafe-reconfig"
    /// The leader validates a new membership change against the chosen prefix and its own
    /// unchosen proposals only (the rule before it also counted changes chosen out of order
    /// above a gap): a change can build on a stale membership and undo the previous one. The
    /// operator churns with bursts of scripts and messages are lost often.
    case staleChangeBase = "stale-change-base"
    /// Replicas install a snapshot that arrived in chunks without checking it against the
    /// sender's checksum, and the network damages chunks often.
    case trustSnapshotChunks = "trust-snapshot-chunks"
    /// Recovery cuts a node's last log segment off at the first damaged write, whatever the
    /// damage, instead of refusing to start (it trusts a damaged log); half of the crashes
    /// damage a synced record of the stopped node.
    case truncateDamagedLog = "truncate-damaged-log"
    /// A node whose recovery skipped damaged synced writes votes at once instead of repairing
    /// from its peers first (it trusts what it could read); half of the crashes damage one of
    /// the stopped node's newest synced writes.
    case skipRepair = "skip-repair"
    /// A node answers reads while the state of a snapshot it installs is still being decoded
    /// (off its loop), from the empty state that stands in for it meanwhile, instead of
    /// holding them until the state is there.
    case unsafeDecodeReads = "unsafe-decode-reads"
}

/// Rates and sizes of the faults the simulator injects while faults are on.
public struct FaultProfile: Hashable, Sendable {
    /// Probability that a message between replicas is lost.
    public var dropRate: Double = 0.02
    /// Probability that a message is delivered twice.
    public var duplicateRate: Double = 0.02
    /// Probability that a snapshot chunk arrives with one byte changed (memory or disk
    /// damage at its sender, a faulty network card): the receiver must notice (checksum) and
    /// fetch the snapshot again.
    public var chunkCorruptionRate: Double = 0.02
    /// Probability that a message is held back for 5–100 ms (so it arrives out of order).
    public var delayRate: Double = 0.05
    /// Mean time between nemesis events (partitions, crashes), in simulated milliseconds.
    public var nemesisIntervalMillis: Double = 600
    /// Relative weights of the nemesis events.
    public var partitionWeight: Double = 1
    public var crashWeight: Double = 1
    /// A stall: the node's process stops (SIGSTOP, a VM pause, a stuck event loop) while its
    /// clock and everyone else go on; messages and client requests to it queue up and are
    /// handled in some order when it wakes. Half of the stalls also cut its peer links for
    /// the stall and a little after it, so it wakes alone but reachable by clients.
    public var stallWeight: Double = 1
    /// Stalls always hit the leader and always cut its peer links (the harness that finds
    /// stale lease reads: the leader wakes alone, still believing in its lease, and clients
    /// reach it); otherwise the victim is the leader half of the time and half of the stalls
    /// cut links.
    public var stallsAimAtLeader = false
    /// Probability that a crash takes down every node at once (power loss).
    public var crashAllRate: Double = 0.4
    /// A crash may leave a prefix of the unsynced writes on disk, the last one torn.
    public var tornWrites = true
    /// Probability that an fsync fails (the node then stops and restarts later).
    public var syncFailureRate: Double = 0.002
    /// Probability that a crashed node's log gets a flipped bit; it must then refuse to start.
    public var corruptionRate: Double = 0.05
    /// Mean time between the operator's membership-change scripts while faults are on (it
    /// adds a learner and promotes it, removes a voter or the leader, replaces a crashed node,
    /// or transfers leadership; a script still running is not interrupted), in simulated
    /// milliseconds; 0 keeps the membership fixed.
    public var reconfigIntervalMillis: Double = 400
    /// Probability that the operator sends a whole change script at once instead of waiting
    /// for each step's outcome (the leader must queue them and apply one at a time).
    public var reconfigBurstRate: Double = 0.2

    public init() {}

    /// No faults at all: a fault-free run.
    public static let none: FaultProfile = {
        var profile = FaultProfile()
        profile.dropRate = 0
        profile.duplicateRate = 0
        profile.chunkCorruptionRate = 0
        profile.delayRate = 0
        profile.partitionWeight = 0
        profile.crashWeight = 0
        profile.stallWeight = 0
        profile.crashAllRate = 0
        profile.tornWrites = false
        profile.syncFailureRate = 0
        profile.corruptionRate = 0
        profile.reconfigIntervalMillis = 0
        return profile
    }()
}

/// A partition a run applies at a fixed moment, besides the nemesis's random ones (the guided
/// tour's scenarios use them): while it holds, every link between nodes of different groups
/// loses its messages both ways; a node in no group is cut off from every other node.
public struct ScriptedPartition: Hashable, Sendable {
    /// When it starts and when it heals, in simulated milliseconds from the run's start.
    public var atMillis: Double
    public var healAtMillis: Double
    /// Groups of node ids.
    public var groups: [[UInt32]]

    public init(atMillis: Double, healAtMillis: Double, groups: [[UInt32]]) {
        self.atMillis = atMillis
        self.healAtMillis = healAtMillis
        self.groups = groups
    }
}

/// Everything that determines one simulated run. The same options give the identical run.
public struct SimulationOptions: Hashable, Sendable {
    public var seed: UInt64
    public var nodes: Int = 3
    /// Simulated seconds of workload. Faults are on for the first 70% (at most all but 1 s),
    /// then everything heals and the cluster must make progress again.
    public var durationSeconds: Double = 4
    public var clients: Int = 5
    public var keys: Int = 3
    public var faults = FaultProfile()
    public var readMode: ReadMode = .lease
    public var breaks: Set<Break> = []
    /// Record a human-readable story of the run.
    public var trace = false
    /// Include heartbeats in the story (they are many).
    public var traceHeartbeats = false
    /// Record a structured replay of the run (`SimulationResult.replay`). Recording draws
    /// nothing from the run's random generator: the run is the same with or without it.
    public var record = false
    /// The most steps a replay keeps (later ones are counted, not kept).
    public var recordStepLimit = 20_000
    /// Take a snapshot (and compact) every this many applied slots.
    public var snapshotEverySlots: UInt64 = 40
    /// Partitions at fixed moments (none by default). They heal at their own time, or when
    /// the faults end, whichever comes first.
    public var partitions: [ScriptedPartition] = []
    /// After faults heal, a write must be acknowledged within this many simulated seconds.
    public var progressBoundSeconds: Double = 5

    public init(seed: UInt64) { self.seed = seed }

    /// The protocol configuration this run uses (including any deliberately broken quorums).
    public func configuration() -> Configuration {
        var configuration = Configuration(members: (1...nodes).map { NodeID(UInt32($0)) })
        configuration.readMode = readMode
        configuration.windowSlots = 8
        configuration.batchCommandsMax = 16
        // Small chunks, so that every snapshot a member catches up from travels in many
        // chunks through the loss, duplication and reordering of the run.
        configuration.snapshotChunkBytes = 256
        if breaks.contains(.trustSnapshotChunks) { configuration.unsafeSkipSnapshotChecksum = true }
        if breaks.contains(.nonIntersectingQuorums) {
            configuration.phase2Quorum = nodes / 2 + 1
            configuration.phase1Quorum = nodes - configuration.phase2Quorum
            configuration.unsafeAllowNonIntersectingQuorums = true
        }
        if breaks.contains(.unsafeReconfig) { configuration.unsafeImmediateReconfiguration = true }
        if breaks.contains(.staleChangeBase) { configuration.unsafeChangeBaseIgnoresChosenAboveGap = true }
        return configuration
    }
}

/// Simulated time in microseconds.
typealias SimTime = UInt64

extension Double {
    var micros: SimTime { SimTime((self * 1_000_000).rounded()) }
}
