import Foundation
import GRPCCore
import SynodEtcdAPI
import SynodKV

/// etcd's Lock and Election services (`v3lockpb.Lock`, `v3electionpb.Election`), built as etcd
/// builds them on the server: out of the KV API a client has. A lock or a campaign is a key
/// `name/<lease id in hex>` attached to the caller's lease; the holder (the leader) is the key
/// under `name/` with the lowest create revision, and a waiter waits until every key created
/// before its own is deleted (by Unlock/Resign, or by its lease ending). Every read and write
/// goes through `KVPipeline` with the caller's credentials, and every watch is checked like a
/// client's watch, so auth permissions apply exactly as to the same calls made by the client.
///
/// Waiting calls end when the client cancels the call (`ServerContext.cancellation`) or the
/// serving task is cancelled; a waiter's key is then deleted, as etcd does.
struct LockElectionCore: Sendable {
    let context: ServiceContext
    var pipeline: KVPipeline { KVPipeline(context: context) }

    /// etcd's errors of the concurrency package, returned as plain errors (gRPC code Unknown).
    static let electionNotLeader = RPCError(code: .unknown, message: "election: not leader")
    static let electionNoLeader = RPCError(code: .unknown, message: "election: no leader")
    static let sessionExpired = RPCError(code: .unknown, message: "mutex: session is expired")
    static let missingLeaderKey = RPCError(code: .unknown, message: "\"leader\" field must be provided")
    static let canceled = RPCError(code: .cancelled, message: "context canceled")
    /// The TTL of the lease etcd's session grants when a request names none (lease 0).
    static let defaultSessionTTL: Int64 = 60

    /// `name/<lease hex>`: the key of a lock or a campaign (lowercase hex, like Go's `%x`).
    static func ownKey(name: Data, lease: Int64) -> Data {
        prefix(name) + Data(String(UInt64(bitPattern: lease), radix: 16).utf8)
    }

    static func prefix(_ name: Data) -> Data { name + Data("/".utf8) }

    /// The end of the range of keys starting with `prefix` (etcd's `GetPrefixRangeEnd`).
    static func prefixEnd(_ prefix: Data) -> Data { EtcdKeyRange.prefixEnd(prefix) }

    /// Serves one call as etcd does: after the learner check of every service, the recipe
    /// runs; etcd's recipes call the server through an in-process client, whose errors reach
    /// the caller with gRPC code Unknown and etcd's message ("etcdserver: requested lease not
    /// found", "etcdserver: permission denied", ...). A cancelled call stays Cancelled.
    func serve<T: Sendable>(_ method: String, _ body: () async throws -> T) async throws -> T {
        try await context.serve(method) {
            do {
                return try await body()
            } catch {
                let status = KVPipeline.status(error)
                if status.code == .cancelled || status.code == .unknown { throw status }
                throw RPCError(code: .unknown, message: status.message)
            }
        }
    }

    // MARK: KV calls with the caller's credentials

    func txn(_ request: Etcdserverpb_TxnRequest, _ credentials: AuthCredentials) async throws -> Etcdserverpb_TxnResponse {
        try await pipeline.txn(request, requestID: nil, credentials: credentials).get()
    }

    func range(_ request: Etcdserverpb_RangeRequest, _ credentials: AuthCredentials) async throws -> Etcdserverpb_RangeResponse {
        try await pipeline.range(request, credentials: credentials).get()
    }

    /// The lease a lock or campaign is held with: the request's, or (lease 0) a new one of
    /// etcd's default session TTL, as etcd's server-side session grants.
    func sessionLease(_ lease: Int64, _ credentials: AuthCredentials) async throws -> Int64 {
        if lease != 0 { return lease }
        let id = Int64.random(in: 1 ... Int64.max)
        let response = try await context.node.write(.leaseGrant(id: id, ttlSeconds: Self.defaultSessionTTL), credentials: credentials)
        guard case .leaseGrant(let grantedID, _, _) = response else {
            throw RPCError(code: .internalError, message: "synod: unexpected response to lease grant")
        }
        return grantedID
    }

    static func rangeOp(_ range: Etcdserverpb_RangeRequest) -> Etcdserverpb_RequestOp {
        var op = Etcdserverpb_RequestOp()
        op.request = .requestRange(range)
        return op
    }

    static func get(_ key: Data) -> Etcdserverpb_RangeRequest {
        var range = Etcdserverpb_RangeRequest()
        range.key = key
        return range
    }

    /// The key under `prefix` created first (`ascend`) or last, with a create revision of at
    /// most `maxCreateRevision` when given.
    static func firstOrLast(_ prefix: Data, ascend: Bool, maxCreateRevision: Int64 = 0) -> Etcdserverpb_RangeRequest {
        var range = Etcdserverpb_RangeRequest()
        range.key = prefix
        range.rangeEnd = prefixEnd(prefix)
        range.sortTarget = .create
        range.sortOrder = ascend ? .ascend : .descend
        range.limit = 1
        range.maxCreateRevision = maxCreateRevision
        return range
    }

    static func putOp(_ key: Data, _ value: Data, lease: Int64) -> Etcdserverpb_RequestOp {
        var put = Etcdserverpb_PutRequest()
        put.key = key
        put.value = value
        put.lease = lease
        var op = Etcdserverpb_RequestOp()
        op.request = .requestPut(put)
        return op
    }

    static func deleteOp(_ key: Data) -> Etcdserverpb_RequestOp {
        var delete = Etcdserverpb_DeleteRangeRequest()
        delete.key = key
        var op = Etcdserverpb_RequestOp()
        op.request = .requestDeleteRange(delete)
        return op
    }

    static func createRevision(of key: Data, equals revision: Int64) -> Etcdserverpb_Compare {
        var compare = Etcdserverpb_Compare()
        compare.key = key
        compare.target = .create
        compare.result = .equal
        compare.createRevision = revision
        return compare
    }

    /// Puts `key` with `value` and `lease` unless it exists (then reads it), and reads the
    /// first-created key under `prefix` in the same transaction.
    func enqueue(key: Data, value: Data, lease: Int64, prefix: Data, _ credentials: AuthCredentials) async throws
        -> (response: Etcdserverpb_TxnResponse, ownRevision: Int64, existing: Mvccpb_KeyValue?, owner: Mvccpb_KeyValue?) {
        var request = Etcdserverpb_TxnRequest()
        request.compare = [Self.createRevision(of: key, equals: 0)]
        request.success = [Self.putOp(key, value, lease: lease), Self.rangeOp(Self.firstOrLast(prefix, ascend: true))]
        request.failure = [Self.rangeOp(Self.get(key)), Self.rangeOp(Self.firstOrLast(prefix, ascend: true))]
        let response = try await txn(request, credentials)
        guard response.responses.count == 2 else { throw RPCError(code: .internalError, message: "synod: unexpected txn answer") }
        let owner = response.responses[1].responseRange.kvs.first
        if response.succeeded { return (response, response.header.revision, nil, owner) }
        guard let existing = response.responses[0].responseRange.kvs.first else {
            // Deleted between the compare and the read cannot happen within one txn.
            throw RPCError(code: .internalError, message: "synod: the key vanished inside a txn")
        }
        return (response, existing.createRevision, existing, owner)
    }

    // MARK: Waiting

    /// Runs `body` until it ends or the RPC is cancelled (the client went away, or its
    /// deadline passed); cancellation ends `body` by cancelling its task and throws `canceled`.
    func untilCancelled<T: Sendable>(_ rpc: ServerContext, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await rpc.cancellation.cancelled
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let result = first else { throw Self.canceled }
            return result
        }
    }

    /// Starts a watch on `[key, rangeEnd)` from `startRevision`, checked against the caller's
    /// permissions as a client's watch is.
    func watch(key: Data, rangeEnd: Data, startRevision: Int64, _ credentials: AuthCredentials) async throws
        -> (id: UInt64, history: [WatchEvent], stream: AsyncStream<WatchDelivery>, backlog: WatchBacklog) {
        let filter = WatchFilter(key: [UInt8](key), rangeEnd: [UInt8](rangeEnd), prevKV: false)
        let (watchKey, watchEnd) = (filter.key, filter.rangeEnd)
        if let denied = try await context.node.withState({ state -> KVError? in
            guard let caller = try state.kv.auth.caller(credentials) else { return nil }
            return state.kv.auth.checkWatch(user: caller.user, authRevision: caller.authRevision, key: watchKey, rangeEnd: watchEnd)
        }) {
            throw denied
        }
        switch try await context.node.watch(filter, startRevision: startRevision) {
        case .compacted:
            throw RPCError(code: .outOfRange, message: "etcdserver: mvcc: required revision has been compacted")
        case .started(let id, let history, _, let stream, let backlog):
            return (id, history, stream, backlog)
        }
    }

    /// Events of a watch in order, history first, until `handle` says stop (returns true).
    /// The watch is canceled on the way out; a watch the node cancels is an error.
    func follow(key: Data, rangeEnd: Data, startRevision: Int64, _ credentials: AuthCredentials,
                _ handle: (WatchEvent, Int64) async throws -> Bool) async throws {
        let watch = try await watch(key: key, rangeEnd: rangeEnd, startRevision: startRevision, credentials)
        defer { context.node.cancelWatch(watch.id) }
        for event in watch.history {
            if try await handle(event, event.kv.modRevision) { return }
        }
        for await delivery in watch.stream {
            switch delivery {
            case .events(let events, let revision):
                watch.backlog.written(WatchBacklog.size(of: events))
                for event in events {
                    if try await handle(event, max(revision, event.kv.modRevision)) { return }
                }
            case .canceled(let reason, _):
                throw RPCError(code: .unavailable, message: reason)
            }
        }
        try Task.checkCancellation()
        throw Self.canceled
    }

    /// etcd's waitDeletes: waits until no key under `prefix` has a create revision of
    /// `maxCreateRevision` or less, watching the last-created such key for its deletion at a
    /// time. Also fails with `lost` once `ownKey` is gone (its lease ended meanwhile), which
    /// etcd notices only after the wait. Answers the header of the final read.
    func waitDeletes(prefix: Data, maxCreateRevision: Int64, ownKey: Data, lost: RPCError, _ credentials: AuthCredentials) async throws
        -> Etcdserverpb_ResponseHeader {
        while true {
            // One read: the newest older key, and whether ours still exists.
            var read = Etcdserverpb_TxnRequest()
            read.success = [Self.rangeOp(Self.firstOrLast(prefix, ascend: false, maxCreateRevision: maxCreateRevision)),
                            Self.rangeOp(Self.get(ownKey))]
            let response = try await txn(read, credentials)
            guard response.responses.count == 2 else { throw RPCError(code: .internalError, message: "synod: unexpected txn answer") }
            if response.responses[1].responseRange.kvs.isEmpty { throw lost }
            guard let previous = response.responses[0].responseRange.kvs.first else { return response.header }
            let predecessor = previous.key
            var ownDeleted = false
            // Every change under the prefix after the read; stop at the deletion of the
            // predecessor (then read again) or of our own key.
            try await follow(key: prefix, rangeEnd: Self.prefixEnd(prefix), startRevision: response.header.revision + 1,
                             credentials) { event, _ in
                guard event.kind == .delete else { return false }
                let key = Data(event.kv.key)
                if key == ownKey { ownDeleted = true; return true }
                return key == predecessor
            }
            if ownDeleted { throw lost }
        }
    }

    /// Deletes `key` if its create revision is still `revision` (a cleanup that must not
    /// remove a newer holder's key); failures are ignored, as etcd ignores them.
    func deleteIfOwned(_ key: Data, revision: Int64, _ credentials: AuthCredentials) async {
        var request = Etcdserverpb_TxnRequest()
        request.compare = [Self.createRevision(of: key, equals: revision)]
        request.success = [Self.deleteOp(key)]
        _ = try? await txn(request, credentials)
    }
}

// MARK: - Lock

struct LockService: V3lockpb_Lock.SimpleServiceProtocol {
    let context: ServiceContext
    var core: LockElectionCore { LockElectionCore(context: context) }

    /// Puts the key `name/<lease hex>` with the lease (or finds it, when this lease already
    /// asked), then waits until every key under `name/` created before it is deleted.
    func lock(request: V3lockpb_LockRequest, context rpc: ServerContext) async throws -> V3lockpb_LockResponse {
        try await core.serve("Lock") {
            let core = core
            let credentials = AuthCredentials.current
            let lease = try await core.sessionLease(request.lease, credentials)
            let prefix = LockElectionCore.prefix(request.name)
            let key = LockElectionCore.ownKey(name: request.name, lease: lease)
            let queued = try await core.enqueue(key: key, value: Data(), lease: lease, prefix: prefix, credentials)
            var out = V3lockpb_LockResponse()
            out.key = key
            if queued.owner == nil || queued.owner?.createRevision == queued.ownRevision {
                out.header = queued.response.header
                return out
            }
            do {
                out.header = try await core.untilCancelled(rpc) {
                    try await core.waitDeletes(prefix: prefix, maxCreateRevision: queued.ownRevision - 1, ownKey: key,
                                               lost: LockElectionCore.sessionExpired, credentials)
                }
                return out
            } catch {
                // As etcd's Lock: a waiter that gives up deletes its key.
                await core.deleteIfOwned(key, revision: queued.ownRevision, credentials)
                throw error
            }
        }
    }

    /// Deletes the lock's key.
    func unlock(request: V3lockpb_UnlockRequest, context _: ServerContext) async throws -> V3lockpb_UnlockResponse {
        try await core.serve("Unlock") {
            var delete = Etcdserverpb_DeleteRangeRequest()
            delete.key = request.key
            let response = try await core.pipeline.deleteRange(delete, requestID: nil, credentials: AuthCredentials.current).get()
            var out = V3lockpb_UnlockResponse()
            out.header = response.header
            return out
        }
    }
}

// MARK: - Election

struct ElectionService: V3electionpb_Election.SimpleServiceProtocol {
    let context: ServiceContext
    var core: LockElectionCore { LockElectionCore(context: context) }

    /// Joins the election `name` with the key `name/<lease hex>` and `value` (updating the
    /// value of a key this lease already had), then waits until it leads.
    func campaign(request: V3electionpb_CampaignRequest, context rpc: ServerContext) async throws -> V3electionpb_CampaignResponse {
        try await core.serve("Campaign") {
            let core = core
            let credentials = AuthCredentials.current
            let lease = try await core.sessionLease(request.lease, credentials)
            let prefix = LockElectionCore.prefix(request.name)
            let key = LockElectionCore.ownKey(name: request.name, lease: lease)
            let queued = try await core.enqueue(key: key, value: request.value, lease: lease, prefix: prefix, credentials)
            var leader = V3electionpb_LeaderKey()
            leader.name = request.name
            leader.key = key
            leader.rev = queued.ownRevision
            leader.lease = lease
            if let existing = queued.existing, existing.value != request.value {
                do {
                    _ = try await proclaim(leader, value: request.value, credentials)
                } catch {
                    await core.deleteIfOwned(key, revision: queued.ownRevision, credentials)
                    throw error
                }
            }
            do {
                _ = try await core.untilCancelled(rpc) {
                    try await core.waitDeletes(prefix: prefix, maxCreateRevision: queued.ownRevision - 1, ownKey: key,
                                               lost: LockElectionCore.electionNotLeader, credentials)
                }
            } catch {
                // A campaign given up (or whose lease ended) resigns.
                await core.deleteIfOwned(key, revision: queued.ownRevision, credentials)
                throw error
            }
            var out = V3electionpb_CampaignResponse()
            out.header = queued.response.header
            out.leader = leader
            return out
        }
    }

    /// Puts the new value if the leader key still has the create revision it was won with.
    private func proclaim(_ leader: V3electionpb_LeaderKey, value: Data, _ credentials: AuthCredentials) async throws
        -> Etcdserverpb_ResponseHeader {
        var request = Etcdserverpb_TxnRequest()
        request.compare = [LockElectionCore.createRevision(of: leader.key, equals: leader.rev)]
        request.success = [LockElectionCore.putOp(leader.key, value, lease: leader.lease)]
        let response = try await core.txn(request, credentials)
        guard response.succeeded else { throw LockElectionCore.electionNotLeader }
        return response.header
    }

    func proclaim(request: V3electionpb_ProclaimRequest, context _: ServerContext) async throws -> V3electionpb_ProclaimResponse {
        try await core.serve("Proclaim") {
            guard request.hasLeader else { throw LockElectionCore.missingLeaderKey }
            var out = V3electionpb_ProclaimResponse()
            out.header = try await proclaim(request.leader, value: request.value, AuthCredentials.current)
            return out
        }
    }

    /// The key under `name/` created first, or etcd's "election: no leader".
    func leader(request: V3electionpb_LeaderRequest, context _: ServerContext) async throws -> V3electionpb_LeaderResponse {
        try await core.serve("Leader") {
            let response = try await core.range(LockElectionCore.firstOrLast(LockElectionCore.prefix(request.name), ascend: true),
                                                AuthCredentials.current)
            guard let kv = response.kvs.first else { throw LockElectionCore.electionNoLeader }
            var out = V3electionpb_LeaderResponse()
            out.header = response.header
            out.kv = kv
            return out
        }
    }

    /// The leader now (waiting for one if there is none), then every new value it proclaims;
    /// once its key is deleted, the next leader, and so on until the client cancels.
    func observe(request: V3electionpb_LeaderRequest, response: RPCWriter<V3electionpb_LeaderResponse>,
                 context rpc: ServerContext) async throws {
        try await core.serve("Observe") {
            let core = core
            let ctx = context
            let credentials = AuthCredentials.current
            let prefix = LockElectionCore.prefix(request.name)
            do {
                try await core.untilCancelled(rpc) {
                    while true {
                        let current = try await core.range(LockElectionCore.firstOrLast(prefix, ascend: true), credentials)
                        var leader: Mvccpb_KeyValue
                        var revision: Int64
                        if let kv = current.kvs.first {
                            (leader, revision) = (kv, current.header.revision)
                        } else {
                            // No leader: the first key put under the prefix is the next one.
                            var first: Mvccpb_KeyValue?
                            try await core.follow(key: prefix, rangeEnd: LockElectionCore.prefixEnd(prefix),
                                                  startRevision: current.header.revision + 1, credentials) { event, _ in
                                guard event.kind == .put else { return false }
                                first = EtcdConversions.keyValue(event.kv)
                                return true
                            }
                            guard let first else { throw LockElectionCore.canceled }
                            (leader, revision) = (first, first.modRevision)
                        }
                        var out = V3electionpb_LeaderResponse()
                        out.header = ctx.header(revision: revision)
                        out.kv = leader
                        try await response.write(out)
                        // The leader's new values, until its key is deleted.
                        try await core.follow(key: leader.key, rangeEnd: Data(), startRevision: revision + 1, credentials) {
                            event, eventRevision in
                            if event.kind == .delete { return true }
                            var change = V3electionpb_LeaderResponse()
                            change.header = ctx.header(revision: eventRevision)
                            change.kv = EtcdConversions.keyValue(event.kv)
                            try await response.write(change)
                            return false
                        }
                    }
                }
            } catch let error as RPCError where error.code == .cancelled {
                return  // the client ended the stream
            }
        }
    }

    /// Deletes the leader key if it still has the create revision it was won with.
    func resign(request: V3electionpb_ResignRequest, context _: ServerContext) async throws -> V3electionpb_ResignResponse {
        try await core.serve("Resign") {
            guard request.hasLeader else { throw LockElectionCore.missingLeaderKey }
            var txn = Etcdserverpb_TxnRequest()
            txn.compare = [LockElectionCore.createRevision(of: request.leader.key, equals: request.leader.rev)]
            txn.success = [LockElectionCore.deleteOp(request.leader.key)]
            let result = try await core.txn(txn, AuthCredentials.current)
            var out = V3electionpb_ResignResponse()
            out.header = result.header
            return out
        }
    }
}
