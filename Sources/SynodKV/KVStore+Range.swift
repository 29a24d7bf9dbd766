extension KVStore {
    /// Checks a range's revision against the store (etcd checks before a txn writes anything).
    func checkRange(_ request: RangeRequest) throws(KVError) {
        if request.key.isEmpty { throw .emptyKey }
        try checkReadRevision(request.revision, current: revision)
    }

    /// etcd's order of checks: a future revision first, then a compacted one.
    func checkReadRevision(_ requested: Int64, current: Int64) throws(KVError) {
        if requested > current { throw .futureRevision }
        if requested > 0 && requested < compactRevision { throw .compacted }
    }

    /// Live keys of `range` at `main`, in key order.
    func liveKeys(in range: KeyRange, at main: Int64) -> [KeyValue] {
        var kvs: [KeyValue] = []
        for position in index.positions(in: range) {
            if let entry = index.history(at: position).liveEntry(at: main) {
                kvs.append(entry.keyValue(index.key(at: position)))
            }
        }
        return kvs
    }

    /// Runs a checked range as of `current` (the latest revision the reader may see).
    func applyRange(_ request: RangeRequest, current: Int64) -> RangeResponse {
        let at = request.revision > 0 ? request.revision : current
        var kvs = liveKeys(in: KeyRange(key: request.key, rangeEnd: request.rangeEnd), at: at)
        // etcd's count is every key in the range at the read revision, before filters and limit.
        let count = Int64(kvs.count)
        if request.countOnly { return RangeResponse(revision: current, kvs: [], more: false, count: count) }
        if request.maxModRevision != 0 { kvs.removeAll { $0.modRevision > request.maxModRevision } }
        if request.minModRevision != 0 { kvs.removeAll { $0.modRevision < request.minModRevision } }
        if request.maxCreateRevision != 0 { kvs.removeAll { $0.createRevision > request.maxCreateRevision } }
        if request.minCreateRevision != 0 { kvs.removeAll { $0.createRevision < request.minCreateRevision } }
        sort(&kvs, order: request.sortOrder, target: request.sortTarget)
        var more = false
        if request.limit > 0 && Int64(kvs.count) > request.limit {
            kvs.removeSubrange(Int(request.limit)...)
            more = true
        }
        if request.keysOnly {
            for i in kvs.indices { kvs[i].value = [] }
        }
        return RangeResponse(revision: current, kvs: kvs, more: more, count: count)
    }

    /// etcd's rule: results come key-ascending; a non-key target with order `none` still sorts
    /// ascending. Ties are broken by key so the order is deterministic (etcd's Go sort is not
    /// stable, so etcd leaves tie order unspecified).
    private func sort(_ kvs: inout [KeyValue], order: RangeRequest.SortOrder, target: RangeRequest.SortTarget) {
        var effective = order
        if target != .key && order == .none { effective = .ascend }
        if effective == .none || (target == .key && effective == .ascend) { return }
        if target == .key {
            kvs.reverse()
            return
        }
        let descending = effective == .descend
        kvs.sort { lhs, rhs in
            let ordering = Self.compare(lhs, rhs, by: target)
            if ordering != 0 { return descending ? ordering > 0 : ordering < 0 }
            return lhs.key.lexicographicallyPrecedes(rhs.key)
        }
    }

    private static func compare(_ lhs: KeyValue, _ rhs: KeyValue, by target: RangeRequest.SortTarget) -> Int {
        switch target {
        case .key: return compareBytes(lhs.key, rhs.key)
        case .version: return compareInts(lhs.version, rhs.version)
        case .create: return compareInts(lhs.createRevision, rhs.createRevision)
        case .mod: return compareInts(lhs.modRevision, rhs.modRevision)
        case .value: return compareBytes(lhs.value, rhs.value)
        }
    }

    static func compareInts(_ lhs: Int64, _ rhs: Int64) -> Int { lhs < rhs ? -1 : (lhs > rhs ? 1 : 0) }

    static func compareBytes(_ lhs: [UInt8], _ rhs: [UInt8]) -> Int {
        if lhs == rhs { return 0 }
        return lhs.lexicographicallyPrecedes(rhs) ? -1 : 1
    }

    /// etcd `Range` at the latest revision or at `request.revision`.
    public func range(_ request: RangeRequest) throws(KVError) -> RangeResponse {
        try checkRange(request)
        return applyRange(request, current: revision)
    }
}
