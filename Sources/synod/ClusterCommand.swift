import ArgumentParser
import Foundation

/// `synod cluster` (and `synod` with no arguments): a local 3-node cluster in one command.
struct ClusterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Start a local cluster of `synod serve` processes and stop it on Ctrl-C."
    )

    @Option(help: "Directory for the members' data and logs.")
    var dataDir: String = "synod-local"
    @Option(help: "Number of members (1, 3 or 5).")
    var nodes: Int = 3
    @Option(help: "Client port of the first member; the others add 20000, 30000, ... (2379, 22379, 32379, as etcd's Procfile).")
    var basePort: Int = 2379
    @Option(help: "Log level for the members.")
    var logLevel: String = "info"

    struct Member {
        var name: String
        var clientPort: Int
        var peerPort: Int
        var metricsPort: Int
        var clientURL: String { "http://127.0.0.1:\(clientPort)" }
        var peerURL: String { "http://127.0.0.1:\(peerPort)" }
    }

    func validate() throws {
        guard [1, 3, 5].contains(nodes) else { throw ValidationError("--nodes must be 1, 3 or 5, got \(nodes)") }
        guard basePort >= 1024, basePort + nodes * 10000 + 2 <= 65535 else {
            throw ValidationError("--base-port \(basePort) leaves no room for \(nodes) members (member i uses base + (i+1)*10000 and the next two ports)")
        }
    }

    var members: [Member] {
        (0..<nodes).map { i in
            let port = i == 0 ? basePort : basePort + (i + 1) * 10000
            return Member(name: "n\(i + 1)", clientPort: port, peerPort: port + 1, metricsPort: port + 2)
        }
    }

    func run() async throws {
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        let members = self.members
        let initialCluster = members.map { "\($0.name)=\($0.peerURL)" }.joined(separator: ",")
        try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
        let group = ProcessGroup()
        for member in members {
            let logPath = "\(dataDir)/\(member.name).log"
            _ = FileManager.default.createFile(atPath: logPath, contents: nil)
            guard let log = FileHandle(forWritingAtPath: logPath) else {
                throw ValidationError("cannot write \(logPath)")
            }
            log.seekToEndOfFile()
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = [
                "serve", "--name", member.name, "--data-dir", "\(dataDir)/\(member.name)",
                "--listen-client-urls", member.clientURL, "--advertise-client-urls", member.clientURL,
                "--listen-peer-urls", member.peerURL, "--initial-cluster", initialCluster,
                "--listen-metrics-urls", "http://127.0.0.1:\(member.metricsPort)", "--log-level", logLevel,
            ]
            process.standardOutput = log
            process.standardError = log
            try process.run()
            group.add(name: member.name, process: process)
        }
        let endpoints = members.map(\.clientURL).joined(separator: ",")
        print("""
            Synod: \(nodes)-node local cluster started (data and logs in \(dataDir)/).
              client endpoints: \(endpoints)
              metrics/health:   \(members.map { "http://127.0.0.1:\($0.metricsPort)/metrics" }.joined(separator: " "))
            Talk to it with etcdctl or synod, e.g.:
              ETCDCTL_API=3 etcdctl --endpoints=\(endpoints) put greeting hello
              synod get greeting --endpoints=\(endpoints)
              synod status --endpoints=\(endpoints)
            Press Ctrl-C to stop.
            """)
        let reason = await group.waitForSignalOrExit()
        print("\nstopping (\(reason))...")
        group.terminateAll()
        print("stopped.")
    }
}

/// Child processes and the signals that stop them.
final class ProcessGroup: @unchecked Sendable {
    private let lock = NSLock()
    private var processes: [(name: String, process: Process)] = []

    func add(name: String, process: Process) {
        lock.lock()
        processes.append((name, process))
        lock.unlock()
    }

    /// Waits for SIGINT/SIGTERM or for a child to exit; returns why.
    func waitForSignalOrExit() async -> String {
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        let (stream, continuation) = AsyncStream<String>.makeStream()
        let sources = [SIGINT, SIGTERM].map { number in
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { continuation.yield(number == SIGINT ? "interrupted" : "terminated") }
            source.resume()
            return source
        }
        let watcher = Task.detached { [self] in
            while !Task.isCancelled {
                let exited = lock.withLock { processes.first { !$0.process.isRunning } }
                if let exited {
                    continuation.yield("\(exited.name) exited with status \(exited.process.terminationStatus); see its log")
                    return
                }
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
        var reason = "stopped"
        for await first in stream {
            reason = first
            break
        }
        watcher.cancel()
        sources.forEach { $0.cancel() }
        return reason
    }

    func terminateAll() {
        lock.lock()
        let all = processes
        lock.unlock()
        for (_, process) in all where process.isRunning { process.terminate() }
        let deadline = Date().addingTimeInterval(10)
        for (name, process) in all {
            while process.isRunning && Date() < deadline { usleep(20_000) }
            if process.isRunning {
                print("\(name) did not stop within 10 s; killing it")
                kill(process.processIdentifier, SIGKILL)
            }
        }
    }
}
