import GRPCCore
import NIOCore
import SwiftProtobuf
import SynodCore
import SynodEtcdAPI
import SynodKV

/// The hot unary KV calls answered from event-loop callbacks (see `FrameGRPCServerTransport`).
/// Same semantics, errors and metrics as `KVService`, which still serves these methods when the
/// fast path is off (`GRPCServer` over grpc-swift's transport).
public final class FrameGRPCFastPath: Sendable {
    enum Method: Sendable {
        case range, put, deleteRange, txn
    }

    let context: ServiceContext

    init(context: ServiceContext) {
        self.context = context
    }

    func method(forPath path: String) -> Method? {
        switch path {
        case "/etcdserverpb.KV/Range": return .range
        case "/etcdserverpb.KV/Put": return .put
        case "/etcdserverpb.KV/DeleteRange": return .deleteRange
        case "/etcdserverpb.KV/Txn": return .txn
        default: return nil
        }
    }

    /// Decodes `request`, runs it, and encodes the response; failures are etcd's errors.
    func call(_ method: Method, request: [UInt8], requestID: UInt64?) -> EventLoopFuture<[UInt8]> {
        let node = context.node
        let name = methodName(method)
        let future: EventLoopFuture<[UInt8]>
        do {
            switch method {
            case .range:
                let message = try Etcdserverpb_RangeRequest(serializedBytes: request)
                let range = try EtcdConversions.range(message)
                let consistency: ReadConsistency = message.serializable ? .serializable : .linearizable
                let ctx = context
                future = node.readFuture(consistency) { state in
                    let response = try state.kv.store.range(range)
                    return try EtcdConversions.rangeResponse(response, header: ctx.header(revision: state.kv.store.revision))
                        .serializedBytes()
                }
            case .put:
                let message = try Etcdserverpb_PutRequest(serializedBytes: request)
                let ctx = context
                future = node.writeFuture(.put(EtcdConversions.put(message)), requestID: requestID).flatMapThrowing { response in
                    guard case .put(let put) = response else {
                        throw RPCError(code: .internalError, message: "synod: unexpected response to put")
                    }
                    return try EtcdConversions.putResponse(put, header: ctx.header(revision: put.revision)).serializedBytes()
                }
            case .deleteRange:
                let message = try Etcdserverpb_DeleteRangeRequest(serializedBytes: request)
                let ctx = context
                future = node.writeFuture(.deleteRange(EtcdConversions.deleteRange(message)), requestID: requestID)
                    .flatMapThrowing { response in
                        guard case .deleteRange(let delete) = response else {
                            throw RPCError(code: .internalError, message: "synod: unexpected response to delete")
                        }
                        return try EtcdConversions.deleteResponse(delete, header: ctx.header(revision: delete.revision))
                            .serializedBytes()
                    }
            case .txn:
                let message = try Etcdserverpb_TxnRequest(serializedBytes: request)
                let txn = try EtcdConversions.txn(message)
                let ctx = context
                if EtcdConversions.isReadOnly(txn) {
                    // A read-only txn is a linearizable read: no log entry needed.
                    future = node.readFuture(.linearizable) { state in
                        var store = state.kv.store
                        let (response, _) = try store.txn(txn)
                        return try EtcdConversions.txnResponse(response, header: ctx.header(revision: response.revision))
                            .serializedBytes()
                    }
                } else {
                    future = node.writeFuture(.txn(txn), requestID: requestID).flatMapThrowing { response in
                        guard case .txn(let result) = response else {
                            throw RPCError(code: .internalError, message: "synod: unexpected response to txn")
                        }
                        return try EtcdConversions.txnResponse(result, header: ctx.header(revision: result.revision))
                            .serializedBytes()
                    }
                }
            }
        } catch {
            let rpc = (error as? RPCError) ?? (error is SwiftProtobufError || error is BinaryDecodingError
                ? RPCError(code: .internalError, message: "synod: cannot decode the request: \(error)")
                : EtcdConversions.rpcError(error))
            context.metrics.grpcRequests(method: name, code: "\(rpc.code)").increment()
            return node.loop.makeFailedFuture(rpc)
        }
        let metrics = context.metrics
        future.whenComplete { result in
            switch result {
            case .success: metrics.grpcRequests(method: name, code: "OK").increment()
            case .failure(let error): metrics.grpcRequests(method: name, code: "\(EtcdConversions.rpcError(error).code)").increment()
            }
        }
        return future
    }

    private func methodName(_ method: Method) -> String {
        switch method {
        case .range: return "Range"
        case .put: return "Put"
        case .deleteRange: return "DeleteRange"
        case .txn: return "Txn"
        }
    }
}
