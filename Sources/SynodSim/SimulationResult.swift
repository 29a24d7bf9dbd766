/// The outcome of one simulated run.
public struct SimulationResult: Hashable, Sendable {
    public var seed: UInt64
    /// Everything the checks found wrong; empty for a correct run.
    public var violations: [String] = []
    /// Client operations started, and how they ended.
    public var operations = 0
    public var operationsOK = 0
    public var operationsUnknown = 0
    public var operationsFailed = 0
    /// Client attempts that got no answer in time (and were retried or given up).
    public var attemptsTimedOut = 0
    /// Distinct slots chosen (across all replicas).
    public var chosenSlots = 0
    /// Commands applied (first application of each chosen slot).
    public var commandsChosen = 0
    public var elections = 0
    public var crashes = 0
    public var partitions = 0
    /// Processes stopped for a while (stall nemesis).
    public var stalls = 0
    /// Replicas that halted on a broken safety invariant (always a violation too), and safety
    /// alarms peers received from them.
    public var halts = 0
    public var safetyAlarms = 0
    /// Nodes stopped by a storage error (a failed fsync).
    public var storageFailures = 0
    /// Injected corruptions that recovery reported (the node refused to start).
    public var corruptionsDetected = 0
    /// Restarts that found synced writes damaged and repaired them from the other members
    /// (started, and finished: the node voted again).
    public var repairsStarted = 0
    public var repairsFinished = 0
    /// Restarts whose recovery discarded a torn last write (cut short, or with some of its
    /// sectors on disk and others not).
    public var tornWritesDiscarded = 0
    /// Membership changes chosen, requests the operator sent, members started at run time,
    /// and leader transfers that succeeded.
    public var reconfigurations = 0
    public var reconfigRequests = 0
    public var membersAdded = 0
    public var leaderTransfers = 0
    public var messagesSent = 0
    public var messagesDropped = 0
    /// Snapshot chunks sent, chunks the network damaged, and snapshots a replica discarded
    /// because their bytes did not match the sender's checksum.
    public var snapshotChunksSent = 0
    public var chunksCorrupted = 0
    public var snapshotChecksumFailures = 0
    /// Snapshots a peer was fetching that stayed pinned past a newer one (see `ServedSnapshot`),
    /// counted on the nodes running at the end.
    public var pinnedSnapshotsOutlived = 0
    /// Snapshots received in chunks into a spool file on the simulated disk (the nodes
    /// running at the end).
    public var snapshotsSpooled = 0
    /// Whether SynodCheck found the client history linearizable.
    public var linearizable = true
    /// A hash of every event of the run: the same seed and options give the same hash.
    public var traceHash: UInt64 = 0
    /// The run's story, when options.trace is on.
    public var trace: [String] = []
    /// The run's structured replay, when options.record is on.
    public var replay: SimReplay?

    public init(seed: UInt64) { self.seed = seed }

    /// One line for a failing seed: what to replay and what went wrong first.
    public var failureLine: String {
        "seed \(seed): \(violations.count) violation(s): \(violations.first ?? "")"
    }
}
