import Foundation
import NIOCore
import NIOPosix
import SynodEtcdAPI
import SynodProcess
import XCTest
@testable import SynodBench

/// `bench compare --tls` and the load generator against Synod with mutual TLS.
final class CompareTLSTests: XCTestCase {
    /// A base port whose ports up to base+93 (the TLS clusters' too) are free.
    static func freeBasePort() -> Int {
        for attempt in 0..<50 {
            let base = 30_000 + (Int(getpid() % 200) * 100 + attempt * 100) % 20_000
            if (1...93).allSatisfy({ CompareClusterLayout.portIsFree(base + $0) }) { return base }
        }
        return 30_000
    }

    func testShortCompareWithTLSMeasuresBothTransports() async throws {
        guard let synod = CompareRunTests.synodBinary() else {
            XCTFail("the synod executable was not found next to the test bundle nor in .build/debug; run `swift build --product synod`")
            return
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("synod-compare-tls-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var options = CompareOptions()
        options.rows = [CompareRow(.put, clients: 1)]
        options.rounds = 1
        options.durationSeconds = 1
        options.conns = 1
        options.keySpace = 100
        options.outDirectory = directory
        options.synodBinary = synod
        options.skipEtcd = true
        options.tls = true
        options.basePort = Self.freeBasePort()
        options.walSeconds = 0
        let lines = LockedLines()
        let report = try await CompareRunner(options: options) { lines.append($0) }.run()

        XCTAssertEqual(report.measurements.map(\.step.label), ["synod", "synod tls"], lines.text)
        XCTAssertEqual(report.summary.map(\.label), ["put@1", "put@1 tls"])
        for line in report.summary {
            XCTAssertGreaterThan(line.synod?.throughput ?? 0, 0, "\(line.label): \(lines.text)")
            XCTAssertNil(line.etcd)
        }
        // The TLS row really went over TLS to the TLS cluster's https:// endpoints.
        let secure = try XCTUnwrap(report.measurements.last?.result, lines.text)
        XCTAssertEqual(secure.options.tls?.certFile, directory + "/pki/bench.crt")
        XCTAssertTrue(!secure.targets.isEmpty && secure.targets.allSatisfy { $0.hasPrefix("https://127.0.0.1:") }, "\(secure.targets)")
        XCTAssertEqual(secure.errors, [:])
        XCTAssertNil(report.measurements.first?.result?.options.tls)

        let cost = try XCTUnwrap(report.tlsCost.first)
        XCTAssertEqual(cost.row, CompareRow(.put, clients: 1))
        XCTAssertGreaterThan(cost.synod?.throughputRatio ?? 0, 0)
        XCTAssertNil(cost.etcd)
        for file in ["ca.crt", "ca.key", "bench.crt", "bench.key", "s1-tls.crt", "s3-tls.key"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: directory + "/pki/" + file), file)
        }
        let markdown = try String(contentsOfFile: directory + "/results.md", encoding: .utf8)
        XCTAssertTrue(markdown.contains("| put | 1 | mTLS |"), markdown)
        XCTAssertTrue(markdown.contains("| put | 1 | plaintext |"), markdown)
        XCTAssertTrue(markdown.contains("Cost of mutual TLS"), markdown)
        let json = try Data(contentsOf: URL(fileURLWithPath: directory + "/results.json"))
        let decoded = try JSONDecoder().decode(CompareReport.self, from: json)
        XCTAssertEqual(decoded.summary, report.summary)
        XCTAssertEqual(decoded.tlsCost, report.tlsCost)
        XCTAssertTrue(ChildRegistry.shared.running.isEmpty, "every server was stopped")
    }

    /// A client that does not trust the cluster's CA, or presents no certificate, gets an error
    /// from the load generator (never a run of zeros); the right files work on both client stacks.
    func testUntrustedOrMissingClientCertificateIsAnError() async throws {
        guard let synod = CompareRunTests.synodBinary() else {
            XCTFail("the synod executable was not found; run `swift build --product synod`")
            return
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("synod-tls-wrong-ca-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let pki = try ComparePKI.make(directory: directory + "/pki", members: CompareClusterLayout.tlsMemberNames)
        // Another CA with its own "bench" certificate: nothing of it is trusted by the cluster.
        let stranger = try ComparePKI.make(directory: directory + "/other-pki", members: [])
        let base = Self.freeBasePort()
        let cluster = CompareCluster(
            system: .synod, members: CompareClusterLayout.synodTLS(binary: synod, basePort: base, directory: directory, pki: pki), pki: pki)
        try cluster.startAll()
        do {
            _ = try await CompareClient.waitForLeader(cluster.endpoints, timeoutSeconds: 60, tls: pki.clientTLS)

            var options = BenchOptions(workload: .put, endpoints: cluster.endpoints)
            options.durationSeconds = 0.5
            options.keySpace = 10
            options.tls = pki.clientTLS
            for stack in BenchClientStack.allCases {
                let result = try await LoadGenerator.run(options, client: BenchClientOptions(stack: stack))
                XCTAssertGreaterThan(result.operations, 0, "\(stack)")
                XCTAssertEqual(result.errors, [:], "\(stack)")
            }

            let wrong: [(String, BenchTLS)] = [
                ("a stranger CA and certificate", stranger.clientTLS),
                ("the right CA, no client certificate", BenchTLS(caFile: pki.caFile)),
                ("the right CA, a certificate of another CA", BenchTLS(caFile: pki.caFile, certFile: stranger.certFile("bench"), keyFile: stranger.keyFile("bench"))),
                ("plaintext to an https endpoint", BenchTLS()),
            ]
            for (what, tls) in wrong {
                var bad = options
                bad.tls = what.hasPrefix("plaintext") ? nil : tls
                do {
                    let result = try await LoadGenerator.run(bad)
                    XCTFail("\(what): expected an error, measured \(result.operations) operations, errors \(result.errors)")
                } catch let error as LoadGeneratorError {
                    let expected = what.hasPrefix("plaintext") ? "https:// needs TLS settings" : "refused handshake"
                    XCTAssertTrue(error.description.contains(expected), "\(what): \(error)")
                }
            }

            // The h2 stack's own connection (not behind leader discovery): the handshake failure
            // is the call's error, and the right CA and certificate carry a put over ALPN h2.
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let port = try XCTUnwrap(Int(cluster.endpoints[0].split(separator: ":").last ?? ""))
            var put = Etcdserverpb_PutRequest()
            put.key = Data("tls-check".utf8)
            put.value = Data("v".utf8)
            let message = try Array(put.serializedBytes() as [UInt8])
            let refused = try await h2Call(group: group, port: port, tls: stranger.clientTLS, message: message)
            guard case .failure(let error) = refused else { return XCTFail("a stranger CA carried a call") }
            XCTAssertEqual(error.code, "unavailable")
            XCTAssertTrue(error.message.contains("CERTIFICATE_VERIFY_FAILED") || error.message.contains("handshake"), error.message)
            let noCertificate = try await h2Call(group: group, port: port, tls: BenchTLS(caFile: pki.caFile), message: message)
            guard case .failure = noCertificate else { return XCTFail("a call without a client certificate was served") }
            let served = try await h2Call(group: group, port: port, tls: pki.clientTLS, message: message)
            if case .failure(let error) = served { XCTFail("the right certificate: \(error)") }
            try await group.shutdownGracefully()
        } catch {
            await cluster.stop(graceSeconds: 2)
            throw error
        }
        await cluster.stop(graceSeconds: 2)
    }

    /// One Put through a fresh ``H2Connection`` with `tls`.
    private func h2Call(group: MultiThreadedEventLoopGroup, port: Int, tls: BenchTLS, message: [UInt8]) async throws
        -> Result<Void, H2CallError> {
        var configuration = H2ClientConfiguration()
        configuration.tls = try H2TLS.context(tls)
        let loop = group.next()
        let configured = configuration
        return try await loop.flatSubmit {
            let connection = H2Connection(eventLoop: loop, host: "127.0.0.1", port: port, configuration: configured)
            let promise = loop.makePromise(of: Result<Void, H2CallError>.self)
            connection.unary(headers: connection.requestHeaders(path: H2Paths.put), body: H2Framing.frame(message),
                             deadlineNanos: monotonicNanos() + 5_000_000_000) { result in
                connection.close()
                promise.succeed(result.map { _ in () })
            }
            return promise.futureResult
        }.get()
    }
}
