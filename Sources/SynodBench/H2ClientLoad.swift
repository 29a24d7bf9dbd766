import Foundation
import NIOCore
import NIOHPACK
import NIOPosix
import SynodCore
import SynodEtcdAPI

/// Which client stack drives the unary workloads (put, get, txn-cas, mixed and the pre-fill);
/// watch always uses grpc-swift.
public enum BenchClientStack: String, Codable, CaseIterable, Sendable {
    /// ``H2Connection``: gRPC framed by hand on swift-nio-http2, callback-driven on event loops.
    case h2
    /// grpc-swift-2's client, one Swift task per client.
    case grpcSwift = "grpc-swift"
}

/// How the load generator's client side runs (not part of ``BenchOptions``: it changes what the
/// client costs, not what the servers are asked to do).
public struct BenchClientOptions: Sendable, Equatable {
    public var stack: BenchClientStack = .h2
    /// Event-loop threads of the h2 stack.
    public var threads: Int = 1

    public init(stack: BenchClientStack = .h2, threads: Int = 1) {
        self.stack = stack
        self.threads = threads
    }

    public var validationProblem: String? {
        (1...64).contains(threads) ? nil : "--client-threads must be in 1...64"
    }
}

/// The unary workloads on ``H2Connection``s: connections and clients are spread over a small
/// `MultiThreadedEventLoopGroup`; everything of one event loop (its connections, its clients,
/// its tally) lives on that loop, so no request takes a lock or a Swift task. A closed-loop
/// client issues its next request from the completion of the previous one; an open-loop client
/// schedules it on the loop. Each loop records into its own histogram; they are merged at the end.
enum H2LoadRun {
    struct Plan: Sendable {
        var options: BenchOptions
        var targets: [BenchEndpoint]
        var connectionCount: Int
        var requests: H2KVRequests
        var counters: RunCounters
        var configuration = H2ClientConfiguration()
    }

    /// What ``run(_:group:onStart:)`` measured.
    struct Outcome: Sendable {
        var tally: ClientTally
        /// When the timed part began (every connection was up by then).
        var startNanos: UInt64
        /// Connections whose warm-up call failed, and the first reason.
        var failedConnections: Int
        var firstFailure: String?
    }

    /// Opens every connection (TCP, TLS handshake when configured, HTTP/2 settings) with one
    /// warm-up call each, then starts the clock (`onStart` gets the start time) and runs the
    /// timed workload; returns the merged tally. Connection set-up is thus never timed, with or
    /// without TLS.
    static func run(_ plan: Plan, group: MultiThreadedEventLoopGroup, onStart: (UInt64) -> Void = { _ in }) async -> Outcome {
        let loops = Array(group.makeIterator())
        let counters = plan.counters
        let startSignal = loops[0].makePromise(of: UInt64.self)
        return await withTaskCancellationHandler {
            var warmUps: [EventLoopFuture<[String]>] = []
            var futures: [EventLoopFuture<ClientTally>] = []
            for (index, loop) in loops.enumerated() {
                let warmedUp = loop.makePromise(of: [String].self)
                warmUps.append(warmedUp.futureResult)
                let started = startSignal.futureResult.hop(to: loop)
                futures.append(loop.flatSubmit {
                    let run = LoopRun(plan: plan, loopIndex: index, loopCount: loops.count, eventLoop: loop)
                    warmedUp.completeWith(run.warmUp())
                    return started.assumeIsolated().flatMap { startNanos in
                        run.start(startNanos: startNanos)
                    }.nonisolated()
                })
            }
            var failures: [String] = []
            for warmUp in warmUps { failures += (try? await warmUp.get()) ?? [] }
            let startNanos = monotonicNanos()
            onStart(startNanos)
            startSignal.succeed(startNanos)
            var merged = ClientTally()
            for future in futures {
                if let tally = try? await future.get() { merged.merge(tally) }
            }
            return Outcome(tally: merged, startNanos: startNanos, failedConnections: failures.count, firstFailure: failures.first)
        } onCancel: {
            counters.stopped.store(true, ordering: .relaxed)
        }
    }

    /// Writes every key once (Txns of ``LoadGenerator/populateBatch`` puts from up to 16
    /// concurrent writers); returns the failure reasons.
    static func populate(_ plan: Plan, group: MultiThreadedEventLoopGroup) async -> [String] {
        let loops = Array(group.makeIterator())
        let next = RunCounters()
        let batches = (plan.requests.keys.count + LoadGenerator.populateBatch - 1) / LoadGenerator.populateBatch
        let workers = min(plan.options.clients, batches, 16)
        var futures: [EventLoopFuture<[String]>] = []
        for (index, loop) in loops.enumerated() {
            futures.append(loop.flatSubmit {
                PopulateRun(plan: plan, loopIndex: index, loopCount: loops.count, eventLoop: loop,
                            workers: workers, batches: batches, next: next).start()
            })
        }
        var failures: [String] = []
        for future in futures {
            do {
                failures += try await future.get()
            } catch {
                failures.append("\(error)")
            }
        }
        return failures
    }

    /// The connections of one event loop: connection `j` of the run lives on loop `j % loopCount`.
    static func makeConnections(_ plan: Plan, loopIndex: Int, loopCount: Int, eventLoop: any EventLoop) -> [Int: H2Connection] {
        var connections: [Int: H2Connection] = [:]
        for index in 0..<plan.connectionCount where index % loopCount == loopIndex {
            let target = plan.targets[index % plan.targets.count]
            connections[index] = H2Connection(eventLoop: eventLoop, host: target.host, port: target.port,
                                              configuration: plan.configuration)
        }
        return connections
    }
}

/// The request headers of one connection, built once.
struct H2MethodHeaders {
    let put: HPACKHeaders
    let range: HPACKHeaders
    let txn: HPACKHeaders

    init(_ connection: H2Connection) {
        put = connection.requestHeaders(path: H2Paths.put, timeout: LoadGenerator.requestTimeout)
        range = connection.requestHeaders(path: H2Paths.range, timeout: LoadGenerator.requestTimeout)
        txn = connection.requestHeaders(path: H2Paths.txn, timeout: LoadGenerator.requestTimeout)
    }
}

/// Everything of one event loop in a timed run. Confined to ``eventLoop``.
private final class LoopRun {
    let plan: H2LoadRun.Plan
    let eventLoop: any EventLoop
    let connections: [Int: H2Connection]
    let headers: [Int: H2MethodHeaders]
    let loopIndex: Int
    let loopCount: Int
    var tally = ClientTally()
    var running = 0
    let done: EventLoopPromise<ClientTally>
    var clients: [H2KVClient] = []

    init(plan: H2LoadRun.Plan, loopIndex: Int, loopCount: Int, eventLoop: any EventLoop) {
        self.plan = plan
        self.eventLoop = eventLoop
        self.loopIndex = loopIndex
        self.loopCount = loopCount
        self.connections = H2LoadRun.makeConnections(plan, loopIndex: loopIndex, loopCount: loopCount, eventLoop: eventLoop)
        self.headers = connections.mapValues { H2MethodHeaders($0) }
        self.done = eventLoop.makePromise()
    }

    /// One call (a Range of the first key) on each of this loop's connections, so each is
    /// connected, through its TLS handshake and HTTP/2 settings; succeeds with the reasons of the
    /// calls that failed.
    func warmUp() -> EventLoopFuture<[String]> {
        let promise = eventLoop.makePromise(of: [String].self)
        var pending = connections.count
        var failures: [String] = []
        if pending == 0 { promise.succeed([]) }
        let deadline = monotonicNanos() + UInt64(LoadGenerator.requestTimeout.components.seconds) * 1_000_000_000
        for (index, connection) in connections {
            guard let headers = headers[index] else { continue }
            connection.unary(headers: headers.range, body: plan.requests.rangeBody(key: 0), deadlineNanos: deadline) { result in
                if case .failure(let error) = result { failures.append("\(connection.authority): \(error)") }
                pending -= 1
                if pending == 0 { promise.succeed(failures) }
            }
        }
        return promise.futureResult
    }

    func start(startNanos: UInt64) -> EventLoopFuture<ClientTally> {
        let options = plan.options
        for index in 0..<options.clients {
            let connectionIndex = index % plan.connectionCount
            guard let connection = connections[connectionIndex], let headers = headers[connectionIndex] else { continue }
            clients.append(H2KVClient(run: self, index: index, connection: connection, headers: headers, startNanos: startNanos))
        }
        running = clients.count
        if running == 0 {
            finishLoop()
        } else {
            for client in clients { client.begin() }
        }
        return done.futureResult
    }

    func clientFinished() {
        running -= 1
        if running == 0 { finishLoop() }
    }

    private func finishLoop() {
        for connection in connections.values { connection.close() }
        clients.removeAll()
        done.succeed(tally)
    }
}

/// One client of a KV workload (put, get, mixed, txn-cas) on the h2 stack; the same request
/// choice and schedule as ``KVClientLoop``.
private final class H2KVClient {
    let run: LoopRun
    let connection: H2Connection
    let headers: H2MethodHeaders
    let options: BenchOptions
    let requests: H2KVRequests
    let counters: RunCounters
    var random: SplitMix64
    let endNanos: UInt64?
    let intervalNanos: UInt64?
    var scheduled: UInt64
    var lastSeen: [Int64]
    let timeoutNanos: UInt64

    init(run: LoopRun, index: Int, connection: H2Connection, headers: H2MethodHeaders, startNanos: UInt64) {
        let options = run.plan.options
        self.run = run
        self.connection = connection
        self.headers = headers
        self.options = options
        self.requests = run.plan.requests
        self.counters = run.plan.counters
        self.random = SplitMix64(seed: options.seed &+ UInt64(index) &* 0xD1B5_4A32_D192_ED03)
        self.endNanos = options.total == nil ? startNanos + UInt64(options.durationSeconds * 1e9) : nil
        let interval = options.rate.map { UInt64(max(1, Double(options.clients) * 1e9 / $0)) }
        self.intervalNanos = interval
        self.scheduled = startNanos + (interval.map { $0 * UInt64(index) / UInt64(options.clients) } ?? 0)
        self.lastSeen = options.workload == .txnCAS ? Array(repeating: 0, count: run.plan.requests.keys.count) : []
        let timeout = LoadGenerator.requestTimeout.components
        self.timeoutNanos = UInt64(timeout.seconds) * 1_000_000_000 + UInt64(timeout.attoseconds / 1_000_000_000)
    }

    func begin() { next() }

    /// Issues the next request (now or at its scheduled time) or ends this client.
    private func next() {
        if counters.stopped.load(ordering: .relaxed) { return finish() }
        if let intervalNanos {
            if let endNanos, scheduled >= endNanos { return finish() }
            if !counters.claim(total: options.total) { return finish() }
            let begin = scheduled
            scheduled += intervalNanos
            let now = monotonicNanos()
            if begin > now {
                eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(Int64(begin - now))) { [self] in
                    self.send(begin: begin)
                }
            } else {
                send(begin: begin)
            }
        } else {
            let now = monotonicNanos()
            if let endNanos, now >= endNanos { return finish() }
            if !counters.claim(total: options.total) { return finish() }
            send(begin: now)
        }
    }

    private var eventLoop: any EventLoop { connection.eventLoop }

    private func send(begin: UInt64) {
        let key = random.index(below: requests.keys.count)
        let deadline = monotonicNanos() + timeoutNanos
        switch options.workload {
        case .put:
            call(headers.put, requests.putBody(key: key), deadline: deadline, begin: begin, casKey: nil)
        case .get:
            call(headers.range, requests.rangeBody(key: key), deadline: deadline, begin: begin, casKey: nil)
        case .mixed:
            if random.unit() < options.readRatio {
                call(headers.range, requests.rangeBody(key: key), deadline: deadline, begin: begin, casKey: nil)
            } else {
                call(headers.put, requests.putBody(key: key), deadline: deadline, begin: begin, casKey: nil)
            }
        case .txnCAS:
            call(headers.txn, requests.casBody(key: key, expected: lastSeen[key]), deadline: deadline, begin: begin, casKey: key)
        case .watch:
            finish()
        }
    }

    private func call(_ headers: HPACKHeaders, _ body: ByteBuffer, deadline: UInt64, begin: UInt64, casKey: Int?) {
        connection.unary(headers: headers, body: body, deadlineNanos: deadline) { [self] result in
            self.completed(result, begin: begin, casKey: casKey)
        }
    }

    private func completed(_ result: Result<ByteBuffer, H2CallError>, begin: UInt64, casKey: Int?) {
        switch result {
        case .success(var message):
            if let casKey {
                guard let bytes = message.readBytes(length: message.readableBytes),
                      let response = try? Etcdserverpb_TxnResponse(serializedBytes: bytes)
                else {
                    failed(H2CallError.internalError("undecodable TxnResponse"))
                    return
                }
                if response.succeeded {
                    lastSeen[casKey] = response.header.revision
                } else {
                    run.tally.casFailures += 1
                    lastSeen[casKey] = response.responses.first?.responseRange.kvs.first?.modRevision ?? 0
                }
            }
            run.tally.latency.record(fromNanos: begin, toNanos: monotonicNanos())
            run.tally.operations += 1
            counters.completed.wrappingAdd(1, ordering: .relaxed)
            next()
        case .failure(let error):
            failed(error)
        }
    }

    private func failed(_ error: H2CallError) {
        if counters.stopped.load(ordering: .relaxed) { return finish() }
        run.tally.errors[error.code, default: 0] += 1
        counters.failed.wrappingAdd(1, ordering: .relaxed)
        if intervalNanos == nil, error.code == "unavailable" {
            // A dead connection must not become a busy loop that starves the servers.
            eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(Int64(LoadGenerator.unavailablePauseNanos))) { [self] in
                self.next()
            }
        } else {
            next()
        }
    }

    private func finish() {
        run.clientFinished()
    }
}

/// The pre-fill writers of one event loop.
private final class PopulateRun {
    let plan: H2LoadRun.Plan
    let connections: [Int: H2Connection]
    let headers: [Int: HPACKHeaders]
    let workers: Int
    let batches: Int
    let next: RunCounters
    let loopIndex: Int
    let loopCount: Int
    var running = 0
    var failures: [String] = []
    let done: EventLoopPromise<[String]>
    let timeoutNanos: UInt64

    init(plan: H2LoadRun.Plan, loopIndex: Int, loopCount: Int, eventLoop: any EventLoop, workers: Int, batches: Int,
         next: RunCounters) {
        self.plan = plan
        self.loopIndex = loopIndex
        self.loopCount = loopCount
        self.connections = H2LoadRun.makeConnections(plan, loopIndex: loopIndex, loopCount: loopCount, eventLoop: eventLoop)
        self.headers = connections.mapValues { $0.requestHeaders(path: H2Paths.txn, timeout: LoadGenerator.requestTimeout) }
        self.workers = workers
        self.batches = batches
        self.next = next
        self.done = eventLoop.makePromise()
        let timeout = LoadGenerator.requestTimeout.components
        self.timeoutNanos = UInt64(timeout.seconds) * 1_000_000_000 + UInt64(timeout.attoseconds / 1_000_000_000)
    }

    func start() -> EventLoopFuture<[String]> {
        var mine: [Int] = []
        for worker in 0..<workers {
            let connectionIndex = worker % plan.connectionCount
            if connections[connectionIndex] != nil { mine.append(connectionIndex) }
        }
        running = mine.count
        if running == 0 {
            finishLoop()
        } else {
            for connectionIndex in mine { step(connectionIndex) }
        }
        return done.futureResult
    }

    private func step(_ connectionIndex: Int) {
        let batch = next.issued.wrappingAdd(1, ordering: .relaxed).oldValue
        guard batch < batches, !plan.counters.stopped.load(ordering: .relaxed),
              let connection = connections[connectionIndex], let headers = headers[connectionIndex]
        else {
            running -= 1
            if running == 0 { finishLoop() }
            return
        }
        let batchSize = LoadGenerator.populateBatch
        let body = plan.requests.populateBody((batch * batchSize)..<min(plan.requests.keys.count, (batch + 1) * batchSize))
        connection.unary(headers: headers, body: body, deadlineNanos: monotonicNanos() + timeoutNanos) { [self] result in
            if case .failure(let error) = result { self.failures.append(error.message.isEmpty ? error.code : error.message) }
            self.step(connectionIndex)
        }
    }

    private func finishLoop() {
        for connection in connections.values { connection.close() }
        done.succeed(failures)
    }
}
