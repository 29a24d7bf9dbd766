import Synchronization
import SynodBytes
import SynodCore

/// A snapshot written to a temporary file in the snapshot directory piece by piece, as it is
/// received in chunks or encoded (`<slot file>.<n>.tmp`, its data after room for the header),
/// with its CRC-32C folded in piece by piece. When the replica takes or installs it,
/// `SnapshotStore.save` completes the same file — header, membership trailer, sync — and
/// renames it into place: the snapshot is never whole in memory and is written once. A crash before the rename
/// leaves a `.tmp` file that recovery removes; a transfer abandoned before that removes its
/// file when the spool is released.
///
/// Concurrency: the file and the counters are used only under `state`'s lock (the node loop or
/// the encoding thread appends, the loop reads, the storage thread completes), hence
/// `@unchecked Sendable`.
public final class SnapshotSpoolFile: SnapshotSpool, SnapshotByteSource, @unchecked Sendable {
    private struct State {
        var count = 0
        var crc: UInt32 = 0
        var finished = false
        var committed = false
        var failed = false
        /// Data bytes handed to the disk by `pace` (from the start), and the end of the range
        /// before the last one handed over (what the next `pace` waits for).
        var paced = 0
        var pacedBefore = 0
    }

    let slot: Slot
    let path: String
    let directory: String
    private let fileSystem: any FileSystem
    private let file: any StorageFile
    private let state = Mutex(State())
    private static let dataOffset = UInt64(SnapshotStore.headerBytes)

    init(fileSystem: any FileSystem, file: any StorageFile, directory: String, path: String, slot: Slot) {
        self.fileSystem = fileSystem
        self.file = file
        self.directory = directory
        self.path = path
        self.slot = slot
    }

    deinit {
        let committed = state.withLock { state in
            file.close()
            return state.committed
        }
        if !committed { try? fileSystem.remove(path) }
    }

    // MARK: SnapshotSpool

    public func append(_ bytes: [UInt8]) -> Bool {
        state.withLock { state in
            guard !state.finished, !state.failed else { return false }
            do {
                try file.write(bytes, at: Self.dataOffset + UInt64(state.count))
            } catch {
                state.failed = true
                return false
            }
            state.count += bytes.count
            state.crc = bytes.withUnsafeBytes { CRC32C.update(state.crc, $0) }
            return true
        }
    }

    /// Starts writeback of what was appended since the last call and waits for the range
    /// handed over the time before: at most two pieces' worth of dirty pages stay behind the
    /// encoder, so the completing sync is short and a WAL sync on the same disk never queues
    /// behind a gigabyte of snapshot pages (on ext4's ordered mode it would).
    ///
    /// The writeback runs outside the lock, the one use of the file that does: it is a system
    /// call on the open descriptor (closed only in `deinit`), and a wait for the disk under
    /// the lock would stall the loop's reads of the spool.
    public func pace() {
        let (older, newer, end) = state.withLock { state in
            let marks = (state.pacedBefore, state.paced, state.count)
            state.pacedBefore = state.paced
            state.paced = state.count
            return marks
        }
        if newer > older {
            file.writeBack(offset: Self.dataOffset + UInt64(older), count: newer - older, wait: true)
        }
        if end > newer {
            file.writeBack(offset: Self.dataOffset + UInt64(newer), count: end - newer, wait: false)
        }
    }

    public func finish() -> SnapshotBytes? {
        let usable = state.withLock { state in
            state.finished = true
            return !state.failed
        }
        return usable ? SnapshotBytes(source: self) : nil
    }

    // MARK: SnapshotByteSource

    public var count: Int { state.withLock { $0.count } }

    public func read(offset: Int, count wanted: Int) -> [UInt8]? {
        state.withLock { state -> [UInt8]? in
            guard offset >= 0, wanted >= 0, offset <= state.count, wanted <= state.count - offset else { return nil }
            if wanted == 0 { return [] }
            guard let bytes = try? file.read(at: Self.dataOffset + UInt64(offset), count: wanted),
                  bytes.count == wanted else { return nil }
            return bytes
        }
    }

    public func withContiguousBytes<Result>(_ body: (UnsafeRawBufferPointer, _ doneBelow: (Int) -> Void) -> Result) -> Result? {
        let total = count
        return MappedFileRegion.withMappingOrBytes(
            count: total, map: { state.withLock { _ in file.mapForReading(offset: Self.dataOffset, count: total) } },
            read: { read(offset: 0, count: total) }, body)
    }

    // MARK: Saving

    /// Writes the snapshot file's header and `trailer` around the spooled data and syncs it;
    /// the caller renames it into place. False when the spool is unusable (not finished, or a
    /// write failed).
    func complete(trailer: [UInt8]) throws(StorageError) -> Bool {
        try state.withLock { (state) throws(StorageError) -> Bool in
            guard state.finished, !state.failed else { return false }
            let header = SnapshotStore.header(slot: slot, count: state.count, crc: state.crc)
            try file.write(header, at: 0)
            try file.write(trailer, at: Self.dataOffset + UInt64(state.count))
            try file.sync()
            state.committed = true
            return true
        }
    }
}

/// Makes spool files in a node's snapshot directory, for snapshots received
/// (`Replica.snapshotSpooling`) or encoded (the node's snapshot encoder).
///
/// Concurrency: `fileSystem` is the node's real (`Sendable`) file system, or the simulator's,
/// which runs on one thread; the counter is under a lock. Hence `@unchecked Sendable`.
public final class SnapshotSpoolDirectory: SnapshotSpooling, @unchecked Sendable {
    private let fileSystem: any FileSystem
    private let directory: String
    /// Numbers spool files for the life of the process: a spool of an earlier incarnation of a
    /// simulated node, released late, must not remove a newer spool's file by its name. (The
    /// names never change what the simulation does: recovery removes every `.tmp` file.)
    private static let counter = Atomic<UInt64>(0)

    init(fileSystem: any FileSystem, directory: String) {
        self.fileSystem = fileSystem
        self.directory = directory
    }

    /// Spool files in `directory` of the real file system (benchmarks and tools; a node gets
    /// its spooling from its storage).
    public convenience init(onDiskAt directory: String) {
        self.init(fileSystem: POSIXFileSystem(), directory: directory)
    }

    public func makeSpool(slot: Slot) -> (any SnapshotSpool)? {
        let number = Self.counter.wrappingAdd(1, ordering: .relaxed).newValue
        let path = directory + "/" + SnapshotStore.fileName(slot: slot) + ".\(number).tmp"
        guard let file = try? fileSystem.open(path, create: true) else { return nil }
        do {
            try file.truncate(to: 0)
        } catch {
            file.close()
            try? fileSystem.remove(path)
            return nil
        }
        return SnapshotSpoolFile(fileSystem: fileSystem, file: file, directory: directory, path: path, slot: slot)
    }
}
