import NIOCore
import SynodCore
import SynodKV

/// What a watch stream receives from the node loop.
public enum WatchDelivery: Sendable {
    /// Events at revisions after the watch's last delivered one, in order.
    case events([WatchEvent], revision: Int64)
    /// The watch cannot continue (its history is gone, e.g. after a snapshot install).
    case canceled(reason: String, compactRevision: Int64)
}

/// One registered watch: a key range and its filters.
public struct WatchFilter: Sendable, Hashable {
    public var key: [UInt8]
    public var rangeEnd: [UInt8]
    public var noPut: Bool
    public var noDelete: Bool
    public var prevKV: Bool

    public init(key: [UInt8], rangeEnd: [UInt8], noPut: Bool = false, noDelete: Bool = false, prevKV: Bool = false) {
        self.key = key
        self.rangeEnd = rangeEnd
        self.noPut = noPut
        self.noDelete = noDelete
        self.prevKV = prevKV
    }

    /// The events this watch reports, with `prevKv` dropped unless asked for.
    public func select(_ events: [WatchEvent]) -> [WatchEvent] {
        let range = KeyRange(key: key, rangeEnd: rangeEnd)
        var selected: [WatchEvent] = []
        for var event in events where range.contains(event.kv.key) {
            if event.kind == .put && noPut { continue }
            if event.kind == .delete && noDelete { continue }
            if !prevKV { event.prevKv = nil }
            selected.append(event)
        }
        return selected
    }
}

/// The node's live watches (node loop only).
struct WatcherRegistry {
    struct Watcher {
        var filter: WatchFilter
        var continuation: AsyncStream<WatchDelivery>.Continuation
    }

    private var watchers: [UInt64: Watcher] = [:]
    private var nextID: UInt64 = 1

    var count: Int { watchers.count }

    mutating func add(_ filter: WatchFilter, continuation: AsyncStream<WatchDelivery>.Continuation) -> UInt64 {
        let id = nextID
        nextID += 1
        watchers[id] = Watcher(filter: filter, continuation: continuation)
        return id
    }

    mutating func remove(_ id: UInt64) {
        watchers.removeValue(forKey: id)?.continuation.finish()
    }

    func publish(_ events: [WatchEvent], revision: Int64) {
        for (_, watcher) in watchers {
            let selected = watcher.filter.select(events)
            if !selected.isEmpty { watcher.continuation.yield(.events(selected, revision: revision)) }
        }
    }

    /// After a snapshot replaced the state, the events in between are unknown here: every
    /// watch is canceled (clients re-create it from their last revision, as after compaction).
    mutating func snapshotInstalled(revision: Int64) {
        for (_, watcher) in watchers {
            watcher.continuation.yield(.canceled(reason: "etcdserver: mvcc: required revision has been compacted",
                                                 compactRevision: revision))
            watcher.continuation.finish()
        }
        watchers.removeAll()
    }

    mutating func finishAll() {
        for (_, watcher) in watchers { watcher.continuation.finish() }
        watchers.removeAll()
    }
}

/// Lease expiry timers. Every replica restarts a lease's timer when a grant or keep-alive
/// for it applies; only the leader acts on expiry, by proposing a revoke (so expiry is
/// decided by one node and replicated like any write).
public struct LeaseTimers: Sendable {
    private var deadlines: [Int64: NIODeadline] = [:]
    /// Leases whose revoke was proposed, with when (retried if it does not apply).
    private var revoking: [Int64: NIODeadline] = [:]

    /// Seconds left for `id` (rounded up), or nil if this node has no timer for it.
    public func remainingSeconds(_ id: Int64, now: NIODeadline = .now()) -> Int64? {
        guard let deadline = deadlines[id] else { return nil }
        let nanos = (deadline - now).nanoseconds
        return nanos <= 0 ? 0 : (nanos + 999_999_999) / 1_000_000_000
    }

    mutating func observe(command: Command, response: KVResponse, now: NIODeadline) {
        switch response {
        case .leaseGrant(let id, let ttl, _), .leaseKeepAlive(let id, let ttl, _):
            deadlines[id] = now + .seconds(ttl)
            revoking.removeValue(forKey: id)
        case .leaseRevoke:
            if let decoded = try? KVCommand(decoding: command.payload), case .leaseRevoke(let id) = decoded {
                deadlines.removeValue(forKey: id)
                revoking.removeValue(forKey: id)
            }
        default:
            break
        }
    }

    mutating func resetAll(from store: KVStore, now: NIODeadline) {
        var fresh: [Int64: NIODeadline] = [:]
        for id in store.leaseIDs {
            if let info = try? store.leaseInfo(id: id) { fresh[id] = now + .seconds(info.grantedTTL) }
        }
        deadlines = fresh
        revoking.removeAll()
    }

    /// Leases past their deadline whose revoke is not in flight (marks them in flight).
    mutating func expired(now: NIODeadline, store: KVStore) -> [Int64] {
        var due: [Int64] = []
        for (id, deadline) in deadlines where deadline <= now {
            if let since = revoking[id], since + .seconds(2) > now { continue }
            due.append(id)
        }
        for id in due where (try? store.leaseInfo(id: id)) == nil {
            deadlines.removeValue(forKey: id)  // already gone (revoked elsewhere)
        }
        due.removeAll { deadlines[$0] == nil }
        for id in due { revoking[id] = now }
        return due.sorted()
    }
}
