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
/// Served so far: the KV calls (`kv/range`, `kv/put`, `kv/deleterange`, `kv/txn`,
/// `kv/compaction`), through `KVPipeline` like the gRPC ones, with the caller's token from
/// `Authorization`. Other `/v3/` paths answer 501 with etcd's error body.
struct EtcdGateway: Sendable {
    let pipeline: KVPipeline

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

    /// etcd's other gateway paths (answered 501 until served; any other path is 404).
    static let etcdRoutes: Set<String> = [
        "watch", "lease/grant", "lease/revoke", "lease/keepalive", "lease/timetolive", "lease/leases",
        "kv/lease/revoke", "kv/lease/timetolive", "kv/lease/leases",
        "cluster/member/add", "cluster/member/remove", "cluster/member/update", "cluster/member/list", "cluster/member/promote",
        "maintenance/alarm", "maintenance/status", "maintenance/defragment", "maintenance/hash", "maintenance/hashkv",
        "maintenance/snapshot", "maintenance/transfer-leadership",
        "auth/enable", "auth/disable", "auth/status", "auth/authenticate", "auth/user/add", "auth/user/get", "auth/user/list",
        "auth/user/delete", "auth/user/changepw", "auth/user/grant", "auth/user/revoke", "auth/role/add", "auth/role/get",
        "auth/role/list", "auth/role/delete", "auth/role/grant", "auth/role/revoke",
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
