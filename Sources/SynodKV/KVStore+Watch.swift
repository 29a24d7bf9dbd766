extension KVStore {
    /// Stored events with main revision `>= from` on keys in the range, in revision order: the
    /// history a watch with `start_revision` replays before it follows live events.
    ///
    /// Throws `compacted` when `from` is below the compaction revision (etcd's watch rule).
    /// `prevKv` is nil where compaction already dropped the previous write. At most
    /// `revisionsMax` distinct revisions are returned (never half a revision), so a lagging
    /// watch can catch up in bounded batches, as etcd's `watchBatchMaxRevs` does.
    public func events(from: Int64, key: [UInt8], rangeEnd: [UInt8] = [],
                       revisionsMax: Int = Int.max) throws(KVError) -> [WatchEvent] {
        if from < compactRevision { throw .compacted }
        var events: [WatchEvent] = []
        for position in index.positions(in: KeyRange(key: key, rangeEnd: rangeEnd)) {
            let key = index.key(at: position)
            let history = index.history(at: position)
            for i in 0..<history.count where history[i].revision.main >= from {
                let entry = history[i]
                let previous: KeyValue? = i > 0 && !history[i - 1].isTombstone ? history[i - 1].keyValue(key) : nil
                if entry.isTombstone {
                    let kv = KeyValue(key: key, modRevision: entry.revision.main)
                    events.append(WatchEvent(kind: .delete, kv: kv, prevKv: previous, sub: entry.revision.sub))
                } else {
                    events.append(WatchEvent(kind: .put, kv: entry.keyValue(key), prevKv: previous,
                                             sub: entry.revision.sub))
                }
            }
        }
        events.sort { ($0.kv.modRevision, $0.sub) < ($1.kv.modRevision, $1.sub) }
        var revisions = 0
        var lastRevision: Int64?
        for (i, event) in events.enumerated() where event.kv.modRevision != lastRevision {
            lastRevision = event.kv.modRevision
            revisions += 1
            if revisions > revisionsMax { return Array(events[..<i]) }
        }
        return events
    }
}
