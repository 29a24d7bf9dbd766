import GRPCCore
import NIOCore
import NIOHTTP1
import SwiftProtobuf
import Synchronization
import SynodEtcdAPI

/// etcd's gRPC-JSON gateway on the client port (HTTP/1.1 `POST /v3/...` with a JSON body), for
/// clients that do not speak gRPC. The JSON is etcd's: proto field names (`mod_revision`),
/// bytes as base64, 64-bit integers as strings, enums by name, zero values omitted; input may
/// also use camelCase and numbers. `/v3beta/` and `/v3alpha/` are accepted as `/v3/`.
///
/// Served: the KV calls (through `KVPipeline`, like the gRPC ones), and every call of Watch,
/// Lease, Cluster, Maintenance, Auth, Lock and Election (through the same service code as gRPC), with the
/// caller's token from `Authorization`. Streams answer chunked, one `{"result":...}` object and
/// a newline per message, an error as `{"error":{"grpc_code":...}}`; the bidirectional ones
/// (watch, keep-alive) read the request body as a stream of JSON objects.
struct EtcdGateway: Sendable {
    let pipeline: KVPipeline
    let watch: WatchService
    let lease: LeaseService
    let cluster: ClusterService
    let maintenance: MaintenanceService
    let auth: AuthService
    let lock: LockService
    let election: ElectionService
    /// The largest request message (its protobuf encoding), as gRPC's receive limit: etcd's
    /// gateway hands each request to gRPC, which refuses larger ones with ResourceExhausted.
    var messageMax = Int.max

    init(context: ServiceContext) {
        pipeline = KVPipeline(context: context)
        watch = WatchService(context: context)
        lease = LeaseService(context: context)
        cluster = ClusterService(context: context)
        maintenance = MaintenanceService(context: context)
        auth = AuthService(context: context)
        lock = LockService(context: context)
        election = ElectionService(context: context)
    }

    static let encoding: JSONEncodingOptions = {
        var options = JSONEncodingOptions()
        options.preserveProtoFieldNames = true
        return options
    }()

    /// Strict first (an unknown enum name is an error, as etcd's decoder says); an unknown
    /// field is then ignored, as etcd's gateway does.
    static let strictDecoding = JSONDecodingOptions()

    static let decoding: JSONDecodingOptions = {
        var options = JSONDecodingOptions()
        options.ignoreUnknownFields = true
        return options
    }()

    /// The path below `/v3/` (or `/v3beta/`, `/v3alpha/`), or nil for other paths.
    static func route(_ path: String) -> String? {
        for prefix in ["/v3/", "/v3beta/", "/v3alpha/"] where path.hasPrefix(prefix) {
            return String(path.dropFirst(prefix.count))
        }
        return nil
    }

    /// A unary call. `cancellation` is cancelled when the client goes away (a Lock or Campaign
    /// waiting for its turn then gives up and deletes its key).
    func handle(route: String, body: [UInt8], credentials: AuthCredentials,
                cancellation: ServerContext.RPCCancellationHandle = .init()) async -> HTTPStatusResponse {
        let unary = UnaryCall(body: body, credentials: credentials, cancellation: cancellation, messageMax: messageMax)
        do {
            switch route {
            case "kv/range":
                return try Self.ok(try await pipeline.range(try decode(body), credentials: credentials).get())
            case "kv/put":
                return try Self.ok(try await pipeline.put(try decode(body), requestID: nil, credentials: credentials).get())
            case "kv/deleterange":
                return try Self.ok(try await pipeline.deleteRange(try decode(body), requestID: nil, credentials: credentials).get())
            case "kv/txn":
                return try Self.ok(try await pipeline.txn(try decode(body), requestID: nil, credentials: credentials).get())
            case "kv/compaction":
                return try Self.ok(try await pipeline.compact(try decode(body), credentials: credentials).get())
            case "lease/grant": return try await unary.call(Etcdserverpb_Lease.Method.LeaseGrant.descriptor, lease.leaseGrant)
            case "lease/revoke", "kv/lease/revoke": return try await unary.call(Etcdserverpb_Lease.Method.LeaseRevoke.descriptor, lease.leaseRevoke)
            case "lease/timetolive", "kv/lease/timetolive":
                return try await unary.call(Etcdserverpb_Lease.Method.LeaseTimeToLive.descriptor, lease.leaseTimeToLive)
            case "lease/leases", "kv/lease/leases": return try await unary.call(Etcdserverpb_Lease.Method.LeaseLeases.descriptor, lease.leaseLeases)
            case "cluster/member/add": return try await unary.call(Etcdserverpb_Cluster.Method.MemberAdd.descriptor, cluster.memberAdd)
            case "cluster/member/remove": return try await unary.call(Etcdserverpb_Cluster.Method.MemberRemove.descriptor, cluster.memberRemove)
            case "cluster/member/update": return try await unary.call(Etcdserverpb_Cluster.Method.MemberUpdate.descriptor, cluster.memberUpdate)
            case "cluster/member/list": return try await unary.call(Etcdserverpb_Cluster.Method.MemberList.descriptor, cluster.memberList)
            case "cluster/member/promote": return try await unary.call(Etcdserverpb_Cluster.Method.MemberPromote.descriptor, cluster.memberPromote)
            case "maintenance/alarm": return try await unary.call(Etcdserverpb_Maintenance.Method.Alarm.descriptor, maintenance.alarm)
            case "maintenance/status": return try await unary.call(Etcdserverpb_Maintenance.Method.Status.descriptor, maintenance.status)
            case "maintenance/defragment": return try await unary.call(Etcdserverpb_Maintenance.Method.Defragment.descriptor, maintenance.defragment)
            case "maintenance/hash": return try await unary.call(Etcdserverpb_Maintenance.Method.Hash.descriptor, maintenance.hash)
            case "maintenance/hashkv": return try await unary.call(Etcdserverpb_Maintenance.Method.HashKV.descriptor, maintenance.hashKV)
            case "maintenance/transfer-leadership":
                return try await unary.call(Etcdserverpb_Maintenance.Method.MoveLeader.descriptor, maintenance.moveLeader)
            case "auth/enable": return try await unary.call(Etcdserverpb_Auth.Method.AuthEnable.descriptor, auth.authEnable)
            case "auth/disable": return try await unary.call(Etcdserverpb_Auth.Method.AuthDisable.descriptor, auth.authDisable)
            case "auth/status": return try await unary.call(Etcdserverpb_Auth.Method.AuthStatus.descriptor, auth.authStatus)
            case "auth/authenticate": return try await unary.call(Etcdserverpb_Auth.Method.Authenticate.descriptor, auth.authenticate)
            case "auth/user/add": return try await unary.call(Etcdserverpb_Auth.Method.UserAdd.descriptor, auth.userAdd)
            case "auth/user/get": return try await unary.call(Etcdserverpb_Auth.Method.UserGet.descriptor, auth.userGet)
            case "auth/user/list": return try await unary.call(Etcdserverpb_Auth.Method.UserList.descriptor, auth.userList)
            case "auth/user/delete": return try await unary.call(Etcdserverpb_Auth.Method.UserDelete.descriptor, auth.userDelete)
            case "auth/user/changepw": return try await unary.call(Etcdserverpb_Auth.Method.UserChangePassword.descriptor, auth.userChangePassword)
            case "auth/user/grant": return try await unary.call(Etcdserverpb_Auth.Method.UserGrantRole.descriptor, auth.userGrantRole)
            case "auth/user/revoke": return try await unary.call(Etcdserverpb_Auth.Method.UserRevokeRole.descriptor, auth.userRevokeRole)
            case "auth/role/add": return try await unary.call(Etcdserverpb_Auth.Method.RoleAdd.descriptor, auth.roleAdd)
            case "auth/role/get": return try await unary.call(Etcdserverpb_Auth.Method.RoleGet.descriptor, auth.roleGet)
            case "auth/role/list": return try await unary.call(Etcdserverpb_Auth.Method.RoleList.descriptor, auth.roleList)
            case "auth/role/delete": return try await unary.call(Etcdserverpb_Auth.Method.RoleDelete.descriptor, auth.roleDelete)
            case "auth/role/grant": return try await unary.call(Etcdserverpb_Auth.Method.RoleGrantPermission.descriptor, auth.roleGrantPermission)
            case "auth/role/revoke": return try await unary.call(Etcdserverpb_Auth.Method.RoleRevokePermission.descriptor, auth.roleRevokePermission)
            case "lock/lock": return try await unary.call(V3lockpb_Lock.Method.Lock.descriptor, lock.lock)
            case "lock/unlock": return try await unary.call(V3lockpb_Lock.Method.Unlock.descriptor, lock.unlock)
            case "election/campaign": return try await unary.call(V3electionpb_Election.Method.Campaign.descriptor, election.campaign)
            case "election/proclaim": return try await unary.call(V3electionpb_Election.Method.Proclaim.descriptor, election.proclaim)
            case "election/leader": return try await unary.call(V3electionpb_Election.Method.Leader.descriptor, election.leader)
            case "election/resign": return try await unary.call(V3electionpb_Election.Method.Resign.descriptor, election.resign)
            default:
                return .text(.notFound, "Not Found\n")
            }
        } catch let error as GatewayBodyError {
            return Self.error(code: .invalidArgument, message: error.message)
        } catch {
            let rpc = KVPipeline.status(error)
            return Self.error(code: rpc.code, message: rpc.message)
        }
    }

    struct GatewayBodyError: Error { var message: String }

    /// A unary call of one of the generated services, with the caller's credentials where the
    /// services read them (`AuthCredentials.current`).
    private struct UnaryCall {
        let body: [UInt8]
        let credentials: AuthCredentials
        let cancellation: ServerContext.RPCCancellationHandle
        let messageMax: Int

        func call<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
            _ descriptor: MethodDescriptor, _ method: (Request, ServerContext) async throws -> Response
        ) async throws -> HTTPStatusResponse {
            let request: Request = try EtcdGateway.decode(body, messageMax: messageMax)
            let context = EtcdGateway.serverContext(descriptor, cancellation: cancellation)
            let response = try await AuthCredentials.$current.withValue(credentials) { try await method(request, context) }
            return try EtcdGateway.ok(response)
        }
    }

    // MARK: streams

    /// How a route's request arrives: bidirectional streams read the body as a stream of JSON
    /// objects while answering; server streams read it whole first.
    enum StreamKind: Sendable {
        case bidirectional
        case serverStream
    }

    static func streamKind(_ route: String) -> StreamKind? {
        switch route {
        case "watch", "lease/keepalive": return .bidirectional
        case "maintenance/snapshot", "election/observe": return .serverStream
        default: return nil
        }
    }

    /// Whether the call ends when the client finishes its request body. etcd's watch does not:
    /// it stays open until the client goes away.
    static func endsWithRequestBody(_ route: String) -> Bool { route != "watch" }

    /// A failed stream: its gRPC code and message.
    struct StreamFailure: Error, Sendable {
        var code: RPCErrorCode
        var message: String
        /// The request failed before the call began (a server stream's body, a bidirectional
        /// stream's first object): answered as a unary error, as etcd's gateway does.
        var beforeCall = false
    }

    /// Runs a streaming call. `requests` yields the request objects' JSON (one for a server
    /// stream); `send` writes one chunk (and returns once written, so a slow reader slows the
    /// call down). Returns nil when the call ended normally.
    func stream(route: String, requests: AsyncThrowingStream<[UInt8], any Error>, credentials: AuthCredentials,
                cancellation: ServerContext.RPCCancellationHandle = .init(),
                send: @escaping @Sendable (String) async throws -> Void) async -> StreamFailure? {
        // A bad request object ends the call; the service sees its request stream end, and the
        // client is told why here (not as the service's internal error).
        let requestFailure = RequestFailure()
        let failure = await run(route: route, requests: requests, requestFailure: requestFailure, credentials: credentials,
                                cancellation: cancellation, send: send)
        return requestFailure.value ?? failure
    }

    private final class RequestFailure: Sendable {
        private let stored = Mutex<StreamFailure?>(nil)
        var value: StreamFailure? { stored.withLock { $0 } }
        func record(_ failure: StreamFailure) { stored.withLock { if $0 == nil { $0 = failure } } }
    }

    private func run(route: String, requests source: AsyncThrowingStream<[UInt8], any Error>, requestFailure: RequestFailure,
                     credentials: AuthCredentials, cancellation: ServerContext.RPCCancellationHandle,
                     send: @escaping @Sendable (String) async throws -> Void) async -> StreamFailure? {
        func context(_ descriptor: MethodDescriptor) -> ServerContext { Self.serverContext(descriptor, cancellation: cancellation) }
        do {
            try await AuthCredentials.$current.withValue(credentials) {
                switch route {
                case "watch":
                    try await watch.watch(request: Self.requests(source, requestFailure), response: Self.writer(send),
                                          context: context(Etcdserverpb_Watch.Method.Watch.descriptor))
                case "lease/keepalive":
                    try await lease.leaseKeepAlive(request: Self.requests(source, requestFailure), response: Self.writer(send),
                                                   context: context(Etcdserverpb_Lease.Method.LeaseKeepAlive.descriptor))
                case "maintenance/snapshot":
                    try await maintenance.snapshot(request: try await Self.single(source), response: Self.writer(send),
                                                   context: context(Etcdserverpb_Maintenance.Method.Snapshot.descriptor))
                case "election/observe":
                    try await election.observe(request: try await Self.single(source), response: Self.writer(send),
                                               context: context(V3electionpb_Election.Method.Observe.descriptor))
                default:
                    throw StreamFailure(code: .unimplemented, message: "synod: the gateway does not serve /v3/\(route) yet")
                }
            }
            return nil
        } catch let failure as StreamFailure {
            return failure
        } catch let error as GatewayBodyError {
            return StreamFailure(code: .invalidArgument, message: error.message)
        } catch {
            return Self.failure(error)
        }
    }

    private static func failure(_ error: any Error) -> StreamFailure {
        switch error {
        case let failure as StreamFailure: return failure
        case let error as GatewayBodyError: return StreamFailure(code: .invalidArgument, message: error.message)
        case let error as JSONStreamSplitter.SplitError: return StreamFailure(code: .invalidArgument, message: "synod: \(error)")
        case is CancellationError: return StreamFailure(code: .cancelled, message: "context canceled")
        default:
            let rpc = KVPipeline.status(error)
            return StreamFailure(code: rpc.code, message: rpc.message)
        }
    }

    /// One chunk of a streamed answer.
    static func resultChunk<M: SwiftProtobuf.Message>(_ message: M) throws -> String {
        #"{"result":"# + (try message.jsonString(options: encoding)) + "}\n"
    }

    /// grpc-gateway's error object inside a stream (and the whole body when nothing was sent).
    static func errorChunk(_ failure: StreamFailure) -> String {
        let status = httpStatus(failure.code)
        let escaped = HTTPStatusServer.jsonEscaped(failure.message)
        return #"{"error":{"grpc_code":\#(failure.code.rawValue),"http_code":\#(status.code),"message":"\#(escaped)","http_status":"\#(HTTPStatusServer.jsonEscaped(status.reasonPhrase))"}}"#
            + "\n"
    }

    /// The request objects decoded; the first that does not decode (or a broken body) is
    /// recorded and ends the stream.
    private static func requests<M: SwiftProtobuf.Message>(_ source: AsyncThrowingStream<[UInt8], any Error>,
                                                           _ requestFailure: RequestFailure) -> RPCAsyncSequence<M, any Error> {
        let (messages, continuation) = AsyncThrowingStream<M, any Error>.makeStream()
        let pump = Task {
            var first = true
            do {
                for try await bytes in source {
                    continuation.yield(try decode(bytes) as M)
                    first = false
                }
                continuation.finish()
            } catch is CancellationError {
                continuation.finish(throwing: CancellationError())
            } catch {
                var failure = failure(error)
                if first {
                    // etcd's gateway fails the call itself when the first object does not
                    // decode (code Unknown, 500); later ones only end the request stream.
                    failure.code = .unknown
                    failure.beforeCall = true
                }
                requestFailure.record(failure)
                continuation.finish(throwing: CancellationError())
            }
        }
        continuation.onTermination = { _ in pump.cancel() }
        return RPCAsyncSequence(wrapping: messages)
    }

    private static func single<M: SwiftProtobuf.Message>(_ source: AsyncThrowingStream<[UInt8], any Error>) async throws -> M {
        var iterator = source.makeAsyncIterator()
        guard let bytes = try await iterator.next() else { return M() }
        do {
            return try decode(bytes)
        } catch {
            var failure = failure(error)
            failure.beforeCall = true
            throw failure
        }
    }

    private static func writer<M: SwiftProtobuf.Message>(_ send: @escaping @Sendable (String) async throws -> Void) -> RPCWriter<M> {
        RPCWriter(wrapping: ChunkWriter(send: send))
    }

    private struct ChunkWriter<Element: SwiftProtobuf.Message>: RPCWriterProtocol {
        let send: @Sendable (String) async throws -> Void

        func write(_ element: Element) async throws {
            try await send(try EtcdGateway.resultChunk(element))
        }

        func write(contentsOf elements: some Sequence<Element>) async throws {
            for element in elements { try await write(element) }
        }
    }

    static func serverContext(_ descriptor: MethodDescriptor,
                              cancellation: ServerContext.RPCCancellationHandle = .init()) -> ServerContext {
        ServerContext(descriptor: descriptor, remotePeer: "gateway", localPeer: "gateway", cancellation: cancellation)
    }

    func decode<M: SwiftProtobuf.Message>(_ body: [UInt8]) throws -> M {
        try Self.decode(body, messageMax: messageMax)
    }

    static func decode<M: SwiftProtobuf.Message>(_ body: [UInt8], messageMax: Int = .max) throws -> M {
        let text = body.drop { $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }
        if text.isEmpty { return M() }
        let message: M
        do {
            do {
                message = try M(jsonUTF8Bytes: Array(text), options: strictDecoding)
            } catch JSONDecodingError.unknownField {
                message = try M(jsonUTF8Bytes: Array(text), options: decoding)
            }
        } catch {
            throw GatewayBodyError(message: "synod: the request body is not a \(M.protoMessageName) in JSON: \(error)")
        }
        // The binary form is smaller than its JSON: only a large body can be over the limit.
        if body.count > messageMax / 2 {
            let binary: [UInt8] = (try? message.serializedBytes()) ?? []
            if binary.count > messageMax {
                throw RPCError(code: .resourceExhausted, message: "grpc: received message larger than max (\(binary.count) vs. \(messageMax))")
            }
        }
        return message
    }

    static func ok<M: SwiftProtobuf.Message>(_ message: M) throws -> HTTPStatusResponse {
        .json(.ok, try message.jsonString(options: encoding))
    }

    /// grpc-gateway's error body and the HTTP status it maps the gRPC code to (the v1 table
    /// etcd 3.4 uses).
    static func error(code: RPCErrorCode, message: String) -> HTTPStatusResponse {
        let escaped = HTTPStatusServer.jsonEscaped(message)
        return .json(httpStatus(code), #"{"error":"\#(escaped)","message":"\#(escaped)","code":\#(code.rawValue)}"#)
    }

    typealias RPCErrorCode = RPCError.Code

    static func httpStatus(_ code: RPCErrorCode) -> HTTPResponseStatus {
        switch code {
        case .cancelled: return .requestTimeout
        case .unknown, .internalError, .dataLoss: return .internalServerError
        case .invalidArgument, .outOfRange: return .badRequest
        case .deadlineExceeded: return .gatewayTimeout
        case .notFound: return .notFound
        case .alreadyExists, .aborted: return .conflict
        case .permissionDenied: return .forbidden
        case .unauthenticated: return .unauthorized
        case .resourceExhausted: return .tooManyRequests
        case .failedPrecondition: return .preconditionFailed
        case .unimplemented: return .notImplemented
        case .unavailable: return .serviceUnavailable
        default: return .internalServerError
        }
    }
}
