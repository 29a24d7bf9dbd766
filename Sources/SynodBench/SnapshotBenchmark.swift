import Synchronization
import Foundation
import SynodBytes
import SynodCore
import SynodKV
import SynodStore

/// Where the time of one snapshot of a large key space goes, phase by phase, on one thread:
/// encoding alone, with the transfer checksum (XXH64, and FNV-1a, the one it replaced, for
/// comparison), with the file's CRC-32C, the whole spool path a member's snapshot encoder
/// takes (encode, hash, write, paced writeback), and decoding the file back. Each phase runs on the same in-memory state, so their differences are the
/// cost of each step.
public struct SnapshotBenchmark {
    public struct Phase: Sendable {
        public var name: String
        public var seconds: Double
        public var bytes: Int
        /// The checksum the phase computed (0 for none): printed, so that no phase's hashing
        /// can be optimised away, and equal for the two XXH64 phases.
        public var digest: UInt64
    }

    public let keys: Int
    public let valueBytes: Int
    public let directory: String

    public init(keys: Int, valueBytes: Int, directory: String) {
        self.keys = keys
        self.valueBytes = valueBytes
        self.directory = directory
    }

    /// A state of `keys` keys (`/bench/<n>`, zero-padded) with `valueBytes`-byte values.
    public func makeState() -> KVStateMachine {
        var machine = KVStateMachine(sessionCapacity: 16)
        var value = [UInt8](repeating: 0x61, count: valueBytes)
        for index in 0..<keys {
            // A few bytes that differ per key, so values are not all equal.
            withUnsafeBytes(of: UInt64(index).littleEndian) { raw in
                for (offset, byte) in raw.enumerated() where offset < value.count { value[offset] = byte }
            }
            _ = machine.apply(.put(PutRequest(key: Self.key(index), value: value)))
        }
        return machine
    }

    /// Runs every phase once on `state` and returns them in order.
    /// - Throws: `StorageError` when the directory cannot be used; `KVDecodingError` when the
    ///   written snapshot does not decode (a bug).
    public func run(state: KVStateMachine) throws -> [Phase] {
        var phases: [Phase] = []
        func timed(_ name: String, _ body: () throws -> (bytes: Int, digest: UInt64)) throws {
            let start = monotonicNanos()
            let (bytes, digest) = try body()
            phases.append(Phase(name: name, seconds: Double(monotonicNanos() - start) / 1e9, bytes: bytes, digest: digest))
        }
        /// Encodes the state once, handing every piece to `fold`; returns the bytes encoded.
        func encoded(_ fold: ([UInt8]) -> Void) -> Int {
            var total = 0
            _ = state.writeSnapshot(pieceBytes: 4 << 20) { piece in
                fold(piece)
                total += piece.count
                return true
            }
            return total
        }
        try timed("encode") { (encoded { _ in }, 0) }
        var fnv = FNV1a64()
        try timed("encode + FNV-1a (the transfer checksum before protocol 5)") {
            (encoded { fnv.combine($0) }, fnv.value)
        }
        var xxh = Snapshot.ChecksumHash()
        try timed("encode + XXH64 (the transfer checksum)") { (encoded { xxh.combine($0) }, xxh.value) }
        var crc: UInt32 = 0
        try timed(CRC32C.usesHardware ? "encode + CRC-32C (CPU instruction)" : "encode + CRC-32C (table loop)") {
            (encoded { piece in crc = piece.withUnsafeBytes { CRC32C.update(crc, $0) } }, UInt64(crc))
        }
        let fileSystem = POSIXFileSystem()
        try fileSystem.makeDirectory(directory)
        let spooling = SnapshotSpoolDirectory(onDiskAt: directory)
        var written: SnapshotBytes?
        try timed("encode + XXH64 + spool (write, CRC-32C, paced writeback)") {
            guard let spool = spooling.makeSpool(slot: 1) else { throw StorageError.io(path: directory, operation: "open a spool file", errno: 0) }
            var hash = Snapshot.ChecksumHash()
            guard state.writeSnapshot(pieceBytes: 4 << 20, { piece in
                hash.combine(piece)
                guard spool.append(piece) else { return false }
                spool.pace()
                return true
            }), let bytes = spool.finish() else {
                throw StorageError.io(path: directory, operation: "write the spool file", errno: 0)
            }
            written = bytes
            return (bytes.count, hash.value)
        }
        guard let written else { return phases }
        try timed("decode from the spool file") {
            let decoded = try KVStateMachine(snapshot: written)
            return (decoded.store.revision == state.store.revision ? written.count : 0, 0)
        }
        return phases
    }

    /// What a state costs in memory: resident bytes of this process, sampled around building
    /// or decoding one while the other states are held.
    public struct Residence: Sendable {
        /// The keys' and values' own bytes (what a client stored).
        public var payloadBytes: Int
        /// VmRSS growth while the state was made and held.
        public var residentBytes: Int
        /// `residentBytes / payloadBytes`: issue 16 asks a joiner for at most 1.2.
        public var ratio: Double { Double(residentBytes) / Double(max(1, payloadBytes)) }
        /// Resident bytes beyond the payload, per key.
        public func overheadPerKey(keys: Int) -> Int { (residentBytes - payloadBytes) / max(1, keys) }
    }

    /// The keys' and values' bytes of `makeState()`'s key space (its keys all have one length).
    public var payloadBytes: Int { keys * (valueBytes + Self.key(0).count) }

    /// Key `index` of `makeState()`: `/bench/` and the index zero-padded to 9 digits.
    static func key(_ index: Int) -> [UInt8] {
        Array("/bench/\(String(repeating: "0", count: max(0, 9 - String(index).count)))\(index)".utf8)
    }

    /// This process's VmRSS in bytes (0 where /proc is missing).
    public static func residentBytes() -> Int { CompareMachineInfo.memory(pid: getpid()).current ?? 0 }

    /// Builds the state with puts (as a leader holds it) and reports its residence.
    public func makeMeasuredState() -> (KVStateMachine, Residence) {
        let before = Self.residentBytes()
        let state = makeState()
        return (state, Residence(payloadBytes: payloadBytes, residentBytes: Self.residentBytes() - before))
    }

    /// Snapshots `state` to a spool file, then decodes it (as a joiner or a restarted member
    /// does) and reports the decoded copy's residence while it is held.
    /// - Throws: as `run(state:)`.
    public func measureDecodedResidence(of state: KVStateMachine) throws -> Residence {
        let fileSystem = POSIXFileSystem()
        try fileSystem.makeDirectory(directory)
        guard let spool = SnapshotSpoolDirectory(onDiskAt: directory).makeSpool(slot: 2),
              state.writeSnapshot(pieceBytes: 4 << 20, { spool.append($0) }), let written = spool.finish() else {
            throw StorageError.io(path: directory, operation: "write the spool file", errno: 0)
        }
        // On a thread of its own, as a member decodes (`synod-decode`): its allocations come
        // from a fresh malloc arena, not from memory this thread freed while building `state`.
        let before = Self.residentBytes()
        let outcome = Mutex<(Result<KVStateMachine, KVDecodingError>, Int)?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread {
            let result = Result { () throws(KVDecodingError) -> KVStateMachine in try KVStateMachine(snapshot: written) }
            outcome.withLock { $0 = (result, Self.residentBytes() - before) }
            done.signal()
        }.start()
        done.wait()
        guard let (result, grown) = outcome.withLock({ $0 }) else { throw KVDecodingError.invalid }
        let decoded = try result.get()
        guard decoded.store.revision == state.store.revision else { throw KVDecodingError.invalid }
        return Residence(payloadBytes: payloadBytes, residentBytes: grown)
    }
}
