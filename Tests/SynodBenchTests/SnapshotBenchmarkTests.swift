import Foundation
import SynodBench
import SynodCore
import XCTest

/// `synod bench snapshot` measures what a member does: the spool phase writes a snapshot that
/// decodes to the same state, its checksum is the transfer checksum of the encoding, and it
/// leaves no spool file behind.
final class SnapshotBenchmarkTests: XCTestCase {
    func testPhasesEncodeHashWriteAndDecodeTheSameState() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("snapshot-bench-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let benchmark = SnapshotBenchmark(keys: 500, valueBytes: 64, directory: directory)
        let state = benchmark.makeState()
        XCTAssertEqual(state.store.revision, 501, "one revision per put")
        let phases = try benchmark.run(state: state)
        XCTAssertEqual(phases.count, 6)
        let size = state.snapshot().count
        XCTAssertEqual(phases.map(\.bytes), [Int](repeating: size, count: 6), "every phase covers the whole snapshot")
        let transferChecksum = Snapshot.checksum(of: state.snapshot())
        XCTAssertEqual(phases[2].digest, transferChecksum, "the XXH64 phase")
        XCTAssertEqual(phases[4].digest, transferChecksum, "the spool phase hashes what it writes")
        XCTAssertNotEqual(phases[1].digest, transferChecksum, "FNV-1a is another hash")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory), [], "the spool file is removed")
    }
}
