import Foundation
import SynodCore
import SynodKV
import SynodNode
import SynodStore
import SynodTransport

/// Fault injection for testing, off unless `SYNOD_FAILPOINTS` names failpoints.
///
/// `SYNOD_FAILPOINTS` is a comma-separated list of `name` or `name=argument`:
///
/// | name | argument | effect |
/// |---|---|---|
/// | `fsync-delay` | duration (`200ms`, `1s`) | sleep before every WAL sync |
/// | `decode-delay` | duration | sleep before decoding a received or recovered snapshot (a large state) |
/// | `crash-before-sync` | probability (`3%`) | exit (status 86) after writing a batch, before its sync |
/// | `crash-after-sync` | probability | exit right after a sync, before the node acts on it |
/// | `crash-in-snapshot` | probability | exit halfway through writing a snapshot file |
/// | `tear-wal-write` | probability | of a WAL write spanning two sectors or more, write only some 512-byte sectors (one missing, at least one landing, often a later one than the missing), then exit: power loss with a disk that reorders its writes |
/// | `tear-on-signal` | none | after SIGUSR2, tear the next WAL write like `tear-wal-write` and exit (the chaos `crash-all-torn` nemesis signals every member at once) |
/// | `drop-outgoing` | probability | drop each outgoing peer message |
/// | `corrupt-apply` | count `N` | after `N` puts, apply the next put with a changed value (this replica only) |
/// | `stale-reads` | none | answer linearizable reads locally, without read index or lease (a broken server) |
/// | `tick-lease` | none | hand the replica a clock that counts ticks, so a stopped process keeps its lease (a broken server) |
///
/// A failpoint that crashes prints `failpoint <name>: exiting` to standard error first. The
/// chaos harness (`synod chaos`) uses these to reach narrow windows random kills rarely hit;
/// `stale-reads` and `tick-lease` exist to prove the harness catches a non-linearizable server.
public struct Failpoints: Sendable, Hashable, CustomStringConvertible {
    /// The environment variable that enables failpoints.
    public static let environmentVariable = "SYNOD_FAILPOINTS"
    /// The exit status of a deliberate failpoint crash.
    public static let crashExitStatus: Int32 = 86

    public var fsyncDelayMilliseconds = 0
    public var decodeDelayMilliseconds = 0
    public var crashBeforeSync = 0.0
    public var crashAfterSync = 0.0
    public var crashInSnapshot = 0.0
    public var tearWALWrite = 0.0
    public var tearOnSignal = false
    public var dropOutgoing = 0.0
    /// Puts applied before one is corrupted; nil = off.
    public var corruptApplyAfter: Int?
    public var staleReads = false
    public var tickLease = false

    public init() {}

    /// Whether any failpoint is on.
    public var isEmpty: Bool { self == Failpoints() }

    /// The canonical text of the enabled failpoints.
    public var description: String {
        var parts: [String] = []
        if fsyncDelayMilliseconds > 0 { parts.append("fsync-delay=\(fsyncDelayMilliseconds)ms") }
        if decodeDelayMilliseconds > 0 { parts.append("decode-delay=\(decodeDelayMilliseconds)ms") }
        if crashBeforeSync > 0 { parts.append("crash-before-sync=\(Self.percent(crashBeforeSync))") }
        if crashAfterSync > 0 { parts.append("crash-after-sync=\(Self.percent(crashAfterSync))") }
        if crashInSnapshot > 0 { parts.append("crash-in-snapshot=\(Self.percent(crashInSnapshot))") }
        if tearWALWrite > 0 { parts.append("tear-wal-write=\(Self.percent(tearWALWrite))") }
        if tearOnSignal { parts.append("tear-on-signal") }
        if dropOutgoing > 0 { parts.append("drop-outgoing=\(Self.percent(dropOutgoing))") }
        if let corruptApplyAfter { parts.append("corrupt-apply=\(corruptApplyAfter)") }
        if staleReads { parts.append("stale-reads") }
        if tickLease { parts.append("tick-lease") }
        return parts.joined(separator: ",")
    }

    private static func percent(_ probability: Double) -> String {
        let value = probability * 100
        return value == value.rounded() ? "\(Int(value))%" : "\(value)%"
    }

    /// Reads `SYNOD_FAILPOINTS` from `environment` (absent or empty = all off).
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Failpoints {
        try parse(environment[environmentVariable] ?? "")
    }

    /// Parses the list; an unknown name or a bad argument throws with one line naming it.
    public static func parse(_ text: String) throws -> Failpoints {
        var failpoints = Failpoints()
        for item in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !item.isEmpty {
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            let name = parts[0]
            let argument = parts.count > 1 ? parts[1] : nil
            func probability() throws -> Double {
                guard let argument else { return 1 }
                let number = argument.hasSuffix("%") ? String(argument.dropLast()) : argument
                guard let value = Double(number), value >= 0, value <= 100 else {
                    throw FailpointError("\(environmentVariable): \(name): '\(argument)' is not a probability like 3%")
                }
                return value / 100
            }
            switch name {
            case "fsync-delay":
                guard let argument, let milliseconds = parseMilliseconds(argument) else {
                    throw FailpointError("\(environmentVariable): fsync-delay needs a duration like 200ms")
                }
                failpoints.fsyncDelayMilliseconds = milliseconds
            case "decode-delay":
                guard let argument, let milliseconds = parseMilliseconds(argument) else {
                    throw FailpointError("\(environmentVariable): decode-delay needs a duration like 2s")
                }
                failpoints.decodeDelayMilliseconds = milliseconds
            case "crash-before-sync": failpoints.crashBeforeSync = try probability()
            case "crash-after-sync": failpoints.crashAfterSync = try probability()
            case "crash-in-snapshot": failpoints.crashInSnapshot = try probability()
            case "tear-wal-write": failpoints.tearWALWrite = try probability()
            case "tear-on-signal": failpoints.tearOnSignal = true
            case "drop-outgoing": failpoints.dropOutgoing = try probability()
            case "corrupt-apply":
                guard let count = Int(argument ?? "0"), count >= 0 else {
                    throw FailpointError("\(environmentVariable): corrupt-apply needs a count of puts, like corrupt-apply=10")
                }
                failpoints.corruptApplyAfter = count
            case "stale-reads":
                failpoints.staleReads = true
            case "tick-lease":
                failpoints.tickLease = true
            default:
                throw FailpointError("\(environmentVariable): unknown failpoint '\(name)' (known: fsync-delay, crash-before-sync, crash-after-sync, crash-in-snapshot, tear-wal-write, tear-on-signal, drop-outgoing, corrupt-apply, stale-reads, tick-lease)")
            }
        }
        return failpoints
    }

    private static func parseMilliseconds(_ text: String) -> Int? {
        if text.hasSuffix("ms"), let value = Int(text.dropLast(2)), value >= 0 { return value }
        if text.hasSuffix("s"), let value = Double(text.dropLast()), value >= 0 { return Int(value * 1000) }
        return nil
    }

    /// True with `probability` (thread-safe: uses the system generator).
    static func roll(_ probability: Double) -> Bool {
        probability > 0 && Double.random(in: 0..<1) < probability
    }

    /// Ends the process the way a crash would: no cleanup, no flushing of anything unsynced.
    static func crash(_ name: String) -> Never {
        FileHandle.standardError.write(Data("failpoint \(name): exiting\n".utf8))
        _exit(crashExitStatus)
    }
}

// The failpoints as decorators, chosen once when the node starts: the production path holds
// no condition on them.
extension Failpoints {
    /// The state machine's input: what was chosen, or, with `corrupt-apply`, a changed put.
    var applyFilter: any ApplyFilter {
        corruptApplyAfter.map { CorruptApplyFilter(after: $0) } ?? ApplyAsChosen()
    }

    /// The clock the replica gets: CLOCK_BOOTTIME, or with `tick-lease` one counting ticks.
    func replicaClock(tickNanoseconds: UInt64) -> any ReplicaClock {
        tickLease ? TickCountingClock(tickNanoseconds: tickNanoseconds) : BootClock()
    }

    /// The consistency a read goes to the driver with: `stale-reads` answers linearizable
    /// reads locally, without read index or lease (a broken server the chaos harness must
    /// catch).
    func readConsistency(_ asked: ReadConsistency) -> ReadConsistency {
        staleReads ? .serializable : asked
    }
}

/// `corrupt-apply=N`: after N puts, this replica applies the next put with a changed value,
/// so its state silently diverges (the integrity check must notice).
struct CorruptApplyFilter: ApplyFilter {
    let after: Int
    private var puts = 0
    private var corrupted = false

    init(after: Int) { self.after = after }

    mutating func filter(_ command: Command) -> Command {
        guard !corrupted, case .put(var request)? = try? KVCommand(decoding: command.payload) else { return command }
        puts += 1
        guard puts > after else { return command }
        corrupted = true
        request.value = Array("corrupted by failpoint".utf8)
        return Command(clientID: command.clientID, sequence: command.sequence, payload: KVCommand.put(request).encoded())
    }
}

/// Where a node's outgoing messages go: the peer transport, or with `drop-outgoing` the
/// transport minus a random share of them.
struct OutgoingMessages: Sendable {
    let dropProbability: Double

    func send(_ messages: [Envelope], through transport: PeerTransport) {
        guard dropProbability > 0 else {
            transport.send(messages)
            return
        }
        let kept = messages.filter { _ in !Failpoints.roll(dropProbability) }
        if !kept.isEmpty { transport.send(kept) }
    }
}

/// A bad `SYNOD_FAILPOINTS` value.
public struct FailpointError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A file system with the storage failpoints: it crashes the process halfway through writing
/// a snapshot file (`crash-in-snapshot`), or after writing only some sectors of a WAL write
/// (`tear-wal-write`, `tear-on-signal`); everything else passes through.
final class FailpointFileSystem: FileSystem {
    private let base: any FileSystem
    private let crashInSnapshot: Double
    private let tearWALWrite: Double
    private let tearSignal: TearSignal?

    init(base: any FileSystem, failpoints: Failpoints) {
        self.base = base
        self.crashInSnapshot = failpoints.crashInSnapshot
        self.tearWALWrite = failpoints.tearWALWrite
        self.tearSignal = failpoints.tearOnSignal ? TearSignal() : nil
    }

    /// Whether any failpoint needs the storage decorated.
    static func needed(_ failpoints: Failpoints) -> Bool {
        failpoints.crashInSnapshot > 0 || failpoints.tearWALWrite > 0 || failpoints.tearOnSignal
    }

    func makeDirectory(_ path: String) throws(StorageError) { try base.makeDirectory(path) }
    func listDirectory(_ path: String) throws(StorageError) -> [String] { try base.listDirectory(path) }
    func exists(_ path: String) -> Bool { base.exists(path) }
    func rename(_ from: String, to: String) throws(StorageError) { try base.rename(from, to: to) }
    func remove(_ path: String) throws(StorageError) { try base.remove(path) }
    func syncDirectory(_ path: String) throws(StorageError) { try base.syncDirectory(path) }

    func open(_ path: String, create: Bool) throws(StorageError) -> any StorageFile {
        let file = try base.open(path, create: create)
        if path.contains("/wal/"), path.hasSuffix(".wal"), tearWALWrite > 0 || tearSignal != nil {
            return WALFile(base: file, probability: tearWALWrite, signal: tearSignal)
        }
        // Snapshots are written to "<snap dir>/<name>.tmp" and renamed into place.
        guard crashInSnapshot > 0, path.contains("/snap/"), path.hasSuffix(".tmp") else { return file }
        return SnapshotFile(base: file, crashProbability: crashInSnapshot)
    }

    /// A WAL segment whose writes may be torn: only a random subset of the write's 512-byte
    /// sectors (file-aligned) is written, never all of them, and the process exits before the
    /// sync — what a power loss leaves on a disk that writes sectors in any order (the page
    /// cache keeps what was written, so the file then holds exactly that subset).
    private final class WALFile: StorageFile {
        let base: any StorageFile
        let probability: Double
        let signal: TearSignal?
        init(base: any StorageFile, probability: Double, signal: TearSignal?) {
            self.base = base
            self.probability = probability
            self.signal = signal
        }
        func size() throws(StorageError) -> UInt64 { try base.size() }
        func read(at offset: UInt64, count: Int) throws(StorageError) -> [UInt8] { try base.read(at: offset, count: count) }
        /// Only writes that span two sectors or more are torn (a one-sector write is written
        /// whole or not at all, which `crash-before-sync` already covers): one sector is left
        /// out, every other one lands with probability 1/2, and at least one lands.
        func write(_ bytes: [UInt8], at offset: UInt64) throws(StorageError) {
            let pieces = FaultInjectingFileSystem.sectors(offset: Int(offset), count: bytes.count)
            guard pieces.count >= 2, signal?.raised == true || Failpoints.roll(probability) else {
                return try base.write(bytes, at: offset)
            }
            let missing = Int.random(in: 0..<pieces.count)
            var landing = pieces.indices.filter { $0 != missing && Bool.random() }
            if landing.isEmpty { landing = [pieces.indices.filter { $0 != missing }.randomElement() ?? 0] }
            for index in landing {
                let piece = pieces[index]
                let local = (piece.lowerBound - Int(offset))..<(piece.upperBound - Int(offset))
                try base.write(Array(bytes[local]), at: UInt64(piece.lowerBound))
            }
            Failpoints.crash("tear-wal-write (sectors \(landing.map(String.init).joined(separator: ",")) of 0..<\(pieces.count) of a \(bytes.count)-byte write at \(offset), sector \(missing) missing)")
        }
        func sync() throws(StorageError) { try base.sync() }
        func truncate(to size: UInt64) throws(StorageError) { try base.truncate(to: size) }
        func preallocate(_ size: UInt64) throws(StorageError) { try base.preallocate(size) }
        func close() { base.close() }
        func mapForReading(offset: UInt64, count: Int) -> MappedFileRegion? { base.mapForReading(offset: offset, count: count) }
        func writeBack(offset: UInt64, count: Int, wait: Bool) { base.writeBack(offset: offset, count: count, wait: wait) }
    }

    private final class SnapshotFile: StorageFile {
        let base: any StorageFile
        let crashProbability: Double
        init(base: any StorageFile, crashProbability: Double) {
            self.base = base
            self.crashProbability = crashProbability
        }
        func size() throws(StorageError) -> UInt64 { try base.size() }
        func read(at offset: UInt64, count: Int) throws(StorageError) -> [UInt8] { try base.read(at: offset, count: count) }
        func write(_ bytes: [UInt8], at offset: UInt64) throws(StorageError) {
            if Failpoints.roll(crashProbability) {
                try base.write(Array(bytes.prefix(bytes.count / 2)), at: offset)
                Failpoints.crash("crash-in-snapshot")
            }
            try base.write(bytes, at: offset)
        }
        func sync() throws(StorageError) { try base.sync() }
        func truncate(to size: UInt64) throws(StorageError) { try base.truncate(to: size) }
        func preallocate(_ size: UInt64) throws(StorageError) { try base.preallocate(size) }
        func close() { base.close() }
        func mapForReading(offset: UInt64, count: Int) -> MappedFileRegion? { base.mapForReading(offset: offset, count: count) }
        func writeBack(offset: UInt64, count: Int, wait: Bool) { base.writeBack(offset: offset, count: count, wait: wait) }
    }
}

/// `tear-on-signal`: raised by SIGUSR2 (the default action, ending the process, is replaced).
///
/// `@unchecked Sendable`: `source` is only touched in `init`; `value` only under `lock`.
final class TearSignal: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    private var source: (any DispatchSourceSignal)?

    init() {
        signal(SIGUSR2, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGUSR2, queue: DispatchQueue(label: "synod-tear-signal"))
        source.setEventHandler { [weak self] in
            self?.raise()
            FileHandle.standardError.write(Data("failpoint tear-on-signal: SIGUSR2 received, tearing the next WAL write\n".utf8))
        }
        source.resume()
        self.source = source
    }

    private func raise() { lock.withLock { value = true } }

    var raised: Bool { lock.withLock { value } }
}
