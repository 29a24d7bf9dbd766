import SynodCore
@testable import SynodStore
import XCTest

/// Crashes in the middle of the multi-step operations: creating a segment (create,
/// preallocate, write header, sync, sync directory) and saving a snapshot (temp file, sync,
/// rename, sync directory). A failed sync stops the storage at that step; a crash follows;
/// recovery must bring back everything acknowledged and clean up the half-done step.
final class InterruptedOperationTests: XCTestCase {
    private typealias Support = StorageTestSupport

    private func fillUntilRoll(_ storage: DurableStorage, ballot: Ballot, from slot: inout Slot, id: inout UInt64,
                               acknowledged: inout [DurableRecord]) throws {
        let segments = storage.segmentCount
        while true {
            slot += 1
            id += 1
            let record = DurableRecord.accepted(slot: slot, ballot: ballot, value: .batch([
                Command(clientID: 1, sequence: slot, payload: [UInt8](repeating: 9, count: 150))]))
            storage.append(PersistBatch(id: id, records: [record], messagesAfterDurable: []))
            // Stop right before the write that would start a new segment.
            if storage.wal.activeTail + UInt64(storage.bufferedBytes) > storage.options.segmentBytes, storage.segmentCount == segments {
                return
            }
            try storage.sync()
            acknowledged.append(record)
        }
    }

    func testACrashWhileCreatingASegmentLosesNothingAcknowledged() throws {
        do {
            for tearing in [false, true] {
                let fileSystem = FaultInjectingFileSystem()
                let (storage, _, _) = try Support.open(fileSystem, options: Support.options(segmentBytes: 2 << 10))
                let ballot = Ballot(round: 2, node: NodeID(1))
                var slot: Slot = 0
                var id: UInt64 = 0
                var acknowledged: [DurableRecord] = []
                try fillUntilRoll(storage, ballot: ballot, from: &slot, id: &id, acknowledged: &acknowledged)
                // The new segment's first sync fails, before its directory entry is synced.
                fileSystem.syncFailurePathContains = "0002.wal"
                fileSystem.failNextSync = true
                XCTAssertThrowsError(try storage.beginSync())
                var random = SplitMix64(seed: tearing ? 1 : 2)
                fileSystem.crash(random: &random, tearing: tearing)
                fileSystem.syncFailurePathContains = nil
                let reopened = try Support.open(fileSystem, options: Support.options(segmentBytes: 2 << 10))
                let entries = reopened.records.filter { if case .promised = $0 { return false } else { return true } }
                XCTAssertEqual(entries, acknowledged, "tearing \(tearing)")
                // And the log goes on: a new record lands and survives.
                let next = DurableRecord.chosen(slot: slot + 1, value: .noop)
                reopened.storage.append(PersistBatch(id: 1, records: [next], messagesAfterDurable: []))
                try reopened.storage.sync()
                fileSystem.crash()
                XCTAssertEqual(try Support.open(fileSystem, options: Support.options(segmentBytes: 2 << 10)).records.last, next)
            }
        }
    }

    /// A file system may make a new file's name durable before its contents: a crash then
    /// leaves an all-zero segment after the last real one. Recovery removes it and goes on.
    func testABlankSegmentLeftByACrashIsRemoved() throws {
        let fileSystem = FaultInjectingFileSystem()
        let (storage, _, _) = try Support.open(fileSystem)
        let record = DurableRecord.accepted(slot: 1, ballot: Ballot(round: 1, node: NodeID(1)), value: .noop)
        storage.append(PersistBatch(id: 1, records: [record], messagesAfterDurable: []))
        try storage.sync()
        let blank = Support.directory + "/wal/" + SegmentHeader.fileName(sequence: 2)
        let file = try fileSystem.open(blank, create: true)
        try file.preallocate(4096)
        try file.sync()
        file.close()
        try fileSystem.syncDirectory(Support.directory + "/wal")
        fileSystem.crash()
        let reopened = try Support.open(fileSystem)
        XCTAssertEqual(reopened.report.removedEmptySegments, [blank])
        XCTAssertEqual(reopened.records.last, record)
        let next = DurableRecord.chosen(slot: 1, value: .noop)
        reopened.storage.append(PersistBatch(id: 1, records: [next], messagesAfterDurable: []))
        try reopened.storage.sync()
        fileSystem.crash()
        XCTAssertEqual(try Support.open(fileSystem).records.suffix(2), [record, next])
    }

    func testACrashWhileSavingASnapshotKeepsTheLogAndRemovesTheTemporaryFile() throws {
        for failing in [".snap.tmp", "/snap"] {
            let fileSystem = FaultInjectingFileSystem()
            let (storage, _, _) = try Support.open(fileSystem)
            let ballot = Ballot(round: 2, node: NodeID(1))
            var acknowledged: [DurableRecord] = []
            for slot in 1...20 {
                let record = DurableRecord.accepted(slot: Slot(slot), ballot: ballot, value: .noop)
                storage.append(PersistBatch(id: UInt64(slot), records: [record], messagesAfterDurable: []))
                try storage.sync()
                acknowledged.append(record)
            }
            storage.append(PersistBatch(id: 21, records: [.snapshot(Snapshot(slot: 15, data: [1]))], messagesAfterDurable: []))
            fileSystem.syncFailurePathContains = failing
            fileSystem.failNextSync = true
            XCTAssertThrowsError(try storage.beginSync())
            fileSystem.crash()
            fileSystem.syncFailurePathContains = nil
            let reopened = try Support.open(fileSystem)
            // Either no snapshot (the rename never became durable) or the complete one; never a
            // half-written file, and the log still holds everything it held.
            if case .snapshot(let snapshot) = reopened.records.first {
                XCTAssertEqual(snapshot, Snapshot(slot: 15, data: [1]), failing)
            } else {
                let entries = reopened.records.filter { if case .promised = $0 { return false } else { return true } }
                XCTAssertEqual(entries, acknowledged, failing)
            }
            XCTAssertFalse(try fileSystem.listDirectory(Support.directory + "/snap").contains { $0.hasSuffix(".tmp") })
        }
    }
}
