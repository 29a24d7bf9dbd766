import Glibc
import SynodCore
import XCTest
@testable import SynodStore

final class FaultInjectingFileSystemTests: XCTestCase {
    private let directory = "/data"
    private var path: String { directory + "/f" }

    /// A file system with `/data/f` holding `content`, synced and with its name durable.
    private func makeDurableFile(_ content: [UInt8] = [1, 2, 3]) throws -> FaultInjectingFileSystem {
        let fileSystem = FaultInjectingFileSystem()
        try fileSystem.makeDirectory(directory)
        let file = try fileSystem.open(path, create: true)
        try file.write(content, at: 0)
        try file.sync()
        file.close()
        try fileSystem.syncDirectory(directory)
        return fileSystem
    }

    private func read(_ fileSystem: FaultInjectingFileSystem, _ path: String) throws -> [UInt8] {
        let file = try fileSystem.open(path, create: false)
        defer { file.close() }
        return try file.read(at: 0, count: Int(try file.size()))
    }

    private func assertThrows(_ expected: StorageError, file: StaticString = #filePath, line: UInt = #line,
                              _ body: () throws -> Void) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertEqual(error as? StorageError, expected, file: file, line: line)
        }
    }

    // MARK: What survives a crash

    func testAWriteWithoutSyncIsLostAtACrash() throws {
        let fileSystem = try makeDurableFile([1, 2, 3])
        let file = try fileSystem.open(path, create: false)
        try file.write([9, 9, 9, 9], at: 1)
        XCTAssertEqual(fileSystem.currentContent(of: path), [1, 9, 9, 9, 9])
        XCTAssertEqual(fileSystem.durableContent(of: path), [1, 2, 3])
        fileSystem.crash()
        XCTAssertEqual(try read(fileSystem, path), [1, 2, 3])
    }

    func testASyncedWriteSurvivesACrash() throws {
        let fileSystem = try makeDurableFile([1, 2, 3])
        let file = try fileSystem.open(path, create: false)
        try file.write([7], at: 5)
        try file.truncate(to: 7)
        try file.sync()
        try file.write([8], at: 0)  // after the sync: lost
        fileSystem.crash()
        XCTAssertEqual(try read(fileSystem, path), [1, 2, 3, 0, 0, 7, 0])
    }

    func testAFileWhoseDirectoryWasNotSyncedDisappears() throws {
        let fileSystem = try makeDurableFile()
        let file = try fileSystem.open(directory + "/new", create: true)
        try file.write([1], at: 0)
        try file.sync()  // the contents are durable, but not the name
        XCTAssertEqual(try fileSystem.listDirectory(directory), ["f", "new"])
        XCTAssertNil(fileSystem.durableContent(of: directory + "/new"))
        fileSystem.crash()
        XCTAssertFalse(fileSystem.exists(directory + "/new"))
        XCTAssertEqual(try fileSystem.listDirectory(directory), ["f"])
    }

    func testOnlyTheSyncedDirectorysEntriesBecomeDurable() throws {
        let fileSystem = FaultInjectingFileSystem()
        try fileSystem.makeDirectory("/a")
        try fileSystem.makeDirectory("/b")
        try fileSystem.open("/a/x", create: true).close()
        try fileSystem.open("/b/y", create: true).close()
        try fileSystem.syncDirectory("/a")
        fileSystem.crash()
        XCTAssertTrue(fileSystem.exists("/a/x"))
        XCTAssertFalse(fileSystem.exists("/b/y"))
        XCTAssertTrue(fileSystem.exists("/b"), "directories are durable at once")
    }

    func testARenameNotFollowedByADirectorySyncReverts() throws {
        let fileSystem = try makeDurableFile([1])
        let temporary = try fileSystem.open(directory + "/f.tmp", create: true)
        try temporary.write([2], at: 0)
        try temporary.sync()
        temporary.close()
        try fileSystem.syncDirectory(directory)
        try fileSystem.rename(directory + "/f.tmp", to: path)
        XCTAssertEqual(try read(fileSystem, path), [2])
        XCTAssertFalse(fileSystem.exists(directory + "/f.tmp"))
        fileSystem.crash()
        XCTAssertEqual(try read(fileSystem, path), [1])
        XCTAssertEqual(try read(fileSystem, directory + "/f.tmp"), [2])

        try fileSystem.rename(directory + "/f.tmp", to: path)
        try fileSystem.syncDirectory(directory)
        fileSystem.crash()
        XCTAssertEqual(try read(fileSystem, path), [2])
        XCTAssertEqual(try fileSystem.listDirectory(directory), ["f"])
    }

    func testARemoveNotFollowedByADirectorySyncReverts() throws {
        let fileSystem = try makeDurableFile([4, 5])
        try fileSystem.remove(path)
        XCTAssertFalse(fileSystem.exists(path))
        fileSystem.crash()
        XCTAssertEqual(try read(fileSystem, path), [4, 5])
        try fileSystem.remove(path)
        try fileSystem.syncDirectory(directory)
        fileSystem.crash()
        XCTAssertFalse(fileSystem.exists(path))
    }

    func testAnOpenHandleFollowsItsFileThroughARename() throws {
        let fileSystem = try makeDurableFile([1])
        let file = try fileSystem.open(path, create: false)
        try fileSystem.rename(path, to: directory + "/g")
        try file.write([2], at: 0)
        file.close()
        XCTAssertEqual(fileSystem.currentContent(of: directory + "/g"), [2])
        XCTAssertNil(fileSystem.currentContent(of: path))
    }

    func testHandlesAreDeadAfterACrash() throws {
        let fileSystem = try makeDurableFile()
        let file = try fileSystem.open(path, create: false)
        fileSystem.crash()
        let calls: [(StorageFile) throws -> Void] = [
            { _ = try $0.size() }, { _ = try $0.read(at: 0, count: 1) }, { try $0.write([1], at: 0) },
            { try $0.sync() }, { try $0.truncate(to: 0) }, { try $0.preallocate(10) },
        ]
        for call in calls {
            XCTAssertThrowsError(try call(file)) { error in
                guard case StorageError.stopped = error else { return XCTFail("\(error)") }
            }
        }
        file.close()  // harmless
        XCTAssertEqual(try read(fileSystem, path), [1, 2, 3], "a new handle works")
    }

    // MARK: Torn writes

    /// Every content the tearing model allows: the durable base plus the first k changes,
    /// the k-th possibly cut to a prefix of its bytes.
    private func allowedContents(base: [UInt8], changes: [FileChange]) -> [[UInt8]] {
        var results: [[UInt8]] = [base]
        var content = base
        for change in changes {
            if case .write(let offset, let bytes) = change {
                for cut in 0..<bytes.count {
                    var torn = content
                    FileChange.write(offset: offset, bytes: Array(bytes.prefix(cut))).apply(to: &torn)
                    results.append(torn)
                }
            }
            change.apply(to: &content)
            results.append(content)
        }
        return results
    }

    func testTearingLeavesOnlyAPrefixOfTheUnsyncedChangesInOrder() throws {
        let base: [UInt8] = Array(repeating: 0xAA, count: 6)
        let changes: [FileChange] = [
            .write(offset: 2, bytes: [1, 2, 3, 4, 5, 6]),  // overlaps and extends
            .write(offset: 0, bytes: [7, 8]),
            .truncate(size: 5),
            .write(offset: 9, bytes: [9, 10, 11]),  // past the end: a gap of zeros
            .extend(size: 20),
        ]
        let allowed = allowedContents(base: base, changes: changes)
        var fullLoss = 0, fullSurvival = 0, torn = 0
        for seed in UInt64(0)..<400 {
            let fileSystem = try makeDurableFile(base)
            let file = try fileSystem.open(path, create: false)
            for change in changes {
                switch change {
                case .write(let offset, let bytes): try file.write(bytes, at: UInt64(offset))
                case .truncate(let size): try file.truncate(to: UInt64(size))
                case .extend(let size): try file.preallocate(UInt64(size))
                }
            }
            let everything = try XCTUnwrap(fileSystem.currentContent(of: path))
            var random = SplitMix64(seed: seed)
            fileSystem.crash(random: &random, tearing: true)
            let survived = try read(fileSystem, path)
            XCTAssertTrue(allowed.contains(survived), "seed \(seed): \(survived) is not durable + a prefix")
            XCTAssertEqual(fileSystem.durableContent(of: path), survived)
            if survived == base { fullLoss += 1 }
            if survived == everything { fullSurvival += 1 }
            if !(survived == base || survived == everything) { torn += 1 }
        }
        XCTAssertGreaterThan(fullLoss, 0)
        XCTAssertGreaterThan(fullSurvival, 0)
        XCTAssertGreaterThan(torn, 0)
    }

    func testTearingIsDeterministicForAGivenSeed() throws {
        func run(seed: UInt64) throws -> [[UInt8]?] {
            let fileSystem = FaultInjectingFileSystem()
            try fileSystem.makeDirectory(directory)
            for name in ["c", "a", "b"] {
                let file = try fileSystem.open(directory + "/" + name, create: true)
                for round in 0..<5 { try file.write(Array(repeating: UInt8(round), count: 50), at: UInt64(round * 40)) }
            }
            try fileSystem.syncDirectory(directory)
            var random = SplitMix64(seed: seed)
            fileSystem.crash(random: &random, tearing: true)
            return ["a", "b", "c"].map { fileSystem.durableContent(of: directory + "/" + $0) }
        }
        for seed in UInt64(0)..<20 { XCTAssertEqual(try run(seed: seed), try run(seed: seed)) }
    }

    // MARK: Faults

    func testFailNextSyncThrowsAndTheDataIsLostAtTheNextCrash() throws {
        let fileSystem = try makeDurableFile([1])
        let file = try fileSystem.open(path, create: false)
        try file.write([2], at: 0)
        fileSystem.failNextSync = true
        assertThrows(.syncFailed(path: path, errno: EIO)) { try file.sync() }
        XCTAssertFalse(fileSystem.failNextSync, "only the next sync fails")
        XCTAssertEqual(try file.read(at: 0, count: 1), [2], "reads still see the data")
        try file.sync()  // "succeeds", as a retry on Linux would: the dropped pages stay lost
        fileSystem.crash()
        XCTAssertEqual(try read(fileSystem, path), [1])
    }

    func testSyncFailuresCanTargetAPath() throws {
        let fileSystem = try makeDurableFile()
        let other = try fileSystem.open(directory + "/other", create: true)
        let target = try fileSystem.open(path, create: false)
        fileSystem.syncFailurePathContains = "/f"
        fileSystem.failNextSync = true
        try other.sync()
        try fileSystem.syncDirectory(directory)
        assertThrows(.syncFailed(path: path, errno: EIO)) { try target.sync() }
        fileSystem.syncFailurePathContains = directory
        fileSystem.failNextSync = true
        assertThrows(.syncFailed(path: directory, errno: EIO)) { try fileSystem.syncDirectory(directory) }
    }

    func testAFullDiskRefusesGrowthAndChangesNothing() throws {
        let fileSystem = try makeDurableFile([1, 2, 3])
        fileSystem.capacityBytes = 10
        let file = try fileSystem.open(path, create: false)
        try file.write([4, 5, 6, 7, 8, 9, 10], at: 3)
        XCTAssertEqual(fileSystem.totalBytes, 10)
        let writes = fileSystem.writeCount
        assertThrows(.noSpace(path: path)) { try file.write([11], at: 10) }
        assertThrows(.noSpace(path: path)) { try file.preallocate(11) }
        let other = try fileSystem.open(directory + "/g", create: true)  // an empty file fits
        assertThrows(.noSpace(path: directory + "/g")) { try other.write([1], at: 0) }
        XCTAssertEqual(fileSystem.currentContent(of: path), Array(1...10))
        XCTAssertEqual(fileSystem.writeCount, writes)
        try file.write([0], at: 0)  // overwriting needs no space
        try file.truncate(to: 5)
        try other.write([1, 2, 3, 4, 5], at: 0)
        XCTAssertEqual(fileSystem.totalBytes, 10)
    }

    func testAReadOnlyDiskRefusesEveryChange() throws {
        let fileSystem = try makeDurableFile([1])
        let file = try fileSystem.open(path, create: false)
        fileSystem.readOnly = true
        assertThrows(.permissionDenied(path: path, operation: "write")) { try file.write([2], at: 0) }
        assertThrows(.permissionDenied(path: path, operation: "truncate")) { try file.truncate(to: 0) }
        assertThrows(.permissionDenied(path: path, operation: "preallocate")) { try file.preallocate(10) }
        assertThrows(.permissionDenied(path: "/data/g", operation: "create")) { _ = try fileSystem.open("/data/g", create: true) }
        assertThrows(.permissionDenied(path: path, operation: "remove")) { try fileSystem.remove(path) }
        assertThrows(.permissionDenied(path: path, operation: "rename to /data/g")) { try fileSystem.rename(path, to: "/data/g") }
        assertThrows(.permissionDenied(path: "/data/sub", operation: "create directory")) { try fileSystem.makeDirectory("/data/sub") }
        try fileSystem.makeDirectory(directory)  // exists already: nothing to change
        XCTAssertEqual(try read(fileSystem, path), [1], "reading still works")
        try file.sync()
        XCTAssertEqual(try fileSystem.listDirectory(directory), ["f"])
    }

    func testFlipBitChangesExactlyOneBit() throws {
        let content: [UInt8] = [0x00, 0xFF, 0x0F, 0x80]
        let fileSystem = try makeDurableFile(content)
        fileSystem.flipBit(path: path, byteOffset: 2, bit: 6)
        for copy in [fileSystem.durableContent(of: path), fileSystem.currentContent(of: path)] {
            let flipped = try XCTUnwrap(copy)
            let differingBits = zip(content, flipped).map { ($0 ^ $1).nonzeroBitCount }.reduce(0, +)
            XCTAssertEqual(differingBits, 1)
            XCTAssertEqual(flipped[2], 0x4F)
        }
        fileSystem.crash()
        XCTAssertEqual(try read(fileSystem, path), [0x00, 0xFF, 0x4F, 0x80])
    }

    // MARK: Namespace and counters

    func testNamespaceErrorsAndListing() throws {
        let fileSystem = FaultInjectingFileSystem()
        assertThrows(.notFound(path: "/x/f")) { _ = try fileSystem.open("/x/f", create: true) }
        try fileSystem.makeDirectory("/x/y/z")
        try fileSystem.makeDirectory("/x/y")
        assertThrows(.notFound(path: "/x/g")) { _ = try fileSystem.open("/x/g", create: false) }
        assertThrows(.notFound(path: "/x/g")) { try fileSystem.remove("/x/g") }
        assertThrows(.notFound(path: "/nope")) { _ = try fileSystem.listDirectory("/nope") }
        for name in ["b", "a", "c"] { try fileSystem.open("/x/" + name, create: true).close() }
        XCTAssertEqual(try fileSystem.listDirectory("/x"), ["a", "b", "c", "y"])
        XCTAssertEqual(try fileSystem.listDirectory("/"), ["x"])
        XCTAssertTrue(fileSystem.exists("/x/y/z"))
        XCTAssertThrowsError(try fileSystem.makeDirectory("/x/a/sub")) { error in
            guard case StorageError.io(_, _, ENOTDIR) = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try fileSystem.open("/x/y", create: true)) { error in
            guard case StorageError.io(_, _, EISDIR) = error else { return XCTFail("\(error)") }
        }
        fileSystem.crash()
        XCTAssertEqual(try fileSystem.listDirectory("/x"), ["y"], "directories survive, unsynced files do not")
    }

    func testCounters() throws {
        let fileSystem = try makeDurableFile([1, 2, 3])
        XCTAssertEqual([fileSystem.writeCount, fileSystem.bytesWritten, fileSystem.syncCount, fileSystem.directorySyncCount],
                       [1, 3, 1, 1])
        let file = try fileSystem.open(path, create: false)
        try file.write([1, 2], at: 0)
        try file.write([], at: 100)  // writes nothing, like pwrite of 0 bytes
        try file.sync()
        XCTAssertEqual([fileSystem.writeCount, fileSystem.bytesWritten, fileSystem.syncCount], [2, 5, 2])
        XCTAssertEqual(try file.size(), 3)
    }
}
