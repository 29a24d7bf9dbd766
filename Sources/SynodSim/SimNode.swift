import SynodCore
import SynodStore

/// One simulated server: the replica, its storage (the real `DurableStorage` over a
/// fault-injecting in-memory file system), its state machine, and its clients' requests.
struct SimNode {
    static let dataDirectory = "/data"

    let index: Int
    var replica: Replica
    var kv = SimKV()
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
    /// The node found corruption at restart and refused to start (it stays down).
    var refusedToStart = false
    /// A bit flipped in this node's log while it was down: its next start must report it.
    var injectedCorruption: String?
    /// How fast this node's clock runs against simulated time (1 = exact).
    var clockRate: Double
    /// The rate the node returns to when a clock fault ends.
    let baseClockRate: Double
    var pendingWrites: [CommandKey: (client: Int, token: UInt64)] = [:]
    var pendingReads: [UInt64: (client: Int, token: UInt64, key: String)] = [:]
    var nextReadID: UInt64 = 1

    init(index: Int, replica: Replica, baseClockRate: Double) {
        self.index = index
        self.replica = replica
        self.clockRate = baseClockRate
        self.baseClockRate = baseClockRate
    }
}
