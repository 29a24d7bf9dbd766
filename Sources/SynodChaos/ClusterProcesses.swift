import Foundation
import SynodProcess

/// The `synod serve` processes of one chaos cluster: start, kill, pause, resume, and noticing
/// the ones that exit on their own. The processes themselves are `SynodProcess` children of
/// `registry`, which a signal handler can kill all at once.
///
/// There is one slot per node the run may start: the original nodes, then the ones a
/// membership nemesis adds (started with `--initial-cluster-state existing`). A slot never
/// started, or retired after its member was removed, is not "active": healing and the crash
/// supervisor leave it alone.
final class ClusterProcesses: @unchecked Sendable {
    struct NodeState {
        var process: ChildProcess?
        var paused = false
        /// The harness stopped it on purpose (kill, crash-all): do not restart it on its own.
        var intentionallyDown = false
        /// SYNOD_FAILPOINTS for its next starts (nil: none).
        var failpoints: String?
        var starts = 0
        /// For a node added at run time: its `--initial-cluster` (it starts with
        /// `--initial-cluster-state existing`).
        var joinCluster: String?
        /// A removal of its member is in flight: if it exits, that is expected.
        var removing = false
        /// Its member was removed: never started again.
        var retired = false
    }

    let binary: String
    let addresses: [ChaosNodeAddresses]
    let initialCluster: String
    let reportDirectory: String
    let clusterToken: String
    let snapshotCount: Int
    let brokenReads: Bool
    let brokenLease: Bool
    /// Every start gets SYNOD_FAILPOINTS=tear-on-signal (the crash-all-torn nemesis).
    let tearOnSignal: Bool
    let launchPrefixes: [[String]]
    /// Appended to every `synod serve` command line (tests that compare settings).
    let extraServeArguments: [String]
    let clock: ChaosClock
    let registry: ChildRegistry
    private let lock = NSLock()
    private var nodes: [NodeState]

    /// - Parameter originalCount: the first `originalCount` addresses form the initial cluster;
    ///   the rest are slots for members added later (default: all of them are original).
    init(binary: String, addresses: [ChaosNodeAddresses], launchPrefixes: [[String]], reportDirectory: String,
         clusterToken: String, snapshotCount: Int, brokenReads: Bool, brokenLease: Bool = false, tearOnSignal: Bool = false,
         clock: ChaosClock,
         originalCount: Int? = nil, extraServeArguments: [String] = [], registry: ChildRegistry = .shared) {
        self.registry = registry
        self.extraServeArguments = extraServeArguments
        self.binary = binary
        self.addresses = addresses
        self.launchPrefixes = launchPrefixes
        self.reportDirectory = reportDirectory
        self.clusterToken = clusterToken
        self.snapshotCount = snapshotCount
        self.brokenReads = brokenReads
        self.brokenLease = brokenLease
        self.tearOnSignal = tearOnSignal
        self.clock = clock
        self.initialCluster = addresses.prefix(originalCount ?? addresses.count)
            .map { "\($0.name)=\($0.advertisePeerURL)" }.joined(separator: ",")
        self.nodes = Array(repeating: NodeState(), count: addresses.count)
    }

    var count: Int { addresses.count }

    func dataDirectory(_ index: Int) -> String { "\(reportDirectory)/data/\(addresses[index].name)" }
    func logPath(_ index: Int) -> String { "\(reportDirectory)/nodes/\(addresses[index].name).log" }

    private func withLock<T>(_ body: (inout [NodeState]) throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(&nodes)
    }

    /// True once the registry killed everything: nobody may start (or restart) a node any more.
    var shuttingDown: Bool { registry.shuttingDown }

    /// Appends a `--- harness: ...` marker line to the node's log.
    func mark(_ index: Int, _ text: String) {
        let seconds = Double(clock.nanos()) / 1e9
        ChildLog.append("--- harness: \(text) at t=\(String(format: "%.3f", seconds))s\n", to: logPath(index))
    }

    func isRunning(_ index: Int) -> Bool {
        withLock { $0[index].process?.isRunning == true }
    }

    func isPaused(_ index: Int) -> Bool {
        withLock { $0[index].paused }
    }

    func failpoints(_ index: Int) -> String? {
        withLock { $0[index].failpoints }
    }

    func setFailpoints(_ index: Int, _ spec: String?) {
        withLock { $0[index].failpoints = spec }
    }

    /// Nodes started at least once and not retired, in index order.
    func activeIndices() -> [Int] {
        withLock { nodes in nodes.indices.filter { nodes[$0].starts > 0 && !nodes[$0].retired } }
    }

    /// Makes node `index` a joining node: it starts with `--initial-cluster cluster` and
    /// `--initial-cluster-state existing`.
    func setJoin(_ index: Int, cluster: String) {
        withLock { $0[index].joinCluster = cluster }
    }

    func setRemoving(_ index: Int, _ removing: Bool) {
        withLock { $0[index].removing = removing }
    }

    /// Marks node `index` as removed from the cluster: it is never restarted.
    func retire(_ index: Int) {
        withLock { nodes in
            nodes[index].retired = true
            nodes[index].removing = false
            nodes[index].intentionallyDown = true
            nodes[index].paused = false
        }
    }

    func isRetired(_ index: Int) -> Bool {
        withLock { $0[index].retired }
    }

    /// The process id of node `index` while it runs.
    func pid(_ index: Int) -> Int32? {
        withLock { nodes in
            guard let process = nodes[index].process, process.isRunning else { return nil }
            return process.pid
        }
    }

    /// The exit status of node `index` once its process has exited (nil while it runs or if it
    /// never started).
    func exitStatus(_ index: Int) -> Int32? {
        withLock { $0[index].process?.exitStatus }
    }

    /// Starts node `index`; a no-op when it is already running (so two paths racing to restart
    /// a node never launch it twice). A retired node is never started.
    func start(_ index: Int, reason: String = "started") throws {
        lock.lock()
        defer { lock.unlock() }
        guard !registry.shuttingDown else { throw ChaosRunError("shutting down") }
        guard !nodes[index].retired else { throw ChaosRunError("\(addresses[index].name) was removed from the cluster") }
        if nodes[index].process?.isRunning == true { return }
        let address = addresses[index]
        try FileManager.default.createDirectory(atPath: "\(reportDirectory)/nodes", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: "\(reportDirectory)/data", withIntermediateDirectories: true)
        let path = logPath(index)
        var environment = ProcessInfo.processInfo.environment
        var specs: [String] = []
        if brokenReads { specs.append("stale-reads") }
        if brokenLease { specs.append("tick-lease") }
        if tearOnSignal { specs.append("tear-on-signal") }
        if let failpoints = nodes[index].failpoints { specs.append(failpoints) }
        if specs.isEmpty {
            environment.removeValue(forKey: "SYNOD_FAILPOINTS")
        } else {
            environment["SYNOD_FAILPOINTS"] = specs.joined(separator: ",")
        }
        mark(index, "\(reason)" + (specs.isEmpty ? "" : " with SYNOD_FAILPOINTS=\(specs.joined(separator: ","))"))
        let serveArguments = [
            "serve", "--name", address.name, "--data-dir", dataDirectory(index),
            "--listen-client-urls", address.listenClientURL, "--advertise-client-urls", address.clientURL,
            "--listen-peer-urls", address.listenPeerURL, "--initial-advertise-peer-urls", address.advertisePeerURL,
            "--initial-cluster", nodes[index].joinCluster ?? initialCluster, "--initial-cluster-token", clusterToken,
            "--listen-metrics-urls", address.metricsURL, "--snapshot-count", String(snapshotCount),
            "--log-level", "info",
        ] + (nodes[index].joinCluster == nil ? [] : ["--initial-cluster-state", "existing"]) + extraServeArguments
        let command = ChildCommand(executable: binary, arguments: serveArguments, launchPrefix: launchPrefixes[index],
                                   environment: environment, logPath: path)
        let process: ChildProcess
        do {
            process = try registry.launch(command, name: address.name)
        } catch .shuttingDown {
            throw ChaosRunError("shutting down")
        } catch .cannotWriteLog {
            throw ChaosRunError("cannot write \(path)")
        } catch .cannotStart(_, let underlying) {
            throw ChaosRunError("cannot start \(address.name) (\(binary)): \(underlying)")
        }
        nodes[index].process = process
        nodes[index].paused = false
        nodes[index].intentionallyDown = false
        nodes[index].starts += 1
    }

    /// SIGKILLs node `index` and waits until it is gone. `intentional` keeps the supervisor
    /// from restarting it.
    func kill(_ index: Int, reason: String = "killed", intentional: Bool = true) async {
        let process = withLock { nodes -> ChildProcess? in
            if intentional { nodes[index].intentionallyDown = true }
            nodes[index].paused = false
            return nodes[index].process
        }
        guard let process, process.isRunning else { return }
        mark(index, reason)
        await process.killAndWait(timeout: .seconds(5))
    }

    /// Sends `signal` to node `index` if it runs; with `expectExit`, its exit is the
    /// harness's doing (the supervisor leaves it down).
    func signal(_ index: Int, _ signal: Int32, reason: String, expectExit: Bool = false) {
        let process = withLock { nodes -> ChildProcess? in
            if expectExit { nodes[index].intentionallyDown = true }
            return nodes[index].process
        }
        guard let process, process.isRunning else { return }
        mark(index, reason)
        process.send(signal)
    }

    /// SIGSTOPs node `index`.
    func pause(_ index: Int) {
        let process = withLock { nodes -> ChildProcess? in
            guard let process = nodes[index].process, process.isRunning else { return nil }
            nodes[index].paused = true
            return process
        }
        guard let process else { return }
        mark(index, "paused (SIGSTOP)")
        process.pause()
    }

    /// SIGCONTs node `index` if paused.
    func resume(_ index: Int) {
        let process = withLock { nodes -> ChildProcess? in
            guard nodes[index].paused else { return nil }
            nodes[index].paused = false
            return nodes[index].process
        }
        guard let process, process.isRunning else { return }
        mark(index, "resumed (SIGCONT)")
        process.resume()
    }

    /// Nodes that exited without the harness asking: (index, exit status). Each is reported
    /// once; the caller restarts it.
    func takeUnexpectedExits() -> [(index: Int, status: Int32)] {
        var exits: [(Int, Int32)] = []
        withLock { nodes in
            for index in nodes.indices {
                guard let status = nodes[index].process?.exitStatus, !nodes[index].intentionallyDown,
                      !nodes[index].removing, !nodes[index].retired else { continue }
                exits.append((index, status))
                nodes[index].intentionallyDown = true
                nodes[index].paused = false
            }
        }
        for (index, status) in exits { mark(index, "noticed exit with status \(status)") }
        return exits
    }

    /// Indices of active nodes (started before, not retired) not running.
    func downNodes() -> [Int] {
        withLock { nodes in
            nodes.indices.filter { nodes[$0].starts > 0 && !nodes[$0].retired && nodes[$0].process?.isRunning != true }
        }
    }

    /// Resumes (SIGCONT) and SIGKILLs every node and waits (blocking) until they are gone.
    func killAllNow() {
        let processes = withLock { nodes -> [ChildProcess] in
            for index in nodes.indices {
                nodes[index].intentionallyDown = true
                nodes[index].paused = false
            }
            return nodes.compactMap(\.process)
        }
        for process in processes { process.kill() }
        for process in processes { _ = process.blockUntilExit(timeout: .seconds(5)) }
    }
}

/// Nanoseconds since the run started (monotonic).
struct ChaosClock: Sendable {
    let start: ContinuousClock.Instant

    init() { start = ContinuousClock.now }

    func nanos() -> UInt64 {
        let elapsed = ContinuousClock.now - start
        let (seconds, attoseconds) = elapsed.components
        return UInt64(max(0, seconds)) &* 1_000_000_000 &+ UInt64(max(0, attoseconds / 1_000_000_000))
    }

    func sleep(untilNanos target: UInt64) async throws {
        let now = nanos()
        if target > now { try await Task.sleep(for: .nanoseconds(Int64(target - now))) }
    }
}

/// A chaos run failure, as one line.
public struct ChaosRunError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
