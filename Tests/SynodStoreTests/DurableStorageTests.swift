import SynodCore
@testable import SynodStore
import XCTest

/// The storage's contract in normal operation and on the errors an operator can meet.
final class DurableStorageTests: XCTestCase {
    private typealias Support = StorageTestSupport

    func testRecordsSurviveARestartInOrder() throws {
        let fileSystem = FaultInjectingFileSystem()
        var (storage, records, report) = try Support.open(fileSystem)
        XCTAssertTrue(report.created)
        XCTAssertEqual(records, [])
        var random = SplitMix64(seed: 1)
        var slot: Slot = 0
        var round: UInt64 = 0
        var written: [DurableRecord] = []
        for id in 1...200 {
            let batch = (0..<Int(1 + random.next() % 4)).map { _ in Support.randomRecord(&random, slot: &slot, round: &round) }
            written += batch
            storage.append(PersistBatch(id: UInt64(id), records: batch, messagesAfterDurable: []))
            if id % 3 == 0 { XCTAssertEqual(try storage.sync(), UInt64(id)) }
        }
        XCTAssertEqual(try storage.sync(), 200)
        XCTAssertGreaterThan(storage.segmentCount, 3, "small segments should roll")
        fileSystem.crash()
        (storage, records, report) = try Support.open(fileSystem)
        XCTAssertFalse(report.created)
        // Every segment after the first starts with the highest promise so far: drop those
        // repeated hard-state records before comparing.
        XCTAssertEqual(records.filter { !isPromise($0) }, written.filter { !isPromise($0) })
        XCTAssertEqual(highestPromise(records), highestPromise(written))
        XCTAssertNil(report.tornTail)
    }

    func testGroupCommitCoversEverythingAppendedBeforeTheWrite() throws {
        let fileSystem = FaultInjectingFileSystem()
        let (storage, _, _) = try Support.open(fileSystem)
        let ballot = Ballot(round: 1, node: NodeID(1))
        storage.append(PersistBatch(id: 1, records: [.promised(ballot)], messagesAfterDurable: []))
        XCTAssertEqual(try storage.beginSync(), 1)
        // Appended while the fsync is in flight: not covered by it.
        storage.append(PersistBatch(id: 2, records: [.accepted(slot: 1, ballot: ballot, value: .noop)], messagesAfterDurable: []))
        storage.append(PersistBatch(id: 3, records: [.chosen(slot: 1, value: .noop)], messagesAfterDurable: []))
        XCTAssertEqual(try storage.completeSync(), 1)
        XCTAssertTrue(storage.hasUnsyncedBatches)
        let syncsBefore = fileSystem.syncCount
        XCTAssertEqual(try storage.sync(), 3, "one sync covers both batches")
        XCTAssertEqual(fileSystem.syncCount, syncsBefore + 1)
        XCTAssertFalse(storage.hasUnsyncedBatches)
        XCTAssertNil(try storage.sync())
    }

    func testSnapshotDeletesCoveredSegmentsOnlyOnceDurableAndKeepsThePromise() throws {
        let fileSystem = FaultInjectingFileSystem()
        var (storage, _, _) = try Support.open(fileSystem)
        let ballot = Ballot(round: 7, node: NodeID(2))
        storage.append(PersistBatch(id: 1, records: [.promised(ballot)], messagesAfterDurable: []))
        var id: UInt64 = 1
        for slot in 1...60 {
            id += 1
            storage.append(PersistBatch(id: id, records: [.accepted(slot: Slot(slot), ballot: ballot, value: .batch([
                Command(clientID: 1, sequence: UInt64(slot), payload: [UInt8](repeating: 7, count: 200))]))], messagesAfterDurable: []))
            try storage.sync()
        }
        let segmentsBefore = try fileSystem.listDirectory(Support.directory + "/wal").count
        XCTAssertGreaterThan(segmentsBefore, 3)
        id += 1
        storage.append(PersistBatch(id: id, records: [.snapshot(Snapshot(slot: 50, data: [1, 2, 3]))], messagesAfterDurable: []))
        XCTAssertEqual(try storage.beginSync(), id)
        XCTAssertEqual(try fileSystem.listDirectory(Support.directory + "/wal").count, segmentsBefore,
                       "nothing is deleted before the snapshot is durable")
        _ = try storage.completeSync()
        XCTAssertLessThan(try fileSystem.listDirectory(Support.directory + "/wal").count, segmentsBefore)
        fileSystem.crash()
        let reopened = try Support.open(fileSystem)
        storage = reopened.storage
        XCTAssertEqual(reopened.records.first, .snapshot(Snapshot(slot: 50, data: [1, 2, 3])))
        XCTAssertEqual(highestPromise(reopened.records), ballot, "the promise survives segment deletion")
        let slots = reopened.records.compactMap { record -> Slot? in
            if case .accepted(let slot, _, _) = record { return slot }
            return nil
        }
        XCTAssertEqual(slots, Array(51...60))
        var replica = try Replica(id: NodeID(1), configuration: Configuration(members: [NodeID(1), NodeID(2), NodeID(3)]),
                                  seed: 1, restoring: reopened.records)
        XCTAssertEqual(replica.promised, ballot)
        XCTAssertEqual(replica.step(.start, clock: .zero).apply.first, .snapshot(Snapshot(slot: 50, data: [1, 2, 3])))
    }

    func testSnapshotFilesCarryTheMembership() throws {
        let fileSystem = FaultInjectingFileSystem()
        let (storage, _, _) = try Support.open(fileSystem)
        let membership = RecordCodecFixtures.membership
        storage.append(PersistBatch(id: 1, records: [.membership(MembershipHistory(epochs: [membership.epochs[0]]))], messagesAfterDurable: []))
        storage.append(PersistBatch(id: 2, records: [.snapshot(Snapshot(slot: 12, data: [4, 5], membership: membership))], messagesAfterDurable: []))
        try storage.sync()
        fileSystem.crash()
        let reopened = try Support.open(fileSystem)
        XCTAssertEqual(reopened.records.first, .snapshot(Snapshot(slot: 12, data: [4, 5], membership: membership)))
        let replica = try Replica(id: NodeID(1), configuration: Configuration(members: [NodeID(1), NodeID(2), NodeID(3)]),
                                  seed: 1, restoring: reopened.records)
        XCTAssertEqual(replica.membershipHistory?.latest.learners, [NodeID(4)], "the snapshot's membership wins over the initial one")
    }

    func testOldSnapshotsArePrunedToTheRetainedCount() throws {
        let fileSystem = FaultInjectingFileSystem()
        let (storage, _, _) = try Support.open(fileSystem)
        for slot in 1...5 {
            storage.append(PersistBatch(id: UInt64(slot), records: [.snapshot(Snapshot(slot: Slot(slot * 10), data: [UInt8(slot)]))],
                                        messagesAfterDurable: []))
            try storage.sync()
        }
        XCTAssertEqual(try fileSystem.listDirectory(Support.directory + "/snap"),
                       [SnapshotStore.fileName(slot: 40), SnapshotStore.fileName(slot: 50)])
        fileSystem.crash()
        XCTAssertEqual(try Support.open(fileSystem).records, [.snapshot(Snapshot(slot: 50, data: [5]))])
    }

    func testAFailedSyncStopsTheStorageForGood() throws {
        let fileSystem = FaultInjectingFileSystem()
        let (storage, _, _) = try Support.open(fileSystem)
        let ballot = Ballot(round: 1, node: NodeID(1))
        storage.append(PersistBatch(id: 1, records: [.promised(ballot)], messagesAfterDurable: []))
        try storage.sync()
        storage.append(PersistBatch(id: 2, records: [.accepted(slot: 1, ballot: ballot, value: .noop)], messagesAfterDurable: []))
        fileSystem.failNextSync = true
        XCTAssertEqual(try storage.beginSync(), 2)
        XCTAssertThrowsError(try storage.completeSync()) { error in
            guard case StorageError.syncFailed = error else { return XCTFail("\(error)") }
        }
        XCTAssertNotNil(storage.failure)
        // Never retried: every later call refuses.
        storage.append(PersistBatch(id: 3, records: [.chosen(slot: 1, value: .noop)], messagesAfterDurable: []))
        XCTAssertThrowsError(try storage.beginSync()) { error in
            guard case StorageError.stopped = error else { return XCTFail("\(error)") }
        }
        XCTAssertEqual(storage.durableThrough, 1)
        fileSystem.crash()
        XCTAssertEqual(try Support.open(fileSystem).records, [.promised(ballot)])
    }

    func testAFullDiskStopsWritesWithoutDamagingWhatIsThere() throws {
        let fileSystem = FaultInjectingFileSystem()
        let (storage, _, _) = try Support.open(fileSystem, options: Support.options(segmentBytes: 4 << 10))
        let ballot = Ballot(round: 1, node: NodeID(1))
        var acknowledged: [DurableRecord] = [.promised(ballot)]
        storage.append(PersistBatch(id: 1, records: acknowledged, messagesAfterDurable: []))
        try storage.sync()
        fileSystem.capacityBytes = fileSystem.totalBytes + 1_000  // room for a little, not a new segment
        var id: UInt64 = 1
        var failure: StorageError?
        for slot in 1...100 where failure == nil {
            id += 1
            let record = DurableRecord.accepted(slot: Slot(slot), ballot: ballot, value: .batch([
                Command(clientID: 1, sequence: UInt64(slot), payload: [UInt8](repeating: 1, count: 300))]))
            storage.append(PersistBatch(id: id, records: [record], messagesAfterDurable: []))
            do {
                try storage.sync()
                acknowledged.append(record)
            } catch {
                failure = error
            }
        }
        guard case .noSpace = failure else { return XCTFail("expected no space, got \(String(describing: failure))") }
        XCTAssertTrue(String(describing: failure).contains("no space"))
        fileSystem.crash()
        fileSystem.capacityBytes = nil
        let recovered = try Support.open(fileSystem).records
        XCTAssertEqual(recovered.filter { !isPromise($0) }, acknowledged.filter { !isPromise($0) })
    }

    func testADataDirectoryOfAnotherClusterOrNodeIsRefused() throws {
        let fileSystem = FaultInjectingFileSystem()
        _ = try Support.open(fileSystem)
        XCTAssertThrowsError(try DurableStorage.open(fileSystem: fileSystem, directory: Support.directory,
                                                     identity: DataDirectoryIdentity(clusterID: 0xBAD, nodeID: 1))) { error in
            guard case StorageError.foreignDataDirectory = error else { return XCTFail("\(error)") }
            XCTAssertTrue(String(describing: error).contains("cluster"))
        }
        XCTAssertThrowsError(try DurableStorage.open(fileSystem: fileSystem, directory: Support.directory,
                                                     identity: DataDirectoryIdentity(clusterID: 0xC0FFEE, nodeID: 2))) { error in
            guard case StorageError.foreignDataDirectory = error else { return XCTFail("\(error)") }
        }
    }

    func testAnIncompatibleFormatVersionIsRefused() throws {
        let fileSystem = FaultInjectingFileSystem()
        _ = try Support.open(fileSystem)
        var meta = Support.identity.encoded()
        meta[8] = 9
        let crc = CRC32C.checksum(meta[0..<24])
        meta.replaceSubrange(24..<28, with: (0..<4).map { UInt8(truncatingIfNeeded: crc >> (8 * UInt32($0))) })
        let file = try fileSystem.open(Support.directory + "/synod.meta", create: false)
        try file.write(meta, at: 0)
        try file.sync()
        file.close()
        XCTAssertThrowsError(try Support.open(fileSystem)) { error in
            XCTAssertEqual(error as? StorageError, .incompatibleVersion(path: Support.directory + "/synod.meta", found: 9, supported: 1))
        }
    }

    func testANonEmptyDirectoryWithoutIdentityIsRefused() throws {
        let fileSystem = FaultInjectingFileSystem()
        try fileSystem.makeDirectory(Support.directory)
        let file = try fileSystem.open(Support.directory + "/notes.txt", create: true)
        try file.write([1], at: 0)
        file.close()
        XCTAssertThrowsError(try Support.open(fileSystem)) { error in
            guard case StorageError.foreignDataDirectory = error else { return XCTFail("\(error)") }
        }
    }

    func testPermissionErrorsAreReported() {
        let fileSystem = FaultInjectingFileSystem()
        fileSystem.readOnly = true
        XCTAssertThrowsError(try Support.open(fileSystem)) { error in
            guard case StorageError.permissionDenied = error else { return XCTFail("\(error)") }
        }
    }

    private func isPromise(_ record: DurableRecord) -> Bool {
        if case .promised = record { return true }
        return false
    }

    private func highestPromise(_ records: [DurableRecord]) -> Ballot {
        records.reduce(Ballot.zero) { highest, record in
            switch record {
            case .promised(let ballot), .accepted(_, let ballot, _): return max(highest, ballot)
            default: return highest
            }
        }
    }
}
