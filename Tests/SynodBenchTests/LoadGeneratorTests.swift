import Foundation
import Histogram
import XCTest
@testable import SynodBench

final class LoadGeneratorSummaryTests: XCTestCase {
    func testLatencySummaryOfKnownValues() throws {
        var recorder = LatencyRecorder()
        for micros in 1...1_000 { recorder.record(micros: UInt64(micros)) }
        let summary = recorder.summary
        XCTAssertEqual(summary.count, 1_000)
        XCTAssertEqual(summary.minMicros, 1)
        XCTAssertEqual(summary.maxMicros, 1_000)
        XCTAssertEqual(summary.meanMicros, 500.5, accuracy: 0.5)
        XCTAssertEqual(summary.p50Micros, 500)
        XCTAssertEqual(summary.p90Micros, 900)
        XCTAssertEqual(summary.p99Micros, 990)
        XCTAssertEqual(summary.p999Micros, 999)
    }

    func testMergedRecordersAndClamping() {
        var a = LatencyRecorder()
        var b = LatencyRecorder()
        for _ in 0..<99 { a.record(micros: 2_000) }
        b.record(micros: 120_000_000)  // beyond the range: clamped to 60 s
        a.merge(b)
        let summary = a.summary
        XCTAssertEqual(summary.count, 100)
        XCTAssertEqual(summary.p50Micros, 2_000, accuracy: 2)
        XCTAssertEqual(summary.maxMicros, 60_000_000, accuracy: 60_000)
        XCTAssertEqual(LatencyRecorder().summary, .empty)
    }

    func testTextAndJSON() throws {
        var options = BenchOptions(workload: .txnCAS, endpoints: ["127.0.0.1:2379"])
        options.clients = 4
        var recorder = LatencyRecorder()
        for micros in 1...1_000 { recorder.record(micros: UInt64(micros)) }
        let result = BenchResult(options: options, targets: ["127.0.0.1:2379"], operations: 1_000,
                                 errors: ["unavailable": 2], seconds: 2, throughput: 500, latency: recorder.summary,
                                 casFailures: 10)
        let text = renderText(result)
        XCTAssertTrue(text.contains("throughput: 500.0 requests/s"), text)
        XCTAssertTrue(text.contains("p50 0.500"), text)
        XCTAssertTrue(text.contains("p99.9 0.999"), text)
        XCTAssertTrue(text.contains("990 succeeded, 10 compare failures"), text)
        XCTAssertTrue(text.contains("unavailable 2"), text)
        let json = try renderJSON(result)
        let decoded = try JSONDecoder().decode(BenchResult.self, from: Data(json.utf8))
        XCTAssertEqual(decoded, result)
        let casRange = try XCTUnwrap(json.range(of: "\"casFailures\""))
        let errorsRange = try XCTUnwrap(json.range(of: "\"errors\""))
        XCTAssertLessThan(casRange.lowerBound, errorsRange.lowerBound, "keys are sorted")
    }

    func testValidation() {
        var options = BenchOptions(workload: .put, endpoints: ["127.0.0.1:2379"])
        XCTAssertNil(options.validationProblem)
        options.clients = 0
        XCTAssertNotNil(options.validationProblem)
        options.clients = 1
        options.rate = 0
        XCTAssertNotNil(options.validationProblem)
        options.rate = nil
        options.workload = .watch
        options.valueBytes = 4
        XCTAssertNotNil(options.validationProblem)
        XCTAssertThrowsError(try BenchEndpoint(parsing: "127.0.0.1"))
        // https:// parses since SynodClient speaks TLS; a run without TLS settings refuses it
        // (CompareTLSTests).
        XCTAssertEqual(try BenchEndpoint(parsing: "https://127.0.0.1:2379").isHTTPS, true)
        XCTAssertEqual(try BenchEndpoint(parsing: "http://127.0.0.1:2379/").port, 2379)
        XCTAssertEqual(WatchWorkload.prefixEnd(Data("ab".utf8)), Data("ac".utf8))
    }
}

/// Runs against a real 3-member `synod serve` cluster.
final class LoadGeneratorClusterTests: XCTestCase {
    private func withCluster(_ body: (LoadTestCluster) async throws -> Void) async throws {
        let cluster = try await LoadTestCluster()
        do {
            try await body(cluster)
        } catch {
            cluster.stop()
            throw error
        }
        cluster.stop()
    }

    func testPutWritesEveryRequestAndValuesHaveTheirSize() async throws {
        try await withCluster { cluster in
            let before = try await cluster.read(prefix: "put/")
            var options = BenchOptions(workload: .put, endpoints: cluster.endpoints)
            options.total = 300
            options.clients = 8
            options.conns = 2
            options.keySpace = 50
            options.keyPrefix = "put/"
            options.valueBytes = 100
            let result = try await LoadGenerator.run(options)
            XCTAssertEqual(result.operations, 300)
            XCTAssertEqual(result.errors, [:])
            XCTAssertEqual(result.latency.count, 300)
            XCTAssertGreaterThan(result.latency.minMicros, 0)
            XCTAssertLessThanOrEqual(result.latency.p50Micros, result.latency.p99Micros)
            XCTAssertEqual(result.targets.count, 1, "leader only")
            let after = try await cluster.read(prefix: "put/")
            XCTAssertEqual(after.revision - before.revision, 300, "every put made one revision")
            XCTAssertGreaterThan(after.kvs.count, 30)
            XCTAssertLessThanOrEqual(after.kvs.count, 50)
            for kv in after.kvs {
                XCTAssertEqual(kv.value.count, 100)
                XCTAssertTrue(kv.key.starts(with: Data("put/".utf8)))
            }
        }
    }

    func testGetAndMixedReadPopulatedKeys() async throws {
        try await withCluster { cluster in
            var options = BenchOptions(workload: .get, endpoints: cluster.endpoints)
            options.total = 200
            options.clients = 4
            options.keySpace = 20
            options.keyPrefix = "get/"
            options.valueBytes = 32
            options.target = .all
            let result = try await LoadGenerator.run(options)
            XCTAssertEqual(result.operations, 200)
            XCTAssertEqual(result.errors, [:])
            XCTAssertEqual(result.targets.count, 3)
            let stored = try await cluster.read(prefix: "get/")
            XCTAssertEqual(stored.kvs.count, 20, "the key space is written before timing")
            XCTAssertTrue(stored.kvs.allSatisfy { $0.value.count == 32 })

            options.workload = .mixed
            options.consistency = .serializable
            options.readRatio = 0.5
            let mixed = try await LoadGenerator.run(options)
            XCTAssertEqual(mixed.operations, 200)
            XCTAssertEqual(mixed.errors, [:])
        }
    }

    func testTxnCASCountsCompareFailuresAndEverySuccessWrites() async throws {
        try await withCluster { cluster in
            let before = try await cluster.read(prefix: "cas/")
            var options = BenchOptions(workload: .txnCAS, endpoints: cluster.endpoints)
            options.total = 300
            options.clients = 8
            options.conns = 2
            options.keySpace = 2
            options.keyPrefix = "cas/"
            let result = try await LoadGenerator.run(options)
            XCTAssertEqual(result.operations, 300)
            XCTAssertEqual(result.errors, [:])
            let failures = try XCTUnwrap(result.casFailures)
            XCTAssertGreaterThan(failures, 0, "8 clients on 2 keys must collide")
            XCTAssertLessThan(failures, 300)
            let after = try await cluster.read(prefix: "cas/")
            XCTAssertEqual(after.revision - before.revision, Int64(300 - failures),
                           "each successful compare-and-set wrote exactly one revision, each failed one none")
            XCTAssertEqual(after.kvs.count, 2)
        }
    }

    func testWatchersReceiveEveryEvent() async throws {
        try await withCluster { cluster in
            var options = BenchOptions(workload: .watch, endpoints: cluster.endpoints)
            options.total = 50
            options.watchers = 4
            options.conns = 2
            options.keySpace = 10
            options.keyPrefix = "watch/"
            options.valueBytes = 64
            let result = try await LoadGenerator.run(options)
            XCTAssertEqual(result.errors, [:])
            XCTAssertEqual(result.operations, 200, "4 watchers x 50 puts")
            XCTAssertEqual(result.latency.count, 200)
            XCTAssertGreaterThan(result.latency.minMicros, 0)
            XCTAssertLessThan(result.latency.maxMicros, 10_000_000)
        }
    }

    /// An open loop sends on its own schedule: never more than the rate allows (a busy machine
    /// may make it send fewer, which is why the lower side is not a timing assertion).
    func testOpenLoopNeverExceedsItsSchedule() async throws {
        try await withCluster { cluster in
            var options = BenchOptions(workload: .put, endpoints: cluster.endpoints)
            options.rate = 200
            options.durationSeconds = 3
            // One request outstanding per client: 32 clients keep 200/s up to 160 ms latency.
            options.clients = 32
            options.conns = 2
            options.keyPrefix = "rate/"
            let result = try await LoadGenerator.run(options)
            XCTAssertEqual(result.errors, [:])
            XCTAssertGreaterThan(result.operations, 0)
            XCTAssertLessThanOrEqual(result.operations, 600 + options.clients, "3 s at 200/s: 600 slots (one per client may start at the end)")
        }
    }

    func testUnreachableEndpointFailsWithOneLine() async throws {
        var port = 1
        for candidate in 41_000..<41_100 where LoadTestCluster.portIsFree(candidate) {
            port = candidate
            break
        }
        let options = BenchOptions(workload: .put, endpoints: ["127.0.0.1:\(port)"])
        do {
            _ = try await LoadGenerator.run(options)
            XCTFail("a run against a closed port must fail")
        } catch let error as LoadGeneratorError {
            XCTAssertTrue(error.description.contains("127.0.0.1:\(port)"), error.description)
            XCTAssertFalse(error.description.contains("\n"))
        }

        // The command line: exit status 1 and one line on stderr; a bad flag is a usage error (64).
        guard let binary = LoadTestCluster.synodBinary() else { throw XCTSkip("no synod binary") }
        let (status, stderr) = try runSynod(binary, ["bench", "put", "--endpoints", "127.0.0.1:\(port)", "--total", "5"])
        XCTAssertEqual(status, 1)
        XCTAssertEqual(stderr.split(separator: "\n").count, 1, stderr)
        XCTAssertTrue(stderr.contains("cannot reach"), stderr)
        let (badStatus, _) = try runSynod(binary, ["bench", "put", "--clients", "0"])
        XCTAssertEqual(badStatus, 64)
        let (badDuration, _) = try runSynod(binary, ["bench", "get", "--duration", "soon"])
        XCTAssertEqual(badDuration, 64)
    }

    func testNoLeaderFailsWithOneLine() async throws {
        // One member of three: it answers, but can never elect a leader.
        let cluster = try await LoadTestCluster(started: 1, waitForLeader: false)
        defer { cluster.stop() }
        try await Task.sleep(nanoseconds: 1_500_000_000)
        let options = BenchOptions(workload: .put, endpoints: [cluster.endpoints[0]])
        do {
            _ = try await LoadGenerator.run(options)
            XCTFail("a run without a leader must fail")
        } catch let error as LoadGeneratorError {
            XCTAssertFalse(error.description.contains("\n"))
            XCTAssertTrue(error.description.contains("leader") || error.description.contains(cluster.endpoints[0]), error.description)
        }
    }

    private func runSynod(_ binary: String, _ arguments: [String]) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        let errorPipe = Pipe()
        process.standardError = errorPipe
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let data = errorPipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
