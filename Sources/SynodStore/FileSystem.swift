/// The file operations storage needs, small enough that the real file system
/// (`POSIXFileSystem`) and the simulator's fault-injecting disk (`FaultInjectingFileSystem`)
/// implement the same interface, so recovery runs through the same code under test and in
/// production.
///
/// Paths are plain strings joined with "/". Every operation that fails throws a
/// `StorageError` naming the path and what failed; none retries.
public protocol FileSystem: AnyObject {
    /// Creates `path` and any missing parents (like `mkdir -p`); an existing directory is fine.
    func makeDirectory(_ path: String) throws(StorageError)
    /// The names (not paths) of the entries of directory `path`, sorted.
    func listDirectory(_ path: String) throws(StorageError) -> [String]
    /// Whether a file or directory exists at `path`.
    func exists(_ path: String) -> Bool
    /// Opens the regular file at `path` for reading and writing, creating it (empty) if
    /// `create` is true and it does not exist.
    func open(_ path: String, create: Bool) throws(StorageError) -> any StorageFile
    /// Atomically replaces `to` by `from` (rename(2)); durable only after `syncDirectory`.
    func rename(_ from: String, to: String) throws(StorageError)
    /// Removes the file at `path`; durable only after `syncDirectory`.
    func remove(_ path: String) throws(StorageError)
    /// Makes the directory's entries (creations, renames, removals) durable (fsync on the directory).
    func syncDirectory(_ path: String) throws(StorageError)
}

/// An open regular file.
///
/// - Important: `write` data survives a crash only after a successful `sync()`. A failed
///   `sync()` must never be retried: the kernel may already have dropped the dirty pages, so
///   the caller stops (see DESIGN.md §7).
public protocol StorageFile: AnyObject {
    /// The file's current size in bytes (including preallocated space).
    func size() throws(StorageError) -> UInt64
    /// Reads up to `count` bytes at `offset` (fewer at the end of the file).
    func read(at offset: UInt64, count: Int) throws(StorageError) -> [UInt8]
    /// Writes all of `bytes` at `offset`, extending the file if needed.
    func write(_ bytes: [UInt8], at offset: UInt64) throws(StorageError)
    /// Makes written data durable (fdatasync).
    func sync() throws(StorageError)
    /// Sets the file's size, dropping or zero-filling the tail.
    func truncate(to size: UInt64) throws(StorageError)
    /// Ensures space for `size` bytes is allocated (zero-filled), so later writes within it
    /// cannot fail for lack of space and need no metadata update to be durable.
    func preallocate(_ size: UInt64) throws(StorageError)
    /// Closes the file; further use is a programming error.
    func close()
    /// Maps `count` bytes at `offset` read-only, or nil when this file system cannot (the
    /// caller reads instead). The mapping stays valid after `close()`.
    func mapForReading(offset: UInt64, count: Int) -> MappedFileRegion?
    /// Starts writing `count` bytes at `offset` back to the disk and, with `wait`, waits until
    /// they are written. Not a sync: nothing is promised durable (no metadata, no cache
    /// flush). Large writes call it as they go, so their dirty pages never pile up for one
    /// long flush that other files' syncs would queue behind. No effect where unsupported.
    func writeBack(offset: UInt64, count: Int, wait: Bool)
}

extension StorageFile {
    public func mapForReading(offset: UInt64, count: Int) -> MappedFileRegion? { nil }
    public func writeBack(offset: UInt64, count: Int, wait: Bool) {}
}

/// Everything storage can fail with. Each case names the file and says what failed, so an
/// operator can act on one line.
public enum StorageError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The device is full (ENOSPC): the node stops accepting writes; nothing on disk is damaged.
    case noSpace(path: String)
    /// The process may not read or write `path` (EACCES, EPERM, EROFS).
    case permissionDenied(path: String, operation: String)
    /// fsync/fdatasync failed: the node must stop; it is never retried.
    case syncFailed(path: String, errno: Int32)
    /// Any other I/O failure.
    case io(path: String, operation: String, errno: Int32)
    /// A file or directory that must exist does not.
    case notFound(path: String)
    /// A record or file is damaged where valid data must be (not a torn tail): the node
    /// refuses to start. `offset` is the byte offset in `path`.
    case corruption(path: String, offset: UInt64, reason: String)
    /// The data directory belongs to another cluster or node.
    case foreignDataDirectory(path: String, reason: String)
    /// The data directory was written by an incompatible format version.
    case incompatibleVersion(path: String, found: UInt8, supported: UInt8)
    /// The storage was stopped by an earlier failure and accepts nothing more.
    case stopped(reason: String)

    public var description: String {
        switch self {
        case .noSpace(let path):
            return "no space left on device writing \(path): the node stopped accepting writes; free space and restart it"
        case .permissionDenied(let path, let operation):
            return "permission denied: cannot \(operation) \(path)"
        case .syncFailed(let path, let errno):
            return "fsync failed on \(path) (errno \(errno)): stopping; the node must not continue with data the kernel may have dropped"
        case .io(let path, let operation, let errno):
            return "I/O error: \(operation) \(path) failed (errno \(errno))"
        case .notFound(let path):
            return "not found: \(path)"
        case .corruption(let path, let offset, let reason):
            return "corruption in \(path) at offset \(offset): \(reason). Refusing to start rather than risk losing acknowledged data; see README \"What to do on a corruption error\""
        case .foreignDataDirectory(let path, let reason):
            return "data directory \(path) belongs to another cluster or node: \(reason)"
        case .incompatibleVersion(let path, let found, let supported):
            return "data directory \(path) has format version \(found); this build reads version \(supported) and older"
        case .stopped(let reason):
            return "storage stopped after an earlier failure: \(reason)"
        }
    }
}

extension FileSystem {
    /// Replaces the file at `path` with `parts`, written one after another, so that a crash
    /// leaves the old file or the new one, never a mix: into `path + ".tmp"`, synced, renamed
    /// over `path`, and `directory` (the parent of `path`) synced.
    func writeAtomically(_ parts: [[UInt8]], to path: String, directory: String) throws(StorageError) {
        let temporary = path + ".tmp"
        let file = try open(temporary, create: true)
        do {
            try file.truncate(to: 0)
            var offset: UInt64 = 0
            for part in parts {
                try file.write(part, at: offset)
                offset += UInt64(part.count)
            }
            try file.sync()
        } catch {
            file.close()
            throw error
        }
        file.close()
        try rename(temporary, to: path)
        try syncDirectory(directory)
    }
}
