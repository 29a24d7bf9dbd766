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

    /// A new directory under /tmp, for the tests on the real file system.
    private func temporaryDirectory() throws -> String {
        var template = Array("/tmp/synod-stored-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { buffer in buffer.baseAddress.flatMap { mkdtemp($0) } }
        return try XCTUnwrap(made.map { String(cString: $0) })
    }

    private func openOnDisk(_ directory: String, options: StorageOptions = StorageOptions()) throws -> DurableStorage {
        try DurableStorage.open(fileSystem: POSIXFileSystem(), directory: directory + "/data",
                                identity: DataDirectoryIdentity(clusterID: 7, nodeID: 1), options: options).storage
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
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var options = StorageOptions()
        options.snapshotsRetained = 1
        let storage = try openOnDisk(directory, options: options)
        let first = data(4, count: 3 << 20)
        try save(storage, id: 1, slot: 5, data: first)
        let stored = try XCTUnwrap(storage.takeStoredSnapshot())
        try save(storage, id: 2, slot: 6, data: [1])
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/data/snap/" + SnapshotStore.fileName(slot: 5)))
        XCTAssertEqual(stored.bytes.read((1 << 20)..<(2 << 20)), Array(first[(1 << 20)..<(2 << 20)]))
        XCTAssertEqual(stored.bytes.readAll(), first)
    }

    // MARK: Spooling a received snapshot

    /// Chunks go to a temporary file; saving the installed snapshot completes that same file
    /// and renames it into place, so it loads like any snapshot (data and membership).
    func testASpooledSnapshotBecomesTheSnapshotFile() throws {
        let fileSystem = FaultInjectingFileSystem()
        let (storage, _, _) = try Support.open(fileSystem)
        let payload = data(5, count: 70_000)
        let spool = try XCTUnwrap(storage.snapshotSpooling.makeSpool(slot: 42))
        for start in stride(from: 0, to: payload.count, by: 16_384) {
            XCTAssertTrue(spool.append(Array(payload[start..<min(payload.count, start + 16_384)])))
        }
        let bytes = try XCTUnwrap(spool.finish())
        XCTAssertFalse(bytes.isInMemory)
        XCTAssertEqual(bytes.readAll(), payload)
        XCTAssertFalse(spool.append([1]), "nothing after finish")
        XCTAssertEqual(try fileSystem.listDirectory(Support.directory + "/snap").filter { $0.hasSuffix(".tmp") }.count, 1)

        let membership = MembershipHistory(initial: Configuration(members: [NodeID(1), NodeID(2)]).initialMembership)
        storage.append(PersistBatch(id: 1, records: [.snapshot(Snapshot(slot: 42, bytes: bytes, membership: membership))],
                                    messagesAfterDurable: []))
        try storage.sync()
        XCTAssertEqual(try fileSystem.listDirectory(Support.directory + "/snap"), [SnapshotStore.fileName(slot: 42)])
        XCTAssertEqual(bytes.readAll(), payload, "the spool still reads its file after the rename")
        fileSystem.crash()
        let (_, records, _) = try Support.open(fileSystem)
        XCTAssertEqual(records.first, .snapshot(Snapshot(slot: 42, data: payload, membership: membership)))
    }

    /// A transfer abandoned before it was installed removes its temporary file; a crash
    /// leaves one that recovery removes.
    func testAnAbandonedSpoolLeavesNoFile() throws {
        let fileSystem = FaultInjectingFileSystem()
        let (storage, _, _) = try Support.open(fileSystem)
        do {
            let spool = try XCTUnwrap(storage.snapshotSpooling.makeSpool(slot: 7))
            XCTAssertTrue(spool.append([1, 2, 3]))
        }
        XCTAssertEqual(try fileSystem.listDirectory(Support.directory + "/snap"), [])

        let spool = try XCTUnwrap(storage.snapshotSpooling.makeSpool(slot: 8))
        XCTAssertTrue(spool.append([1, 2, 3]))
        try fileSystem.syncDirectory(Support.directory + "/snap")
        fileSystem.crash()
        let (_, _, report) = try Support.open(fileSystem)
        XCTAssertEqual(report.removedTemporaryFiles.count, 1)
        XCTAssertEqual(try fileSystem.listDirectory(Support.directory + "/snap"), [])
        _ = spool
    }

    /// A chunk that cannot be written (a full disk) fails the spool for good: no later chunk
    /// is accepted and `finish` gives nothing, so a snapshot with a hole is never installed.
    func testAFailedWriteFailsTheSpool() throws {
        let fileSystem = FaultInjectingFileSystem()
        let (storage, _, _) = try Support.open(fileSystem)
        let spool = try XCTUnwrap(storage.snapshotSpooling.makeSpool(slot: 9))
        XCTAssertTrue(spool.append(data(6, count: 1_000)))
        fileSystem.capacityBytes = fileSystem.totalBytes + 10
        XCTAssertFalse(spool.append(data(7, count: 100_000)))
        fileSystem.capacityBytes = nil
        XCTAssertFalse(spool.append(data(8, count: 10)))
        XCTAssertNil(spool.finish())
    }

    /// On a real file system the bytes are decoded from a mapping of the file, whose pages
    /// are dropped behind the reader: what is read before and after dropping is the file.
    func testOnARealFileSystemTheSnapshotIsReadThroughAMapping() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let storage = try openOnDisk(directory)
        let payload = data(9, count: (1 << 20) + 12_345)
        let spool = try XCTUnwrap(storage.snapshotSpooling.makeSpool(slot: 3))
        XCTAssertTrue(spool.append(payload))
        let bytes = try XCTUnwrap(spool.finish())
        let seen = bytes.withContiguousBytes { raw, doneBelow -> [UInt8] in
            let head = Array(raw[0..<100_000])
            doneBelow(600_000)
            return head + Array(raw[100_000...])
        }
        XCTAssertEqual(seen, payload)
        try save(storage, id: 1, slot: 4, data: [0])
        let stored = try XCTUnwrap(storage.takeStoredSnapshot())
        XCTAssertEqual(stored.bytes.withContiguousBytes { raw, _ in Array(raw) }, [0])
    }

    /// An encoder's spool hands each piece to the disk as it goes and waits for the one before
    /// (`pace`), so at most two pieces of dirty pages stay behind it; the data are unchanged.
    func testAPacedSpoolWritesBackEachPieceAndWaitsForThePreviousOne() throws {
        let fileSystem = FaultInjectingFileSystem()
        let directory = "/pace"
        try fileSystem.makeDirectory(directory)
        let recording = WriteBackRecordingFile(base: try fileSystem.open(directory + "/s.tmp", create: true))
        let spool = SnapshotSpoolFile(fileSystem: fileSystem, file: recording, directory: directory,
                                      path: directory + "/s.tmp", slot: 5)
        let pieces = [data(1, count: 1_000), data(2, count: 3_000), data(3, count: 500)]
        for piece in pieces {
            XCTAssertTrue(spool.append(piece))
            spool.pace()
        }
        let header = UInt64(SnapshotStore.headerBytes)
        XCTAssertEqual(recording.calls.map { "\($0.offset - header)+\($0.count)\($0.wait ? " wait" : "")" },
                       ["0+1000", "0+1000 wait", "1000+3000", "1000+3000 wait", "4000+500"])
        let bytes = try XCTUnwrap(spool.finish())
        XCTAssertEqual(bytes.readAll(), pieces.flatMap { $0 })
    }

    /// On a real file system the writeback calls keep the bytes intact.
    func testOnARealFileSystemAPacedSpoolReadsBackWhole() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let storage = try openOnDisk(directory)
        let spool = try XCTUnwrap(storage.snapshotSpooling.makeSpool(slot: 3))
        var payload: [UInt8] = []
        for index in 0..<6 {
            let piece = data(UInt8(index), count: (1 << 20) + index * 777)
            payload += piece
            XCTAssertTrue(spool.append(piece))
            spool.pace()
        }
        XCTAssertEqual(try XCTUnwrap(spool.finish()).readAll(), payload)
    }
}

/// Passes everything to `base` and records the writeback requests.
private final class WriteBackRecordingFile: StorageFile {
    let base: any StorageFile
    var calls: [(offset: UInt64, count: Int, wait: Bool)] = []
    init(base: any StorageFile) { self.base = base }
    func size() throws(StorageError) -> UInt64 { try base.size() }
    func read(at offset: UInt64, count: Int) throws(StorageError) -> [UInt8] { try base.read(at: offset, count: count) }
    func write(_ bytes: [UInt8], at offset: UInt64) throws(StorageError) { try base.write(bytes, at: offset) }
    func sync() throws(StorageError) { try base.sync() }
    func truncate(to size: UInt64) throws(StorageError) { try base.truncate(to: size) }
    func preallocate(_ size: UInt64) throws(StorageError) { try base.preallocate(size) }
    func close() { base.close() }
    func writeBack(offset: UInt64, count: Int, wait: Bool) { calls.append((offset, count, wait)) }
}
