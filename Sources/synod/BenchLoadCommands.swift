import ArgumentParser
import Foundation
import SynodBench

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Flags shared by every `synod bench <workload>` load generator.
struct BenchLoadOptions: ParsableArguments {
    @Option(help: "Comma-separated etcd v3 endpoints (host:port, http://host:port, or https://host:port with --cacert).")
    var endpoints: String = "127.0.0.1:2379"

    @Option(help: "gRPC connections; clients are spread over them round-robin.")
    var conns: Int = 1

    @Option(help: "Concurrent clients (closed loop: one request outstanding each).")
    var clients: Int = 1

    @Option(help: "Run length: seconds, or with a unit (500ms, 10s, 1m). Ignored with --total.")
    var duration: String = "10s"

    @Option(help: "Stop after this many requests (watch: this many puts) instead of after --duration.")
    var total: Int?

    @Option(help: ArgumentHelp(
        "Open loop: requests per second over all clients, latency counted from the scheduled time. Default: closed loop.",
        discussion: "Each client still has one request outstanding; give enough --clients (rate x latency) to keep the rate."))
    var rate: Double?

    @Option(help: "leader (connections go to the member Maintenance.Status names leader) or all (round-robin over the endpoints).")
    var target: BenchTarget = .leader

    @Option(name: .customLong("key-space"), help: "Number of distinct keys.")
    var keySpace: Int = 10_000

    @Option(name: .customLong("key-prefix"), help: "Prefix of every key.")
    var keyPrefix: String = "bench/"

    @Option(name: .customLong("value-size"), help: "Bytes per value.")
    var valueSize: Int = 256

    @Option(help: "Seed of the key choice.")
    var seed: UInt64 = 1

    @Option(name: .customLong("client-stack"), help: ArgumentHelp(
        "h2 (frame-level gRPC on swift-nio-http2, callback-driven) or grpc-swift (grpc-swift-2's client). Watch always uses grpc-swift.",
        discussion: "h2 costs the load generator far less CPU per request, which matters when it shares the machine with the servers."))
    var clientStack: BenchClientStack = .h2

    @Option(name: .customLong("client-threads"), help: "Event-loop threads of the h2 client stack.")
    var clientThreads: Int = 1

    @Option(help: "PEM CA bundle that verifies the servers (TLS, as etcdctl's --cacert; needed for https:// endpoints).")
    var cacert: String?

    @Option(help: "PEM client certificate for servers with --client-cert-auth (with --key).")
    var cert: String?

    @Option(help: "PEM private key of --cert.")
    var key: String?

    @Flag(help: "Print only the JSON result on stdout.")
    var json = false

    @Flag(help: "No live progress line.")
    var quiet = false

    func makeOptions(_ workload: BenchWorkload) throws -> BenchOptions {
        var options = BenchOptions(
            workload: workload,
            endpoints: endpoints.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty })
        options.conns = conns
        options.clients = clients
        options.durationSeconds = try Self.parseDuration(duration)
        options.total = total
        options.rate = rate
        options.target = target
        options.keySpace = keySpace
        options.keyPrefix = keyPrefix
        options.valueBytes = valueSize
        options.seed = seed
        if cacert != nil || cert != nil || key != nil {
            options.tls = BenchTLS(caFile: cacert, certFile: cert, keyFile: key)
        }
        return options
    }

    var clientOptions: BenchClientOptions { BenchClientOptions(stack: clientStack, threads: clientThreads) }

    /// `10`, `10s`, `500ms`, `1m`, `1.5m` as seconds.
    static func parseDuration(_ text: String) throws -> Double {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        for (suffix, scale) in units where trimmed.hasSuffix(suffix) {
            if let number = Double(trimmed.dropLast(suffix.count)), number.isFinite { return number * scale }
        }
        if let number = Double(trimmed), number.isFinite { return number }
        throw ValidationError("--duration '\(text)' is not a duration (e.g. 10, 10s, 500ms, 1m)")
    }
}

extension BenchTarget: ExpressibleByArgument {}
extension BenchConsistency: ExpressibleByArgument {}
extension BenchClientStack: ExpressibleByArgument {}

/// Runs one load-generator workload for the command line: progress line, summary or JSON,
/// exit status 1 with one line when the run cannot start.
enum BenchLoadRunner {
    static func validate(_ options: BenchOptions, _ client: BenchClientOptions = BenchClientOptions()) throws {
        if let problem = options.validationProblem ?? client.validationProblem { throw ValidationError(problem) }
    }

    static func run(_ options: BenchOptions, client: BenchClientOptions = BenchClientOptions(), json: Bool, quiet: Bool) async throws {
        let live = !quiet && isatty(2) == 1
        let printProgress: @Sendable (BenchProgress) -> Void = { reading in
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + renderProgress(reading)).utf8))
        }
        let progress = live ? printProgress : nil
        let result: BenchResult
        do {
            result = try await LoadGenerator.run(options, client: client, progress: progress)
        } catch {
            if live { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
            FileHandle.standardError.write(Data("synod bench \(options.workload.rawValue): \(error)\n".utf8))
            throw ExitCode(1)
        }
        if live { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        print(json ? try renderJSON(result) : renderText(result))
    }
}

struct BenchPutCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "put", abstract: "Load: puts of --value-size bytes to random keys out of --key-space.")

    @OptionGroup var load: BenchLoadOptions

    func validate() throws { try BenchLoadRunner.validate(try load.makeOptions(.put), load.clientOptions) }
    func run() async throws { try await BenchLoadRunner.run(try load.makeOptions(.put), client: load.clientOptions, json: load.json, quiet: load.quiet) }
}

struct BenchGetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get", abstract: "Load: reads of random keys (the key space is written once before timing).")

    @OptionGroup var load: BenchLoadOptions

    @Option(help: "linearizable or serializable.")
    var consistency: BenchConsistency = .linearizable

    func options() throws -> BenchOptions {
        var options = try load.makeOptions(.get)
        options.consistency = consistency
        return options
    }

    func validate() throws { try BenchLoadRunner.validate(try options(), load.clientOptions) }
    func run() async throws { try await BenchLoadRunner.run(try options(), client: load.clientOptions, json: load.json, quiet: load.quiet) }
}

struct BenchTxnCASCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "txn-cas",
        abstract: "Load: compare-and-set through Txn (mod_revision as last seen by this client, put on success).",
        discussion: "A failed compare is a successful request; the summary counts them separately.")

    @OptionGroup var load: BenchLoadOptions

    func validate() throws { try BenchLoadRunner.validate(try load.makeOptions(.txnCAS), load.clientOptions) }
    func run() async throws { try await BenchLoadRunner.run(try load.makeOptions(.txnCAS), client: load.clientOptions, json: load.json, quiet: load.quiet) }
}

struct BenchMixedCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mixed", abstract: "Load: reads with probability --read-ratio, puts otherwise.")

    @OptionGroup var load: BenchLoadOptions

    @Option(name: .customLong("read-ratio"), help: "Fraction of reads (0...1).")
    var readRatio: Double = 0.9

    @Option(help: "linearizable or serializable reads.")
    var consistency: BenchConsistency = .linearizable

    func options() throws -> BenchOptions {
        var options = try load.makeOptions(.mixed)
        options.readRatio = readRatio
        options.consistency = consistency
        return options
    }

    func validate() throws { try BenchLoadRunner.validate(try options(), load.clientOptions) }
    func run() async throws { try await BenchLoadRunner.run(try options(), client: load.clientOptions, json: load.json, quiet: load.quiet) }
}

struct BenchWatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "Load: --watchers watch streams on --key-prefix, one writer; latency is put start to event receipt.",
        discussion: "Operations are events received, summed over the watchers. --total counts the writer's puts.")

    @OptionGroup var load: BenchLoadOptions

    @Option(help: "Watch streams (spread over --conns).")
    var watchers: Int = 100

    func options() throws -> BenchOptions {
        var options = try load.makeOptions(.watch)
        options.watchers = watchers
        return options
    }

    func validate() throws { try BenchLoadRunner.validate(try options(), load.clientOptions) }
    func run() async throws { try await BenchLoadRunner.run(try options(), client: load.clientOptions, json: load.json, quiet: load.quiet) }
}
