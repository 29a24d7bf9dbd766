import GRPCCore
import NIOCore
import SwiftProtobuf
import SynodCore
import SynodEtcdAPI
import SynodKV

/// The one path of etcd's KV calls, whoever carries the bytes: the frame-level gRPC server
/// answering from event-loop callbacks (`FrameGRPCHandler`) and grpc-swift's async services
/// (`KVService`, used when the fast path is off) both call these functions. Each call
/// converts the etcd request into a `KVCommand` or a read, hands it to the node (whose driver
/// admits it: a learner, a joining or a removed member refuses, see `LocalRole.refusal`),
/// builds etcd's response with its header, maps every failure to the gRPC status etcd would
/// return, and counts the outcome in `synod_grpc_requests_total`.
public struct KVPipeline: Sendable {
    enum Method: String, Sendable, CaseIterable {
        case range = "Range", put = "Put", deleteRange = "DeleteRange", txn = "Txn", compact = "Compact"

        /// The method a gRPC path names, if it is one of these.
        init?(path: String) {
            let prefix = "/etcdserverpb.KV/"
            guard path.hasPrefix(prefix), let method = Method(rawValue: String(path.dropFirst(prefix.count))) else { return nil }
            self = method
        }
    }

    let context: ServiceContext

    // MARK: The calls

    func range(_ request: Etcdserverpb_RangeRequest, credentials: AuthCredentials) -> EventLoopFuture<Etcdserverpb_RangeResponse> {
        rangeAnswer(request, credentials: credentials).map { EtcdConversions.rangeResponse($0.response, header: $0.header) }
    }

    /// The store's answer to a range and the header to send with it, as the node's loop left
    /// them: the values are the store's own (shared, not copied), and whoever sends them
    /// encodes them on its own loop (`RangeResponseEncoder` on the frame path).
    struct RangeAnswer: Sendable {
        var response: RangeResponse
        var header: Etcdserverpb_ResponseHeader
    }

    func rangeAnswer(_ request: Etcdserverpb_RangeRequest, credentials: AuthCredentials) -> EventLoopFuture<RangeAnswer> {
        run(.range) {
            let range = try EtcdConversions.range(request)
            let consistency: ReadConsistency = request.serializable ? .serializable : .linearizable
            let ctx = context
            return context.node.readFuture(consistency) { state in
                // Checked against the auth state the read is served from.
                if let caller = try state.kv.auth.caller(credentials),
                   let error = state.kv.auth.checkRange(user: caller.user, authRevision: caller.authRevision, range) {
                    throw error
                }
                let response = try state.kv.store.range(range)
                return RangeAnswer(response: response, header: ctx.header(revision: state.kv.store.revision))
            }
        }
    }

    func put(_ request: Etcdserverpb_PutRequest, requestID: UInt64?, credentials: AuthCredentials) -> EventLoopFuture<Etcdserverpb_PutResponse> {
        run(.put) {
            let ctx = context
            return context.node.writeFuture(.put(EtcdConversions.put(request)), requestID: requestID, credentials: credentials).flatMapThrowing { response in
                guard case .put(let put) = response else { throw Self.unexpected("put") }
                return EtcdConversions.putResponse(put, header: ctx.header(revision: put.revision))
            }
        }
    }

    func deleteRange(_ request: Etcdserverpb_DeleteRangeRequest, requestID: UInt64?, credentials: AuthCredentials)
        -> EventLoopFuture<Etcdserverpb_DeleteRangeResponse> {
        run(.deleteRange) {
            let ctx = context
            return context.node.writeFuture(.deleteRange(EtcdConversions.deleteRange(request)), requestID: requestID,
                                            credentials: credentials)
                .flatMapThrowing { response in
                    guard case .deleteRange(let delete) = response else { throw Self.unexpected("delete") }
                    return EtcdConversions.deleteResponse(delete, header: ctx.header(revision: delete.revision))
                }
        }
    }

    func txn(_ request: Etcdserverpb_TxnRequest, requestID: UInt64?, credentials: AuthCredentials) -> EventLoopFuture<Etcdserverpb_TxnResponse> {
        run(.txn) {
            let txn = try EtcdConversions.txn(request)
            let ctx = context
            if EtcdConversions.isReadOnly(txn) {
                // A read-only txn is a linearizable read: no log entry needed.
                return context.node.readFuture(.linearizable) { state in
                    if let caller = try state.kv.auth.caller(credentials),
                       let error = state.kv.checkTxn(user: caller.user, authRevision: caller.authRevision, txn) {
                        throw error
                    }
                    var store = state.kv.store
                    let (response, _) = try store.txn(txn)
                    return EtcdConversions.txnResponse(response, header: ctx.header(revision: response.revision))
                }
            }
            return context.node.writeFuture(.txn(txn), requestID: requestID, credentials: credentials).flatMapThrowing { response in
                guard case .txn(let result) = response else { throw Self.unexpected("txn") }
                return EtcdConversions.txnResponse(result, header: ctx.header(revision: result.revision))
            }
        }
    }

    func compact(_ request: Etcdserverpb_CompactionRequest, credentials: AuthCredentials) -> EventLoopFuture<Etcdserverpb_CompactionResponse> {
        run(.compact) {
            let ctx = context
            return context.node.writeFuture(.compact(revision: request.revision), credentials: credentials).map { response in
                var out = Etcdserverpb_CompactionResponse()
                out.header = ctx.header(revision: response.revision)
                return out
            }
        }
    }

    /// A fast-path call's answer: its response gRPC-framed (the 5-byte prefix and the message)
    /// in one buffer, or, for a range answer of `RangeResponseEncoder.streamedBytesMin` or more,
    /// the pieces to write one after another as the earlier ones leave.
    enum UnaryAnswer: Sendable {
        case framed(ByteBuffer)
        case pieces(RangeResponseEncoder.Pieces)
    }

    /// Decodes a request message, runs the call and encodes its response on `loop` (the
    /// connection's, not the node's): the frame-level server's entry. A message that does not
    /// decode is an error like any other.
    func call(_ method: Method, message: [UInt8], requestID: UInt64?, credentials: AuthCredentials,
              on loop: any EventLoop) -> EventLoopFuture<UnaryAnswer> {
        let allocator = ByteBufferAllocator()
        func encoded<M: SwiftProtobuf.Message>(_ future: EventLoopFuture<M>) -> EventLoopFuture<UnaryAnswer> {
            future.hop(to: loop).flatMapThrowing { .framed(FrameGRPCHandler.framed(try $0.serializedBytes(), allocator: allocator)) }
        }
        do {
            switch method {
            case .range:
                return rangeAnswer(try Etcdserverpb_RangeRequest(serializedBytes: message), credentials: credentials).hop(to: loop).flatMapThrowing {
                    var pieces = try RangeResponseEncoder.Pieces($0.response, header: $0.header)
                    if pieces.size >= RangeResponseEncoder.streamedBytesMin { return .pieces(pieces) }
                    return .framed(pieces.rest(allocator: allocator))
                }
            case .put:
                return encoded(put(try Etcdserverpb_PutRequest(serializedBytes: message), requestID: requestID, credentials: credentials))
            case .deleteRange:
                return encoded(deleteRange(try Etcdserverpb_DeleteRangeRequest(serializedBytes: message), requestID: requestID,
                                           credentials: credentials))
            case .txn:
                return encoded(txn(try Etcdserverpb_TxnRequest(serializedBytes: message), requestID: requestID, credentials: credentials))
            case .compact: return encoded(compact(try Etcdserverpb_CompactionRequest(serializedBytes: message), credentials: credentials))
            }
        } catch {
            return failed(method, error)
        }
    }

    // MARK: Errors and metrics

    /// Runs `body`, counting its outcome under `method`; failures become etcd's gRPC status.
    private func run<T: Sendable>(_ method: Method, _ body: () throws -> EventLoopFuture<T>) -> EventLoopFuture<T> {
        let future: EventLoopFuture<T>
        do {
            future = try body()
        } catch {
            return failed(method, error)
        }
        let metrics = context.metrics
        let started = LiveClientStats.isWrite(method: method.rawValue) == nil ? nil : metrics.live.start()
        return future.flatMapErrorThrowing { error in
            throw Self.status(error)
        }.always { result in
            if let started { metrics.live.finish(write: method != .range, start: started) }
            switch result {
            case .success: metrics.grpcRequests(method: method.rawValue, code: "OK").increment()
            case .failure(let error): metrics.grpcRequests(method: method.rawValue, code: "\(Self.status(error).code)").increment()
            }
        }
    }

    private func failed<T>(_ method: Method, _ error: any Error) -> EventLoopFuture<T> {
        let status = Self.status(error)
        context.metrics.grpcRequests(method: method.rawValue, code: "\(status.code)").increment()
        return context.node.loop.makeFailedFuture(status)
    }

    /// etcd's gRPC status for `error`; a request that does not decode is an internal error,
    /// as grpc-swift reports a message its deserializer refuses.
    static func status(_ error: any Error) -> RPCError {
        if let rpc = error as? RPCError { return rpc }
        if error is SwiftProtobufError || error is BinaryDecodingError {
            return RPCError(code: .internalError, message: "synod: cannot decode the request: \(error)")
        }
        return EtcdConversions.rpcError(error)
    }

    private static func unexpected(_ what: String) -> RPCError {
        RPCError(code: .internalError, message: "synod: unexpected response to \(what)")
    }
}
