extension KVStore {
    /// etcd's default `--max-txn-ops`: operations per branch (and compares) of one txn.
    public static let txnOperationsMax = 128

    /// Which branch each (nested) txn takes, decided before anything is written: etcd evaluates
    /// every compare, nested ones included, against the store as it was before the txn.
    struct TxnPath {
        var succeeded: Bool
        /// One path per nested txn of the taken branch, in order.
        var children: [TxnPath]
    }

    /// etcd `Txn`. All writes share one new revision; a txn without writes takes none.
    public mutating func txn(_ request: TxnRequest) throws(KVError) -> (TxnResponse, [WatchEvent]) {
        try Self.checkShape(request)
        let path = evaluate(request)
        try checkTaken(request, path: path)
        var write = Write(after: revision)
        let responses = applyTaken(request, path: path, &write)
        let events = commit(write)
        return (TxnResponse(revision: revision, succeeded: path.succeeded, responses: responses), events)
    }

    // MARK: - Static checks (etcd's gRPC-layer validation)

    static func checkShape(_ request: TxnRequest) throws(KVError) {
        if request.compare.count > txnOperationsMax || request.success.count > txnOperationsMax
            || request.failure.count > txnOperationsMax {
            throw .tooManyOperations
        }
        for op in request.success + request.failure {
            switch op {
            case .range(let range): if range.key.isEmpty { throw .emptyKey }
            case .put(let put):
                if put.key.isEmpty { throw .emptyKey }
                if put.ignoreValue && !put.value.isEmpty { throw .valueProvided }
                if put.ignoreLease && put.lease != 0 { throw .leaseProvided }
            case .deleteRange(let delete): if delete.key.isEmpty { throw .emptyKey }
            case .txn(let nested): try checkShape(nested)
            }
        }
        _ = try checkIntervals(request.success)
        _ = try checkIntervals(request.failure)
    }

    /// etcd's rule that one txn may not write a key twice: no two puts of one key, and no put
    /// inside a range the txn deletes (overlapping deletes are allowed). The two branches of a
    /// nested txn exclude each other, so both may put the same key.
    static func checkIntervals(_ ops: [RequestOp]) throws(KVError) -> (puts: Set<[UInt8]>, deletes: [KeyRange]) {
        var deletes: [KeyRange] = []
        for case .deleteRange(let delete) in ops { deletes.append(KeyRange(key: delete.key, rangeEnd: delete.rangeEnd)) }
        var puts: Set<[UInt8]> = []
        for case .txn(let nested) in ops {
            let then = try checkIntervals(nested.success)
            let otherwise = try checkIntervals(nested.failure)
            for key in then.puts {
                if puts.contains(key) || deletes.contains(where: { $0.contains(key) }) { throw .duplicateKey }
                puts.insert(key)
            }
            for key in otherwise.puts {
                if puts.contains(key) && !then.puts.contains(key) { throw .duplicateKey }
                if deletes.contains(where: { $0.contains(key) }) { throw .duplicateKey }
                puts.insert(key)
            }
            deletes += then.deletes + otherwise.deletes
        }
        for case .put(let put) in ops {
            if puts.contains(put.key) || deletes.contains(where: { $0.contains(put.key) }) { throw .duplicateKey }
            puts.insert(put.key)
        }
        return (puts, deletes)
    }

    // MARK: - Compares

    func evaluate(_ request: TxnRequest) -> TxnPath {
        let succeeded = request.compare.allSatisfy { compareHolds($0) }
        var children: [TxnPath] = []
        for case .txn(let nested) in succeeded ? request.success : request.failure {
            children.append(evaluate(nested))
        }
        return TxnPath(succeeded: succeeded, children: children)
    }

    /// etcd: every key of the compare's range must satisfy it; a missing key compares as a
    /// zero `KeyValue`, except that a value compare on a missing key always fails.
    func compareHolds(_ compare: Compare) -> Bool {
        let kvs = liveKeys(in: KeyRange(key: compare.key, rangeEnd: compare.rangeEnd), at: revision)
        if kvs.isEmpty {
            if case .value = compare.target { return false }
            return Self.compareHolds(compare, on: KeyValue(key: compare.key))
        }
        return kvs.allSatisfy { Self.compareHolds(compare, on: $0) }
    }

    static func compareHolds(_ compare: Compare, on kv: KeyValue) -> Bool {
        let ordering: Int
        switch compare.target {
        case .version(let version): ordering = compareInts(kv.version, version)
        case .createRevision(let revision): ordering = compareInts(kv.createRevision, revision)
        case .modRevision(let revision): ordering = compareInts(kv.modRevision, revision)
        case .value(let value): ordering = compareBytes(kv.value, value)
        case .lease(let lease): ordering = compareInts(kv.lease, lease)
        }
        switch compare.result {
        case .equal: return ordering == 0
        case .notEqual: return ordering != 0
        case .greater: return ordering > 0
        case .less: return ordering < 0
        }
    }

    // MARK: - Taken branch

    /// Checks the taken operations against the store before the txn, as etcd does, so the txn
    /// either applies whole or fails untouched.
    func checkTaken(_ request: TxnRequest, path: TxnPath) throws(KVError) {
        var children = path.children.makeIterator()
        for op in path.succeeded ? request.success : request.failure {
            switch op {
            case .range(let range): try checkRange(range)
            case .put(let put): try checkPut(put)
            case .deleteRange(let delete): try checkDelete(delete)
            case .txn(let nested):
                guard let child = children.next() else { return }
                try checkTaken(nested, path: child)
            }
        }
    }

    mutating func applyTaken(_ request: TxnRequest, path: TxnPath, _ write: inout Write) -> [ResponseOp] {
        var children = path.children.makeIterator()
        var responses: [ResponseOp] = []
        for op in path.succeeded ? request.success : request.failure {
            switch op {
            case .range(let range):
                responses.append(.range(applyRange(range, current: write.readRevision(current: revision))))
            case .put(let put):
                responses.append(.put(applyPut(put, &write)))
            case .deleteRange(let delete):
                responses.append(.deleteRange(applyDelete(delete, &write)))
            case .txn(let nested):
                // `evaluate` made one child per nested txn of the taken branch.
                guard let child = children.next() else { return responses }
                let nestedResponses = applyTaken(nested, path: child, &write)
                let nestedRevision = write.readRevision(current: revision)
                responses.append(.txn(TxnResponse(revision: nestedRevision, succeeded: child.succeeded,
                                                  responses: nestedResponses)))
            }
        }
        return responses
    }
}
