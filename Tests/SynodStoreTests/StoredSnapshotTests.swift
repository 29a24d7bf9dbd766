import Foundation
import Glibc
import SynodCore
@testable import SynodStore
import XCTest

/// Once a snapshot is durable, storage hands it over as bytes read from its file
/// (`takeStoredSnapshot`), so the node need not keep them in memory: the reads return the
/// bytes that were saved, still work after a newer snapshot pruned the file from the
/// directory (a peer may be fetching the older one), and fail, never lie, after a crash.
final class StoredSnapshotTests: XCTestCase {
    private typealias Support = StorageTestSupport

    private func data(_ seed: UInt8, count: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) }
    }

    private func save(_ storage: DurableStorage, id: UInt64, slot: Slot, data: [UInt8]) throws {
        storage.append(PersistBatch(id: id, records: [.snapshot(Snapshot(slot: slot, data: data))], messagesAfterDurable: []))
        try storage.sync()
    }

    func testTheStoredBytesAreTheSavedOnesAndOutliveThePrune() throws {
        let fileSystem = FaultInjectingFileSystem()
        var options = Support.options()
        options.snapshotsRetained = 1
        let (storage, _, _) = try Support.open(fileSystem, options: options)
        XCTAssertNil(storage.takeStoredSnapshot(), "nothing durable yet")
        let first = data(1, count: 10_000)
        try save(storage, id: 1, slot: 10, data: first)
        let stored = try XCTUnwrap(storage.takeStoredSnapshot())
        XCTAssertNil(storage.takeStoredSnapshot(), "handed over once")
        XCTAssertEqual(stored.slot, 10)
        XCTAssertFalse(stored.bytes.isInMemory)
        XCTAssertEqual(stored.bytes.count, first.count)
        XCTAssertEqual(stored.bytes.readAll(), first)
        XCTAssertEqual(stored.bytes.read(9_990..<20_000), Array(first[9_990...]))
        XCTAssertEqual(Snapshot.checksum(of: stored.bytes), Snapshot.checksum(of: first))

        // A newer snapshot prunes slot 10's file; the open handle still reads it.
        try save(storage, id: 2, slot: 20, data: data(2, count: 500))
        XCTAssertEqual(try fileSystem.listDirectory(Support.directory + "/snap"), [SnapshotStore.fileName(slot: 20)])
        XCTAssertEqual(stored.bytes.readAll(), first)
        let newer = try XCTUnwrap(storage.takeStoredSnapshot())
        XCTAssertEqual(newer.slot, 20)

        // After a crash the handles are dead: reads fail (nil) instead of returning anything.
        fileSystem.crash()
        XCTAssertNil(newer.bytes.read(0..<10))
        XCTAssertNil(Snapshot.checksum(of: newer.bytes))

        // Reopened storage hands over the snapshot it found.
        let (reopened, records, _) = try Support.open(fileSystem, options: options)
        XCTAssertEqual(records.first, .snapshot(Snapshot(slot: 20, data: data(2, count: 500))))
        let found = try XCTUnwrap(reopened.takeStoredSnapshot())
        XCTAssertEqual(found.slot, 20)
        XCTAssertEqual(found.bytes.readAll(), data(2, count: 500))
    }

    /// A header that does not check out is not handed over (the bytes then stay in memory).
    func testADamagedHeaderIsRefused() throws {
        let fileSystem = FaultInjectingFileSystem()
        let (storage, _, _) = try Support.open(fileSystem)
        try save(storage, id: 1, slot: 10, data: data(3, count: 100))
        _ = storage.takeStoredSnapshot()
        let path = Support.directory + "/snap/" + SnapshotStore.fileName(slot: 10)
        fileSystem.flipBit(path: path, byteOffset: 20, bit: 1)
        XCTAssertThrowsError(try storage.snapshots.openStored(slot: 10)) { error in
            guard case .corruption? = error as? StorageError else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try storage.snapshots.openStored(slot: 11))
    }

    /// The same on a real file system: the file is unlinked by the prune and still read
    /// through the descriptor the handle holds.
    func testOnARealFileSystemTheUnlinkedFileIsStillRead() throws {
        var template = Array("/tmp/synod-stored-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { buffer in buffer.baseAddress.flatMap { mkdtemp($0) } }
        let directory = try XCTUnwrap(made.map { String(cString: $0) })
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var options = StorageOptions()
        options.snapshotsRetained = 1
        let (storage, _, _) = try DurableStorage.open(fileSystem: POSIXFileSystem(), directory: directory + "/data",
                                                      identity: DataDirectoryIdentity(clusterID: 7, nodeID: 1), options: options)
        let first = data(4, count: 3 << 20)
        try save(storage, id: 1, slot: 5, data: first)
        let stored = try XCTUnwrap(storage.takeStoredSnapshot())
        try save(storage, id: 2, slot: 6, data: [1])
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/data/snap/" + SnapshotStore.fileName(slot: 5)))
        XCTAssertEqual(stored.bytes.read((1 << 20)..<(2 << 20)), Array(first[(1 << 20)..<(2 << 20)]))
        XCTAssertEqual(stored.bytes.readAll(), first)
    }
}
