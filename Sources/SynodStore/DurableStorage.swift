import SynodCore

/// A node's durable storage: the write-ahead log for the core's persist batches, snapshot
/// files, and the data directory's identity.
///
/// Use: `open` (recovery) gives the records to restore a `Replica` from; then `append` each
/// `PersistBatch` as the replica emits it, and run `beginSync` / `completeSync` one at a
/// time: everything appended while a sync is in flight goes into the next one (group commit).
/// `completeSync` returns the id of the last batch now durable — only then may the driver send
/// that batch's `messagesAfterDurable` and step the replica with `.durable(id)`.
///
/// - Important: After any error the storage stops for good (`StorageError.stopped`): a failed
///   fsync is never retried, a full disk is not written to again. The node reports and exits.
public final class DurableStorage {
    public let directory: String
    public let options: StorageOptions
    let fileSystem: any FileSystem
    let wal: WriteAheadLog
    let snapshots: SnapshotStore
    /// The last batch appended, and the last one covered by `beginSync`.
    private var appendedThrough: UInt64 = 0
    private var syncingThrough: UInt64?
    /// Snapshots appended and not yet written, and the one written by the sync in flight.
    private var pendingSnapshot: Snapshot?
    private var syncingSnapshot: Snapshot?
    public private(set) var durableThrough: UInt64 = 0
    /// The newest durable snapshot opened for reading, not yet taken by the node.
    private var storedSnapshot: (slot: Slot, bytes: StoredSnapshotBytes)?
    public private(set) var latestSnapshotSlot: Slot = 0
    /// Why the storage stopped, if it did.
    public private(set) var failure: StorageError?
    /// Damage found and repaired (see `RepairLedger`); a `.repaired` record appended, and the
    /// one in the sync in flight, whose durability moves pending damage to repaired.
    private var ledger = RepairLedger()
    private var repairAppended = false
    private var repairSyncing = false

    private init(fileSystem: any FileSystem, directory: String, options: StorageOptions) {
        self.fileSystem = fileSystem
        self.directory = directory
        self.options = options
        self.wal = WriteAheadLog(fileSystem: fileSystem, directory: directory + "/wal", options: options)
        self.snapshots = SnapshotStore(fileSystem: fileSystem, directory: directory + "/snap")
    }

    /// Opens (creating on first start) the data directory and recovers its records: the latest
    /// snapshot first, then every log record after it, in the order they were written.
    /// - Throws: `StorageError` — corruption (with file and offset), another cluster's or
    ///   node's directory, an incompatible version, permission or I/O errors.
    public static func open(fileSystem: any FileSystem, directory: String, identity: DataDirectoryIdentity,
                            options: StorageOptions = StorageOptions())
        throws(StorageError) -> (storage: DurableStorage, records: [DurableRecord], report: RecoveryReport) {
        let storage = DurableStorage(fileSystem: fileSystem, directory: directory, options: options)
        var report = RecoveryReport()
        report.created = try DataDirectoryIdentity.prepare(fileSystem, directory: directory, identity: identity)
        report.removedTemporaryFiles = try storage.snapshots.removeTemporaryFiles()
        var records: [DurableRecord] = []
        if let snapshot = try storage.loadNewestSnapshot(report: &report) {
            let slot = snapshot.slot
            records.append(.snapshot(snapshot))
            storage.latestSnapshotSlot = slot
            report.snapshotSlot = slot
            if let stored = snapshot.bytes.source as? StoredSnapshotBytes { storage.storedSnapshot = (slot, stored) }
        }
        // Records of slots the snapshot covers are dropped, but an accepted ballot is also a
        // promise (for every slot), so the highest dropped one is kept as a promise record.
        let covered = storage.latestSnapshotSlot
        var droppedPromise = Ballot.zero
        var kept: [DurableRecord] = []
        for record in try storage.wal.recover(report: &report) {
            switch record {
            case .accepted(let slot, let ballot, _) where slot <= covered: droppedPromise = max(droppedPromise, ballot)
            case .chosen(let slot, _) where slot <= covered: continue
            default: kept.append(record)
            }
        }
        if droppedPromise > .zero { records.append(.promised(droppedPromise)) }
        records += kept
        try storage.settleDamage(&report)
        return (storage, records, report)
    }

    /// The newest snapshot that checks out. With `repairDamage`, a damaged one is reported
    /// (repaired like log damage: the replica catches up past its slot before it votes) and
    /// the next older one is tried; without, the damage is thrown.
    private func loadNewestSnapshot(report: inout RecoveryReport) throws(StorageError) -> Snapshot? {
        for slot in try snapshots.slots().reversed() {
            do {
                return try snapshots.load(slot: slot)
            } catch {
                guard options.repairDamage, case .corruption(_, _, let why) = error else { throw error }
                report.damage.append(WALDamage(segment: "snap/" + SnapshotStore.fileName(slot: slot), offset: 0, reason: why))
            }
        }
        return nil
    }

    /// Records found damage as pending repair (before the replica starts) unless an earlier
    /// repair covered it, and reports whether a repair is needed (see `RepairLedger`).
    private func settleDamage(_ report: inout RecoveryReport) throws(StorageError) {
        ledger = try RepairLedger.load(fileSystem: fileSystem, directory: directory)
        let found = Set(report.damage.map(\.identity))
        report.damageAlreadyRepaired = found.intersection(ledger.repaired).count
        let unrepaired = found.subtracting(ledger.repaired)
        guard !unrepaired.isEmpty || !ledger.pending.isEmpty else { return }
        if !unrepaired.isSubset(of: ledger.pending) {
            ledger.pending.formUnion(unrepaired)
            try ledger.save(fileSystem: fileSystem, directory: directory)
        }
        report.repairNeeded = true
    }

    /// Queues a batch's records for the next sync (they are encoded now, written later).
    public func append(_ batch: PersistBatch) {
        precondition(batch.id > appendedThrough, "persist batches arrive in id order")
        appendedThrough = batch.id
        for record in batch.records {
            if case .repaired = record { repairAppended = true }
            if case .snapshot(let snapshot) = record {
                if snapshot.slot > (pendingSnapshot?.slot ?? latestSnapshotSlot) { pendingSnapshot = snapshot }
            } else {
                wal.append(record)
            }
        }
    }

    /// The newest snapshot made durable (or found at `open`) since the last call, as bytes read
    /// from its file: the node hands them to its replica (`Input.snapshotStored`), which then
    /// drops its in-memory copy.
    public func takeStoredSnapshot() -> (slot: Slot, bytes: SnapshotBytes)? {
        defer { storedSnapshot = nil }
        return storedSnapshot.map { ($0.slot, SnapshotBytes(source: $0.bytes)) }
    }

    /// Where the replica should write snapshots it receives in chunks: files in the snapshot
    /// directory that become the snapshot files when installed (`SnapshotSpoolFile`).
    public var snapshotSpooling: SnapshotSpoolDirectory {
        SnapshotSpoolDirectory(fileSystem: fileSystem, directory: snapshots.directory)
    }

    /// Whether batches are waiting for a sync.
    public var hasUnsyncedBatches: Bool { appendedThrough > (syncingThrough ?? durableThrough) }

    /// Bytes encoded and waiting for the next write.
    public var bufferedBytes: Int { wal.bufferedBytes }

    /// Writes everything appended so far (a pending snapshot durably first, then one WAL
    /// write). Returns the last batch id the matching `completeSync` will make durable, or
    /// nil when there is nothing to sync.
    /// - Precondition: no sync in flight.
    public func beginSync() throws(StorageError) -> UInt64? {
        try checkRunning()
        precondition(syncingThrough == nil, "one sync at a time")
        guard hasUnsyncedBatches else { return nil }
        do {
            if let snapshot = pendingSnapshot {
                try snapshots.save(snapshot)
                syncingSnapshot = snapshot
                pendingSnapshot = nil
            }
            _ = try wal.beginSync()
        } catch {
            throw stop(error)
        }
        repairSyncing = repairAppended
        repairAppended = false
        syncingThrough = appendedThrough
        return appendedThrough
    }

    /// Makes the last `beginSync` durable and returns the last durable batch id. Once a
    /// snapshot is durable, the log segments and old snapshots it covers are deleted.
    public func completeSync() throws(StorageError) -> UInt64 {
        guard let through = syncingThrough else { preconditionFailure("completeSync without beginSync") }
        try checkRunning()
        do {
            try wal.completeSync()
            if repairSyncing {
                // The repair's promise and `.repaired` are durable: the damage is covered.
                repairSyncing = false
                ledger.repaired.formUnion(ledger.pending)
                ledger.pending.removeAll()
                try ledger.save(fileSystem: fileSystem, directory: directory)
            }
            if let snapshot = syncingSnapshot {
                latestSnapshotSlot = snapshot.slot
                syncingSnapshot = nil
                let removedSegments = try wal.removeSegments(coveredThrough: snapshot.slot)
                if removedSegments { try fileSystem.syncDirectory(wal.directory) }
                if try snapshots.prune(retained: options.snapshotsRetained) { try fileSystem.syncDirectory(snapshots.directory) }
                // Not being able to open it for reading only means the bytes stay in memory.
                storedSnapshot = (try? snapshots.openStored(slot: snapshot.slot)).map { (snapshot.slot, $0) }
            }
        } catch {
            throw stop(error)
        }
        syncingThrough = nil
        durableThrough = through
        return through
    }

    /// `beginSync` and `completeSync` in one call (for drivers without a separate I/O thread).
    @discardableResult
    public func sync() throws(StorageError) -> UInt64? {
        guard try beginSync() != nil else { return nil }
        return try completeSync()
    }

    /// WAL segment files in use.
    public var segmentCount: Int { wal.segmentCount }

    /// Where the synced log ends: the active segment file and the offset after its last
    /// synced record. Everything before it (in that file and in older segments) is data a
    /// crash must never lose or damage unnoticed.
    public var syncedLogEnd: (path: String, offset: UInt64) { wal.syncedEnd }

    private func checkRunning() throws(StorageError) {
        if let failure { throw .stopped(reason: failure.description) }
    }

    private func stop(_ error: StorageError) -> StorageError {
        if failure == nil { failure = error }
        return error
    }
}
