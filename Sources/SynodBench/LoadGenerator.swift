import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import NIOPosix
import SynodCore
import SynodEtcdAPI

/// `synod bench <workload>`: drives an etcd v3 endpoint set (Synod or etcd) with the raw gRPC
/// stubs and measures throughput and latency.
///
/// Each client is one task with one request outstanding at a time (closed loop), or issuing on
/// its own schedule (open loop, ``BenchOptions/rate``). Clients are spread round-robin over
/// ``BenchOptions/conns`` gRPC connections and record latencies into their own histograms, which
/// are merged at the end.
///
/// - Important: an unreachable endpoint or a missing leader ends the run before it starts, within
///   ``EndpointDiscovery/timeout``, with a ``LoadGeneratorError``. Errors of single requests are
///   counted by gRPC code and never end the run; every request has a ``requestTimeout`` deadline.
public enum LoadGenerator {
    /// Deadline of every request, so a stuck server cannot hang a run.
    public static let requestTimeout: Duration = .seconds(10)
    /// Pause of a closed-loop client after an `unavailable` error, so a dead connection does not
    /// turn into a busy loop that starves the servers sharing the machine.
    static let unavailablePauseNanos: UInt64 = 10_000_000

    typealias Connection = GRPCClient<HTTP2ClientTransport.Posix>

    public static func run(
        _ options: BenchOptions, client: BenchClientOptions = BenchClientOptions(),
        progress: (@Sendable (BenchProgress) -> Void)? = nil
    ) async throws -> BenchResult {
        if let problem = options.validationProblem ?? client.validationProblem { throw LoadGeneratorError(problem) }
        var endpoints: [BenchEndpoint] = []
        for text in options.endpoints { endpoints.append(try BenchEndpoint(parsing: text)) }
        if options.tls == nil, let https = endpoints.first(where: \.isHTTPS) {
            throw LoadGeneratorError("endpoint '\(https.original)': https:// needs TLS settings (--cacert, and --cert/--key for client certificates)")
        }
        let targets: [BenchEndpoint]
        do {
            targets = try await EndpointDiscovery.targets(endpoints, target: options.target, tls: options.tls)
        } catch let error as LoadGeneratorError where options.tls != nil && error.description.hasPrefix("cannot reach") {
            // grpc-swift reports a refused handshake as a connection closed before the HTTP/2 preface.
            throw LoadGeneratorError(error.description + "; with TLS this is also how a refused handshake shows: check that --cacert "
                + "signed the servers' certificates and that --cert/--key are signed by a CA the servers trust")
        }
        // `all` opens at least one connection per endpoint, so every endpoint gets load.
        let connectionCount = options.target == .all ? max(options.conns, targets.count) : options.conns
        if client.stack == .h2, options.workload != .watch {
            var result = try await runH2(options, targets: targets, connectionCount: connectionCount,
                                         threads: client.threads, progress: progress)
            result.targets = targets.map(\.original)
            return result
        }
        var connections: [Connection] = []
        for index in 0..<connectionCount {
            connections.append(try targets[index % targets.count].makeClient(tls: options.tls))
        }
        let runConnections = connections
        return try await withThrowingTaskGroup(of: Void.self) { group in
            for connection in runConnections {
                group.addTask { try await connection.runConnections() }
            }
            defer {
                for connection in runConnections { connection.beginGracefulShutdown() }
                group.cancelAll()
            }
            var result = try await runWorkload(options, connections: runConnections, progress: progress)
            result.targets = targets.map(\.original)
            return result
        }
    }

    static func callOptions() -> CallOptions {
        var options = CallOptions.defaults
        options.timeout = requestTimeout
        return options
    }

    private static func runWorkload(
        _ options: BenchOptions, connections: [Connection], progress: (@Sendable (BenchProgress) -> Void)?
    ) async throws -> BenchResult {
        let keys = options.keyBytes()
        let value = options.valueData()
        if options.workload == .get || options.workload == .mixed {
            try await populate(options, connections: connections, keys: keys, value: value)
        }
        let counters = RunCounters()
        let startNanos = monotonicNanos()
        let reporter = progress.map { reportProgress(counters, startNanos: startNanos, options: options, progress: $0) }
        defer { reporter?.cancel() }
        let tally: ClientTally
        var seconds: Double?
        if options.workload == .watch {
            (tally, seconds) = await WatchWorkload.run(options, connections: connections, counters: counters, startNanos: startNanos)
        } else {
            tally = await withTaskGroup(of: ClientTally.self) { group in
                for index in 0..<options.clients {
                    let client = KVClientLoop(
                        options: options, index: index, kv: Etcdserverpb_KV.Client(wrapping: connections[index % connections.count]),
                        keys: keys, value: value, counters: counters, startNanos: startNanos)
                    group.addTask { await client.run() }
                }
                var merged = ClientTally()
                for await one in group { merged.merge(one) }
                return merged
            }
        }
        let measured = seconds ?? Double(monotonicNanos() - startNanos) / 1e9
        return BenchResult(
            options: options, targets: [], operations: tally.operations, errors: tally.errors, seconds: measured,
            throughput: measured > 0 ? Double(tally.operations) / measured : 0, latency: tally.latency.summary,
            casFailures: options.workload == .txnCAS ? tally.casFailures : nil)
    }

    /// The unary workloads on the h2 stack (``H2LoadRun``).
    private static func runH2(
        _ options: BenchOptions, targets: [BenchEndpoint], connectionCount: Int, threads: Int,
        progress: (@Sendable (BenchProgress) -> Void)?
    ) async throws -> BenchResult {
        var configuration = H2ClientConfiguration()
        if let tls = options.tls { configuration.tls = try H2TLS.context(tls) }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        defer { group.shutdownGracefully { _ in } }
        let counters = RunCounters()
        let requests = H2KVRequests(keys: options.keyBytes(), value: options.valueData(),
                                    serializable: options.consistency == .serializable)
        let plan = H2LoadRun.Plan(options: options, targets: targets, connectionCount: connectionCount,
                                  requests: requests, counters: counters, configuration: configuration)
        if options.workload == .get || options.workload == .mixed {
            let failures = await H2LoadRun.populate(plan, group: group)
            if let first = failures.first {
                let batches = (options.keySpace + populateBatch - 1) / populateBatch
                throw LoadGeneratorError(
                    "pre-populating the key space failed: \(failures.count) of \(batches) batches of puts failed (\(first))")
            }
        }
        var reporter: Task<Void, Never>?
        defer { reporter?.cancel() }
        let outcome = await H2LoadRun.run(plan, group: group) { startNanos in
            reporter = progress.map { reportProgress(counters, startNanos: startNanos, options: options, progress: $0) }
        }
        let tally = outcome.tally
        if tally.operations == 0, outcome.failedConnections == connectionCount, let reason = outcome.firstFailure {
            // Not one connection could carry a call (a refused TLS handshake, say): an error, not a zero.
            throw LoadGeneratorError("no connection could carry a call (\(outcome.failedConnections) of \(connectionCount) failed): \(reason)")
        }
        let measured = Double(monotonicNanos() - outcome.startNanos) / 1e9
        return BenchResult(
            options: options, targets: [], operations: tally.operations, errors: tally.errors, seconds: measured,
            throughput: measured > 0 ? Double(tally.operations) / measured : 0, latency: tally.latency.summary,
            casFailures: options.workload == .txnCAS ? tally.casFailures : nil)
    }

    /// Puts per pre-populating Txn (etcd's default limit of operations per txn is 128).
    static let populateBatch = 64

    /// Writes every key once before a read workload, so reads find values: Txns of
    /// ``populateBatch`` puts, from up to 16 concurrent writers. Not timed.
    private static func populate(_ options: BenchOptions, connections: [Connection], keys: [Data], value: Data) async throws {
        let next = RunCounters()
        let batches = (keys.count + populateBatch - 1) / populateBatch
        let workers = min(options.clients, batches, 16)
        let failures: [String] = await withTaskGroup(of: [String].self) { group in
            for worker in 0..<workers {
                let kv = Etcdserverpb_KV.Client(wrapping: connections[worker % connections.count])
                group.addTask {
                    var failures: [String] = []
                    var put = Etcdserverpb_PutRequest()
                    put.value = value
                    let callOptions = callOptions()
                    while !Task.isCancelled {
                        let batch = next.issued.wrappingAdd(1, ordering: .relaxed).oldValue
                        if batch >= batches { break }
                        var txn = Etcdserverpb_TxnRequest()
                        for index in (batch * populateBatch)..<min(keys.count, (batch + 1) * populateBatch) {
                            put.key = keys[index]
                            var operation = Etcdserverpb_RequestOp()
                            operation.requestPut = put
                            txn.success.append(operation)
                        }
                        do {
                            _ = try await kv.txn(txn, options: callOptions)
                        } catch {
                            failures.append(connectFailureReason(error))
                        }
                    }
                    return failures
                }
            }
            var all: [String] = []
            for await some in group { all += some }
            return all
        }
        if let first = failures.first {
            throw LoadGeneratorError(
                "pre-populating the key space failed: \(failures.count) of \(batches) batches of puts failed (\(first))")
        }
    }
}

/// One client of a KV workload (put, get, mixed, txn-cas).
struct KVClientLoop: Sendable {
    let options: BenchOptions
    let index: Int
    let kv: Etcdserverpb_KV.Client<HTTP2ClientTransport.Posix>
    let keys: [Data]
    let value: Data
    let counters: RunCounters
    let startNanos: UInt64

    func run() async -> ClientTally {
        var tally = ClientTally()
        var random = SplitMix64(seed: options.seed &+ UInt64(index) &* 0xD1B5_4A32_D192_ED03)
        let callOptions = LoadGenerator.callOptions()
        let endNanos: UInt64? = options.total == nil ? startNanos + UInt64(options.durationSeconds * 1e9) : nil
        // Open loop: this client's share of the rate, its first slot staggered against the others.
        let intervalNanos: UInt64? = options.rate.map { UInt64(max(1, Double(options.clients) * 1e9 / $0)) }
        var scheduled = startNanos + (intervalNanos.map { $0 * UInt64(index) / UInt64(options.clients) } ?? 0)

        var put = Etcdserverpb_PutRequest()
        put.value = value
        var range = Etcdserverpb_RangeRequest()
        range.serializable = options.consistency == .serializable
        // txn-cas: the mod_revision this client last saw per key (0: absent or never seen).
        var lastSeen: [Int64] = options.workload == .txnCAS ? Array(repeating: 0, count: keys.count) : []

        while !Task.isCancelled {
            let begin: UInt64
            if let intervalNanos {
                if let endNanos, scheduled >= endNanos { break }
                if !counters.claim(total: options.total) { break }
                let now = monotonicNanos()
                if scheduled > now {
                    try? await Task.sleep(nanoseconds: scheduled - now)
                    if Task.isCancelled { break }
                }
                begin = scheduled
                scheduled += intervalNanos
            } else {
                let now = monotonicNanos()
                if let endNanos, now >= endNanos { break }
                if !counters.claim(total: options.total) { break }
                begin = now
            }
            let key = random.index(below: keys.count)
            do {
                switch options.workload {
                case .put:
                    put.key = keys[key]
                    _ = try await kv.put(put, options: callOptions)
                case .get:
                    range.key = keys[key]
                    _ = try await kv.range(range, options: callOptions)
                case .mixed:
                    if random.unit() < options.readRatio {
                        range.key = keys[key]
                        _ = try await kv.range(range, options: callOptions)
                    } else {
                        put.key = keys[key]
                        _ = try await kv.put(put, options: callOptions)
                    }
                case .txnCAS:
                    put.key = keys[key]
                    let response = try await kv.txn(casRequest(key: keys[key], expected: lastSeen[key], put: put), options: callOptions)
                    if response.succeeded {
                        lastSeen[key] = response.header.revision
                    } else {
                        tally.casFailures += 1
                        lastSeen[key] = response.responses.first?.responseRange.kvs.first?.modRevision ?? 0
                    }
                case .watch:
                    return tally
                }
                tally.latency.record(fromNanos: begin, toNanos: monotonicNanos())
                tally.operations += 1
                counters.completed.wrappingAdd(1, ordering: .relaxed)
            } catch {
                if Task.isCancelled { break }
                let kind = errorKind(error)
                tally.errors[kind, default: 0] += 1
                counters.failed.wrappingAdd(1, ordering: .relaxed)
                if intervalNanos == nil, kind == "unavailable" {
                    try? await Task.sleep(nanoseconds: LoadGenerator.unavailablePauseNanos)
                }
            }
        }
        return tally
    }

    /// `if mod_revision(key) == expected then put else range key`.
    private func casRequest(key: Data, expected: Int64, put: Etcdserverpb_PutRequest) -> Etcdserverpb_TxnRequest {
        var compare = Etcdserverpb_Compare()
        compare.key = key
        compare.target = .mod
        compare.result = .equal
        compare.modRevision = expected
        var success = Etcdserverpb_RequestOp()
        success.requestPut = put
        var read = Etcdserverpb_RangeRequest()
        read.key = key
        var failure = Etcdserverpb_RequestOp()
        failure.requestRange = read
        var txn = Etcdserverpb_TxnRequest()
        txn.compare = [compare]
        txn.success = [success]
        txn.failure = [failure]
        return txn
    }
}
