import Foundation
import SynodProcess
import XCTest
@testable import SynodBench

/// One short `compare` against real `synod serve` and etcd processes.
final class CompareRunTests: XCTestCase {
    /// The `synod` executable built next to the test bundle (the test target depends on it).
    static func synodBinary() -> String? {
        var candidates: [String] = []
        for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
            candidates.append(bundle.bundleURL.deletingLastPathComponent().appendingPathComponent("synod").path)
        }
        if let first = CommandLine.arguments.first {
            candidates.append(URL(fileURLWithPath: first).resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("synod").path)
        }
        let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        candidates.append(packageRoot.appendingPathComponent(".build/debug/synod").path)
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// A base port whose 43 ports above are free.
    static func freeBasePort() -> Int {
        for attempt in 0..<50 {
            let base = 26_000 + (Int(getpid() % 200) * 50 + attempt * 100) % 20_000
            if (1...43).allSatisfy({ CompareClusterLayout.portIsFree(base + $0) }) { return base }
        }
        return 26_000
    }

    func testShortCompareAgainstRealProcesses() async throws {
        let etcd = "/usr/bin/etcd"
        guard FileManager.default.isExecutableFile(atPath: etcd) else { throw XCTSkip("no \(etcd): apt-get install etcd-server") }
        guard let synod = Self.synodBinary() else {
            XCTFail("the synod executable was not found next to the test bundle nor in .build/debug; run `swift build --product synod`")
            return
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("synod-compare-test-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var options = CompareOptions()
        options.rows = [CompareRow(.put, clients: 4)]
        options.rounds = 1
        options.durationSeconds = 1
        options.conns = 2
        options.keySpace = 100
        options.outDirectory = directory
        options.synodBinary = synod
        options.etcdBinary = etcd
        options.basePort = Self.freeBasePort()
        options.memoryKeys = 200
        options.snapshotWritesSeconds = 2
        options.walSeconds = 0.2
        options.coreCommands = 2_000
        options.restartTimeoutSeconds = 30
        let lines = LockedLines()
        let report = try await CompareRunner(options: options) { lines.append($0) }.run()

        let row = try XCTUnwrap(report.summary.first, lines.text)
        XCTAssertGreaterThan(row.synod?.throughput ?? 0, 0, lines.text)
        XCTAssertGreaterThan(row.etcd?.throughput ?? 0, 0, lines.text)
        XCTAssertNotNil(row.throughputRatio)
        XCTAssertEqual(report.measurements.map(\.step.system), [.synod, .etcd])
        XCTAssertNotNil(report.maxPeakRSSBytes(.synod))
        XCTAssertNotNil(report.maxPeakRSSBytes(.etcd))
        XCTAssertGreaterThan(report.baselines?.rawFsyncPerSecond ?? 0, 0)
        XCTAssertGreaterThan(report.baselines?.coreCommandsPerSecond ?? 0, 0)
        for system in CompareSystem.allCases {
            let phase = try XCTUnwrap(report.memoryPhase(system))
            XCTAssertNil(phase.error, lines.text)
            XCTAssertNotNil(phase.restartSeconds, lines.text)
            XCTAssertNotNil(phase.maxRSSBytes)
            let writes = try XCTUnwrap(phase.snapshotWrites, lines.text)
            XCTAssertGreaterThan(writes.all.count, 0, lines.text)
            // Synod's gauge was read from the leader's /metrics all along; etcd has none.
            if system == .synod { XCTAssertGreaterThan(writes.gaugeSamples, 20, lines.text) } else { XCTAssertEqual(writes.gaugeSamples, 0) }
        }
        XCTAssertEqual(report.machine.etcdVersion?.hasPrefix("3."), true)

        let fileManager = FileManager.default
        XCTAssertTrue(fileManager.fileExists(atPath: directory + "/results.md"))
        let json = try Data(contentsOf: URL(fileURLWithPath: directory + "/results.json"))
        XCTAssertEqual(try JSONDecoder().decode(CompareReport.self, from: json).summary, report.summary)
        let markdown = try String(contentsOfFile: directory + "/results.md", encoding: .utf8)
        XCTAssertTrue(markdown.contains("| put | 4 |"), markdown)
        XCTAssertFalse(fileManager.fileExists(atPath: directory + "/data"), "data directories are removed without --keep-data")
        XCTAssertTrue(ChildRegistry.shared.running.isEmpty, "every server was stopped")
    }

    func testMissingEtcdIsOneClearLine() async throws {
        var options = CompareOptions()
        options.synodBinary = "/bin/true"
        options.etcdBinary = "/nonexistent/etcd"
        options.outDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("synod-compare-noetcd-\(getpid())").path
        do {
            _ = try await CompareRunner(options: options) { _ in }.run()
            XCTFail("expected an error")
        } catch {
            XCTAssertEqual("\(error)", "etcd not found at /nonexistent/etcd: install it (apt-get install etcd-server), pass --etcd-bin, or --skip-etcd")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: options.outDirectory))
    }
}

/// Progress lines collected from the runner's log callback.
final class LockedLines: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []

    func append(_ line: String) {
        lock.lock()
        lines.append(line)
        lock.unlock()
    }

    var text: String {
        lock.lock()
        defer { lock.unlock() }
        return lines.joined(separator: "\n")
    }
}
