import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SynodEtcdAPI
import XCTest
@testable import SynodBench

/// A real 3-member cluster of `synod serve` processes on free local ports, for load-generator tests.
final class LoadTestCluster: @unchecked Sendable {
    let directory: String
    let clientPorts: [Int]
    private var processes: [Process] = []

    var endpoints: [String] { clientPorts.map { "127.0.0.1:\($0)" } }

    /// The `synod` executable next to the test bundle or in .build/debug.
    static func synodBinary() -> String? {
        var candidates: [String] = []
        for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
            candidates.append(bundle.bundleURL.deletingLastPathComponent().appendingPathComponent("synod").path)
        }
        if let first = CommandLine.arguments.first {
            let url = URL(fileURLWithPath: first).resolvingSymlinksInPath()
            candidates.append(url.deletingLastPathComponent().appendingPathComponent("synod").path)
            candidates.append(url.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("synod").path)
        }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        candidates.append(root.appendingPathComponent(".build/debug/synod").path)
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    static func portIsFree(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(truncatingIfNeeded: port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        return bound == 0
    }

    /// A base port such that base ..< base + 30 are free.
    static func freeBase() -> Int {
        for _ in 0..<200 {
            let base = Int.random(in: 20_000...55_000)
            if (0..<30).allSatisfy({ portIsFree(base + $0) }) { return base }
        }
        return 45_000
    }

    /// Starts `started` of the 3 members and, when `waitForLeader`, waits until one of them leads.
    init(started: Int = 3, waitForLeader: Bool = true) async throws {
        guard let binary = Self.synodBinary() else {
            throw XCTSkip("the synod executable was not found; run `swift build --product synod`")
        }
        let base = Self.freeBase()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("synod-bench-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        clientPorts = (0..<3).map { base + 10 * $0 }
        let names = ["n1", "n2", "n3"]
        let initial = (0..<3).map { "\(names[$0])=http://127.0.0.1:\(clientPorts[$0] + 1)" }.joined(separator: ",")
        for index in 0..<started {
            let port = clientPorts[index]
            let process = Process()
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = [
                "serve", "--name", names[index], "--data-dir", "\(directory)/\(names[index])",
                "--listen-client-urls", "http://127.0.0.1:\(port)", "--advertise-client-urls", "http://127.0.0.1:\(port)",
                "--listen-peer-urls", "http://127.0.0.1:\(port + 1)", "--initial-advertise-peer-urls", "http://127.0.0.1:\(port + 1)",
                "--listen-metrics-urls", "http://127.0.0.1:\(port + 2)",
                "--initial-cluster", initial, "--initial-cluster-token", "bench-test", "--log-level", "warning",
            ]
            let log = FileManager.default.createFile(atPath: "\(directory)/\(names[index]).log", contents: nil)
                ? FileHandle(forWritingAtPath: "\(directory)/\(names[index]).log") : nil
            process.standardOutput = log ?? FileHandle.nullDevice
            process.standardError = log ?? FileHandle.nullDevice
            process.standardInput = FileHandle.nullDevice
            try process.run()
            processes.append(process)
        }
        if !waitForLeader { return }
        let endpoints = try clientPorts.map { try BenchEndpoint(parsing: "127.0.0.1:\($0)") }
        let start = Date()
        while true {
            do {
                _ = try await EndpointDiscovery.targets(endpoints, target: .leader)
                return
            } catch {
                if Date().timeIntervalSince(start) > 30 {
                    stop()
                    throw LoadGeneratorError("no leader within 30 s: \(error)")
                }
                try await Task.sleep(nanoseconds: 200_000_000)
            }
        }
    }

    func stop() {
        for process in processes where process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        processes.removeAll()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Runs `body` with a raw KV client on the first member.
    func withKV<T: Sendable>(_ body: @Sendable (Etcdserverpb_KV.Client<HTTP2ClientTransport.Posix>) async throws -> T) async throws -> T {
        let client = try BenchEndpoint(parsing: endpoints[0]).makeClient()
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await client.runConnections() }
            defer {
                client.beginGracefulShutdown()
                group.cancelAll()
            }
            return try await body(Etcdserverpb_KV.Client(wrapping: client))
        }
    }

    /// The current store revision and every pair under `prefix`.
    func read(prefix: String) async throws -> (revision: Int64, kvs: [Mvccpb_KeyValue]) {
        try await withKV { kv in
            var request = Etcdserverpb_RangeRequest()
            request.key = Data(prefix.utf8)
            request.rangeEnd = WatchWorkload.prefixEnd(Data(prefix.utf8))
            let response = try await kv.range(request)
            return (response.header.revision, response.kvs)
        }
    }
}
