import Crypto
import Foundation
import GRPCCore
import SynodCore
import SynodEtcdAPI
import SynodKV

/// What every service needs: the node and the ids for response headers.
struct ServiceContext: Sendable {
    let node: Node
    let metrics: SynodMetrics

    var clusterID: UInt64 { node.clusterID }
    var memberID: UInt64 { node.memberID }

    func header(revision: Int64) -> Etcdserverpb_ResponseHeader {
        var header = Etcdserverpb_ResponseHeader()
        header.clusterID = clusterID
        header.memberID = memberID
        header.revision = revision
        header.raftTerm = node.ballotRound
        return header
    }

    /// Runs a handler, mapping every failure to the gRPC status etcd would return, and counts it.
    /// Unless `admitAll` (Status; Range, which checks its consistency itself), a learner, a
    /// joining or a removed member refuses the call first, as etcd's learner interceptor does.
    func serve<T: Sendable>(_ method: String, admitAll: Bool = false, _ body: () async throws -> T) async throws -> T {
        do {
            if !admitAll { try node.admit(needsVoter: true) }
            let result = try await body()
            metrics.grpcRequests(method: method, code: "OK").increment()
            return result
        } catch {
            let rpc = EtcdConversions.rpcError(error)
            metrics.grpcRequests(method: method, code: "\(rpc.code)").increment()
            throw rpc
        }
    }

    /// A client's write, proposed with the credentials of the call being served.
    func write(_ command: KVCommand, requestID: UInt64? = nil) async throws -> KVResponse {
        try await node.write(command, requestID: requestID, credentials: AuthCredentials.current)
    }

    /// etcd's `IsAdminPermitted` at the edge (cluster and maintenance calls, auth listings):
    /// the caller needs the role root while auth is enabled. `maintenanceQuirk`: etcd 3.4
    /// answers defragment, snapshot, hash and hashKV denials with gRPC code Unknown and
    /// "auth: permission denied"; clients see exactly that.
    func requireAdmin(maintenanceQuirk: Bool = false) async throws {
        let credentials = AuthCredentials.current
        let denied: KVError? = try await node.withState { state in
            do throws(KVError) {
                guard let caller = try state.kv.auth.caller(credentials) else { return nil }
                return state.kv.auth.checkAdmin(user: caller.user)
            } catch {
                return error
            }
        }
        guard let denied else { return }
        if maintenanceQuirk {
            // etcd 3.4's snapshot, hash and defragment check auth in a layer whose errors lose
            // their code and the "etcdserver: " prefix.
            switch denied {
            case .userEmpty: throw RPCError(code: .unknown, message: "auth: user name is empty")
            case .invalidAuthToken: throw RPCError(code: .unknown, message: "auth: invalid auth token")
            case .permissionDenied, .userNotFound: throw RPCError(code: .unknown, message: "auth: permission denied")
            default: break
            }
        }
        throw denied
    }

    /// The caller of the call being served, against this member's auth state (nil: auth disabled).
    func caller(_ state: NodeState) throws -> AuthCaller? {
        try state.kv.auth.caller(AuthCredentials.current)
    }
}

/// The optional `synod-request-id` header: SynodClient sends the same random id on every
/// attempt of one write, so a retry on another member is applied at most once (the session
/// table answers it with the first attempt's result). Other etcd clients don't send it.
enum RequestIdentity {
    static let header = "synod-request-id"

    /// The id in `metadata` (16 hex digits), or nil when absent or malformed.
    static func requestID(_ metadata: Metadata) -> UInt64? {
        metadata[stringValues: header].first(where: { _ in true }).flatMap(requestID(text:))
    }

    static func requestID(text: String) -> UInt64? {
        guard text.utf8.count <= 16, let id = UInt64(text, radix: 16), id != 0 else { return nil }
        return id
    }
}

// MARK: - KV

/// grpc-swift's side of the KV service (used when the frame-level fast path is off): every
/// method is a call into `KVPipeline`, the same code the fast path runs.
struct KVService: Etcdserverpb_KV.SimpleServiceProtocol {
    let context: ServiceContext
    var pipeline: KVPipeline { KVPipeline(context: context) }

    func range(request: Etcdserverpb_RangeRequest, context _: ServerContext) async throws -> Etcdserverpb_RangeResponse {
        try await pipeline.range(request, credentials: AuthCredentials.current).get()
    }

    // The writes read the request metadata (for `synod-request-id`), so they implement the
    // full ServiceProtocol methods; the simple ones remain for completeness.
    func put(request: ServerRequest<Etcdserverpb_PutRequest>, context _: ServerContext) async throws
        -> ServerResponse<Etcdserverpb_PutResponse> {
        ServerResponse(message: try await pipeline.put(request.message, requestID: RequestIdentity.requestID(request.metadata),
                                                                credentials: AuthCredentials(metadata: request.metadata)).get(),
                       metadata: [:])
    }

    func deleteRange(request: ServerRequest<Etcdserverpb_DeleteRangeRequest>, context _: ServerContext) async throws
        -> ServerResponse<Etcdserverpb_DeleteRangeResponse> {
        ServerResponse(message: try await pipeline.deleteRange(request.message,
                                                                requestID: RequestIdentity.requestID(request.metadata),
                                                                credentials: AuthCredentials(metadata: request.metadata)).get(),
                       metadata: [:])
    }

    func txn(request: ServerRequest<Etcdserverpb_TxnRequest>, context _: ServerContext) async throws
        -> ServerResponse<Etcdserverpb_TxnResponse> {
        ServerResponse(message: try await pipeline.txn(request.message, requestID: RequestIdentity.requestID(request.metadata),
                                                                credentials: AuthCredentials(metadata: request.metadata)).get(),
                       metadata: [:])
    }

    func put(request: Etcdserverpb_PutRequest, context _: ServerContext) async throws -> Etcdserverpb_PutResponse {
        try await pipeline.put(request, requestID: nil, credentials: AuthCredentials.current).get()
    }

    func deleteRange(request: Etcdserverpb_DeleteRangeRequest, context _: ServerContext) async throws
        -> Etcdserverpb_DeleteRangeResponse {
        try await pipeline.deleteRange(request, requestID: nil, credentials: AuthCredentials.current).get()
    }

    func txn(request: Etcdserverpb_TxnRequest, context _: ServerContext) async throws -> Etcdserverpb_TxnResponse {
        try await pipeline.txn(request, requestID: nil, credentials: AuthCredentials.current).get()
    }

    func compact(request: Etcdserverpb_CompactionRequest, context _: ServerContext) async throws
        -> Etcdserverpb_CompactionResponse {
        try await pipeline.compact(request, credentials: AuthCredentials.current).get()
    }
}

// MARK: - Lease

struct LeaseService: Etcdserverpb_Lease.SimpleServiceProtocol {
    let context: ServiceContext

    /// etcd's minimum TTL: 1.5 election timeouts, rounded up to whole seconds.
    var minimumTTL: Int64 {
        Int64((context.node.options.electionTimeoutMilliseconds * 3 / 2 + 999) / 1000)
    }

    func leaseGrant(request: Etcdserverpb_LeaseGrantRequest, context _: ServerContext) async throws
        -> Etcdserverpb_LeaseGrantResponse {
        try await context.serve("LeaseGrant") {
            var id = request.id
            if id == 0 { id = Int64.random(in: 1 ... Int64.max) }
            if id < 0 { throw RPCError(code: .invalidArgument, message: "etcdserver: lease not found") }
            let ttl = max(request.ttl, minimumTTL)
            guard case .leaseGrant(let grantedID, let grantedTTL, let revision) = try await context.write(
                .leaseGrant(id: id, ttlSeconds: ttl)) else {
                throw RPCError(code: .internalError, message: "synod: unexpected response to lease grant")
            }
            var out = Etcdserverpb_LeaseGrantResponse()
            out.header = context.header(revision: revision)
            out.id = grantedID
            out.ttl = grantedTTL
            return out
        }
    }

    func leaseRevoke(request: Etcdserverpb_LeaseRevokeRequest, context _: ServerContext) async throws
        -> Etcdserverpb_LeaseRevokeResponse {
        try await context.serve("LeaseRevoke") {
            let response = try await context.write(.leaseRevoke(id: request.id))
            var out = Etcdserverpb_LeaseRevokeResponse()
            out.header = context.header(revision: response.revision)
            return out
        }
    }

    func leaseKeepAlive(request: RPCAsyncSequence<Etcdserverpb_LeaseKeepAliveRequest, any Error>,
                        response: RPCWriter<Etcdserverpb_LeaseKeepAliveResponse>,
                        context _: ServerContext) async throws {
        try await context.serve("LeaseKeepAlive") {
            for try await keepAlive in request {
                var out = Etcdserverpb_LeaseKeepAliveResponse()
                out.id = keepAlive.id
                do {
                    let result = try await context.write(.leaseKeepAlive(id: keepAlive.id))
                    if case .leaseKeepAlive(_, let ttl, let revision) = result {
                        out.ttl = ttl
                        out.header = context.header(revision: revision)
                    }
                } catch NodeError.kv(.leaseNotFound) {
                    // etcd answers a keep-alive for an unknown lease with TTL 0 (and the
                    // current revision in the header, as every answer).
                    out.ttl = 0
                    out.header = context.header(revision: (try? await context.node.withState { $0.kv.store.revision }) ?? 0)
                }
                try await response.write(out)
            }
        }
    }

    func leaseTimeToLive(request: Etcdserverpb_LeaseTimeToLiveRequest, context _: ServerContext) async throws
        -> Etcdserverpb_LeaseTimeToLiveResponse {
        try await context.serve("LeaseTimeToLive") {
            let ctx = context
            let credentials = AuthCredentials.current
            return try await context.node.read(.linearizable) { state in
                if let caller = try state.kv.auth.caller(credentials),
                   let error = state.kv.checkLeaseTimeToLive(user: caller.user, authRevision: caller.authRevision,
                                                             leaseID: request.id, keysRequested: request.keys) {
                    throw error
                }
                var out = Etcdserverpb_LeaseTimeToLiveResponse()
                out.header = ctx.header(revision: state.kv.store.revision)
                out.id = request.id
                guard let info = try? state.kv.store.leaseInfo(id: request.id) else {
                    out.ttl = -1  // etcd: the lease has expired or never existed
                    return out
                }
                out.grantedTtl = info.grantedTTL
                out.ttl = state.leaseRemainingSeconds(request.id) ?? info.grantedTTL
                if request.keys { out.keys = info.keys.map { Data($0) } }
                return out
            }
        }
    }

    func leaseLeases(request _: Etcdserverpb_LeaseLeasesRequest, context _: ServerContext) async throws
        -> Etcdserverpb_LeaseLeasesResponse {
        try await context.serve("LeaseLeases") {
            let ctx = context
            let credentials = AuthCredentials.current
            return try await context.node.read(.linearizable) { state in
                if let caller = try state.kv.auth.caller(credentials), let error = state.kv.auth.checkLeaseGrant(user: caller.user) {
                    throw error
                }
                var out = Etcdserverpb_LeaseLeasesResponse()
                out.header = ctx.header(revision: state.kv.store.revision)
                out.leases = state.kv.store.leaseIDs.map { id in
                    var status = Etcdserverpb_LeaseStatus()
                    status.id = id
                    return status
                }
                return out
            }
        }
    }
}

// MARK: - Maintenance

struct MaintenanceService: Etcdserverpb_Maintenance.SimpleServiceProtocol {
    let context: ServiceContext
    /// The etcd API version Synod implements (etcd clients compare it).
    static let apiVersion = "3.4.0"

    /// GET lists the raised alarms (linearizably); ACTIVATE and DEACTIVATE go through the log
    /// and answer with the alarm they changed, as etcd does.
    func alarm(request: Etcdserverpb_AlarmRequest, context _: ServerContext) async throws -> Etcdserverpb_AlarmResponse {
        try await context.serve("Alarm") {
            var out = Etcdserverpb_AlarmResponse()
            let action: AlarmAction
            switch request.action {
            case .get, .UNRECOGNIZED:
                // etcd 3.4's alarm answers carry no header.
                let alarms = try await context.node.read(.linearizable) { state in state.kv.alarms.sorted() }
                out.alarms = alarms.map(Self.alarmMember)
                return out
            case .activate: action = .activate
            case .deactivate: action = .deactivate
            }
            guard let type = AlarmType(rawValue: UInt8(clamping: request.alarm.rawValue)), type != .none else {
                throw RPCError(code: .invalidArgument, message: "etcdserver: unknown alarm type")
            }
            let member = AlarmMember(memberID: request.memberID, alarm: type)
            // As etcd: activating answers the alarm; deactivating answers it only if it was raised.
            let wasRaised = try await context.node.read(.linearizable) { state in state.kv.alarms.contains(member) }
            _ = try await context.write(.alarm(action: action, member: member))
            if action == .activate || wasRaised { out.alarms = [Self.alarmMember(member)] }
            return out
        }
    }

    static func alarmMember(_ alarm: AlarmMember) -> Etcdserverpb_AlarmMember {
        var member = Etcdserverpb_AlarmMember()
        member.memberID = alarm.memberID
        member.alarm = Etcdserverpb_AlarmType(rawValue: Int(alarm.alarm.rawValue)) ?? .none
        return member
    }

    func status(request _: Etcdserverpb_StatusRequest, context _: ServerContext) async throws -> Etcdserverpb_StatusResponse {
        try await context.serve("Status", admitAll: true) {
            let ctx = context
            let dbSize = Int64(directorySize(context.node.options.dataDirectory))
            return try await context.node.withState { state in
                let status = state.status
                var out = Etcdserverpb_StatusResponse()
                out.header = ctx.header(revision: status.revision)
                out.header.raftTerm = status.ballotRound
                out.version = Self.apiVersion
                out.dbSize = dbSize
                out.dbSizeInUse = dbSize
                out.leader = status.leaderMemberID
                out.isLearner = status.isLearner
                out.raftIndex = status.chosenThrough
                out.raftTerm = status.ballotRound
                out.raftAppliedIndex = status.appliedThrough
                if let failure = status.storageFailure { out.errors = ["storage: \(failure)"] }
                return out
            }
        }
    }

    func defragment(request _: Etcdserverpb_DefragmentRequest, context _: ServerContext) async throws
        -> Etcdserverpb_DefragmentResponse {
        try await context.serve("Defragment") {
            try await context.requireAdmin(maintenanceQuirk: true)
            // The log is compacted by snapshots; nothing to defragment. etcd answers no header.
            return Etcdserverpb_DefragmentResponse()
        }
    }

    func hash(request _: Etcdserverpb_HashRequest, context _: ServerContext) async throws -> Etcdserverpb_HashResponse {
        try await context.serve("Hash") {
            try await context.requireAdmin(maintenanceQuirk: true)
            let ctx = context
            return try await context.node.withState { state in
                var out = Etcdserverpb_HashResponse()
                out.header = ctx.header(revision: state.kv.store.revision)
                out.hash = fold(state.kv.stateHash)
                return out
            }
        }
    }

    func hashKV(request: Etcdserverpb_HashKVRequest, context _: ServerContext) async throws -> Etcdserverpb_HashKVResponse {
        try await context.serve("HashKV") {
            try await context.requireAdmin(maintenanceQuirk: true)
            let ctx = context
            return try await context.node.withState { state in
                var out = Etcdserverpb_HashKVResponse()
                out.header = ctx.header(revision: state.kv.store.revision)
                out.hash = fold(try state.kv.store.hashKV(revision: request.revision))
                out.compactRevision = state.kv.store.compactRevision
                return out
            }
        }
    }

    func snapshot(request _: Etcdserverpb_SnapshotRequest, response: RPCWriter<Etcdserverpb_SnapshotResponse>,
                  context _: ServerContext) async throws {
        try await context.serve("Snapshot") {
            try await context.requireAdmin(maintenanceQuirk: true)
            let ctx = context
            var (bytes, revision) = try await context.node.read(.linearizable) { state in
                (state.kv.snapshot(), state.kv.store.revision)
            }
            // As etcd's: the blob is padded to a multiple of 512 bytes and ends with the
            // SHA-256 of everything before it, which `etcdctl snapshot save` checks.
            bytes += [UInt8](repeating: 0, count: (512 - bytes.count % 512) % 512)
            bytes += Array(SHA256.hash(data: bytes))
            let chunk = 32 << 10
            var offset = 0
            repeat {
                let end = min(bytes.count, offset + chunk)
                var out = Etcdserverpb_SnapshotResponse()
                out.header = ctx.header(revision: revision)
                out.blob = Data(bytes[offset..<end])
                out.remainingBytes = UInt64(bytes.count - end)
                try await response.write(out)
                offset = end
            } while offset < bytes.count
        }
    }

    /// etcd's MoveLeader: only at the leader; the target is a voting member's etcd id. Answers
    /// once the target leads.
    func moveLeader(request: Etcdserverpb_MoveLeaderRequest, context _: ServerContext) async throws
        -> Etcdserverpb_MoveLeaderResponse {
        try await context.serve("MoveLeader") {
            try await context.requireAdmin()
            let node = context.node
            guard try await node.withState({ $0.status.isLeader }) else {
                throw ReconfigurationError.notLeader
            }
            guard let target = node.latestMembership?.members.first(where: { $0.memberID == request.targetID }),
                  !target.isLearner else {
                throw RPCError(code: .failedPrecondition, message: "etcdserver: bad leader transferee")
            }
            _ = try await node.transferLeadership(to: target.id)
            return Etcdserverpb_MoveLeaderResponse()  // etcd answers no header
        }
    }
}

/// Folds a 64-bit hash into etcd's 32-bit hash field.
func fold(_ hash: UInt64) -> UInt32 {
    UInt32(truncatingIfNeeded: hash) ^ UInt32(truncatingIfNeeded: hash >> 32)
}

/// Bytes used by regular files under `path` (the db size Status reports).
func directorySize(_ path: String) -> UInt64 {
    guard let enumerator = FileManager.default.enumerator(atPath: path) else { return 0 }
    var total: UInt64 = 0
    while let item = enumerator.nextObject() as? String {
        if let attributes = try? FileManager.default.attributesOfItem(atPath: path + "/" + item),
           (attributes[.type] as? FileAttributeType) == .typeRegular,
           let size = attributes[.size] as? NSNumber {
            total += size.uint64Value
        }
    }
    return total
}
