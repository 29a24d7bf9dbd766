import Foundation
import ArgumentParser
import SynodCore
import SynodSim

struct SimCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sim",
        abstract: "Run seeded simulations of a Synod cluster under faults and check every run.",
        discussion: """
            Each run drives the code that ships (the node driver of every member, with its
            Multi-Paxos replica and the etcd key-value state machine) through message loss, duplication, delay and
            reordering, partitions (symmetric, minority/majority, one-way), crashes that
            lose unsynced writes, power loss of every node, stalled processes (a node stops
            while its clock and the others go on, half the time cut off from its peers; it
            wakes to a queue of requests and messages), and clock drift, with
            concurrent clients, while an operator changes the membership: it adds a
            learner (a new node id, started empty, which catches up by snapshot) and
            promotes it, adds voters, removes a voter or the leader, replaces a crashed
            node by a new empty one, and transfers leadership, sometimes sending a whole
            script at once (--no-reconfig keeps the membership fixed). A removed node stops
            as a server does, once the cluster confirms its removal; until then clients
            with stale endpoint lists may still reach it.

            It then checks agreement, validity, that every chosen slot was accepted by a
            phase-2 quorum of the membership governing it, that each chosen membership is
            its predecessor with exactly the one change it names, that no acknowledged write was
            lost, linearizability of the client history (puts, reads and compare-and-set
            transactions as etcd requests), that every member's state machine produced the
            same watch events for each revision, replica invariants after every
            step, convergence of the final members, and progress after faults heal. A
            failing run prints its seed; `synod sim --seed S` replays it exactly, and
            `synod sim --seed S --html run.html` writes a page that replays it step by step in a
            browser (stopping at the violation of a --break run).
            """
    )

    @Option(help: "Run exactly this seed.")
    var seed: UInt64?

    @Option(help: "Number of runs (seeds from --from-seed upward).")
    var runs: Int = 100

    @Option(name: .customLong("from-seed"), help: "First seed of a multi-run.")
    var fromSeed: UInt64 = 1

    @Option(help: "Cluster size: 3, 5 or 7, or a list such as 3,5,7 used in turn.")
    var nodes: String = "3"

    @Option(help: "Simulated seconds of client workload per run.")
    var duration: Double = 4

    @Option(help: "Concurrent clients.")
    var clients: Int = 5

    @Option(help: "Keys in the key space.")
    var keys: Int = 3

    @Option(help: "Probability that a message is lost while faults are on.")
    var drop: Double = 0.02

    @Option(help: "Probability that a message is duplicated while faults are on.")
    var duplicate: Double = 0.02

    @Option(help: "Probability that a message is delayed 5–100 ms (reordering).")
    var delay: Double = 0.05

    @Option(name: .customLong("nemesis-interval"), help: "Mean milliseconds between partitions/crashes.")
    var nemesisInterval: Double = 600

    @Flag(name: .customLong("no-partitions"), help: "Do not partition the network.")
    var noPartitions = false

    @Flag(name: .customLong("no-crashes"), help: "Do not crash nodes.")
    var noCrashes = false

    @Flag(name: .customLong("no-stalls"), help: "Do not stall node processes.")
    var noStalls = false

    @Flag(name: .customLong("no-reconfig"), help: "Do not change the membership.")
    var noReconfig = false

    @Option(name: .customLong("reconfig-interval"), help: "Mean milliseconds between the operator's membership-change scripts.")
    var reconfigInterval: Double = FaultProfile().reconfigIntervalMillis

    @Flag(name: .customLong("no-faults"), help: "A fault-free run (no loss, partitions, crashes or membership changes).")
    var noFaults = false

    @Option(name: .customLong("read-mode"), help: "How linearizable reads are served: lease or read-index.")
    var readMode: String = "lease"

    @Option(name: .customLong("break"), help: "Run with a deliberately unsafe deviation: \(Break.allCases.map(\.rawValue).joined(separator: ", ")).")
    var breaks: [String] = []

    @Flag(help: "Tell the run's story message by message (one seed).")
    var trace = false

    @Flag(name: .customLong("trace-heartbeats"), help: "Include heartbeats in the trace.")
    var traceHeartbeats = false

    @Option(help: ArgumentHelp("Write a self-contained HTML page that replays the run step by step (one seed).", valueName: "file"))
    var html: String?

    @Option(help: "Parallel runs (defaults to the number of cores).")
    var jobs: Int?

    @Flag(help: "The guided tour: alone, list its scenarios; with a scenario's name and --html FILE, write its replay page; with `all` and --html DIR, write every scenario's page and an index.html.")
    var tour = false

    @Argument(help: ArgumentHelp("With --tour: a scenario's name, or all.", valueName: "scenario"))
    var scenario: String?

    func validate() throws {
        if scenario != nil && !tour { throw ValidationError("unexpected argument \(scenario ?? ""); a scenario name goes with --tour") }
        if tour, let scenario {
            guard scenario == "all" || SimTour.named(scenario) != nil else {
                throw ValidationError("unknown tour scenario \(scenario); known: \(SimTour.all.map(\.name).joined(separator: ", ")), all")
            }
            guard html != nil else { throw ValidationError("--tour \(scenario) needs --html \(scenario == "all" ? "DIR" : "FILE")") }
        }
        for size in try nodeSizes() where ![3, 5, 7].contains(size) {
            throw ValidationError("--nodes must be 3, 5 or 7 (got \(size))")
        }
        guard ReadMode(rawValue: readMode) != nil else {
            throw ValidationError("--read-mode must be lease or read-index (got \(readMode))")
        }
        for name in breaks where Break(rawValue: name) == nil {
            throw ValidationError("unknown --break \(name); known: \(Break.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard duration > 0, duration <= 3_600 else { throw ValidationError("--duration must be in (0, 3600] seconds") }
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
        guard clients >= 1, clients <= 1_000 else { throw ValidationError("--clients must be in 1...1000") }
        guard keys >= 1, keys <= 10_000 else { throw ValidationError("--keys must be in 1...10000") }
        for (name, rate) in [("drop", drop), ("duplicate", duplicate), ("delay", delay)] where !(0...1).contains(rate) {
            throw ValidationError("--\(name) must be a probability in [0, 1]")
        }
        guard reconfigInterval > 0 else { throw ValidationError("--reconfig-interval must be positive") }
        guard nemesisInterval > 0 else { throw ValidationError("--nemesis-interval must be positive") }
        if trace && seed == nil { throw ValidationError("--trace needs --seed S (one run)") }
        if html != nil && seed == nil && !tour { throw ValidationError("--html needs --seed S (one run)") }
    }

    private func nodeSizes() throws -> [Int] {
        let sizes = nodes.split(separator: ",").map { Int($0.filter { $0 != " " }) }
        guard !sizes.isEmpty, sizes.allSatisfy({ $0 != nil }) else { throw ValidationError("--nodes must be a list of sizes, e.g. 3 or 3,5,7") }
        return sizes.compactMap { $0 }
    }

    func options(seed: UInt64, runIndex: Int) throws -> SimulationOptions {
        let sizes = try nodeSizes()
        var options = SimulationOptions(seed: seed)
        options.nodes = sizes[runIndex % sizes.count]
        options.durationSeconds = duration
        options.clients = clients
        options.keys = keys
        options.readMode = ReadMode(rawValue: readMode) ?? .lease
        options.breaks = Set(breaks.compactMap(Break.init(rawValue:)))
        options.trace = trace
        options.traceHeartbeats = traceHeartbeats
        options.record = html != nil
        if noFaults {
            options.faults = .none
        } else {
            options.faults.dropRate = drop
            options.faults.duplicateRate = duplicate
            options.faults.delayRate = delay
            options.faults.nemesisIntervalMillis = nemesisInterval
            if noPartitions { options.faults.partitionWeight = 0 }
            if noCrashes { options.faults.crashWeight = 0 }
            if noStalls { options.faults.stallWeight = 0 }
            options.faults.reconfigIntervalMillis = noReconfig ? 0 : reconfigInterval
        }
        return options
    }

    func run() throws {
        if tour {
            try runTour()
            return
        }
        let seeds: [UInt64] = seed.map { [$0] } ?? (0..<runs).map { fromSeed &+ UInt64($0) }
        let allOptions = try seeds.enumerated().map { try options(seed: $0.element, runIndex: $0.offset) }
        let results = SimulationBatch.run(allOptions, jobs: jobs ?? SimulationBatch.defaultJobs)
        if trace, let only = results.first {
            for line in only.trace { print(line) }
            print("trace hash: \(String(only.traceHash, radix: 16))")
        }
        if let html, let replay = results.first?.replay {
            try SimReplayPage.write(replay, to: html)
            print("replay: \(replay.steps.count) steps written to \(html)" + (replay.violation.map { " (violation at step \($0.step))" } ?? ""))
        }
        var violations = 0
        var operations = 0
        var chosenSlots = 0
        var commands = 0
        var crashes = 0
        var partitions = 0
        var stalls = 0
        var corruptions = 0
        var torn = 0
        var reconfigurations = 0
        var added = 0
        var transfers = 0
        var chunks = 0
        var damaged = 0
        var refused = 0
        var pinned = 0
        var spooled = 0
        var repairsStarted = 0
        var repairsFinished = 0
        for result in results {
            operations += result.operations
            chosenSlots += result.chosenSlots
            commands += result.commandsChosen
            crashes += result.crashes
            partitions += result.partitions
            stalls += result.stalls
            corruptions += result.corruptionsDetected
            torn += result.tornWritesDiscarded
            repairsStarted += result.repairsStarted
            repairsFinished += result.repairsFinished
            reconfigurations += result.reconfigurations
            added += result.membersAdded
            transfers += result.leaderTransfers
            chunks += result.snapshotChunksSent
            damaged += result.chunksCorrupted
            refused += result.snapshotChecksumFailures
            pinned += result.pinnedSnapshotsOutlived
            spooled += result.snapshotsSpooled
            if !result.violations.isEmpty {
                violations += 1
                print(result.failureLine)
            }
        }
        let breakText = breaks.isEmpty ? "" : ", break: \(breaks.joined(separator: ","))"
        print("faults: \(crashes) crashes, \(partitions) partitions, \(stalls) stalls, \(corruptions) corruptions refused at restart, \(torn) torn writes discarded at restart")
        print("repair: \(repairsStarted) restarts had synced log damage to repair, \(repairsFinished) repairs finished (a node removed or restarted mid-repair does not finish)")
        print("membership: \(reconfigurations) changes chosen, \(added) members started, \(transfers) leader transfers")
        print("snapshots: \(chunks) chunks sent, \(damaged) damaged in flight, \(refused) snapshots refused by their checksum, \(pinned) served on past a newer one, \(spooled) received into a spool file")
        print("runs: \(results.count), violations: \(violations), ops: \(operations), chosen slots: \(chosenSlots), commands: \(commands)\(breakText)")
        if violations > 0 { throw ExitCode(1) }
    }

    /// `--tour`: the list, one scenario's page, or every page and the index.
    private func runTour() throws {
        guard let scenario else {
            print("The guided tour (synod sim --tour NAME --html FILE, or --tour all --html DIR):")
            for tour in SimTour.all {
                print("  \(tour.name.padding(toLength: 20, withPad: " ", startingAt: 0)) \(tour.title) (\(tour.options.nodes) nodes, seed \(tour.options.seed))")
            }
            return
        }
        guard let html else { throw ValidationError("--tour needs --html") }
        if scenario == "all" {
            try FileManager.default.createDirectory(atPath: html, withIntermediateDirectories: true)
            let directory = URL(fileURLWithPath: html)
            for tour in SimTour.all {
                guard let page = try SimTourPages.tourPage(name: tour.name) else { continue }
                try Data(page.utf8).write(to: directory.appendingPathComponent("\(tour.name).html"))
                print("\(tour.name): \(directory.appendingPathComponent("\(tour.name).html").path) (\(page.utf8.count / 1024) KiB)")
            }
            try Data(SimTourPages.tourIndex().utf8).write(to: directory.appendingPathComponent("index.html"))
            print("index: \(directory.appendingPathComponent("index.html").path)")
        } else {
            guard let page = try SimTourPages.tourPage(name: scenario) else { throw ValidationError("unknown tour scenario \(scenario)") }
            try Data(page.utf8).write(to: URL(fileURLWithPath: html))
            print("\(scenario): \(html) (\(page.utf8.count / 1024) KiB)")
        }
    }
}
