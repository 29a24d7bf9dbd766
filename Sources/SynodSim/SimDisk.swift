import SynodCore

/// One node's simulated disk: records are written at once but survive a crash only after
/// the fsync that covers them completes. Group commit: batches written while an fsync is in
/// flight are all covered by the next one.
struct SimDisk {
    /// Records that survive a crash, in the order they were made durable.
    private(set) var durable: [DurableRecord] = []
    /// Batches written but not yet synced, oldest first.
    private(set) var unsynced: [PersistBatch] = []
    /// The last batch id the fsync in flight covers.
    var syncingThrough: UInt64?

    mutating func write(_ batch: PersistBatch) { unsynced.append(batch) }

    /// Starts an fsync covering every batch written so far; returns the last batch id it covers.
    mutating func startSync() -> UInt64? {
        guard syncingThrough == nil, let last = unsynced.last?.id else { return nil }
        syncingThrough = last
        return last
    }

    /// The fsync covering batches through `through` completed: returns those batches.
    mutating func completeSync(through: UInt64) -> [PersistBatch] {
        syncingThrough = nil
        let done = unsynced.prefix { $0.id <= through }
        unsynced.removeFirst(done.count)
        for batch in done {
            for record in batch.records { append(record) }
        }
        return Array(done)
    }

    /// A crash: everything not synced is lost.
    mutating func crash() -> Int {
        let lost = unsynced.count
        unsynced.removeAll()
        syncingThrough = nil
        return lost
    }

    /// Appends a durable record; a durable snapshot lets the disk drop what it covers,
    /// keeping only the highest promise, the snapshot and later slots.
    private mutating func append(_ record: DurableRecord) {
        durable.append(record)
        guard case .snapshot(let snapshot) = record else { return }
        var highestPromise = Ballot.zero
        var kept: [DurableRecord] = []
        for old in durable {
            switch old {
            case .promised(let ballot): highestPromise = max(highestPromise, ballot)
            case .accepted(let slot, let ballot, _):
                highestPromise = max(highestPromise, ballot)
                if slot > snapshot.slot { kept.append(old) }
            case .chosen(let slot, _): if slot > snapshot.slot { kept.append(old) }
            case .snapshot: break
            }
        }
        durable = [.promised(highestPromise), .snapshot(snapshot)] + kept
    }
}
