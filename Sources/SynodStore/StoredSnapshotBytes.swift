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
        if count == 0 { return body(UnsafeRawBufferPointer(start: nil, count: 0), { _ in }) }
        let region = lock.withLock { _ in file.mapForReading(offset: dataOffset, count: count) }
        guard let region else {
            guard let bytes = read(offset: 0, count: count) else { return nil }
            return bytes.withUnsafeBytes { body($0, { _ in }) }
        }
        return body(region.bytes, { region.dropPages(below: $0) })
    }
}

extension SnapshotStore {
    /// Opens the snapshot file of `slot` for reading its data on demand. Its header is checked
    /// (magic, header checksum, slot, length within the file); its data was checked when it
    /// was loaded, or was just written and synced.
    func openStored(slot: Slot) throws(StorageError) -> StoredSnapshotBytes {
        let path = directory + "/" + Self.fileName(slot: slot)
        let file = try fileSystem.open(path, create: false)
        let length: Int
        do throws(StorageError) {
            length = try Self.storedDataLength(file, path: path, slot: slot)
        } catch {
            file.close()
            throw error
        }
        return StoredSnapshotBytes(file: file, path: path, dataOffset: UInt64(Self.headerBytes), count: length)
    }

    /// The data length a snapshot file's header gives, once the header checks out.
    private static func storedDataLength(_ file: any StorageFile, path: String, slot: Slot) throws(StorageError) -> Int {
        let size = try file.size()
        let header = try file.read(at: 0, count: headerBytes)
        guard header.count == headerBytes, Array(header[0..<8]) == magic,
              LittleEndianReader.uint32(at: 32, of: header) == CRC32C.checksum(header[0..<32]) else {
            throw .corruption(path: path, offset: 0, reason: "snapshot header does not check out")
        }
        let headerSlot = LittleEndianReader.uint64(at: 12, of: header)
        let length = LittleEndianReader.uint64(at: 20, of: header)
        guard headerSlot == slot, length <= size - UInt64(headerBytes), length <= UInt64(Int.max) else {
            throw .corruption(path: path, offset: 12, reason: "snapshot header disagrees with the file")
        }
        return Int(length)
    }
}
