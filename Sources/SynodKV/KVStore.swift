import SynodBytes

/// The etcd v3 MVCC key space as a pure, deterministic value.
///
/// Every write request that changes the key space takes exactly one new main revision; the
/// writes of one request (a txn, a lease revoke) share it and are ordered by sub-revision.
/// The store starts at revision 1, as etcd does, so the first write gets revision 2.
///
/// - Important: requests are validated completely before anything is written, so a request
///   either applies whole or fails without changing the store (etcd's all-or-nothing txn).
public struct KVStore: Hashable, Sendable {
    /// etcd's largest accepted lease TTL (`MaxLeaseTTL`, about 285 years).
    public static let leaseTTLSecondsMax: Int64 = 9_000_000_000

    /// The revision of the last write (1 for an empty store).
    public internal(set) var revision: Int64 = 1
    /// History below this revision is gone; 0 if never compacted.
    public internal(set) var compactRevision: Int64 = 0
    var index = KeyIndex()
    /// Lease id -> state. Never iterated unsorted where order reaches an output.
    var leases: [Int64: LeaseState] = [:]
    /// The wrapping sum of `liveKeyHash` over every live key: kept current on each write in
    /// O(1), so the integrity check costs nothing per check (see `integrityHash`).
    public internal(set) var liveKeysHash: UInt64 = 0

    public init() {}

    /// A hash of one live key's full state (key, value, revisions, version, lease). The sum of
    /// these is order-independent, so it can be updated incrementally: subtract the old state,
    /// add the new one.
    ///
    /// XXH64 (`IntegrityHashAlgorithm.xxh64`) of the key, the five numbers and the value, with
    /// no copy: every put pays it, and a restored snapshot pays it for every key (FNV-1a, byte
    /// at a time, took about one and a half seconds per GiB of values there).
    static func liveKeyHash(_ kv: KeyValue) -> UInt64 {
        var hash = XXHash64()
        hash.combine(kv.key)
        var numbers = (kv.createRevision.littleEndian, kv.modRevision.littleEndian, kv.version.littleEndian,
                       kv.lease.littleEndian, Int64(kv.value.count).littleEndian)
        withUnsafeBytes(of: &numbers) { hash.combine($0) }
        hash.combine(kv.value)
        // A final avalanche (splitmix64's) so that sums of related keys do not cancel easily.
        var z = hash.value
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    /// The integrity check's hash of the live key space at the current revision: replicas
    /// that applied the same commands agree on it. O(1).
    public var integrityHash: UInt64 {
        var z = liveKeysHash ^ (UInt64(bitPattern: revision) &* 0x9e37_79b9_7f4a_7c15)
        z = (z ^ (z >> 33)) &* 0xff51_afd7_ed55_8ccd
        return z ^ (z >> 33)
    }

    /// Recomputes `liveKeysHash` from scratch (after a snapshot is restored; tests compare it
    /// with the incremental value).
    public func computeLiveKeysHash() -> UInt64 {
        var sum: UInt64 = 0
        for position in 0..<index.count {
            if let entry = index.history(at: position).liveEntry(at: revision) {
                sum &+= Self.liveKeyHash(entry.keyValue(index.key(at: position)))
            }
        }
        return sum
    }

    struct LeaseState: Hashable, Sendable {
        var ttlSeconds: Int64
        var keys: Set<[UInt8]> = []
    }

    /// The key space while one request writes: every write gets `(main, sub)` and an event.
    struct Write {
        let main: Int64
        var sub: Int64 = 0
        var events: [WatchEvent] = []

        init(after revision: Int64) { main = revision + 1 }

        var hasChanges: Bool { sub > 0 }
        /// Reads inside the request see its earlier writes (etcd's write txn reads at rev+1).
        func readRevision(current: Int64) -> Int64 { hasChanges ? main : current }
    }

    /// Ends a request: takes the new main revision only if something changed.
    mutating func commit(_ write: Write) -> [WatchEvent] {
        if write.hasChanges { revision = write.main }
        return write.events
    }

    /// The key's live state at `main`, or nil.
    func live(_ key: [UInt8], at main: Int64) -> KeyValue? {
        index.history(for: key)?.liveEntry(at: main)?.keyValue(key)
    }

    // MARK: - Put

    /// Checks a put against the store before the request writes anything.
    func checkPut(_ request: PutRequest) throws(KVError) {
        if request.key.isEmpty { throw .emptyKey }
        if request.ignoreValue && !request.value.isEmpty { throw .valueProvided }
        if request.ignoreLease && request.lease != 0 { throw .leaseProvided }
        let current = live(request.key, at: revision)
        if (request.ignoreValue || request.ignoreLease) && current == nil { throw .keyNotFound }
        if !request.ignoreLease && request.lease != 0 && leases[request.lease] == nil { throw .leaseNotFound }
    }

    /// Applies a checked put.
    mutating func applyPut(_ request: PutRequest, _ write: inout Write) -> PutResponse {
        let previous = live(request.key, at: write.readRevision(current: revision))
        let lease = request.ignoreLease ? (previous?.lease ?? 0) : request.lease
        let value = request.ignoreValue ? (previous?.value ?? []) : request.value
        let entry = HistoryEntry(
            revision: Revision(main: write.main, sub: write.sub), isTombstone: false, value: value, lease: lease,
            createRevision: previous?.createRevision ?? write.main, version: (previous?.version ?? 0) + 1)
        write.sub += 1
        index.append(entry, to: request.key)
        if let old = previous?.lease, old != 0, old != lease { leases[old]?.keys.remove(request.key) }
        if lease != 0 { leases[lease]?.keys.insert(request.key) }
        let kv = entry.keyValue(request.key)
        if let previous { liveKeysHash &-= Self.liveKeyHash(previous) }
        liveKeysHash &+= Self.liveKeyHash(kv)
        write.events.append(WatchEvent(kind: .put, kv: kv, prevKv: previous, sub: entry.revision.sub))
        return PutResponse(revision: write.main, prevKv: request.prevKv ? previous : nil)
    }

    /// etcd `Put`: writes `key`, attaching it to `lease` (0 detaches).
    public mutating func put(_ request: PutRequest) throws(KVError) -> (PutResponse, [WatchEvent]) {
        try checkPut(request)
        var write = Write(after: revision)
        var response = applyPut(request, &write)
        let events = commit(write)
        response.revision = revision
        return (response, events)
    }

    // MARK: - Delete

    func checkDelete(_ request: DeleteRangeRequest) throws(KVError) {
        if request.key.isEmpty { throw .emptyKey }
    }

    /// Applies a checked delete; takes sub-revisions only for keys that existed.
    mutating func applyDelete(_ request: DeleteRangeRequest, _ write: inout Write) -> DeleteRangeResponse {
        let readRevision = write.readRevision(current: revision)
        let range = KeyRange(key: request.key, rangeEnd: request.rangeEnd)
        var deleted: [KeyValue] = []
        for position in index.positions(in: range) {
            if let entry = index.history(at: position).liveEntry(at: readRevision) {
                deleted.append(entry.keyValue(index.key(at: position)))
            }
        }
        for previous in deleted { deleteKey(previous, &write) }
        return DeleteRangeResponse(revision: write.readRevision(current: revision), deleted: Int64(deleted.count),
                                   prevKvs: request.prevKv ? deleted : [])
    }

    /// Writes a tombstone for a live key and detaches its lease.
    mutating func deleteKey(_ previous: KeyValue, _ write: inout Write) {
        let revision = Revision(main: write.main, sub: write.sub)
        write.sub += 1
        index.append(.tombstone(at: revision), to: previous.key)
        liveKeysHash &-= Self.liveKeyHash(previous)
        if previous.lease != 0 { leases[previous.lease]?.keys.remove(previous.key) }
        // etcd's delete event carries only the key and the deleting revision.
        let kv = KeyValue(key: previous.key, modRevision: revision.main)
        write.events.append(WatchEvent(kind: .delete, kv: kv, prevKv: previous, sub: revision.sub))
    }

    /// etcd `DeleteRange`: takes a new revision only if it deleted something.
    public mutating func deleteRange(_ request: DeleteRangeRequest) throws(KVError)
        -> (DeleteRangeResponse, [WatchEvent]) {
        try checkDelete(request)
        var write = Write(after: revision)
        var response = applyDelete(request, &write)
        let events = commit(write)
        response.revision = revision
        return (response, events)
    }

    // MARK: - Compaction

    /// etcd `Compact`: forgets history below `revision`, keeping each key's latest write at or
    /// before it (unless that write is a delete, which then has nothing left to say).
    /// Returns the header revision (compaction itself does not take a revision).
    public mutating func compact(revision target: Int64) throws(KVError) -> Int64 {
        if target <= compactRevision { throw .compacted }
        if target > revision { throw .futureRevision }
        compactRevision = target
        index.rewrite { history in
            guard let keep = history.entryIndex(atOrBefore: target) else { return history }
            return history.suffix(from: history[keep].isTombstone ? keep + 1 : keep)
        }
        return revision
    }
}
