import SynodCore
import SynodKV
import SynodNode
import SynodStore

/// One simulated server: the node driver that ships (replica, SynodKV state machine,
/// requests, housekeeping), its storage (the real `DurableStorage` over a fault-injecting
/// in-memory file system), and its clients' requests.
struct SimNode {
    static let dataDirectory = "/data"

    let index: Int
    let id: NodeID
    /// The node's start-up configuration (for a member added at run time, `members` lists
    /// the voters it asks for its first snapshot).
    var configuration: Configuration
    /// Added at run time: it starts (and restarts, until a snapshot brings it a membership)
    /// as a joining replica.
    let joined: Bool
    /// A chosen change removed it: clients and the nemesis leave it alone, the final checks
    /// do not expect it to converge, and once down it is not restarted. While up it keeps
    /// running (harmlessly: it may campaign, but voters ignore a non-voter's ballots).
    var removed = false
    var driver: NodeDriver
    var replica: Replica { driver.replica }
    var kv: KVStateMachine { driver.kv }
    /// The node's disk: survives crashes (what was synced), unlike everything else here.
    let fileSystem = FaultInjectingFileSystem()
    var storage: DurableStorage?
    /// Batches appended to storage and not yet durable, oldest first (for their messages).
    var unsyncedBatches: [PersistBatch] = []
    /// The last batch id the sync in flight covers.
    var syncingThrough: UInt64?
    /// Where the node's synced log ended at its last completed sync (data a crash keeps).
    var syncedLogEnd: (path: String, offset: UInt64)?
    var up = false
    var incarnation = 0
    /// The newest and the governing membership as the server's shell last published them
    /// (on `DriverOutput.peersChanged`): what a discovery answer reads.
    /// When this incarnation first noticed its own removal (the final check wants it stopped
    /// a while after).
    var removalNoticedAt: UInt64?
    var publishedLatest: Membership?
    var publishedGoverning: Membership?
    /// The node found corruption at restart and refused to start (it stays down).
    var refusedToStart = false
    /// Damage injected into this node's synced log (while it was down, or under it while it
    /// ran): its next start must report it, unless a snapshot pruned the damaged segment.
    var injectedCorruption: String?
    var injectedPath: String?
    /// Its storage reported damage not yet repaired (set at a start that found it, cleared
    /// when the replica finishes repairing): it does not vote, also while it is down.
    var repairPending = false
    /// What the operator cannot count on: a node that refused to start, will find damage at
    /// its next start, or has damage to repair.
    var isDamaged: Bool { refusedToStart || injectedCorruption != nil || repairPending }
    /// How fast this node's clock runs against simulated time (1 = exact). Change it with
    /// `setClockRate`, which keeps the clock continuous.
    private(set) var clockRate: Double
    /// The rate the node returns to when a clock fault ends.
    let baseClockRate: Double
    /// The node's monotonic clock (CLOCK_BOOTTIME of its machine): `clockAtRebase` nanoseconds
    /// at simulated time `rebasedAt`, running at `clockRate` since. It keeps running through
    /// stalls and crashes.
    private var clockAtRebase: Double
    private var rebasedAt: SimTime = 0
    /// The process is stopped: events for it wait in `stalledEvents` (ticks are not queued:
    /// a fixed-delay timer fires once after the stall, it does not catch up).
    var stalled = false
    var stalledEvents: [SimEvent] = []
    /// Client requests in flight here, by the token handed to the driver.
    var pendingWrites: [UInt64: (client: Int, token: UInt64)] = [:]
    var pendingReads: [UInt64: (client: Int, token: UInt64, key: String)] = [:]
    var nextToken: UInt64 = 1

    init(index: Int, configuration: Configuration, joined: Bool, driver: NodeDriver, baseClockRate: Double) {
        self.index = index
        self.id = driver.nodeID
        self.configuration = configuration
        self.joined = joined
        self.driver = driver
        self.clockRate = baseClockRate
        self.baseClockRate = baseClockRate
        // Machines booted at different times: clocks do not start at zero together.
        self.clockAtRebase = Double(index + 1) * 7_919_000_000
    }

    mutating func newToken() -> UInt64 {
        defer { nextToken += 1 }
        return nextToken
    }

    /// The machine's clock at simulated time `now` (microseconds), in nanoseconds.
    func clock(at now: SimTime) -> UInt64 {
        UInt64(clockAtRebase + Double(now - rebasedAt) * 1_000 * clockRate)
    }

    mutating func setClockRate(_ rate: Double, at now: SimTime) {
        clockAtRebase = Double(clock(at: now))
        rebasedAt = now
        clockRate = rate
    }
}
