import SynodBytes

/// Limits of the binary codec.
public enum KVCodec {
    /// Nested txns deeper than this are rejected when decoding (bounds recursion on hostile bytes).
    public static let nestingDepthMax = 32
}

extension LittleEndianWriter {
    mutating func keyValue(_ kv: KeyValue) {
        writeBytes(kv.key)
        writeInt64(kv.createRevision)
        writeInt64(kv.modRevision)
        writeInt64(kv.version)
        writeBytes(kv.value)
        writeInt64(kv.lease)
    }

    mutating func optionalKeyValue(_ kv: KeyValue?) {
        writeBool(kv != nil)
        if let kv { keyValue(kv) }
    }

    mutating func rangeRequest(_ r: RangeRequest) {
        writeBytes(r.key)
        writeBytes(r.rangeEnd)
        writeInt64(r.limit)
        writeInt64(r.revision)
        writeUInt8(r.sortOrder.rawValue)
        writeUInt8(r.sortTarget.rawValue)
        writeBool(r.keysOnly)
        writeBool(r.countOnly)
        writeInt64(r.minModRevision)
        writeInt64(r.maxModRevision)
        writeInt64(r.minCreateRevision)
        writeInt64(r.maxCreateRevision)
    }

    mutating func putRequest(_ r: PutRequest) {
        writeBytes(r.key)
        writeBytes(r.value)
        writeInt64(r.lease)
        writeBool(r.prevKv)
        writeBool(r.ignoreValue)
        writeBool(r.ignoreLease)
    }

    mutating func deleteRangeRequest(_ r: DeleteRangeRequest) {
        writeBytes(r.key)
        writeBytes(r.rangeEnd)
        writeBool(r.prevKv)
    }

    mutating func compare(_ c: Compare) {
        writeBytes(c.key)
        writeBytes(c.rangeEnd)
        writeUInt8(c.result.rawValue)
        switch c.target {
        case .version(let v): writeUInt8(0); writeInt64(v)
        case .createRevision(let v): writeUInt8(1); writeInt64(v)
        case .modRevision(let v): writeUInt8(2); writeInt64(v)
        case .value(let v): writeUInt8(3); writeBytes(v)
        case .lease(let v): writeUInt8(4); writeInt64(v)
        }
    }

    mutating func requestOps(_ ops: [RequestOp]) {
        writeCount(ops.count)
        for op in ops {
            switch op {
            case .range(let r): writeUInt8(0); rangeRequest(r)
            case .put(let r): writeUInt8(1); putRequest(r)
            case .deleteRange(let r): writeUInt8(2); deleteRangeRequest(r)
            case .txn(let r): writeUInt8(3); txnRequest(r)
            }
        }
    }

    mutating func txnRequest(_ r: TxnRequest) {
        writeCount(r.compare.count)
        for c in r.compare { compare(c) }
        requestOps(r.success)
        requestOps(r.failure)
    }
}

extension LittleEndianReader {
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
