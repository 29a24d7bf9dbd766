import Foundation
import SynodCore
import SynodStore

/// The node's I/O thread: owns `DurableStorage`, appends the persist batches the node loop
/// hands it, and syncs them in groups — every batch submitted while a sync is running goes
/// into the next sync (group commit). Reports each completed sync back to the node loop.
///
/// Concurrency: `storage` is touched only by the worker thread once `start()` ran; the
/// submission queue is guarded by `condition`. Hence `@unchecked Sendable`.
final class StorageWorker: @unchecked Sendable {
    struct SyncReport: Sendable {
        var durableThrough: UInt64
        var seconds: Double
        var records: Int
        /// A snapshot this sync made durable, now readable from its file.
        var storedSnapshot: StoredSnapshot?
    }

    struct StoredSnapshot: Sendable {
        var slot: Slot
        var bytes: SnapshotBytes
    }

    private let storage: DurableStorage
    private let condition = NSCondition()
    private var queue: [PersistBatch] = []
    private var stopping = false
    private var finished = false
    private var started = false
    private var onDurable: @Sendable (SyncReport) -> Void = { _ in }
    private var onFailure: @Sendable (StorageError) -> Void = { _ in }

    private let failpoints: Failpoints

    init(storage: DurableStorage, failpoints: Failpoints = Failpoints()) {
        self.storage = storage
        self.failpoints = failpoints
    }

    /// Starts the thread; the callbacks run on it (hop to the node loop inside them).
    func start(onDurable: @escaping @Sendable (SyncReport) -> Void,
               onFailure: @escaping @Sendable (StorageError) -> Void) {
        self.onDurable = onDurable
        self.onFailure = onFailure
        let thread = Thread { [self] in self.run() }
        thread.name = "synod-storage"
        condition.lock()
        started = true
        condition.unlock()
        thread.start()
    }

    /// Queues batches, in order, for the next sync. Never blocks on I/O.
    func submit(_ batches: [PersistBatch]) {
        condition.lock()
        queue += batches
        condition.signal()
        condition.unlock()
    }

    /// Finishes the sync in flight and everything queued, then stops the thread.
    func stop() {
        condition.lock()
        guard started else { condition.unlock(); return }
        stopping = true
        condition.signal()
        while !finished { condition.wait() }
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while queue.isEmpty && !stopping { condition.wait() }
            let batches = queue
            queue.removeAll(keepingCapacity: true)
            let stop = stopping && batches.isEmpty
            condition.unlock()
            if stop { break }
            var records = 0
            for batch in batches {
                storage.append(batch)
                records += batch.records.count
            }
            if failpoints.fsyncDelayMilliseconds > 0 {
                Thread.sleep(forTimeInterval: Double(failpoints.fsyncDelayMilliseconds) / 1000)
            }
            if Failpoints.roll(failpoints.crashBeforeSync) { Failpoints.crash("crash-before-sync") }
            let start = DispatchTime.now().uptimeNanoseconds
            do {
                if let through = try storage.sync() {
                    if Failpoints.roll(failpoints.crashAfterSync) { Failpoints.crash("crash-after-sync") }
                    let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                    let stored = storage.takeStoredSnapshot().map { StoredSnapshot(slot: $0.slot, bytes: $0.bytes) }
                    onDurable(SyncReport(durableThrough: through, seconds: seconds, records: records, storedSnapshot: stored))
                }
            } catch {
                onFailure(error)
                condition.lock()
                queue.removeAll()
                condition.unlock()
                break
            }
        }
        condition.lock()
        finished = true
        condition.broadcast()
        condition.unlock()
    }
}
