import Glibc

/// An in-memory, deterministic file system that models what survives a power loss, for the
/// simulator and crash-consistency tests.
///
/// What is durable when, as on Linux with a careful program:
/// - A file's contents: written data is durable only after that file's `sync()`. A write,
///   `truncate` or `preallocate` is recorded as an unsynced change until then.
/// - Names: creating, renaming or removing a file changes its directory's entries, which
///   become durable only at `syncDirectory` of that directory (and only that directory's:
///   a rename across directories synced on one side only leaves both names after a crash,
///   like a hard link).
/// - Directories made by `makeDirectory` are durable at once (a simplification: the
///   storage code creates its directories once, before it relies on anything in them).
///
/// `crash` simulates power loss: unsynced changes and names are lost (or, with tearing, a
/// prefix of them survives, the last write possibly torn) and every open handle dies.
/// Faults (all off by default): failed syncs, a full disk, a read-only disk, bit flips.
///
/// Paths are plain strings compared as written (no `..`, no `//`, no trailing `/`); the
/// parent of a path is everything before its last "/" (`"/"` for `"/name"`, `""` for a
/// bare name). `""` and `"/"` are roots that always exist. Every outcome is deterministic:
/// nothing depends on dictionary order, and randomness comes only from `crash(random:)`.
///
/// - Important: Not `Sendable`: one simulated node (one thread) owns it and its handles.
public final class FaultInjectingFileSystem: FileSystem {
    // MARK: Faults (all off by default)

    /// When true, the next `sync()` or `syncDirectory` (restricted by
    /// `syncFailurePathContains`) throws `.syncFailed`, and this resets to false. As on
    /// Linux, a failed file sync loses that file's unsynced changes at the next crash,
    /// although reads still see them, and a later `sync()` does not bring them back.
    public var failNextSync = false
    /// When set, `failNextSync` applies only to a sync of a path containing this.
    public var syncFailurePathContains: String?
    /// When set, a write, preallocate or growing truncate that would make the total size of
    /// all files (those with a name or an open handle; see `totalBytes`) exceed this throws
    /// `.noSpace` and changes nothing. (A real growing ftruncate makes a sparse file and
    /// cannot fail so; counting it keeps `totalBytes <= capacityBytes` simple.)
    public var capacityBytes: Int?
    /// When true, every call that would change a file or name throws `.permissionDenied`.
    /// Opening an existing file, reading and syncing still work, so recovery can read.
    public var readOnly = false

    // MARK: Counters

    /// Calls to `StorageFile.write` that changed something.
    public private(set) var writeCount = 0
    /// Bytes passed to those writes.
    public private(set) var bytesWritten = 0
    /// Calls to `StorageFile.sync`, failed ones included.
    public private(set) var syncCount = 0
    /// Calls to `syncDirectory`, failed ones included.
    public private(set) var directorySyncCount = 0
    /// Crashes so far; a handle opened before the latest one is dead.
    public private(set) var crashCount = 0

    // MARK: State

    private var directories: Set<String> = []
    /// The names reads see.
    private var files: [String: FileNode] = [:]
    /// The names a crash leaves.
    private var durableFiles: [String: FileNode] = [:]
    /// Nodes with open handles, which take space even once their last name is gone.
    private var openNodes: [ObjectIdentifier: FileNode] = [:]

    /// An empty file system: only the roots `""` and `"/"` exist.
    public init() {}

    // MARK: FileSystem

    public func makeDirectory(_ path: String) throws(StorageError) {
        var missing: [String] = []
        for prefix in Self.prefixes(of: path) where !isDirectory(prefix) {
            if files[prefix] != nil {
                throw .io(path: prefix, operation: "create directory (a file is in the way)", errno: ENOTDIR)
            }
            missing.append(prefix)
        }
        guard !missing.isEmpty else { return }
        if readOnly { throw .permissionDenied(path: path, operation: "create directory") }
        directories.formUnion(missing)
    }

    public func listDirectory(_ path: String) throws(StorageError) -> [String] {
        try requireDirectory(path, operation: "list directory")
        let names = files.keys.filter { Self.parent(of: $0) == path }
            + directories.filter { Self.parent(of: $0) == path }
        return names.map(Self.name(of:)).sorted()
    }

    public func exists(_ path: String) -> Bool {
        isDirectory(path) || files[path] != nil
    }

    public func open(_ path: String, create: Bool) throws(StorageError) -> any StorageFile {
        if isDirectory(path) { throw .io(path: path, operation: "open (it is a directory)", errno: EISDIR) }
        let node: FileNode
        if let existing = files[path] {
            node = existing
        } else {
            guard create, isDirectory(Self.parent(of: path)) else { throw .notFound(path: path) }
            if readOnly { throw .permissionDenied(path: path, operation: "create") }
            node = FileNode()
            files[path] = node
        }
        node.openHandles += 1
        openNodes[ObjectIdentifier(node)] = node
        return FaultInjectingFile(fileSystem: self, node: node, path: path, epoch: crashCount)
    }

    public func rename(_ from: String, to: String) throws(StorageError) {
        guard let node = files[from] else {
            if isDirectory(from) {
                throw .io(path: from, operation: "rename (directories cannot be renamed in this model)", errno: EINVAL)
            }
            throw .notFound(path: from)
        }
        if isDirectory(to) { throw .io(path: to, operation: "rename \(from) onto a directory", errno: EISDIR) }
        guard isDirectory(Self.parent(of: to)) else { throw .notFound(path: to) }
        if readOnly { throw .permissionDenied(path: from, operation: "rename to \(to)") }
        guard from != to else { return }
        files[from] = nil
        files[to] = node
    }

    public func remove(_ path: String) throws(StorageError) {
        guard files[path] != nil else {
            if isDirectory(path) { throw .io(path: path, operation: "remove (it is a directory)", errno: EISDIR) }
            throw .notFound(path: path)
        }
        if readOnly { throw .permissionDenied(path: path, operation: "remove") }
        files[path] = nil
    }

    public func syncDirectory(_ path: String) throws(StorageError) {
        try requireDirectory(path, operation: "sync directory")
        directorySyncCount += 1
        // A failed directory sync leaves the names undecided (still pending); the storage
        // stops anyway, so modelling Linux's exact loss here would buy nothing.
        if takeSyncFailure(path) { throw .syncFailed(path: path, errno: EIO) }
        durableFiles = durableFiles.filter { Self.parent(of: $0.key) != path }
        for (name, node) in files where Self.parent(of: name) == path {
            durableFiles[name] = node
        }
    }

    // MARK: Crashes

    /// Simulates power loss: every file reverts to its durable contents and the names to
    /// their durable state; every open handle is dead (further calls throw `.stopped`).
    ///
    /// With `tearing`, for each file a random prefix of its unsynced changes (possibly none,
    /// possibly all) is applied in order, the last one, if a write, possibly only in part: cut
    /// short at a random byte, or any subset of its 512-byte disk sectors (a torn write, and
    /// one whose sectors reached the disk out of order). Files are visited in path order, so
    /// the same generator state gives the same disk.
    public func crash(random: inout some RandomNumberGenerator, tearing: Bool) {
        // Each node once, in path order (a node can have two durable names after a rename).
        var seen: Set<ObjectIdentifier> = []
        for name in durableFiles.keys.sorted() {
            guard let node = durableFiles[name], seen.insert(ObjectIdentifier(node)).inserted else { continue }
            if tearing { node.tear(using: &random, sectorBytes: Self.sectorBytes) } else { node.revert() }
        }
        // Nodes without a durable name are simply forgotten with the names.
        files = durableFiles
        for node in openNodes.values { node.openHandles = 0 }
        openNodes.removeAll()
        crashCount += 1
    }

    /// Simulates power loss losing everything unsynced (no torn writes).
    public func crash() {
        var unused = NeverDrawn()
        crash(random: &unused, tearing: false)
    }

    // MARK: Inspection and media faults

    /// The disk sector size torn writes are cut into.
    public static let sectorBytes = 512

    /// The file ranges, one per disk sector, that a write of `count` bytes at `offset` covers
    /// (the first and last clipped to the write). Also what the server's `tear-wal-write`
    /// failpoint cuts a write into.
    public static func sectors(offset: Int, count: Int, sectorBytes: Int = sectorBytes) -> [Range<Int>] {
        var pieces: [Range<Int>] = []
        var start = offset
        while start < offset + count {
            let end = min((start / sectorBytes + 1) * sectorBytes, offset + count)
            pieces.append(start..<end)
            start = end
        }
        return pieces
    }

    /// Replaces `bytes.count` bytes at `byteOffset` of the file at `path`, in both its durable
    /// and current contents: a media fault that loses or misdirects a write (zeros where
    /// synced data was, or another write's bytes). Meant for synced regions, like `flipBit`.
    public func overwrite(path: String, byteOffset: Int, with bytes: [UInt8]) {
        var written = false
        if let node = durableFiles[path], byteOffset + bytes.count <= node.durable.count {
            node.durable.replaceSubrange(byteOffset..<(byteOffset + bytes.count), with: bytes)
            written = true
        }
        if let node = files[path], byteOffset + bytes.count <= node.current.count {
            node.current.replaceSubrange(byteOffset..<(byteOffset + bytes.count), with: bytes)
            written = true
        }
        precondition(written, "overwrite: no file at \(path) holds bytes \(byteOffset)..<\(byteOffset + bytes.count)")
    }

    /// Flips bit `bit` (0 = least significant) of byte `byteOffset` of the file at `path`,
    /// in both its durable and current contents (media corruption). Meant for synced
    /// regions; an unsynced change to the same byte would, on `sync()`, overwrite it.
    public func flipBit(path: String, byteOffset: Int, bit: Int) {
        precondition((0..<8).contains(bit), "flipBit: bit \(bit) is not in 0..<8")
        let mask = UInt8(1) << UInt8(bit)
        var flipped = false
        // The durable and current names may differ (a rename not yet made durable): flip the
        // durable contents of the durable file and the current contents of the current one.
        if let node = durableFiles[path], node.durable.indices.contains(byteOffset) {
            node.durable[byteOffset] ^= mask
            flipped = true
        }
        if let node = files[path], node.current.indices.contains(byteOffset) {
            node.current[byteOffset] ^= mask
            flipped = true
        }
        precondition(flipped, "flipBit: no file at \(path) has a byte \(byteOffset)")
    }

    /// The total size of every file with a name or an open handle, each counted once: what
    /// `capacityBytes` limits.
    public var totalBytes: Int {
        var seen: Set<ObjectIdentifier> = []
        var total = 0
        for node in files.values where seen.insert(ObjectIdentifier(node)).inserted {
            total += node.current.count
        }
        for (id, node) in openNodes where seen.insert(id).inserted {
            total += node.current.count
        }
        return total
    }

    /// The contents a crash without tearing would leave at `path`, or nil if no file would
    /// be there.
    public func durableContent(of path: String) -> [UInt8]? {
        durableFiles[path]?.durable
    }

    /// The contents reads see at `path` now, or nil if there is no file there.
    public func currentContent(of path: String) -> [UInt8]? {
        files[path]?.current
    }

    // MARK: For FaultInjectingFile

    /// Applies a write, truncate or preallocate to `node`, unsynced, if the disk allows it.
    func change(_ node: FileNode, _ change: FileChange, path: String, operation: String) throws(StorageError) {
        if readOnly { throw .permissionDenied(path: path, operation: operation) }
        if case .write(_, let bytes) = change, bytes.isEmpty { return }  // like pwrite of 0 bytes
        let newSize = change.resultingSize(from: node.current.count)
        if let capacity = capacityBytes, newSize > node.current.count,
           totalBytes - node.current.count + newSize > capacity {
            throw .noSpace(path: path)
        }
        change.apply(to: &node.current)
        node.unsynced.append(change)
        if case .write(_, let bytes) = change {
            writeCount += 1
            bytesWritten += bytes.count
        }
    }

    func sync(_ node: FileNode, path: String) throws(StorageError) {
        syncCount += 1
        if takeSyncFailure(path) {
            // Like Linux: the dirty pages are marked clean although they never reached the
            // disk, so they are lost at the next crash and a retried sync would "succeed".
            node.unsynced.removeAll()
            throw .syncFailed(path: path, errno: EIO)
        }
        node.sync()
    }

    /// A handle on `node` was closed.
    func release(_ node: FileNode) {
        node.openHandles -= 1
        if node.openHandles == 0 { openNodes[ObjectIdentifier(node)] = nil }
    }

    // MARK: Helpers

    private func takeSyncFailure(_ path: String) -> Bool {
        guard failNextSync else { return false }
        if let needle = syncFailurePathContains, !path.contains(needle) { return false }
        failNextSync = false
        return true
    }

    private func isDirectory(_ path: String) -> Bool {
        path.isEmpty || path == "/" || directories.contains(path)
    }

    private func requireDirectory(_ path: String, operation: String) throws(StorageError) {
        guard isDirectory(path) else {
            if files[path] != nil { throw .io(path: path, operation: operation, errno: ENOTDIR) }
            throw .notFound(path: path)
        }
    }

    /// Everything before the last "/": `"/"` for `"/name"`, `""` for a bare name.
    static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "" }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// Everything after the last "/".
    static func name(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }

    /// `"/a"`, `"/a/b"`, `"/a/b/c"` for `"/a/b/c"` (and `"a"`, `"a/b"` for `"a/b"`).
    static func prefixes(of path: String) -> [String] {
        var result: [String] = []
        var index = path.startIndex
        while let slash = path[index...].firstIndex(of: "/") {
            if slash != path.startIndex { result.append(String(path[..<slash])) }
            index = path.index(after: slash)
        }
        if index != path.endIndex { result.append(path) }
        return result
    }
}

/// The generator behind `crash()`: without tearing no random choice is made.
private struct NeverDrawn: RandomNumberGenerator {
    func next() -> UInt64 { preconditionFailure("crash() without tearing draws no random numbers") }
}
