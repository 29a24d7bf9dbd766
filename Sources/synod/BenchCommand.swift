import ArgumentParser
import CSynodAllocCounter
import SynodSim

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks (measure, never assert).",
        subcommands: [CoreBench.self]
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
            let line = "run \(run): \(format(commandsPerSecond)) commands/s, \(format(slotsPerSecond)) slots/s, "
                + "\(format(Double(report.commands) / Double(max(1, report.slots)))) commands/slot, "
                + "\(format(Double(allocations) / Double(report.commands))) allocations/command, "
                + "\(format(seconds * 1_000)) ms"
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
