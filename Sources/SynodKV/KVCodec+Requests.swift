/// Limits of the binary codec.
public enum KVCodec {
    /// Nested txns deeper than this are rejected when decoding (bounds recursion on hostile bytes).
    public static let nestingDepthMax = 32
}

extension ByteWriter {
    mutating func keyValue(_ kv: KeyValue) {
        data(kv.key)
        i64(kv.createRevision)
        i64(kv.modRevision)
        i64(kv.version)
        data(kv.value)
        i64(kv.lease)
    }

    mutating func optionalKeyValue(_ kv: KeyValue?) {
        bool(kv != nil)
        if let kv { keyValue(kv) }
    }

    mutating func rangeRequest(_ r: RangeRequest) {
        data(r.key)
        data(r.rangeEnd)
        i64(r.limit)
        i64(r.revision)
        u8(r.sortOrder.rawValue)
        u8(r.sortTarget.rawValue)
        bool(r.keysOnly)
        bool(r.countOnly)
        i64(r.minModRevision)
        i64(r.maxModRevision)
        i64(r.minCreateRevision)
        i64(r.maxCreateRevision)
    }

    mutating func putRequest(_ r: PutRequest) {
        data(r.key)
        data(r.value)
        i64(r.lease)
        bool(r.prevKv)
        bool(r.ignoreValue)
        bool(r.ignoreLease)
    }

    mutating func deleteRangeRequest(_ r: DeleteRangeRequest) {
        data(r.key)
        data(r.rangeEnd)
        bool(r.prevKv)
    }

    mutating func compare(_ c: Compare) {
        data(c.key)
        data(c.rangeEnd)
        u8(c.result.rawValue)
        switch c.target {
        case .version(let v): u8(0); i64(v)
        case .createRevision(let v): u8(1); i64(v)
        case .modRevision(let v): u8(2); i64(v)
        case .value(let v): u8(3); data(v)
        case .lease(let v): u8(4); i64(v)
        }
    }

    mutating func requestOps(_ ops: [RequestOp]) {
        count(ops.count)
        for op in ops {
            switch op {
            case .range(let r): u8(0); rangeRequest(r)
            case .put(let r): u8(1); putRequest(r)
            case .deleteRange(let r): u8(2); deleteRangeRequest(r)
            case .txn(let r): u8(3); txnRequest(r)
            }
        }
    }

    mutating func txnRequest(_ r: TxnRequest) {
        count(r.compare.count)
        for c in r.compare { compare(c) }
        requestOps(r.success)
        requestOps(r.failure)
    }
}

extension ByteReader {
    mutating func keyValue() throws(KVDecodingError) -> KeyValue {
        KeyValue(key: try data(), createRevision: try i64(), modRevision: try i64(), version: try i64(),
                 value: try data(), lease: try i64())
    }

    mutating func optionalKeyValue() throws(KVDecodingError) -> KeyValue? {
        try bool() ? try keyValue() : nil
    }

    mutating func keyValues() throws(KVDecodingError) -> [KeyValue] {
        let n = try count(elementBytesMin: 40)
        var kvs: [KeyValue] = []
        kvs.reserveCapacity(n)
        for _ in 0..<n { kvs.append(try keyValue()) }
        return kvs
    }

    mutating func rangeRequest() throws(KVDecodingError) -> RangeRequest {
        let key = try data()
        let rangeEnd = try data()
        let limit = try i64()
        let revision = try i64()
        guard let order = RangeRequest.SortOrder(rawValue: try u8()), let target = RangeRequest.SortTarget(rawValue: try u8()) else {
            throw .invalid
        }
        return RangeRequest(key: key, rangeEnd: rangeEnd, limit: limit, revision: revision, sortOrder: order,
                            sortTarget: target, keysOnly: try bool(), countOnly: try bool(),
                            minModRevision: try i64(), maxModRevision: try i64(),
                            minCreateRevision: try i64(), maxCreateRevision: try i64())
    }

    mutating func putRequest() throws(KVDecodingError) -> PutRequest {
        PutRequest(key: try data(), value: try data(), lease: try i64(), prevKv: try bool(),
                   ignoreValue: try bool(), ignoreLease: try bool())
    }

    mutating func deleteRangeRequest() throws(KVDecodingError) -> DeleteRangeRequest {
        DeleteRangeRequest(key: try data(), rangeEnd: try data(), prevKv: try bool())
    }

    mutating func compare() throws(KVDecodingError) -> Compare {
        let key = try data()
        let rangeEnd = try data()
        guard let result = Compare.Result(rawValue: try u8()) else { throw .invalid }
        let target: Compare.Target
        switch try u8() {
        case 0: target = .version(try i64())
        case 1: target = .createRevision(try i64())
        case 2: target = .modRevision(try i64())
        case 3: target = .value(try data())
        case 4: target = .lease(try i64())
        default: throw .invalid
        }
        return Compare(key: key, rangeEnd: rangeEnd, result: result, target: target)
    }

    mutating func requestOps(depth: Int) throws(KVDecodingError) -> [RequestOp] {
        let n = try count(elementBytesMin: 2)
        var ops: [RequestOp] = []
        ops.reserveCapacity(n)
        for _ in 0..<n {
            switch try u8() {
            case 0: ops.append(.range(try rangeRequest()))
            case 1: ops.append(.put(try putRequest()))
            case 2: ops.append(.deleteRange(try deleteRangeRequest()))
            case 3: ops.append(.txn(try txnRequest(depth: depth + 1)))
            default: throw .invalid
            }
        }
        return ops
    }

    mutating func txnRequest(depth: Int) throws(KVDecodingError) -> TxnRequest {
        guard depth <= KVCodec.nestingDepthMax else { throw .tooDeep }
        let n = try count(elementBytesMin: 10)
        var compares: [Compare] = []
        compares.reserveCapacity(n)
        for _ in 0..<n { compares.append(try compare()) }
        return TxnRequest(compare: compares, success: try requestOps(depth: depth),
                          failure: try requestOps(depth: depth))
    }
}
