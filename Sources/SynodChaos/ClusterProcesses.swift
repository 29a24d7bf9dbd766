import Foundation
import Synchronization

/// Every child process any chaos run started, so a signal handler can kill them all
/// synchronously (SIGCONT first, then SIGKILL), whatever state the run is in.
public enum ChaosChildren {
    private static let state = Mutex<(pids: Set<Int32>, shuttingDown: Bool)>(([], false))

    static func register(_ pid: Int32) {
        state.withLock { _ = $0.pids.insert(pid) }
    }

    static func unregister(_ pid: Int32) {
        state.withLock { _ = $0.pids.remove(pid) }
    }

    /// True once `killAll()` ran: nobody may start (or restart) a node any more.
    public static var shuttingDown: Bool { state.withLock { $0.shuttingDown } }

    /// Resumes and SIGKILLs every registered child; refuses later starts. Async-signal tolerant
    /// enough for a DispatchSource handler (takes only a lock, sends signals).
    public static func killAll() {
        let pids = state.withLock { state -> Set<Int32> in
            state.shuttingDown = true
            return state.pids
        }
        for pid in pids {
            kill(pid, SIGCONT)
            kill(pid, SIGKILL)
        }
    }

    /// For tests running several harnesses in one process: allow starts again.
    public static func reset() {
        state.withLock { $0.shuttingDown = false }
    }
}

/// The `synod serve` processes of one chaos cluster: start, kill, pause, resume, and noticing
/// the ones that exit on their own.
///
/// There is one slot per node the run may start: the original nodes, then the ones a
/// membership nemesis adds (started with `--initial-cluster-state existing`). A slot never
/// started, or retired after its member was removed, is not "active": healing and the crash
/// supervisor leave it alone.
final class ClusterProcesses: @unchecked Sendable {
    struct NodeState {
        var process: Process?
        var log: FileHandle?
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
    let launchPrefixes: [[String]]
    /// Appended to every `synod serve` command line (tests that compare settings).
    let extraServeArguments: [String]
    let clock: ChaosClock
    private let lock = NSLock()
    private var nodes: [NodeState]

    /// - Parameter originalCount: the first `originalCount` addresses form the initial cluster;
    ///   the rest are slots for members added later (default: all of them are original).
    init(binary: String, addresses: [ChaosNodeAddresses], launchPrefixes: [[String]], reportDirectory: String,
         clusterToken: String, snapshotCount: Int, brokenReads: Bool, brokenLease: Bool = false, clock: ChaosClock,
         originalCount: Int? = nil, extraServeArguments: [String] = []) {
        self.extraServeArguments = extraServeArguments
        self.binary = binary
        self.addresses = addresses
        self.launchPrefixes = launchPrefixes
        self.reportDirectory = reportDirectory
        self.clusterToken = clusterToken
        self.snapshotCount = snapshotCount
        self.brokenReads = brokenReads
        self.brokenLease = brokenLease
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

    /// Appends a `--- harness: ...` marker line to the node's log.
    func mark(_ index: Int, _ text: String) {
        let seconds = Double(clock.nanos()) / 1e9
        let line = "--- harness: \(text) at t=\(String(format: "%.3f", seconds))s\n"
        if let handle = Self.appending(logPath(index)) {
            handle.write(Data(line.utf8))
            try? handle.close()
        }
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
            return process.processIdentifier
        }
    }

    /// The exit status of node `index` once its process has exited (nil while it runs or if it
    /// never started).
    func exitStatus(_ index: Int) -> Int32? {
        withLock { nodes in
            guard let process = nodes[index].process, !process.isRunning else { return nil }
            return process.terminationStatus
        }
    }

    /// Starts node `index`; a no-op when it is already running (so two paths racing to restart
    /// a node never launch it twice). A retired node is never started.
    func start(_ index: Int, reason: String = "started") throws {
        lock.lock()
        defer { lock.unlock() }
        guard !ChaosChildren.shuttingDown else { throw ChaosRunError("shutting down") }
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
        if let failpoints = nodes[index].failpoints { specs.append(failpoints) }
        if specs.isEmpty {
            environment.removeValue(forKey: "SYNOD_FAILPOINTS")
        } else {
            environment["SYNOD_FAILPOINTS"] = specs.joined(separator: ",")
        }
        mark(index, "\(reason)" + (specs.isEmpty ? "" : " with SYNOD_FAILPOINTS=\(specs.joined(separator: ","))"))
        guard let log = Self.appending(path) else {
            throw ChaosRunError("cannot write \(path)")
        }
        let serveArguments = [
            "serve", "--name", address.name, "--data-dir", dataDirectory(index),
            "--listen-client-urls", address.listenClientURL, "--advertise-client-urls", address.clientURL,
            "--listen-peer-urls", address.listenPeerURL, "--initial-advertise-peer-urls", address.advertisePeerURL,
            "--initial-cluster", nodes[index].joinCluster ?? initialCluster, "--initial-cluster-token", clusterToken,
            "--listen-metrics-urls", address.metricsURL, "--snapshot-count", String(snapshotCount),
            "--log-level", "info",
        ] + (nodes[index].joinCluster == nil ? [] : ["--initial-cluster-state", "existing"]) + extraServeArguments
        let prefix = launchPrefixes[index]
        let process = Process()
        if let first = prefix.first, first.hasPrefix("/") {
            process.executableURL = URL(fileURLWithPath: first)
            process.arguments = Array(prefix.dropFirst()) + [binary] + serveArguments
        } else if !prefix.isEmpty {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = prefix + [binary] + serveArguments
        } else {
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = serveArguments
        }
        process.environment = environment
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            try? log.close()
            throw ChaosRunError("cannot start \(address.name) (\(binary)): \(error)")
        }
        ChaosChildren.register(process.processIdentifier)
        try? nodes[index].log?.close()
        nodes[index].process = process
        nodes[index].log = log
        nodes[index].paused = false
        nodes[index].intentionallyDown = false
        nodes[index].starts += 1
        if ChaosChildren.shuttingDown {
            Foundation.kill(process.processIdentifier, SIGKILL)
        }
    }

    /// SIGKILLs node `index` and waits until it is gone. `intentional` keeps the supervisor
    /// from restarting it.
    func kill(_ index: Int, reason: String = "killed", intentional: Bool = true) async {
        let process = withLock { nodes -> Process? in
            if intentional { nodes[index].intentionallyDown = true }
            nodes[index].paused = false
            return nodes[index].process
        }
        guard let process, process.isRunning else { return }
        mark(index, reason)
        let pid = process.processIdentifier
        Foundation.kill(pid, SIGCONT)
        Foundation.kill(pid, SIGKILL)
        await Self.waitForExit(process)
        ChaosChildren.unregister(pid)
    }

    /// SIGSTOPs node `index`.
    func pause(_ index: Int) {
        let process = withLock { nodes -> Process? in
            guard let process = nodes[index].process, process.isRunning else { return nil }
            nodes[index].paused = true
            return process
        }
        guard let process else { return }
        mark(index, "paused (SIGSTOP)")
        Foundation.kill(process.processIdentifier, SIGSTOP)
    }

    /// SIGCONTs node `index` if paused.
    func resume(_ index: Int) {
        let process = withLock { nodes -> Process? in
            guard nodes[index].paused else { return nil }
            nodes[index].paused = false
            return nodes[index].process
        }
        guard let process, process.isRunning else { return }
        mark(index, "resumed (SIGCONT)")
        Foundation.kill(process.processIdentifier, SIGCONT)
    }

    /// Nodes that exited without the harness asking: (index, exit status). Each is reported
    /// once; the caller restarts it.
    func takeUnexpectedExits() -> [(index: Int, status: Int32)] {
        var exits: [(Int, Int32)] = []
        withLock { nodes in
            for index in nodes.indices {
                guard let process = nodes[index].process, !nodes[index].intentionallyDown, !nodes[index].removing,
                      !nodes[index].retired, !process.isRunning else { continue }
                exits.append((index, process.terminationStatus))
                ChaosChildren.unregister(process.processIdentifier)
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

    /// Resumes (SIGCONT) and SIGKILLs every node, closes the logs.
    func killAllNow() {
        let processes = withLock { nodes -> [Process] in
            for index in nodes.indices {
                nodes[index].intentionallyDown = true
                nodes[index].paused = false
            }
            return nodes.compactMap(\.process)
        }
        for process in processes where process.isRunning {
            Foundation.kill(process.processIdentifier, SIGCONT)
            Foundation.kill(process.processIdentifier, SIGKILL)
        }
        for process in processes {
            var waited = 0
            while process.isRunning && waited < 500 {
                usleep(10_000)
                waited += 1
            }
            ChaosChildren.unregister(process.processIdentifier)
        }
        let logs = withLock { nodes -> [FileHandle] in
            let logs = nodes.compactMap(\.log)
            for index in nodes.indices { nodes[index].log = nil }
            return logs
        }
        for log in logs { try? log.close() }
    }

    /// Opens `path` for appending (O_APPEND, so the node's output and the harness's marker
    /// lines never overwrite each other), creating it if needed.
    static func appending(_ path: String) -> FileHandle? {
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return nil }
        return FileHandle(fileDescriptor: fd, closeOnDealloc: true)
    }

    static func waitForExit(_ process: Process) async {
        var waited = 0
        while process.isRunning && waited < 1000 {
            try? await Task.sleep(for: .milliseconds(5))
            waited += 1
        }
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
