import Glibc

/// One file's contents, shared by every name that refers to it (like an inode): a rename
/// moves the name, and an open handle keeps writing to the same `FileNode` whatever it is
/// called now.
///
/// Invariant: `current` is `durable` with `unsynced` applied in order — except after an
/// injected sync failure, which drops `unsynced` (as Linux drops the dirty pages) while
/// reads still see `current`.
final class FileNode {
    /// What reads see.
    var current: [UInt8] = []
    /// What a crash without tearing leaves.
    var durable: [UInt8] = []
    /// Changes since the last `sync()`, oldest first. Replayed onto `durable` by `sync()`
    /// rather than copying `current`, so syncing a large preallocated file costs only what
    /// was written since.
    var unsynced: [FileChange] = []
    /// Handles opened since the last crash and not yet closed (the file takes space while
    /// one is open, even once its last name is removed).
    var openHandles = 0

    /// Makes every unsynced change durable.
    func sync() {
        for change in unsynced { change.apply(to: &durable) }
        unsynced.removeAll()
    }

    /// Power loss without tearing: everything unsynced is gone.
    func revert() {
        current = durable
        unsynced.removeAll()
    }

    /// Power loss with tearing: a random prefix of the unsynced changes (possibly none,
    /// possibly all) reached the disk in order, and the last of them, if a write, possibly
    /// only in part: either a prefix of its bytes, or any subset of its disk sectors
    /// (`sectorBytes`-aligned pieces of the file), a later sector on disk and an earlier one
    /// not, as a disk that reorders its writes leaves them.
    func tear(using random: inout some RandomNumberGenerator, sectorBytes: Int) {
        let applied = Int.random(in: 0...unsynced.count, using: &random)
        for (index, change) in unsynced.prefix(applied).enumerated() {
            if index == applied - 1, case .write(let offset, let bytes) = change, Bool.random(using: &random) {
                if Bool.random(using: &random) {
                    // Writes are never empty (see FaultInjectingFileSystem.write), so the range is not.
                    let landed = Int.random(in: 0..<bytes.count, using: &random)
                    FileChange.write(offset: offset, bytes: Array(bytes.prefix(landed))).apply(to: &durable)
                } else {
                    for piece in FaultInjectingFileSystem.sectors(offset: offset, count: bytes.count, sectorBytes: sectorBytes)
                    where Bool.random(using: &random) {
                        FileChange.write(offset: piece.lowerBound, bytes: Array(bytes[(piece.lowerBound - offset)..<(piece.upperBound - offset)]))
                            .apply(to: &durable)
                    }
                }
            } else {
                change.apply(to: &durable)
            }
        }
        revert()
    }
}

/// One recorded change to a file's contents, replayable onto another copy of them.
enum FileChange {
    /// Bytes written at an offset; the gap before it, if past the end, reads as zeros.
    case write(offset: Int, bytes: [UInt8])
    /// The size set exactly (ftruncate).
    case truncate(size: Int)
    /// The size raised to at least this (posix_fallocate never shrinks).
    case extend(size: Int)

    /// The size `content` would have after this change (to check capacity first).
    func resultingSize(from size: Int) -> Int {
        switch self {
        case .write(let offset, let bytes): return bytes.isEmpty ? size : max(size, offset + bytes.count)
        case .truncate(let newSize): return newSize
        case .extend(let newSize): return max(size, newSize)
        }
    }

    func apply(to content: inout [UInt8]) {
        let newSize = resultingSize(from: content.count)
        if newSize > content.count {
            // An Array of zeros appends by memcpy; `repeatElement` goes byte by byte in debug
            // builds, which made preallocating segments dominate crash tests.
            content.append(contentsOf: [UInt8](repeating: 0, count: newSize - content.count))
        } else if newSize < content.count {
            content.removeLast(content.count - newSize)
        }
        if case .write(let offset, let bytes) = self, !bytes.isEmpty {
            content.withUnsafeMutableBufferPointer { buffer in
                // In bounds: the resize above made the content at least offset + bytes.count long.
                _ = UnsafeMutableBufferPointer(rebasing: buffer[offset...]).update(fromContentsOf: bytes)
            }
        }
    }
}

/// A handle on a `FileNode` opened through a `FaultInjectingFileSystem`. It works until it
/// is closed (later use is a programmer error and traps) or until the file system crashes
/// (later use throws `.stopped`, as a process would not survive to make it).
final class FaultInjectingFile: StorageFile {
    private let fileSystem: FaultInjectingFileSystem
    private let node: FileNode
    private let path: String
    /// The file system's crash count when this was opened; a later crash kills the handle.
    private let epoch: Int
    private var isClosed = false

    init(fileSystem: FaultInjectingFileSystem, node: FileNode, path: String, epoch: Int) {
        self.fileSystem = fileSystem
        self.node = node
        self.path = path
        self.epoch = epoch
    }

    /// The node, if this handle may still be used.
    private func liveNode() throws(StorageError) -> FileNode {
        precondition(!isClosed, "\(path) used after close()")
        guard epoch == fileSystem.crashCount else {
            throw .stopped(reason: "\(path) was open when the simulated machine crashed")
        }
        return node
    }

    func size() throws(StorageError) -> UInt64 {
        UInt64(try liveNode().current.count)
    }

    func read(at offset: UInt64, count: Int) throws(StorageError) -> [UInt8] {
        let content = try liveNode().current
        guard count >= 0 else { throw .io(path: path, operation: "read \(count) bytes", errno: EINVAL) }
        guard offset < UInt64(content.count) else { return [] }
        let start = Int(offset)  // fits: below content.count
        return Array(content[start..<(start + min(count, content.count - start))])
    }

    func write(_ bytes: [UInt8], at offset: UInt64) throws(StorageError) {
        let node = try liveNode()
        guard let start = Int(exactly: offset), !start.addingReportingOverflow(bytes.count).overflow else {
            throw .io(path: path, operation: "write at \(offset)", errno: EFBIG)
        }
        try fileSystem.change(node, .write(offset: start, bytes: bytes), path: path, operation: "write")
    }

    func sync() throws(StorageError) {
        try fileSystem.sync(try liveNode(), path: path)
    }

    func truncate(to size: UInt64) throws(StorageError) {
        let node = try liveNode()
        guard let newSize = Int(exactly: size) else {
            throw .io(path: path, operation: "truncate to \(size)", errno: EFBIG)
        }
        try fileSystem.change(node, .truncate(size: newSize), path: path, operation: "truncate")
    }

    func preallocate(_ size: UInt64) throws(StorageError) {
        let node = try liveNode()
        guard let newSize = Int(exactly: size) else {
            throw .io(path: path, operation: "preallocate \(size)", errno: EFBIG)
        }
        guard newSize > node.current.count else { return }
        try fileSystem.change(node, .extend(size: newSize), path: path, operation: "preallocate")
    }

    func close() {
        guard !isClosed else { return }
        isClosed = true
        if epoch == fileSystem.crashCount { fileSystem.release(node) }
    }
}
