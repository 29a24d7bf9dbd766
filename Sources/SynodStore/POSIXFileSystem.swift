import CSynodSystem
import Glibc

/// The real file system, through POSIX calls (open/pread/pwrite/fdatasync/rename/...).
///
/// Every call retries on EINTR except fsync/fdatasync (see `StorageFile.sync`), loops over
/// short reads and writes, and maps errno to a `StorageError` naming the path:
/// ENOSPC/EDQUOT → `.noSpace`, EACCES/EPERM/EROFS → `.permissionDenied`, ENOENT →
/// `.notFound`, any fsync failure → `.syncFailed`, anything else → `.io`.
///
/// It holds no state, so it is `Sendable` (checked by the compiler, not `@unchecked`).
/// The files it opens are not: a `StorageFile` belongs to one owner at a time.
public final class POSIXFileSystem: FileSystem, Sendable {
    /// Directories are created with these permissions (before the umask).
    static let directoryMode: mode_t = 0o755
    /// Files are created with these permissions (before the umask).
    static let fileMode: mode_t = 0o644

    public init() {}

    public func makeDirectory(_ path: String) throws(StorageError) {
        try POSIXCall.checkPath(path, operation: "create directory")
        // Create every prefix in turn; EEXIST on a prefix is fine as long as the last one
        // really is a directory (checked below), otherwise the next mkdir fails with ENOTDIR.
        var prefix = path.hasPrefix("/") ? "/" : ""
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            prefix += prefix.isEmpty || prefix.hasSuffix("/") ? String(component) : "/" + component
            let result = POSIXCall.retryingOnInterrupt { Glibc.mkdir(prefix, Self.directoryMode) }
            if result != 0 && errno != EEXIST {
                throw POSIXCall.error(errno, path: prefix, operation: "create directory")
            }
        }
        var status = stat()
        guard stat(path, &status) == 0 else {
            throw POSIXCall.error(errno, path: path, operation: "create directory")
        }
        guard status.st_mode & S_IFMT == S_IFDIR else {
            throw .io(path: path, operation: "create directory (a file is in the way)", errno: ENOTDIR)
        }
    }

    public func listDirectory(_ path: String) throws(StorageError) -> [String] {
        try POSIXCall.checkPath(path, operation: "list directory")
        guard let directory = opendir(path) else {
            throw POSIXCall.error(errno, path: path, operation: "list directory")
        }
        defer { closedir(directory) }
        var names: [String] = []
        while true {
            // readdir returns nil both at the end and on error; only errno tells them apart.
            errno = 0
            guard let entry = readdir(directory) else {
                if errno != 0 { throw POSIXCall.error(errno, path: path, operation: "list directory") }
                break
            }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    public func exists(_ path: String) -> Bool {
        guard !path.utf8.contains(0) else { return false }
        var status = stat()
        return stat(path, &status) == 0
    }

    public func open(_ path: String, create: Bool) throws(StorageError) -> any StorageFile {
        try POSIXCall.checkPath(path, operation: "open")
        let flags = O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0)
        let descriptor = POSIXCall.retryingOnInterrupt { Glibc.open(path, flags, Self.fileMode) }
        guard descriptor >= 0 else { throw POSIXCall.error(errno, path: path, operation: "open") }
        return POSIXFile(descriptor: descriptor, path: path)
    }

    public func rename(_ from: String, to: String) throws(StorageError) {
        try POSIXCall.checkPath(from, operation: "rename")
        try POSIXCall.checkPath(to, operation: "rename")
        guard POSIXCall.retryingOnInterrupt({ Glibc.rename(from, to) }) == 0 else {
            throw POSIXCall.error(errno, path: from, operation: "rename to \(to)")
        }
    }

    public func remove(_ path: String) throws(StorageError) {
        try POSIXCall.checkPath(path, operation: "remove")
        guard POSIXCall.retryingOnInterrupt({ Glibc.unlink(path) }) == 0 else {
            throw POSIXCall.error(errno, path: path, operation: "remove")
        }
    }

    public func syncDirectory(_ path: String) throws(StorageError) {
        try POSIXCall.checkPath(path, operation: "sync directory")
        let descriptor = POSIXCall.retryingOnInterrupt {
            Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        }
        guard descriptor >= 0 else { throw POSIXCall.error(errno, path: path, operation: "open directory") }
        defer { _ = Glibc.close(descriptor) }
        // Not retried, not even on EINTR: after a failed fsync the kernel may have marked
        // the dirty metadata clean, so a "successful" retry would prove nothing (DESIGN §7).
        guard fsync(descriptor) == 0 else { throw .syncFailed(path: path, errno: errno) }
    }
}

/// An open file descriptor. Not `Sendable`: `close()` mutates it and the descriptor number
/// may be reused by the kernel once closed, so one owner uses it at a time.
private final class POSIXFile: StorageFile {
    private var descriptor: Int32
    private let path: String

    /// Reads larger than this are clamped to the file's size first, so a damaged length
    /// read from disk cannot make us allocate gigabytes.
    private static let unclampedReadMax = 1 << 20

    init(descriptor: Int32, path: String) {
        self.descriptor = descriptor
        self.path = path
    }

    deinit { close() }

    /// The descriptor, which must still be open: using a closed file is a programmer error
    /// (and with a reused descriptor number it would touch some other file).
    private var openDescriptor: Int32 {
        precondition(descriptor >= 0, "\(path) used after close()")
        return descriptor
    }

    func size() throws(StorageError) -> UInt64 {
        var status = stat()
        guard fstat(openDescriptor, &status) == 0 else {
            throw POSIXCall.error(errno, path: path, operation: "stat")
        }
        return UInt64(clamping: status.st_size)
    }

    func read(at offset: UInt64, count: Int) throws(StorageError) -> [UInt8] {
        guard count >= 0 else { throw .io(path: path, operation: "read \(count) bytes", errno: EINVAL) }
        let start = try offsetValue(offset, plus: count, operation: "read")
        var wanted = count
        if wanted > Self.unclampedReadMax {
            let size = try size()
            wanted = offset >= size ? 0 : Int(clamping: min(UInt64(wanted), size - offset))
        }
        var failure: Int32 = 0
        let fd = openDescriptor
        let bytes = [UInt8](unsafeUninitializedCapacity: wanted) { buffer, initialized in
            while initialized < wanted {
                let result = pread(fd, buffer.baseAddress.map { $0 + initialized }, wanted - initialized,
                                   start + off_t(initialized))
                if result > 0 {
                    initialized += result
                } else if result == 0 {
                    break  // end of file
                } else if errno != EINTR {
                    failure = errno
                    break
                }
            }
        }
        guard failure == 0 else { throw POSIXCall.error(failure, path: path, operation: "read") }
        return bytes
    }

    func write(_ bytes: [UInt8], at offset: UInt64) throws(StorageError) {
        let start = try offsetValue(offset, plus: bytes.count, operation: "write")
        let fd = openDescriptor
        var failure: Int32 = 0
        bytes.withUnsafeBytes { buffer in
            var written = 0
            while written < buffer.count {
                let result = pwrite(fd, buffer.baseAddress.map { $0 + written }, buffer.count - written,
                                    start + off_t(written))
                if result > 0 {
                    written += result
                } else if result == 0 {
                    failure = EIO  // no progress and no error: give up rather than spin
                    break
                } else if errno != EINTR {
                    failure = errno
                    break
                }
            }
        }
        guard failure == 0 else { throw POSIXCall.error(failure, path: path, operation: "write") }
    }

    func sync() throws(StorageError) {
        // Never retried, not even on EINTR (DESIGN §7): the kernel may already have dropped
        // the dirty pages, so only a first success means the data is on disk.
        guard fdatasync(openDescriptor) == 0 else { throw .syncFailed(path: path, errno: errno) }
    }

    func truncate(to size: UInt64) throws(StorageError) {
        let length = try offsetValue(size, operation: "truncate")
        let fd = openDescriptor
        guard POSIXCall.retryingOnInterrupt({ ftruncate(fd, length) }) == 0 else {
            throw POSIXCall.error(errno, path: path, operation: "truncate")
        }
    }

    func preallocate(_ size: UInt64) throws(StorageError) {
        let length = try offsetValue(size, operation: "preallocate")
        guard length > 0 else { return }
        // posix_fallocate never shrinks a file; it returns the error instead of setting errno.
        var result: Int32
        repeat {
            result = posix_fallocate(openDescriptor, 0, length)
        } while result == EINTR
        guard result == 0 else { throw POSIXCall.error(result, path: path, operation: "preallocate") }
    }

    func writeBack(offset: UInt64, count: Int, wait: Bool) {
        guard count > 0, let start = Int64(exactly: offset) else { return }
        // sync_file_range(2): starts writeback of the range's dirty pages and, with `wait`,
        // returns once they are written. Errors are left to the final sync.
        _ = synod_write_back(openDescriptor, start, Int64(count), wait ? 1 : 0)
    }

    func mapForReading(offset: UInt64, count: Int) -> MappedFileRegion? {
        guard descriptor >= 0 else { return nil }
        return MappedFileRegion(descriptor: descriptor, offset: offset, count: count)
    }

    func close() {
        guard descriptor >= 0 else { return }
        // Not retried on EINTR: Linux releases the descriptor even then, and a retry could
        // close a descriptor another thread has just been given.
        _ = Glibc.close(descriptor)
        descriptor = -1
    }

    /// `value` as an `off_t`, checking that `value + length` fits too (so the loops'
    /// `start + done` cannot overflow).
    private func offsetValue(_ value: UInt64, plus length: Int = 0, operation: String) throws(StorageError) -> off_t {
        guard let result = off_t(exactly: value), !result.addingReportingOverflow(off_t(length)).overflow else {
            throw .io(path: path, operation: "\(operation) at \(value)", errno: EFBIG)
        }
        return result
    }
}

/// errno handling shared by the POSIX file system and its files.
private enum POSIXCall {
    /// Maps an errno to the `StorageError` the `FileSystem` contract promises. fsync
    /// failures are mapped by their callers (always `.syncFailed`).
    static func error(_ code: Int32, path: String, operation: String) -> StorageError {
        switch code {
        case ENOSPC, EDQUOT: return .noSpace(path: path)
        case EACCES, EPERM, EROFS: return .permissionDenied(path: path, operation: operation)
        case ENOENT: return .notFound(path: path)
        default: return .io(path: path, operation: operation, errno: code)
        }
    }

    /// Runs a call that returns -1 with errno set, again while it fails with EINTR.
    static func retryingOnInterrupt(_ call: () -> Int32) -> Int32 {
        while true {
            let result = call()
            if result != -1 || errno != EINTR { return result }
        }
    }

    /// A path with a NUL byte would be silently cut short when passed to C; refuse it.
    static func checkPath(_ path: String, operation: String) throws(StorageError) {
        if path.utf8.contains(0) { throw .io(path: path, operation: operation, errno: EINVAL) }
    }
}
