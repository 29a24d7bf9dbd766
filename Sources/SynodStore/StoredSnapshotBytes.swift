import Synchronization
import SynodBytes
import SynodCore

/// The data of a durable snapshot file, read on demand: what a node's replica keeps instead of
/// the snapshot's bytes once the file is written (`DurableStorage.takeStoredSnapshot`), so a
/// member holds its state once in memory, not twice. The file stays open for as long as this
/// object lives, so it can still be read after a newer snapshot replaced it on disk (a peer
/// fetching the older one in chunks keeps it, `ServedSnapshot`); the file system frees it then.
///
/// Concurrency: the file handle is used only under `lock` (reads, and the close at deinit),
/// hence `@unchecked Sendable`. A POSIX file is safe to read from any thread that way; the
/// simulator's fault-injecting files are used from its one thread only.
public final class StoredSnapshotBytes: SnapshotByteSource, @unchecked Sendable {
    public let count: Int
    public let path: String
    private let dataOffset: UInt64
    private let lock = Mutex(())
    private let file: any StorageFile

    init(file: any StorageFile, path: String, dataOffset: UInt64, count: Int) {
        self.file = file
        self.path = path
        self.dataOffset = dataOffset
        self.count = count
    }

    deinit {
        lock.withLock { _ in file.close() }
    }

    public func read(offset: Int, count wanted: Int) -> [UInt8]? {
        guard offset >= 0, wanted >= 0, offset <= count, wanted <= count - offset else { return nil }
        if wanted == 0 { return [] }
        let start = dataOffset + UInt64(offset)
        return lock.withLock { _ -> [UInt8]? in
            guard let bytes = try? file.read(at: start, count: wanted), bytes.count == wanted else { return nil }
            return bytes
        }
    }

    public func withContiguousBytes<Result>(_ body: (UnsafeRawBufferPointer, _ doneBelow: (Int) -> Void) -> Result) -> Result? {
        MappedFileRegion.withMappingOrBytes(
            count: count, map: { lock.withLock { _ in file.mapForReading(offset: dataOffset, count: count) } },
            read: { read(offset: 0, count: count) }, body)
    }
}
