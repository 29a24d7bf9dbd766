import Foundation
import NIOCore
import NIOPosix
import SynodEtcdAPI
import XCTest
@testable import SynodBench

/// The h2 stack against a real single-member etcd (3.4 here): grpc-go's trailers-only errors
/// and, above all, no connection losses to reset-flood protection.
final class H2ClientEtcdTests: XCTestCase {
    static let etcdBinary = "/usr/bin/etcd"

    private func withEtcd(_ body: (String) async throws -> Void) async throws {
        guard FileManager.default.isExecutableFile(atPath: Self.etcdBinary) else {
            throw XCTSkip("no etcd binary at \(Self.etcdBinary)")
        }
        let base = LoadTestCluster.freeBase()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("h2-etcd-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let client = "http://127.0.0.1:\(base)"
        let peer = "http://127.0.0.1:\(base + 1)"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.etcdBinary)
        process.arguments = [
            "--name", "h2", "--data-dir", "\(directory)/data", "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "h2=\(peer)",
            "--listen-metrics-urls", "http://127.0.0.1:\(base + 2)", "--log-level", "warn", "--logger", "zap",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        defer {
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
        }
        let endpoint = "127.0.0.1:\(base)"
        let parsed = try BenchEndpoint(parsing: endpoint)
        let start = Date()
        while true {
            do {
                _ = try await EndpointDiscovery.targets([parsed], target: .leader)
                break
            } catch {
                if Date().timeIntervalSince(start) > 30 { throw LoadGeneratorError("etcd not ready within 30 s: \(error)") }
                try await Task.sleep(nanoseconds: 200_000_000)
            }
        }
        try await body(endpoint)
    }

    func testPutsAgainstEtcdWithoutErrorsAndTrailersOnlyErrors() async throws {
        try await withEtcd { endpoint in
            var options = BenchOptions(workload: .put, endpoints: [endpoint])
            options.total = 2_000
            options.clients = 32
            options.keySpace = 100
            options.keyPrefix = "h2/"
            let result = try await LoadGenerator.run(options)
            XCTAssertEqual(result.errors, [:])
            XCTAssertEqual(result.operations, 2_000)

            var get = options
            get.workload = .mixed
            get.total = 1_000
            let mixed = try await LoadGenerator.run(get)
            XCTAssertEqual(mixed.errors, [:])
            XCTAssertEqual(mixed.operations, 1_000)

            var cas = options
            cas.workload = .txnCAS
            cas.total = 500
            cas.keySpace = 4
            let casResult = try await LoadGenerator.run(cas)
            XCTAssertEqual(casResult.errors, [:])
            XCTAssertEqual(casResult.operations, 500)
            XCTAssertGreaterThan(casResult.casFailures ?? 0, 0)

            // A Put without a key: etcd answers trailers-only with InvalidArgument.
            let loop = MultiThreadedEventLoopGroup.singleton.next()
            let outcome = try await loop.flatSubmit {
                let connection = H2Connection(eventLoop: loop, host: "127.0.0.1", port: Int(endpoint.split(separator: ":")[1]) ?? 0)
                var put = Etcdserverpb_PutRequest()
                put.value = Data("v".utf8)
                let promise = loop.makePromise(of: Result<Int, H2CallError>.self)
                connection.unary(headers: connection.requestHeaders(path: H2Paths.put), body: H2KVRequests.frame(put),
                                 deadlineNanos: monotonicNanos() + 5_000_000_000) { result in
                    connection.close()
                    promise.succeed(result.map(\.readableBytes))
                }
                return promise.futureResult
            }.get()
            XCTAssertEqual(outcome.failure, H2CallError(code: "invalidArgument", message: "etcdserver: key is not provided"))
        }
    }
}
