import Foundation
import XCTest
@testable import SynodBench

/// `synod bench core` and `synod bench wal` run and count what they did (never how fast).
final class BaselineBenchmarkTests: XCTestCase {
    func testCoreBenchmarkCommitsEveryCommand() throws {
        let report = try CoreBenchmark(nodes: 3, batchCommandsMax: 16, windowSlots: 4, payloadBytes: 8).run(commands: 500)
        XCTAssertEqual(report.commands, 500)
        XCTAssertGreaterThanOrEqual(report.slots, 500 / 16)
        XCTAssertGreaterThan(report.steps, report.slots)
        XCTAssertGreaterThan(report.safetyCheckNanos, 0)
    }

    func testWALBenchmarkSyncsAndCleansUp() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("synod-walbench-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let benchmark = WALBenchmark(directory: directory, recordBytes: 128, secondsPerRow: 0.05)
        let raw = try benchmark.rawSyncRate()
        XCTAssertGreaterThan(raw.syncs, 0)
        let row = try benchmark.run(writers: 4)
        XCTAssertEqual(row.records, 4 * row.syncs, "each round is one record per writer and one sync")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory), [], "its files are removed")
    }
}
