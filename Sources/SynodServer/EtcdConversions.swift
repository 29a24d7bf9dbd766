import Foundation
import GRPCCore
import SynodCore
import SynodEtcdAPI
import SynodKV

/// Conversions between the etcd v3 wire messages and SynodKV's requests and results.
/// Unknown enum values from the wire become a clear InvalidArgument error, never a trap.
enum EtcdConversions {
    static func invalid(_ message: String) -> RPCError {
        RPCError(code: .invalidArgument, message: message)
    }

    // MARK: Requests

    static func range(_ r: Etcdserverpb_RangeRequest) throws -> RangeRequest {
        let order: RangeRequest.SortOrder
        switch r.sortOrder {
        case .none: order = .none
        case .ascend: order = .ascend
        case .descend: order = .descend
        case .UNRECOGNIZED(let value): throw invalid("etcdserver: invalid sort order \(value)")
        }
        let target: RangeRequest.SortTarget
        switch r.sortTarget {
        case .key: target = .key
        case .version: target = .version
        case .create: target = .create
        case .mod: target = .mod
        case .value: target = .value
        case .UNRECOGNIZED(let value): throw invalid("etcdserver: invalid sort target \(value)")
        }
        return RangeRequest(key: [UInt8](r.key), rangeEnd: [UInt8](r.rangeEnd), limit: r.limit, revision: r.revision,
                            sortOrder: order, sortTarget: target, keysOnly: r.keysOnly, countOnly: r.countOnly,
                            minModRevision: r.minModRevision, maxModRevision: r.maxModRevision,
                            minCreateRevision: r.minCreateRevision, maxCreateRevision: r.maxCreateRevision)
    }

    static func put(_ r: Etcdserverpb_PutRequest) -> PutRequest {
        PutRequest(key: [UInt8](r.key), value: [UInt8](r.value), lease: r.lease, prevKv: r.prevKv,
                   ignoreValue: r.ignoreValue, ignoreLease: r.ignoreLease)
    }

    static func deleteRange(_ r: Etcdserverpb_DeleteRangeRequest) -> DeleteRangeRequest {
        DeleteRangeRequest(key: [UInt8](r.key), rangeEnd: [UInt8](r.rangeEnd), prevKv: r.prevKv)
    }

    static func compare(_ c: Etcdserverpb_Compare) throws -> Compare {
        let result: Compare.Result
        switch c.result {
        case .equal: result = .equal
        case .greater: result = .greater
        case .less: result = .less
        case .notEqual: result = .notEqual
        case .UNRECOGNIZED(let value): throw invalid("etcdserver: invalid compare result \(value)")
        }
        let target: Compare.Target
        switch c.target {
        case .version: target = .version(c.version)
        case .create: target = .createRevision(c.createRevision)
        case .mod: target = .modRevision(c.modRevision)
        case .value: target = .value([UInt8](c.value))
        case .lease: target = .lease(c.lease)
        case .UNRECOGNIZED(let value): throw invalid("etcdserver: invalid compare target \(value)")
        }
        return Compare(key: [UInt8](c.key), rangeEnd: [UInt8](c.rangeEnd), result: result, target: target)
    }

    static func requestOp(_ op: Etcdserverpb_RequestOp, depth: Int) throws -> RequestOp {
        switch op.request {
        case .requestRange(let r): return .range(try range(r))
        case .requestPut(let r): return .put(put(r))
        case .requestDeleteRange(let r): return .deleteRange(deleteRange(r))
        case .requestTxn(let r): return .txn(try txn(r, depth: depth + 1))
        case nil: throw invalid("etcdserver: empty request in txn")
        }
    }

    static func txn(_ r: Etcdserverpb_TxnRequest, depth: Int = 0) throws -> TxnRequest {
        guard depth < 16 else { throw invalid("etcdserver: txn nested too deeply") }
        return TxnRequest(compare: try r.compare.map(compare),
                          success: try r.success.map { try requestOp($0, depth: depth) },
                          failure: try r.failure.map { try requestOp($0, depth: depth) })
    }

    /// True when a txn only reads (it can be served without a write, like etcd's read-only txn).
    static func isReadOnly(_ txn: TxnRequest) -> Bool {
        func readOnly(_ op: RequestOp) -> Bool {
            switch op {
            case .range: return true
            case .put, .deleteRange: return false
            case .txn(let nested): return isReadOnly(nested)
            }
        }
        return txn.success.allSatisfy(readOnly) && txn.failure.allSatisfy(readOnly)
    }

    // MARK: Results

    static func keyValue(_ kv: KeyValue) -> Mvccpb_KeyValue {
        var out = Mvccpb_KeyValue()
        out.key = Data(kv.key)
        out.createRevision = kv.createRevision
        out.modRevision = kv.modRevision
        out.version = kv.version
        out.value = Data(kv.value)
        out.lease = kv.lease
        return out
    }

    static func rangeResponse(_ r: RangeResponse, header: Etcdserverpb_ResponseHeader) -> Etcdserverpb_RangeResponse {
        var out = Etcdserverpb_RangeResponse()
        out.header = header
        out.header.revision = r.revision
        out.kvs = r.kvs.map(keyValue)
        out.more = r.more
        out.count = r.count
        return out
    }

    static func putResponse(_ r: PutResponse, header: Etcdserverpb_ResponseHeader) -> Etcdserverpb_PutResponse {
        var out = Etcdserverpb_PutResponse()
        out.header = header
        out.header.revision = r.revision
        if let prev = r.prevKv { out.prevKv = keyValue(prev) }
        return out
    }

    static func deleteResponse(_ r: DeleteRangeResponse, header: Etcdserverpb_ResponseHeader) -> Etcdserverpb_DeleteRangeResponse {
        var out = Etcdserverpb_DeleteRangeResponse()
        out.header = header
        out.header.revision = r.revision
        out.deleted = r.deleted
        out.prevKvs = r.prevKvs.map(keyValue)
        return out
    }

    /// A txn's answer. As etcd's: the responses inside carry a header with only their
    /// revision, and a nested txn's own header is empty.
    static func txnResponse(_ r: TxnResponse, header: Etcdserverpb_ResponseHeader) -> Etcdserverpb_TxnResponse {
        var out = Etcdserverpb_TxnResponse()
        out.header = header
        out.header.revision = r.revision
        out.succeeded = r.succeeded
        out.responses = r.responses.map(responseOp)
        return out
    }

    private static func responseOp(_ op: ResponseOp) -> Etcdserverpb_ResponseOp {
        let bare = Etcdserverpb_ResponseHeader()
        var response = Etcdserverpb_ResponseOp()
        switch op {
        case .range(let inner): response.response = .responseRange(rangeResponse(inner, header: bare))
        case .put(let inner): response.response = .responsePut(putResponse(inner, header: bare))
        case .deleteRange(let inner): response.response = .responseDeleteRange(deleteResponse(inner, header: bare))
        case .txn(let inner):
            var nested = Etcdserverpb_TxnResponse()
            nested.header = bare
            nested.succeeded = inner.succeeded
            nested.responses = inner.responses.map(responseOp)
            response.response = .responseTxn(nested)
        }
        return response
    }

    static func event(_ e: WatchEvent) -> Mvccpb_Event {
        var out = Mvccpb_Event()
        out.type = e.kind == .put ? .put : .delete
        out.kv = keyValue(e.kv)
        if let prev = e.prevKv { out.prevKv = keyValue(prev) }
        return out
    }

    // MARK: Errors

    /// The gRPC status etcd returns for `error`, with etcd's message so clients recognize it.
    static func rpcError(_ error: any Error) -> RPCError {
        if let rpc = error as? RPCError { return rpc }
        if let node = error as? NodeError {
            switch node {
            case .noLeader, .timedOut, .stopped, .notSupportedForLearner, .joining, .removed, .transferTimedOut, .leaderChanged:
                return RPCError(code: .unavailable, message: node.description)
            case .tooManyRequests: return RPCError(code: .resourceExhausted, message: node.description)
            case .requestTooLarge: return RPCError(code: .invalidArgument, message: node.description)
            case .kv(let kv): return rpcError(kv)
            }
        }
        if let reconfiguration = error as? ReconfigurationError { return rpcError(reconfiguration) }
        if let kv = error as? KVError {
            let code = RPCError.Code(Status.Code(rawValue: kv.grpcStatusCode) ?? .unknown) ?? .unknown
            return RPCError(code: code, message: kv.message)
        }
        return RPCError(code: .internalError, message: "synod: \(error)")
    }

    /// etcd's gRPC status for a refused membership change or leader transfer.
    static func rpcError(_ error: ReconfigurationError) -> RPCError {
        switch error {
        case .notLeader: return RPCError(code: .failedPrecondition, message: "etcdserver: not leader")
        case .memberNotFound: return RPCError(code: .notFound, message: "etcdserver: member not found")
        case .peerURLExists: return RPCError(code: .failedPrecondition, message: "etcdserver: Peer URLs already exists")
        case .notLearner: return RPCError(code: .failedPrecondition, message: "etcdserver: can only promote a learner member")
        case .learnerNotReady:
            return RPCError(code: .failedPrecondition,
                            message: "etcdserver: can only promote a learner member which is in sync with leader")
        case .tooManyLearners: return RPCError(code: .failedPrecondition, message: "etcdserver: too many learner members in cluster")
        // etcd refuses removing the last voter as it refuses any change leaving no quorum.
        case .unhealthy, .lastVoter: return RPCError(code: .unavailable, message: "etcdserver: unhealthy cluster")
        case .nonMajorityQuorums:
            return RPCError(code: .failedPrecondition, message: "etcdserver: \(error.description)")
        case .busy: return RPCError(code: .resourceExhausted, message: "etcdserver: too many requests")
        case .transferFailed(let reason) where reason.contains("not a voting member"):
            return RPCError(code: .failedPrecondition, message: "etcdserver: bad leader transferee")
        case .transferFailed: return RPCError(code: .unavailable, message: NodeError.transferTimedOut.description)
        case .leaderChanged: return RPCError(code: .unavailable, message: "etcdserver: leader changed")
        }
    }
}
