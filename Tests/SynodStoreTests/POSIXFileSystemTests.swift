import Foundation
import Glibc
import XCTest
@testable import SynodStore

/// Runs `POSIXFileSystem` against a real temporary directory (made by mkdtemp under /tmp,
/// removed after each test).
final class POSIXFileSystemTests: XCTestCase {
    private var directory = ""
    private let fileSystem = POSIXFileSystem()

    override func setUpWithError() throws {
        var template = Array("/tmp/synod-posixfs-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { buffer in
            buffer.baseAddress.flatMap { mkdtemp($0) }
        }
        guard let made else { throw XCTSkip("mkdtemp failed: errno \(errno)") }
        directory = String(cString: made)
    }

    override func tearDownWithError() throws {
        guard !directory.isEmpty else { return }
        // Make any directory a test made read-only writable again, or removal would fail.
        _ = chmod(directory + "/locked", 0o755)
        try FileManager.default.removeItem(atPath: directory)
    }

    private func path(_ name: String) -> String { directory + "/" + name }

    private func assertThrows(_ expected: StorageError, file: StaticString = #filePath, line: UInt = #line,
                              _ body: () throws -> Void) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertEqual(error as? StorageError, expected, file: file, line: line)
        }
    }

    func testWriteReadSizeAndSync() throws {
        let file = try fileSystem.open(path("a"), create: true)
        defer { file.close() }
        XCTAssertEqual(try file.size(), 0)
        try file.write([1, 2, 3, 4], at: 0)
        try file.write([9, 9], at: 6)  // past the end: the gap reads as zeros
        try file.sync()
        XCTAssertEqual(try file.size(), 8)
        XCTAssertEqual(try file.read(at: 0, count: 8), [1, 2, 3, 4, 0, 0, 9, 9])
        XCTAssertEqual(try file.read(at: 2, count: 100), [3, 4, 0, 0, 9, 9], "short read at the end")
        XCTAssertEqual(try file.read(at: 50, count: 4), [])
        XCTAssertEqual(try file.read(at: 0, count: 0), [])
    }

    func testDataIsThereAfterReopening() throws {
        let file = try fileSystem.open(path("a"), create: true)
        let payload = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try file.write(payload, at: 0)
        try file.sync()
        file.close()
        file.close()  // a second close does nothing
        let again = try fileSystem.open(path("a"), create: false)
        defer { again.close() }
        XCTAssertEqual(try again.read(at: 0, count: payload.count), payload)
    }

    func testAHugeReadCountIsClampedToTheFile() throws {
        let file = try fileSystem.open(path("a"), create: true)
        defer { file.close() }
        try file.write([7, 7, 7], at: 0)
        // A damaged length field must not make us allocate a gigabyte.
        XCTAssertEqual(try file.read(at: 1, count: 1 << 30), [7, 7])
        XCTAssertEqual(try file.read(at: 10, count: 1 << 30), [])
        assertThrows(.io(path: path("a"), operation: "read -1 bytes", errno: EINVAL)) {
            _ = try file.read(at: 0, count: -1)
        }
        assertThrows(.io(path: path("a"), operation: "write at \(UInt64.max)", errno: EFBIG)) {
            try file.write([1], at: .max)
        }
    }

    func testTruncateShrinksAndGrows() throws {
        let file = try fileSystem.open(path("a"), create: true)
        defer { file.close() }
        try file.write([1, 2, 3, 4, 5], at: 0)
        try file.truncate(to: 2)
        XCTAssertEqual(try file.size(), 2)
        try file.truncate(to: 4)
        XCTAssertEqual(try file.read(at: 0, count: 10), [1, 2, 0, 0])
    }

    func testPreallocateGrowsWithZerosAndNeverShrinks() throws {
        let file = try fileSystem.open(path("a"), create: true)
        defer { file.close() }
        try file.write([5, 6], at: 0)
        try file.preallocate(4096)
        XCTAssertEqual(try file.size(), 4096)
        let content = try file.read(at: 0, count: 4096)
        XCTAssertEqual(Array(content.prefix(2)), [5, 6])
        XCTAssertTrue(content.dropFirst(2).allSatisfy { $0 == 0 })
        try file.preallocate(100)
        try file.preallocate(0)
        XCTAssertEqual(try file.size(), 4096)
        try file.sync()
    }

    func testRenameReplacesTheTarget() throws {
        for (name, byte) in [("old", UInt8(1)), ("new", UInt8(2))] {
            let file = try fileSystem.open(path(name), create: true)
            try file.write([byte], at: 0)
            file.close()
        }
        try fileSystem.rename(path("old"), to: path("new"))
        try fileSystem.syncDirectory(directory)
        XCTAssertFalse(fileSystem.exists(path("old")))
        let file = try fileSystem.open(path("new"), create: false)
        defer { file.close() }
        XCTAssertEqual(try file.read(at: 0, count: 10), [1])
        assertThrows(.notFound(path: path("old"))) { try fileSystem.rename(path("old"), to: path("x")) }
    }

    func testRemove() throws {
        try fileSystem.open(path("a"), create: true).close()
        XCTAssertTrue(fileSystem.exists(path("a")))
        try fileSystem.remove(path("a"))
        XCTAssertFalse(fileSystem.exists(path("a")))
        assertThrows(.notFound(path: path("a"))) { try fileSystem.remove(path("a")) }
    }

    func testListDirectoryIsSortedAndSkipsDotEntries() throws {
        for name in ["c", "a", "b10", "b2"] { try fileSystem.open(path(name), create: true).close() }
        try fileSystem.makeDirectory(path("d"))
        XCTAssertEqual(try fileSystem.listDirectory(directory), ["a", "b10", "b2", "c", "d"])
        XCTAssertEqual(try fileSystem.listDirectory(path("d")), [])
        assertThrows(.notFound(path: path("missing"))) { _ = try fileSystem.listDirectory(path("missing")) }
    }

    func testMakeDirectoryCreatesParentsAndIsIdempotent() throws {
        let nested = path("x/y/z")
        try fileSystem.makeDirectory(nested)
        try fileSystem.makeDirectory(nested)
        try fileSystem.makeDirectory(path("x"))
        XCTAssertTrue(fileSystem.exists(nested))
        try fileSystem.open(nested + "/f", create: true).close()
        XCTAssertEqual(try fileSystem.listDirectory(path("x")), ["y"])
        // A file in the way is an error, not a silent success.
        try fileSystem.open(path("file"), create: true).close()
        XCTAssertThrowsError(try fileSystem.makeDirectory(path("file"))) { error in
            guard case StorageError.io(_, _, ENOTDIR) = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try fileSystem.makeDirectory(path("file/sub"))) { error in
            guard case StorageError.io(_, _, ENOTDIR) = error else { return XCTFail("\(error)") }
        }
    }

    func testSyncDirectory() throws {
        try fileSystem.makeDirectory(path("d"))
        try fileSystem.open(path("d/f"), create: true).close()
        try fileSystem.syncDirectory(path("d"))
        try fileSystem.syncDirectory(directory)
        assertThrows(.notFound(path: path("missing"))) { try fileSystem.syncDirectory(path("missing")) }
        XCTAssertThrowsError(try fileSystem.syncDirectory(path("d/f"))) { error in
            guard case StorageError.io(_, _, ENOTDIR) = error else { return XCTFail("\(error)") }
        }
    }

    func testOpeningAMissingFileWithoutCreateIsNotFound() {
        assertThrows(.notFound(path: path("missing"))) { _ = try fileSystem.open(path("missing"), create: false) }
        assertThrows(.notFound(path: path("no/such/dir"))) { _ = try fileSystem.open(path("no/such/dir"), create: true) }
        XCTAssertFalse(fileSystem.exists(path("missing")))
    }

    func testAPathWithANulByteIsRefused() {
        assertThrows(.io(path: path("a\0b"), operation: "open", errno: EINVAL)) {
            _ = try fileSystem.open(path("a\0b"), create: true)
        }
        XCTAssertFalse(fileSystem.exists(path("a\0b")))
    }

    func testWritingIntoAReadOnlyDirectoryIsPermissionDenied() throws {
        // Root ignores permission bits, and CI runs as root.
        if geteuid() == 0 { throw XCTSkip("running as root: permission bits are not enforced") }
        let locked = path("locked")
        try fileSystem.makeDirectory(locked)
        XCTAssertEqual(chmod(locked, 0o555), 0)
        assertThrows(.permissionDenied(path: locked + "/f", operation: "open")) {
            _ = try fileSystem.open(locked + "/f", create: true)
        }
        assertThrows(.permissionDenied(path: locked + "/d", operation: "create directory")) {
            try fileSystem.makeDirectory(locked + "/d")
        }
    }

    /// /dev/full fails every write with ENOSPC and, having no fsync, every sync with EINVAL:
    /// the only portable way to see those mappings on a real descriptor.
    func testNoSpaceAndSyncFailureOnDevFull() throws {
        guard fileSystem.exists("/dev/full") else { throw XCTSkip("no /dev/full") }
        let file = try fileSystem.open("/dev/full", create: false)
        defer { file.close() }
        assertThrows(.noSpace(path: "/dev/full")) { try file.write([1, 2, 3], at: 0) }
        XCTAssertThrowsError(try file.sync()) { error in
            guard case StorageError.syncFailed(path: "/dev/full", _) = error else { return XCTFail("\(error)") }
        }
    }
}
