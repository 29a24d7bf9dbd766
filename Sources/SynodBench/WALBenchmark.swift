import SynodCore
import SynodStore
#if canImport(Glibc)
import Glibc
#endif

/// Measures the write-ahead log against the disk it sits on: the raw fdatasync rate of the
/// directory, then appends by N closed-loop writers (each waits for its record to be durable
/// before writing the next), which group commit turns into one write + fdatasync per round.
public struct WALBenchmark {
    public struct Row: Sendable {
        public var writers: Int
        public var records: Int
        public var syncs: Int
        public var seconds: Double
        public var recordsPerSecond: Double { Double(records) / seconds }
        public var syncsPerSecond: Double { Double(syncs) / seconds }
    }

    public let directory: String
    public let recordBytes: Int
    public let secondsPerRow: Double

    public init(directory: String, recordBytes: Int = 256, secondsPerRow: Double = 3) {
        self.directory = directory
        self.recordBytes = recordBytes
        self.secondsPerRow = secondsPerRow
    }

    /// fdatasync calls per second on a preallocated file in `directory`, each after a
    /// `recordBytes` write (what the log does with one writer, minus the framing).
    public func rawSyncRate() throws(StorageError) -> Row {
        let fileSystem = POSIXFileSystem()
        try fileSystem.makeDirectory(directory)
        let path = directory + "/raw-fsync.bench"
        let file = try fileSystem.open(path, create: true)
        defer {
            file.close()
            try? fileSystem.remove(path)
        }
        try file.truncate(to: 0)
        try file.preallocate(64 << 20)
        let bytes = [UInt8](repeating: 0x5A, count: recordBytes)
        var offset: UInt64 = 0
        var syncs = 0
        let clock = ContinuousClock()
        let start = clock.now
        while seconds(since: start, clock) < secondsPerRow {
            try file.write(bytes, at: offset)
            try file.sync()
            offset = (offset + UInt64(recordBytes)) % (64 << 20 - UInt64(recordBytes))
            syncs += 1
        }
        return Row(writers: 1, records: syncs, syncs: syncs, seconds: seconds(since: start, clock))
    }

    /// `writers` closed-loop writers through `DurableStorage` for `secondsPerRow`.
    public func run(writers: Int) throws(StorageError) -> Row {
        let fileSystem = POSIXFileSystem()
        let dataDirectory = directory + "/wal-bench-\(writers)"
        try removeTree(fileSystem, dataDirectory)
        var options = StorageOptions()
        options.segmentBytes = 64 << 20
        let (storage, _, _) = try DurableStorage.open(fileSystem: fileSystem, directory: dataDirectory,
                                                      identity: DataDirectoryIdentity(clusterID: 1, nodeID: 1), options: options)
        defer { try? removeTree(fileSystem, dataDirectory) }
        let ballot = Ballot(round: 1, node: NodeID(1))
        let payload = [UInt8](repeating: 0x42, count: max(0, recordBytes - 60))  // ~recordBytes framed
        var batchID: UInt64 = 0
        var slot: Slot = 0
        var records = 0
        var syncs = 0
        let clock = ContinuousClock()
        let start = clock.now
        while seconds(since: start, clock) < secondsPerRow {
            // Every writer's previous record is durable: each appends its next one, and the
            // round's records share one write and one fdatasync.
            for writer in 0..<writers {
                batchID += 1
                slot += 1
                let command = Command(clientID: UInt64(writer), sequence: batchID, payload: payload)
                storage.append(PersistBatch(id: batchID, records: [.accepted(slot: slot, ballot: ballot, value: .batch([command]))],
                                            messagesAfterDurable: []))
            }
            try storage.sync()
            records += writers
            syncs += 1
        }
        return Row(writers: writers, records: records, syncs: syncs, seconds: seconds(since: start, clock))
    }

    private func seconds(since start: ContinuousClock.Instant, _ clock: ContinuousClock) -> Double {
        let elapsed = clock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    private func removeTree(_ fileSystem: POSIXFileSystem, _ path: String) throws(StorageError) {
        guard fileSystem.exists(path) else { return }
        for sub in ["wal", "snap"] where fileSystem.exists(path + "/" + sub) {
            for name in try fileSystem.listDirectory(path + "/" + sub) { try fileSystem.remove(path + "/" + sub + "/" + name) }
            _ = rmdir(path + "/" + sub)
        }
        for name in try fileSystem.listDirectory(path) { try fileSystem.remove(path + "/" + name) }
        _ = rmdir(path)
    }
}
