import NIOCore
import Synchronization
import SynodCore
import SynodKV

/// What a watch stream receives from the node loop.
public enum WatchDelivery: Sendable {
    /// Events at revisions after the watch's last delivered one, in order; they count in the
    /// watch's `WatchBacklog` until written.
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

/// Bytes of watch events handed to one watch's stream and not yet written to its client:
/// the node adds when it delivers, the stream's writer subtracts once a response is written.
public final class WatchBacklog: Sendable {
    private let bytes = Atomic<Int>(0)

    public init() {}

    public var value: Int { bytes.load(ordering: .relaxed) }
    func add(_ count: Int) { bytes.add(count, ordering: .relaxed) }
    /// Called by the stream's writer after it wrote `count` bytes' worth of events.
    public func written(_ count: Int) { bytes.subtract(count, ordering: .relaxed) }

    /// What `add` and `written` count for `events` (keys, values, previous values, and a
    /// fixed overhead per event).
    public static func size(of events: some Collection<WatchEvent>) -> Int {
        var total = 0
        for event in events {
            total += 64 + event.kv.key.count + event.kv.value.count + (event.prevKv.map { $0.key.count + $0.value.count } ?? 0)
        }
        return total
    }
}

/// The node's live watches (node loop only).
///
/// Memory is bounded per watch: while more than `backlogBytesMax` of a watch's events are
/// still waiting for its client (a slow reader, a stalled connection), it stops receiving live
/// events and falls behind, remembering the first revision it has not received. Once its
/// client caught up (`catchUp`, on every tick), it is fed from the key space's history in
/// chunks until it reaches the present, then live again, with no gap and no duplicate. If the
/// history it needs was compacted meanwhile, it is canceled with the compact revision, as etcd
/// cancels a slow watcher whose revision was compacted.
struct WatcherRegistry {
    /// A watch falls behind above this many bytes waiting for its client...
    static let backlogBytesMax = 4 << 20
    /// ...and catches up from history once fewer than this wait.
    static let catchUpBelowBytes = 1 << 20
    /// Revisions read from history per catch-up step.
    static let catchUpRevisionsMax = 1_000

    struct Watcher {
        var filter: WatchFilter
        var continuation: AsyncStream<WatchDelivery>.Continuation
        var backlog: WatchBacklog
        /// Set while the watch is behind: the first revision it has not received.
        var behindFrom: Int64?
    }

    private var watchers: [UInt64: Watcher] = [:]
    private var nextID: UInt64 = 1
    /// Watches that are behind (a subset of `watchers`' keys).
    private var behind: Set<UInt64> = []

    var count: Int { watchers.count }
    var behindCount: Int { behind.count }

    /// Registers a watch; `behindFrom` starts it behind (a watch from a past revision whose
    /// history did not fit in its first response).
    mutating func add(_ filter: WatchFilter, continuation: AsyncStream<WatchDelivery>.Continuation,
                      backlog: WatchBacklog, behindFrom: Int64? = nil) -> UInt64 {
        let id = nextID
        nextID += 1
        watchers[id] = Watcher(filter: filter, continuation: continuation, backlog: backlog, behindFrom: behindFrom)
        if behindFrom != nil { behind.insert(id) }
        return id
    }

    mutating func remove(_ id: UInt64) {
        behind.remove(id)
        watchers.removeValue(forKey: id)?.continuation.finish()
    }

    mutating func publish(_ events: [WatchEvent], revision: Int64) {
        for (id, watcher) in watchers where watcher.behindFrom == nil {
            let selected = watcher.filter.select(events)
            guard let first = selected.first else { continue }
            if watcher.backlog.value > Self.backlogBytesMax {
                watchers[id]?.behindFrom = first.kv.modRevision
                behind.insert(id)
                continue
            }
            watcher.backlog.add(WatchBacklog.size(of: selected))
            watcher.continuation.yield(.events(selected, revision: revision))
        }
    }

    /// Feeds watches that are behind from `store`'s history, a chunk at a time, once their
    /// clients have caught up; cancels those whose history is gone.
    mutating func catchUp(store: KVStore) {
        guard !behind.isEmpty else { return }
        for id in behind.sorted() {
            guard let watcher = watchers[id], let from = watcher.behindFrom else {
                behind.remove(id)
                continue
            }
            guard watcher.backlog.value < Self.catchUpBelowBytes else { continue }
            let events: [WatchEvent]
            do {
                events = try store.events(from: from, key: watcher.filter.key, rangeEnd: watcher.filter.rangeEnd,
                                          revisionsMax: Self.catchUpRevisionsMax)
            } catch {
                watcher.continuation.yield(.canceled(reason: "etcdserver: mvcc: required revision has been compacted",
                                                     compactRevision: store.compactRevision))
                remove(id)
                continue
            }
            let lastRevision = events.last?.kv.modRevision
            let complete = lastRevision == nil || Self.revisionCount(events) < Self.catchUpRevisionsMax
            let selected = watcher.filter.select(events)
            if !selected.isEmpty {
                watcher.backlog.add(WatchBacklog.size(of: selected))
                watcher.continuation.yield(.events(selected, revision: complete ? store.revision : lastRevision ?? store.revision))
            }
            if complete {
                // Everything through the current revision is delivered; later ones come live.
                watchers[id]?.behindFrom = nil
                behind.remove(id)
            } else if let lastRevision {
                watchers[id]?.behindFrom = lastRevision + 1
            }
        }
    }

    private static func revisionCount(_ events: [WatchEvent]) -> Int {
        var count = 0
        var last: Int64?
        for event in events where event.kv.modRevision != last {
            last = event.kv.modRevision
            count += 1
        }
        return count
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
        behind.removeAll()
    }

    mutating func finishAll() {
        for (_, watcher) in watchers { watcher.continuation.finish() }
        watchers.removeAll()
        behind.removeAll()
    }
}
