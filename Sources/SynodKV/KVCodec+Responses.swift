import SynodBytes

extension LittleEndianWriter {
    mutating func rangeResponse(_ r: RangeResponse) {
        writeInt64(r.revision)
        writeCount(r.kvs.count)
        for kv in r.kvs { keyValue(kv) }
        writeBool(r.more)
        writeInt64(r.count)
    }

    mutating func responseOps(_ ops: [ResponseOp]) {
        writeCount(ops.count)
        for op in ops {
            switch op {
            case .range(let r): writeUInt8(0); rangeResponse(r)
            case .put(let r): writeUInt8(1); writeInt64(r.revision); optionalKeyValue(r.prevKv)
            case .deleteRange(let r):
                writeUInt8(2); writeInt64(r.revision); writeInt64(r.deleted); writeCount(r.prevKvs.count)
                for kv in r.prevKvs { keyValue(kv) }
            case .txn(let r): writeUInt8(3); txnResponse(r)
            }
        }
    }

    mutating func txnResponse(_ r: TxnResponse) {
        writeInt64(r.revision)
        writeBool(r.succeeded)
        responseOps(r.responses)
    }

    /// Layout: tag 0 = success + response tag + body, 1 = failure + error tag.
    mutating func result(_ result: Result<KVResponse, KVError>) {
        switch result {
        case .success(let response):
            writeUInt8(0)
            switch response {
            case .put(let r): writeUInt8(0); writeInt64(r.revision); optionalKeyValue(r.prevKv)
            case .deleteRange(let r): writeUInt8(1); responseOps([.deleteRange(r)])
            case .txn(let r): writeUInt8(2); txnResponse(r)
            case .compact(let revision): writeUInt8(3); writeInt64(revision)
            case .leaseGrant(let id, let ttl, let revision): writeUInt8(4); writeInt64(id); writeInt64(ttl); writeInt64(revision)
            case .leaseRevoke(let revision): writeUInt8(5); writeInt64(revision)
            case .leaseKeepAlive(let id, let ttl, let revision): writeUInt8(6); writeInt64(id); writeInt64(ttl); writeInt64(revision)
            case .publishMember(let revision): writeUInt8(7); writeInt64(revision)
            case .maintenance(let revision): writeUInt8(8); writeInt64(revision)
            case .auth(let revision): writeUInt8(9); writeInt64(revision)
            }
        case .failure(let error):
            writeUInt8(1)
            writeUInt8(error.tag)
        }
    }
}

extension KVError {
    static let allCases: [KVError] = [
        .emptyKey, .keyNotFound, .valueProvided, .leaseProvided, .leaseNotFound, .leaseExists,
        .leaseTTLTooLarge, .compacted, .futureRevision, .duplicateKey, .tooManyOperations, .malformedCommand,
        .rootUserNotExist, .rootRoleNotExist, .userAlreadyExists, .userEmpty, .userNotFound, .roleAlreadyExists,
        .roleNotFound, .roleEmpty, .authFailed, .permissionNotGiven, .permissionDenied, .roleNotGranted,
        .permissionNotGranted, .authNotEnabled, .invalidAuthToken, .invalidAuthManagement, .authOldRevision,
    ]

    /// Stable wire tag: the position in `allCases` (append new errors at the end).
    var tag: UInt8 { UInt8(Self.allCases.firstIndex(of: self) ?? 0) }
}

extension LittleEndianReader {
    mutating func rangeResponse() throws(KVDecodingError) -> RangeResponse {
        RangeResponse(revision: try i64(), kvs: try keyValues(), more: try bool(), count: try i64())
    }

    mutating func responseOps(depth: Int) throws(KVDecodingError) -> [ResponseOp] {
        let n = try count(elementBytesMin: 2)
        var ops: [ResponseOp] = []
        ops.reserveCapacity(n)
        for _ in 0..<n {
            switch try u8() {
            case 0: ops.append(.range(try rangeResponse()))
            case 1: ops.append(.put(PutResponse(revision: try i64(), prevKv: try optionalKeyValue())))
            case 2:
                ops.append(.deleteRange(DeleteRangeResponse(revision: try i64(), deleted: try i64(),
                                                            prevKvs: try keyValues())))
            case 3: ops.append(.txn(try txnResponse(depth: depth + 1)))
            default: throw .invalid
            }
        }
        return ops
    }

    mutating func txnResponse(depth: Int) throws(KVDecodingError) -> TxnResponse {
        guard depth <= KVCodec.nestingDepthMax else { throw .tooDeep }
        return TxnResponse(revision: try i64(), succeeded: try bool(), responses: try responseOps(depth: depth))
    }

    mutating func result() throws(KVDecodingError) -> Result<KVResponse, KVError> {
        switch try u8() {
        case 0:
            switch try u8() {
            case 0: return .success(.put(PutResponse(revision: try i64(), prevKv: try optionalKeyValue())))
            case 1:
                guard case .deleteRange(let r)? = try responseOps(depth: 0).first else { throw .invalid }
                return .success(.deleteRange(r))
            case 2: return .success(.txn(try txnResponse(depth: 0)))
            case 3: return .success(.compact(revision: try i64()))
            case 4: return .success(.leaseGrant(id: try i64(), ttlSeconds: try i64(), revision: try i64()))
            case 5: return .success(.leaseRevoke(revision: try i64()))
            case 6: return .success(.leaseKeepAlive(id: try i64(), ttlSeconds: try i64(), revision: try i64()))
            case 7: return .success(.publishMember(revision: try i64()))
            case 8: return .success(.maintenance(revision: try i64()))
            case 9: return .success(.auth(revision: try i64()))
            default: throw .invalid
            }
        case 1:
            let tag = Int(try u8())
            guard tag < KVError.allCases.count else { throw .invalid }
            return .failure(KVError.allCases[tag])
        default:
            throw .invalid
        }
    }
}
