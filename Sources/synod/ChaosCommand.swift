import ArgumentParser
import Foundation
import SynodChaos
import SynodProcess
import SynodServer

/// `synod chaos`: a real cluster of `synod serve` processes under faults, a recorded client
/// history, and the checks (linearizability, lost writes, replica hashes, alarms).
struct ChaosCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chaos",
        abstract: "Run a real local cluster under faults and check the clients' history.",
        discussion: """
            Starts --nodes `synod serve` processes, runs --clients concurrent clients
            against them while a nemesis kills, pauses, partitions, stalls and crashes
            nodes (a stall cuts a node's peer links, stops it with SIGSTOP, and wakes it
            still cut off but reachable by clients: the leader 3 times in 4), then
            heals everything and checks: linearizability of the history, acknowledged
            writes not lost, equal replica hashes, no alarms. The fault schedule derives
            only from --seed, so a run can be replayed. The report (history, nemesis
            events, verdict, index.html, node logs) goes to --report. The verdict line is
            printed last; the exit status is 1 when a check failed.

            Membership changes (--nodes 3 to 5): `membership` adds members (MemberAdd as a
            learner, a new `synod serve --initial-cluster-state existing`, MemberPromote
            once caught up), removes voters (sometimes the leader; a removed process
            should exit by itself, one that does not is killed and counted in the
            summary) and moves the leader (MoveLeader), keeping 3 to 5 voters and never
            removing a voter when a majority of the others is not running.
            `replace` is a rolling replacement: grow to 5 voters, replace every original
            member by a fresh one, shrink to 3; the run fails unless it ends with 3 voters
            none of which is original. Both combine with the other kinds (e.g. --nemesis
            membership,kill,partition). Clients follow the membership, the final checks
            use the final members, and the verdict line names them.
            """
    )

    @Option(help: "Number of nodes (1 to 7; 3 to 5 with membership or replace).")
    var nodes: Int = 3
    @Option(help: "How long the clients and the nemesis run (e.g. 60s, 30m, 1h).")
    var duration: String = "60s"
    @Option(help: "Concurrent clients.")
    var clients: Int = 10
    @Option(help: "Size of the key space (k0, k1, ...).")
    var keys: Int = 8
    @Option(help: "Faults: kill,pause,partition,stall,crash-all,crash-all-torn,failpoints,membership,replace, or none, or all (all: the first seven).")
    var nemesis: String = "kill,pause,partition,stall"
    @Option(help: "Network fault layer: proxy (TCP proxies in this process) or netns (network namespaces, root).")
    var net: String = "proxy"
    @Option(help: "Seed of the fault schedule (default: random; printed at the start).")
    var seed: UInt64?
    @Option(help: "Report directory (default: chaos-report/<UTC timestamp>-seed<seed>).")
    var report: String?
    @Option(help: "The synod executable to run as `synod serve` (default: this executable).")
    var synodBin: String?
    @Option(help: "Mean time between nemesis actions (e.g. 5s).")
    var interval: String = "5s"
    @Option(help: "Client operation timeout (e.g. 2s).")
    var opTimeout: String = "2s"
    @Option(help: "Applied slots between snapshots on the nodes.")
    var snapshotCount: Int = 2000
    @Flag(help: "Treat a checker timeout (linearizable: unknown) as a failure.")
    var strict: Bool = false
    @Flag(help: "Keep the nodes' data directories even when the run passes.")
    var keepData: Bool = false
    @Flag(help: "Only print the seed, warnings and the verdict.")
    var quiet: Bool = false
    @Flag(help: .hidden)
    var brokenReads: Bool = false
    @Flag(help: .hidden)
    var brokenLease: Bool = false
    @Option(help: "Run the servers as this unprivileged user (needs root; with --net netns only the namespaces and iptables need root).")
    var serveUser: String?
    @Flag(help: "Only check whether --net netns can work here: prints 'netns: ok' (exit 0) or the reason it cannot (exit 1).")
    var probeNetns: Bool = false

    func options() throws -> ChaosOptions {
        var options = ChaosOptions()
        do {
            options.nodes = nodes
            options.durationSeconds = try Self.seconds(duration, flag: "--duration")
            options.clients = clients
            options.keys = keys
            options.nemesis = try NemesisKind.parseList(nemesis)
            options.intervalSeconds = try Self.seconds(interval, flag: "--interval")
            options.opTimeoutSeconds = try Self.seconds(opTimeout, flag: "--op-timeout")
        } catch {
            throw ValidationError("\(error)")
        }
        guard snapshotCount > 0 else { throw ValidationError("--snapshot-count must be positive") }
        options.snapshotCount = snapshotCount
        options.seed = seed ?? UInt64.random(in: 1...UInt64(Int64.max))
        options.synodBinary = synodBin ?? URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        options.reportDirectory = report ?? "chaos-report/\(Self.timestamp())-seed\(options.seed)"
        options.brokenReads = brokenReads
        options.brokenLease = brokenLease
        options.serveUser = serveUser
        options.strict = strict
        options.keepData = keepData
        options.quiet = quiet
        do {
            try options.validate()
        } catch {
            throw ValidationError(error.description)
        }
        return options
    }

    /// Durations as `synod serve` reads them (500ms, 30s, 10m, 1h, 1m30s).
    static func seconds(_ text: String, flag: String) throws -> Double {
        Double(try ServeConfiguration.milliseconds(text, flag: flag)) / 1000
    }

    func validate() throws {
        guard ["proxy", "netns"].contains(net) else { throw ValidationError("--net must be proxy or netns, got '\(net)'") }
        _ = try options()
    }

    /// Writes one line to stdout at once (no buffering, so progress shows up in pipes too).
    static func emit(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    static func timestamp() -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return formatter.string(from: Date())
    }

    func run() async throws {
        if probeNetns {
            if let reason = NamespaceNetwork.probe() {
                Self.emit("netns: \(reason)")
                throw ExitCode(1)
            }
            Self.emit("netns: ok")
            return
        }
        let options = try options()
        let network: any ChaosNetwork
        if net == "netns" {
            if let reason = NamespaceNetwork.probe() {
                FileHandle.standardError.write(Data("--net netns: \(reason)\n".utf8))
                throw ExitCode(64)
            }
            network = NamespaceNetwork(runID: String(options.seed % 100_000))
        } else {
            network = ProxyNetwork()
        }
        let quiet = options.quiet
        let log: @Sendable (String) -> Void = { line in
            if quiet && !(line.hasPrefix("warning") || line.hasPrefix("error")) { return }
            Self.emit(line)
        }
        Self.emit("synod chaos: seed \(options.seed), \(options.nodes) nodes, \(options.clients) clients, \(options.keys) keys, "
            + "nemesis \(options.nemesis.isEmpty ? "none" : options.nemesis.map(\.rawValue).joined(separator: ",")), "
            + "net \(net), duration \(duration), report \(options.reportDirectory)")
        let runner = ChaosRunner(options: options, network: network, log: log)
        let task = Task { try await runner.run() }

        // Ctrl-C / SIGTERM: kill every node at once, let the run clean up, exit 130.
        let children = ChildRegistry.shared
        let trap = children.killOnInterrupt(command: "synod chaos", grace: .seconds(10)) { task.cancel() }
        defer { trap.cancel() }

        let verdict: ChaosVerdict
        do {
            verdict = try await task.value
        } catch {
            children.killAll()
            if error is CancellationError || task.isCancelled {
                FileHandle.standardError.write(Data("synod chaos: interrupted; nodes killed, logs in \(options.reportDirectory)/nodes\n".utf8))
                throw ExitCode(130)
            }
            FileHandle.standardError.write(Data("synod chaos: error: \(error)\n".utf8))
            throw ExitCode(1)
        }
        Self.emit("report: \(options.reportDirectory)/index.html")
        Self.emit(verdict.line)
        if verdict.failed { throw ExitCode(1) }
    }
}
