import ArgumentParser
import CSynodAllocCounter
import SynodBench

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks (measure, never assert).",
        subcommands: [
            CoreBench.self, WALBench.self, SnapshotBench.self, CompareBench.self,
            BenchPutCommand.self, BenchGetCommand.self, BenchTxnCASCommand.self, BenchMixedCommand.self, BenchWatchCommand.self,
            AuthBenchCommand.self,
        ]
    )
}

struct CoreBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "core",
        abstract: "Slots and commands per second through the pure Paxos core (no network, no disk).",
        discussion: """
            A fault-free cluster of real replicas in one thread: messages are delivered and
            persist batches reported durable at once. It is the ceiling the server's budget is
            measured against. Heap allocations are counted by an interposed malloc.
            """
    )

    @Option(help: "Commands to commit per measurement.")
    var commands: Int = 200_000

    @Option(help: "Replicas in the cluster.")
    var nodes: Int = 3

    @Option(name: .customLong("batch"), help: "Commands per slot at most (1 = no batching).")
    var batchCommandsMax: Int = 256

    @Option(help: "Slots in flight at most.")
    var window: Int = 32

    @Option(name: .customLong("payload"), help: "Bytes per command.")
    var payloadBytes: Int = 256

    @Option(help: "Repetitions; the best is reported along with all of them.")
    var repeats: Int = 3

    func validate() throws {
        guard commands >= 1 else { throw ValidationError("--commands must be at least 1") }
        guard [1, 3, 5, 7].contains(nodes) else { throw ValidationError("--nodes must be 1, 3, 5 or 7") }
        guard batchCommandsMax >= 1, window >= 1, payloadBytes >= 0, repeats >= 1 else {
            throw ValidationError("--batch, --window and --repeats must be at least 1, --payload at least 0")
        }
    }

    func run() throws {
        let benchmark = CoreBenchmark(nodes: nodes, batchCommandsMax: batchCommandsMax, windowSlots: window, payloadBytes: payloadBytes)
        print("synod bench core: \(nodes) replicas, batch <= \(batchCommandsMax), window \(window), \(payloadBytes)-byte commands, \(commands) commands per run")
        var best: (commandsPerSecond: Double, line: String)?
        for run in 1...repeats {
            let allocationsBefore = synod_thread_allocation_count()
            let start = ContinuousClock.now
            let report = try benchmark.run(commands: commands)
            let elapsed = ContinuousClock.now - start
            let allocations = synod_thread_allocation_count() - allocationsBefore
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            let commandsPerSecond = Double(report.commands) / seconds
            let slotsPerSecond = Double(report.slots) / seconds
            let stepNanos = seconds * 1e9 / Double(max(1, report.steps))
            let commandsPerSlot: String = format(Double(report.commands) / Double(max(1, report.slots)))
            let allocationsPerCommand: String = format(Double(allocations) / Double(report.commands))
            let checkShare: String = format(100 * report.safetyCheckNanos / stepNanos)
            var line = "run \(run): \(format(commandsPerSecond)) commands/s, \(format(slotsPerSecond)) slots/s, "
            line += "\(commandsPerSlot) commands/slot, \(allocationsPerCommand) allocations/command, "
            line += "\(format(seconds * 1_000)) ms; safety checks \(format(report.safetyCheckNanos)) ns per step of "
            line += "\(format(stepNanos)) ns (\(checkShare)%)"
            print(line)
            if commandsPerSecond > (best?.commandsPerSecond ?? 0) { best = (commandsPerSecond, line) }
        }
        if let best { print("best: " + best.line.drop { $0 != ":" }.dropFirst(2)) }
    }

    private func format(_ value: Double) -> String {
        if value >= 100 { return String(Int(value.rounded())) }
        let scaled = (value * 100).rounded() / 100
        return String(scaled)
    }
}

struct WALBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wal",
        abstract: "Write-ahead log appends and fsyncs per second next to the disk's raw fdatasync rate.",
        discussion: """
            Measures, in one run and on the same directory: the raw fdatasync rate (a 256-byte
            write + fdatasync on a preallocated file), then 1, 16 and 256 closed-loop writers
            through the log, where group commit puts every record written during one fsync into
            the next write + fdatasync. The last column is records per second divided by the
            raw fsync rate: group commit's gain.
            """
    )

    @Option(help: "Directory to measure (on the disk you care about; files are removed afterwards).")
    var dir: String = ".build-bench-wal"

    @Option(help: "Seconds per row.")
    var seconds: Double = 3

    @Option(help: "Writer counts to measure.")
    var writers: [Int] = [1, 16, 256]

    @Option(name: .customLong("record-bytes"), help: "Bytes per record.")
    var recordBytes: Int = 256

    func validate() throws {
        guard seconds > 0, seconds <= 600 else { throw ValidationError("--seconds must be in (0, 600]") }
        guard writers.allSatisfy({ (1...100_000).contains($0) }) else { throw ValidationError("--writers must be in 1...100000") }
        guard (64...1 << 20).contains(recordBytes) else { throw ValidationError("--record-bytes must be in 64...1048576") }
    }

    func run() throws {
        let benchmark = WALBenchmark(directory: dir, recordBytes: recordBytes, secondsPerRow: seconds)
        print("synod bench wal: \(dir), \(recordBytes)-byte records, \(seconds) s per row")
        let raw = try benchmark.rawSyncRate()
        print("raw fdatasync: \(Int(raw.syncsPerSecond))/s")
        print("writers | records/s | fsyncs/s | records/fsync | records/s per raw fsync/s")
        for count in writers {
            let row = try benchmark.run(writers: count)
            let perSync = Double(row.records) / Double(max(1, row.syncs))
            let ratio = row.recordsPerSecond / max(1, raw.syncsPerSecond)
            print("\(count) | \(Int(row.recordsPerSecond)) | \(Int(row.syncsPerSecond)) | \(Int(perSync.rounded())) | \((ratio * 100).rounded() / 100)")
        }
    }
}

struct SnapshotBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot",
        abstract: "Where the time of one snapshot of a large key space goes: encoding, checksums, the spool file, decoding.",
        discussion: """
            Builds a key space in memory (--keys keys of --value-size bytes), then times, on
            one thread and on the same state: encoding alone; encoding with the transfer
            checksum (XXH64, and FNV-1a, which it replaced, for comparison); with the file's
            CRC-32C; the path a member's snapshot encoder takes (encode, XXH64, write to a
            spool file with its CRC-32C, paced writeback); and decoding that file. Run it under `perf record` to see inside a phase.
            """
    )

    @Option(help: "Directory for the spool file (on the disk you care about; removed afterwards).")
    var dir: String = ".build-bench-snapshot"

    @Option(help: "Keys in the key space.")
    var keys: Int = 1_000_000

    @Option(name: .customLong("value-size"), help: "Bytes per value.")
    var valueSize: Int = 1024

    @Option(help: "Repetitions of every phase.")
    var repeats: Int = 2

    func validate() throws {
        guard (1...50_000_000).contains(keys) else { throw ValidationError("--keys must be in 1...50000000") }
        guard (8...(1 << 20)).contains(valueSize) else { throw ValidationError("--value-size must be in 8...1048576") }
        guard (1...20).contains(repeats) else { throw ValidationError("--repeats must be in 1...20") }
    }

    func run() throws {
        let benchmark = SnapshotBenchmark(keys: keys, valueBytes: valueSize, directory: dir)
        print("synod bench snapshot: \(keys) keys of \(valueSize) bytes, spool in \(dir)")
        let start = ContinuousClock.now
        let (state, built) = benchmark.makeMeasuredState()
        print("state built in \(ContinuousClock.now - start)")
        func describe(_ residence: SnapshotBenchmark.Residence) -> String {
            "\(residence.residentBytes >> 20) MiB resident for \(residence.payloadBytes >> 20) MiB of keys and values "
                + "(\((residence.ratio * 1000).rounded() / 1000)x, \(residence.overheadPerKey(keys: keys)) bytes per key beyond them)"
        }
        print("built by puts: \(describe(built))")
        print("decoded from a snapshot (a joiner's or a restarted member's copy): \(describe(try benchmark.measureDecodedResidence(of: state)))")
        print("run | phase | seconds | MiB/s | checksum")
        for run in 1...repeats {
            for phase in try benchmark.run(state: state) {
                let rate = Double(phase.bytes) / 1_048_576 / max(phase.seconds, 1e-9)
                let digest = phase.digest == 0 ? "-" : String(phase.digest, radix: 16)
                print("\(run) | \(phase.name) | \((phase.seconds * 1000).rounded() / 1000) | \(Int(rate)) | \(digest)")
            }
        }
    }
}
