import ArgumentParser
import Foundation
import SynodBench
import SynodProcess

/// `synod bench compare`: Synod against etcd on this machine, one table.
struct CompareBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Start a 3-member Synod and a 3-member etcd cluster here, run the same workloads on both, print one table.",
        discussion: """
            Both clusters run on loopback with fsync on, each member with its own data directory \
            under --out. Every round measures each row (workload@clients) on Synod and then on \
            etcd, so noise on the machine hits both; the table shows the median over rounds of \
            throughput, p50 and p99, and the ratios (Synod/etcd for throughput, etcd/Synod for \
            latency: above 1 means Synod is better). Both clusters stay up during the whole run; \
            the one not being measured is idle but sends heartbeats. Also reported: the disk's \
            raw fdatasync rate, Synod's log with group commit and the pure core (in-process, as \
            `synod bench wal` and `synod bench core`), each member's peak RSS, and with \
            --memory-keys the RSS after loading that many keys and how long a follower killed \
            with SIGKILL takes to serve a read after its restart. Results: results.md and \
            results.json (every round) in --out. Ctrl-C stops every server.

            Workloads: put, get (linearizable), sget (serializable), txn-cas, mixed, watch \
            (clients = watchers); `name@N` sets the client count of one item.
            """
    )

    @Option(help: "Rounds (each measures every row on both systems).")
    var rounds: Int = 3
    @Option(help: "Seconds per measurement.")
    var duration: Double = 5
    @Option(help: "Comma-separated workloads, each `name` or `name@clients` (default: put@1,64,256 get@64,256 sget@256 txn-cas@64 mixed@64 watch@100).")
    var workloads: String?
    @Option(help: "Client counts for the workloads given without @ (comma-separated).")
    var clients: String?
    @Option(help: "gRPC connections per measurement.")
    var conns: Int = 8
    @Option(name: .customLong("value-size"), help: "Bytes per value.")
    var valueSize: Int = 256
    @Option(name: .customLong("key-space"), help: "Distinct keys of the workloads.")
    var keySpace: Int = 10_000
    @Option(help: "Output directory (default: bench-results/<UTC timestamp>).")
    var out: String?
    @Option(help: "The synod executable to run as `synod serve` (default: this executable).")
    var synodBin: String?
    @Option(help: "The etcd 3.4 server executable.")
    var etcdBin: String = "/usr/bin/etcd"
    @Flag(help: "Keep the members' data directories.")
    var keepData: Bool = false
    @Flag(help: "Measure Synod only.")
    var skipEtcd: Bool = false
    @Flag(help: "Measure etcd only (for a state so large that both clusters would not fit in memory at once: run once with --skip-etcd, once with --skip-synod).")
    var skipSynod: Bool = false
    @Option(help: "Ports: etcd clients base+1..3, peers base+11..13; Synod clients base+21..23, peers base+31..33, metrics base+41..43 (with --tls the TLS clusters on the same + 50).")
    var basePort: Int = 23790
    @Option(help: "Keys to load for the memory and restart phase (0 skips it; the goal is 1000000).")
    var memoryKeys: Int = 0
    @Flag(help: "After the memory phase, add a fourth member as a learner while writers put, and time its catch-up, its peak RSS and the leader's RSS growth (needs --memory-keys; e.g. --memory-keys 2000000 --value-size 1024 for 2 GiB).")
    var join: Bool = false
    @Option(help: "Writers putting new keys during the join.")
    var joinWriters: Int = 16
    @Option(help: "After the memory phase's range: seconds of puts (by --join-writers writers) while the leader snapshots the loaded state, with the put p99 during a snapshot and outside one; 0 skips it.")
    var snapshotWritesSeconds: Double = 30
    @Option(help: "Seconds per baseline row (raw fsync, WAL); 0 skips the baselines.")
    var walSeconds: Double = 2
    @Option(help: "Commands through the pure core for its baseline.")
    var coreCommands: Int = 200_000
    @Flag(help: "Also run each system with mutual TLS on its client and peer ports (etcd's --client-cert-auth and --peer-client-cert-auth, https:// URLs; a CA and certificates made in <out>/pki) and measure every row with TLS right after it in plaintext: rows 'put@1' and 'put@1 tls', and the cost of TLS per system. The TLS clusters listen on the ports of --base-port + 50; the memory phase stays plaintext.")
    var tls: Bool = false
    @Flag(help: "Print results.json instead of the table.")
    var json: Bool = false

    func options() throws -> CompareOptions {
        var options = CompareOptions()
        do throws(CompareError) {
            let counts = try clients.map { text throws(CompareError) -> [Int] in
                let parts = text.split(separator: ",").map { Int($0.filter { !$0.isWhitespace }) }
                guard !parts.isEmpty, parts.allSatisfy({ $0 != nil }) else { throw CompareError("--clients: expected numbers like 1,64,256") }
                return parts.compactMap { $0 }
            }
            if let workloads {
                options.rows = try CompareRow.parseList(workloads, clients: counts)
            } else if let counts {
                options.rows = try CompareRow.parseList(CompareRow.Kind.allCases.map(\.rawValue).joined(separator: ","), clients: counts)
            }
            options.rounds = rounds
            options.durationSeconds = duration
            options.conns = conns
            options.valueBytes = valueSize
            options.keySpace = keySpace
            options.outDirectory = out ?? "bench-results/\(ChaosCommand.timestamp())"
            options.synodBinary = synodBin ?? URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
            options.etcdBinary = etcdBin
            options.keepData = keepData
            options.skipEtcd = skipEtcd
            options.skipSynod = skipSynod
            options.basePort = basePort
            options.memoryKeys = memoryKeys
            options.join = join
            options.joinWriters = joinWriters
            options.snapshotWritesSeconds = snapshotWritesSeconds
            options.walSeconds = walSeconds
            options.coreCommands = coreCommands
            options.tls = tls
            try options.validate()
        } catch {
            throw ValidationError(error.description)
        }
        return options
    }

    func validate() throws {
        _ = try options()
    }

    func run() async throws {
        let options = try options()
        let runner = CompareRunner(options: options) { line in
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
        FileHandle.standardError.write(Data("synod bench compare: \(options.rows.map(\.description).joined(separator: " ")), \(options.rounds) round(s) x \(options.durationSeconds) s, results in \(options.outDirectory)\n".utf8))
        let task = Task { try await runner.run() }

        // Ctrl-C / SIGTERM: kill every server at once, let the run clean up, exit 130.
        let children = ChildRegistry.shared
        let trap = children.killOnInterrupt(command: "synod bench compare", grace: .seconds(15)) { task.cancel() }
        defer { trap.cancel() }

        let report: CompareReport
        do {
            report = try await task.value
        } catch {
            children.killAll()
            if error is CancellationError || task.isCancelled {
                FileHandle.standardError.write(Data("synod bench compare: interrupted; every server killed\n".utf8))
                throw ExitCode(130)
            }
            FileHandle.standardError.write(Data("synod bench compare: \(error)\n".utf8))
            throw ExitCode(1)
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
            let data = try encoder.encode(report)
            FileHandle.standardOutput.write(data + Data("\n".utf8))
        } else {
            FileHandle.standardOutput.write(Data((report.text + "\nresults: \(options.outDirectory)/results.md, results.json\n").utf8))
        }
    }
}
