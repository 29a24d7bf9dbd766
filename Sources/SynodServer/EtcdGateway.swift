import GRPCCore
import NIOCore
import NIOHTTP1
import SwiftProtobuf
import SynodEtcdAPI

/// etcd's gRPC-JSON gateway on the client port (HTTP/1.1 `POST /v3/...` with a JSON body), for
/// clients that do not speak gRPC. The JSON is etcd's: proto field names (`mod_revision`),
/// bytes as base64, 64-bit integers as strings, enums by name, zero values omitted; input may
/// also use camelCase and numbers. `/v3beta/` and `/v3alpha/` are accepted as `/v3/`.
///
/// Served: the KV calls (through `KVPipeline`, like the gRPC ones), and every unary call of
/// Lease, Cluster, Maintenance and Auth (through the same service code as gRPC), with the
/// caller's token from `Authorization`. Not yet: the streams (watch, lease keep-alive,
/// snapshot) and Lock/Election, which answer 501 with etcd's error body.
struct EtcdGateway: Sendable {
    let pipeline: KVPipeline
    let lease: LeaseService
    let cluster: ClusterService
    let maintenance: MaintenanceService
    let auth: AuthService

    init(context: ServiceContext) {
        pipeline = KVPipeline(context: context)
        lease = LeaseService(context: context)
        cluster = ClusterService(context: context)
        maintenance = MaintenanceService(context: context)
        auth = AuthService(context: context)
    }

    static let encoding: JSONEncodingOptions = {
        var options = JSONEncodingOptions()
        options.preserveProtoFieldNames = true
        return options
    }()

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

    func handle(route: String, body: [UInt8], credentials: AuthCredentials) async -> HTTPStatusResponse {
        do {
            switch route {
            case "kv/range":
                return try Self.ok(try await pipeline.range(try Self.decode(body), credentials: credentials).get())
            case "kv/put":
                return try Self.ok(try await pipeline.put(try Self.decode(body), requestID: nil, credentials: credentials).get())
            case "kv/deleterange":
                return try Self.ok(try await pipeline.deleteRange(try Self.decode(body), requestID: nil, credentials: credentials).get())
            case "kv/txn":
                return try Self.ok(try await pipeline.txn(try Self.decode(body), requestID: nil, credentials: credentials).get())
            case "kv/compaction":
                return try Self.ok(try await pipeline.compact(try Self.decode(body), credentials: credentials).get())
            case "lease/grant": return try await unary(body, credentials, "Lease", "LeaseGrant", lease.leaseGrant)
            case "lease/revoke", "kv/lease/revoke": return try await unary(body, credentials, "Lease", "LeaseRevoke", lease.leaseRevoke)
            case "lease/timetolive", "kv/lease/timetolive":
                return try await unary(body, credentials, "Lease", "LeaseTimeToLive", lease.leaseTimeToLive)
            case "lease/leases", "kv/lease/leases": return try await unary(body, credentials, "Lease", "LeaseLeases", lease.leaseLeases)
            case "cluster/member/add": return try await unary(body, credentials, "Cluster", "MemberAdd", cluster.memberAdd)
            case "cluster/member/remove": return try await unary(body, credentials, "Cluster", "MemberRemove", cluster.memberRemove)
            case "cluster/member/update": return try await unary(body, credentials, "Cluster", "MemberUpdate", cluster.memberUpdate)
            case "cluster/member/list": return try await unary(body, credentials, "Cluster", "MemberList", cluster.memberList)
            case "cluster/member/promote": return try await unary(body, credentials, "Cluster", "MemberPromote", cluster.memberPromote)
            case "maintenance/alarm": return try await unary(body, credentials, "Maintenance", "Alarm", maintenance.alarm)
            case "maintenance/status": return try await unary(body, credentials, "Maintenance", "Status", maintenance.status)
            case "maintenance/defragment": return try await unary(body, credentials, "Maintenance", "Defragment", maintenance.defragment)
            case "maintenance/hash": return try await unary(body, credentials, "Maintenance", "Hash", maintenance.hash)
            case "maintenance/hashkv": return try await unary(body, credentials, "Maintenance", "HashKV", maintenance.hashKV)
            case "maintenance/transfer-leadership":
                return try await unary(body, credentials, "Maintenance", "MoveLeader", maintenance.moveLeader)
            case "auth/enable": return try await unary(body, credentials, "Auth", "AuthEnable", auth.authEnable)
            case "auth/disable": return try await unary(body, credentials, "Auth", "AuthDisable", auth.authDisable)
            case "auth/status": return try await unary(body, credentials, "Auth", "AuthStatus", auth.authStatus)
            case "auth/authenticate": return try await unary(body, credentials, "Auth", "Authenticate", auth.authenticate)
            case "auth/user/add": return try await unary(body, credentials, "Auth", "UserAdd", auth.userAdd)
            case "auth/user/get": return try await unary(body, credentials, "Auth", "UserGet", auth.userGet)
            case "auth/user/list": return try await unary(body, credentials, "Auth", "UserList", auth.userList)
            case "auth/user/delete": return try await unary(body, credentials, "Auth", "UserDelete", auth.userDelete)
            case "auth/user/changepw": return try await unary(body, credentials, "Auth", "UserChangePassword", auth.userChangePassword)
            case "auth/user/grant": return try await unary(body, credentials, "Auth", "UserGrantRole", auth.userGrantRole)
            case "auth/user/revoke": return try await unary(body, credentials, "Auth", "UserRevokeRole", auth.userRevokeRole)
            case "auth/role/add": return try await unary(body, credentials, "Auth", "RoleAdd", auth.roleAdd)
            case "auth/role/get": return try await unary(body, credentials, "Auth", "RoleGet", auth.roleGet)
            case "auth/role/list": return try await unary(body, credentials, "Auth", "RoleList", auth.roleList)
            case "auth/role/delete": return try await unary(body, credentials, "Auth", "RoleDelete", auth.roleDelete)
            case "auth/role/grant": return try await unary(body, credentials, "Auth", "RoleGrantPermission", auth.roleGrantPermission)
            case "auth/role/revoke": return try await unary(body, credentials, "Auth", "RoleRevokePermission", auth.roleRevokePermission)
            default:
                guard Self.etcdRoutes.contains(route) else { return .text(.notFound, "Not Found\n") }
                return Self.error(code: .unimplemented, message: "synod: the gateway does not serve /v3/\(route) yet")
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
    private func unary<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ body: [UInt8], _ credentials: AuthCredentials, _ service: String, _ method: String,
        _ call: (Request, ServerContext) async throws -> Response
    ) async throws -> HTTPStatusResponse {
        let request: Request = try Self.decode(body)
        let context = ServerContext(descriptor: MethodDescriptor(fullyQualifiedService: "etcdserverpb.\(service)", method: method),
                                    remotePeer: "gateway", localPeer: "gateway", cancellation: ServerContext.RPCCancellationHandle())
        let response = try await AuthCredentials.$current.withValue(credentials) { try await call(request, context) }
        return try Self.ok(response)
    }

    /// etcd's gateway paths not served yet (answered 501; any other path is 404).
    static let etcdRoutes: Set<String> = [
        "watch", "lease/keepalive", "maintenance/snapshot",
        "lock/lock", "lock/unlock", "election/campaign", "election/proclaim", "election/leader", "election/observe", "election/resign",
    ]

    static func decode<M: SwiftProtobuf.Message>(_ body: [UInt8]) throws -> M {
        let text = body.drop { $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }
        if text.isEmpty { return M() }
        do {
            return try M(jsonUTF8Bytes: Array(text), options: decoding)
        } catch {
            throw GatewayBodyError(message: "synod: the request body is not a \(M.protoMessageName) in JSON: \(error)")
        }
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
