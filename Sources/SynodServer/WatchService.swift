import GRPCCore
import Synchronization
import SynodEtcdAPI
import SynodKV

/// Set while a watch's event stream is open (read by its progress-notify task).
final class WatchActivity: Sendable {
    private let open = Atomic<Bool>(true)
    var isOpen: Bool { open.load(ordering: .acquiring) }
    func close() { open.store(false, ordering: .releasing) }
}

/// One response waiting for the stream's writer, with the watch backlog it counts in.
struct WatchOutboxItem: Sendable {
    var response: Etcdserverpb_WatchResponse
    var backlog: WatchBacklog?
    var bytes = 0
}

/// etcd's Watch service: one bidirectional stream carries many watches. Every watch's
/// responses go through one queue to the single writer of the stream; a watch's events count
/// in its backlog until written, which bounds what a slow client can make the node hold
/// (see `WatcherRegistry`).
struct WatchService: Etcdserverpb_Watch.SimpleServiceProtocol {
    let context: ServiceContext
    /// Why a watch could not be created, as etcd words it: auth refusals carry the gRPC status
    /// text ("rpc error: code = PermissionDenied desc = etcdserver: permission denied"), which
    /// etcd's clients turn back into the status.
    static func cancelReason(_ error: any Error) -> String {
        let rpc = EtcdConversions.rpcError(error)
        let kv = (error as? KVError) ?? { if case .kv(let kv)? = error as? NodeError { return kv } else { return nil } }()
        switch kv {
        case .permissionDenied?: return "rpc error: code = PermissionDenied desc = \(rpc.message)"
        case .invalidAuthToken?: return "rpc error: code = Unauthenticated desc = \(rpc.message)"
        case .userEmpty?, .authOldRevision?: return "rpc error: code = InvalidArgument desc = \(rpc.message)"
        default: return rpc.message
        }
    }

    /// Events per response message at most (a lagging watch catches up in several messages).
    static let eventsPerResponseMax = 1000

    func watch(request: RPCAsyncSequence<Etcdserverpb_WatchRequest, any Error>,
               response: RPCWriter<Etcdserverpb_WatchResponse>,
               context _: ServerContext) async throws {
        let ctx = context
        do {
            try ctx.node.admit(needsVoter: true)  // etcd's learners refuse every stream
        } catch {
            throw EtcdConversions.rpcError(error)
        }
        let (outbox, outboxWriter) = AsyncStream<WatchOutboxItem>.makeStream()
        await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for await item in outbox {
                    try await response.write(item.response)
                    item.backlog?.written(item.bytes)
                }
            }
            var registry = StreamWatches()
            do {
                for try await message in request {
                    switch message.requestUnion {
                    case .createRequest(let create):
                        await startWatch(create, registry: &registry, outbox: outboxWriter, group: &group)
                    case .cancelRequest(let cancel):
                        if let nodeID = registry.remove(cancel.watchID) {
                            ctx.node.cancelWatch(nodeID)
                            var out = Etcdserverpb_WatchResponse()
                            out.header = ctx.header(revision: (try? await ctx.node.withState { $0.kv.store.revision }) ?? 0)
                            out.watchID = cancel.watchID
                            out.canceled = true
                            outboxWriter.yield(WatchOutboxItem(response: out))
                        }
                    case .progressRequest:
                        let revision = (try? await ctx.node.withState { $0.kv.store.revision }) ?? 0
                        var out = Etcdserverpb_WatchResponse()
                        out.header = ctx.header(revision: revision)
                        out.watchID = -1
                        outboxWriter.yield(WatchOutboxItem(response: out))
                    case nil:
                        break
                    }
                }
            } catch {
                // The client went away: fall through and clean up.
            }
            registry.cancelAll(node: ctx.node)
            outboxWriter.finish()
            group.cancelAll()
        }
    }

    private func startWatch(_ create: Etcdserverpb_WatchCreateRequest, registry: inout StreamWatches,
                            outbox: AsyncStream<WatchOutboxItem>.Continuation,
                            group: inout ThrowingTaskGroup<Void, any Error>) async {
        let ctx = context
        let watchID = create.watchID != 0 ? create.watchID : registry.nextID()
        var filter = WatchFilter(key: [UInt8](create.key), rangeEnd: [UInt8](create.rangeEnd), prevKV: create.prevKv)
        for type in create.filters {
            if type == .noput { filter.noPut = true }
            if type == .nodelete { filter.noDelete = true }
        }
        var created = Etcdserverpb_WatchResponse()
        created.watchID = watchID
        guard !registry.contains(watchID), !filter.key.isEmpty else {
            created.header = ctx.header(revision: 0)
            created.created = true
            created.canceled = true
            created.cancelReason = filter.key.isEmpty ? "etcdserver: key is not provided" : "etcdserver: duplicate watch id"
            outbox.yield(WatchOutboxItem(response: created))
            return
        }
        let start: WatchStart
        do {
            // A watch from a past revision first catches this member up (a read barrier), so a
            // lagging follower neither misses a compaction nor replays less history than exists.
            if create.startRevision > 0 { try await ctx.node.readBarrier(.linearizable) }
            // READ on the whole watched range (a from-key watch included), checked once at
            // creation as etcd does; a denied watch is created and canceled with the reason.
            let credentials = AuthCredentials.current
            let (key, rangeEnd) = (filter.key, filter.rangeEnd)
            let (denied, revision) = try await ctx.node.withState { state -> (KVError?, Int64) in
                do {
                    guard let caller = try state.kv.auth.caller(credentials) else { return (nil, state.kv.store.revision) }
                    return (state.kv.auth.checkWatch(user: caller.user, authRevision: caller.authRevision, key: key, rangeEnd: rangeEnd),
                            state.kv.store.revision)
                } catch let error as KVError {
                    return (error, state.kv.store.revision)
                }
            }
            if let denied {
                // etcd: created and canceled with watch_id -1 and the current revision.
                created.header = ctx.header(revision: revision)
                created.watchID = -1
                created.created = true
                created.canceled = true
                created.cancelReason = Self.cancelReason(denied)
                outbox.yield(WatchOutboxItem(response: created))
                return
            }
            start = try await ctx.node.watch(filter, startRevision: create.startRevision)
        } catch {
            created.header = ctx.header(revision: 0)
            created.created = true
            created.canceled = true
            created.cancelReason = Self.cancelReason(error)
            outbox.yield(WatchOutboxItem(response: created))
            return
        }
        switch start {
        case .compacted(let compactRevision):
            // etcd 3.4: the watch is created, then canceled with the compact revision (and no
            // revision in that header, no reason: clients know the reason from compact_revision).
            created.header = ctx.header(revision: compactRevision)
            created.created = true
            outbox.yield(WatchOutboxItem(response: created))
            var canceled = Etcdserverpb_WatchResponse()
            canceled.header = ctx.header(revision: 0)
            canceled.watchID = watchID
            canceled.canceled = true
            canceled.compactRevision = compactRevision
            outbox.yield(WatchOutboxItem(response: canceled))
        case .started(let nodeWatchID, let history, let revision, let stream, let backlog):
            registry.add(watchID, nodeWatchID: nodeWatchID)
            created.header = ctx.header(revision: revision)
            created.created = true
            outbox.yield(WatchOutboxItem(response: created))
            let minimumRevision = create.startRevision
            for batch in Self.batches(history) {
                outbox.yield(WatchOutboxItem(response: Self.eventsResponse(batch, watchID: watchID, revision: revision, ctx: ctx)))
            }
            let activity = WatchActivity()
            if create.progressNotify {
                let interval = ctx.node.options.watchProgressNotifyMilliseconds
                let node = ctx.node
                group.addTask {
                    // etcd's progress_notify: an empty response carrying the current revision.
                    while activity.isOpen {
                        try? await Task.sleep(for: .milliseconds(interval))
                        guard activity.isOpen, !Task.isCancelled else { return }
                        let revision = (try? await node.withState { $0.kv.store.revision }) ?? 0
                        var out = Etcdserverpb_WatchResponse()
                        out.header = ctx.header(revision: revision)
                        out.watchID = watchID
                        outbox.yield(WatchOutboxItem(response: out))
                    }
                }
            }
            group.addTask {
                defer { activity.close() }
                for await delivery in stream {
                    switch delivery {
                    case .events(let events, let revision):
                        let wanted = events.filter { $0.kv.modRevision >= minimumRevision }
                        // Events dropped here were never counted by the writer: release them now.
                        backlog.written(WatchBacklog.size(of: events) - WatchBacklog.size(of: wanted))
                        for batch in Self.batches(wanted) {
                            outbox.yield(WatchOutboxItem(response: Self.eventsResponse(batch, watchID: watchID, revision: revision, ctx: ctx),
                                                         backlog: backlog, bytes: WatchBacklog.size(of: batch)))
                        }
                    case .canceled(let reason, let compactRevision):
                        var out = Etcdserverpb_WatchResponse()
                        out.header = ctx.header(revision: compactRevision)
                        out.watchID = watchID
                        out.canceled = true
                        out.compactRevision = compactRevision
                        out.cancelReason = reason
                        outbox.yield(WatchOutboxItem(response: out))
                    }
                }
            }
        }
    }

    private static func batches(_ events: [WatchEvent]) -> [ArraySlice<WatchEvent>] {
        stride(from: 0, to: events.count, by: eventsPerResponseMax).map {
            events[$0..<min(events.count, $0 + eventsPerResponseMax)]
        }
    }

    private static func eventsResponse(_ events: ArraySlice<WatchEvent>, watchID: Int64, revision: Int64,
                                       ctx: ServiceContext) -> Etcdserverpb_WatchResponse {
        var out = Etcdserverpb_WatchResponse()
        out.header = ctx.header(revision: max(revision, events.last?.kv.modRevision ?? 0))
        out.watchID = watchID
        out.events = events.map(EtcdConversions.event)
        return out
    }
}

/// The watches of one stream: client watch id -> node watch id.
struct StreamWatches {
    private var watches: [Int64: UInt64] = [:]
    private var next: Int64 = 0

    mutating func nextID() -> Int64 {
        while watches[next] != nil { next += 1 }
        defer { next += 1 }
        return next
    }

    func contains(_ id: Int64) -> Bool { watches[id] != nil }
    mutating func add(_ id: Int64, nodeWatchID: UInt64) { watches[id] = nodeWatchID }
    mutating func remove(_ id: Int64) -> UInt64? { watches.removeValue(forKey: id) }

    mutating func cancelAll(node: Node) {
        for (_, nodeID) in watches { node.cancelWatch(nodeID) }
        watches.removeAll()
    }
}
