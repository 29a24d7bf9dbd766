import XCTest
@testable import SynodBench

/// The split of puts into those made during a snapshot and the others, from a sampled gauge.
final class CompareSnapshotWritesTests: XCTestCase {
    func testWindowsRunFromTheFirstSampleAtOneToTheFirstAtZero() {
        let samples: [(UInt64, Bool)] = [(0, false), (10, true), (20, true), (30, false), (40, false), (50, true), (60, true)]
        XCTAssertEqual(CompareSnapshotWrites.windows(samples), [10...30, 50...60])
        XCTAssertEqual(CompareSnapshotWrites.windows([]), [])
        XCTAssertEqual(CompareSnapshotWrites.windows([(5, false)]), [])
        XCTAssertTrue(CompareSnapshotWrites.endedWindow(samples))
        XCTAssertFalse(CompareSnapshotWrites.endedWindow([(0, false), (10, true), (20, true)]))
        XCTAssertFalse(CompareSnapshotWrites.endedWindow([(0, false)]))
    }

    func testAPutOverlappingASnapshotCountsAsDuringIt() {
        // Fast puts outside, one stalled put that began before the snapshot and ended inside it.
        var puts = (0..<200).map { CompareTimedPut(start: UInt64($0) * 1_000_000, end: UInt64($0) * 1_000_000 + 1_000_000) }
        puts.append(CompareTimedPut(start: 400_000_000, end: 700_000_000))
        var result = CompareSnapshotWrites(writers: 1, seconds: 1)
        result.classify(puts, windows: [600_000_000...800_000_000])
        XCTAssertEqual(result.snapshots, 1)
        XCTAssertEqual(result.snapshotSeconds, 0.2, accuracy: 1e-9)
        XCTAssertEqual(result.all.count, 201)
        // Milliseconds as the latency histogram keeps them (within 0.1%).
        XCTAssertEqual(result.during?.count, 1)
        XCTAssertEqual(result.during?.p99Micros ?? 0, 300_000, accuracy: 300)
        XCTAssertEqual(result.outside?.count, 200)
        XCTAssertEqual(result.outside?.p99Micros ?? 0, 1_000, accuracy: 1)
        // Without windows (etcd), nothing is split.
        var unsplit = CompareSnapshotWrites(writers: 1, seconds: 1)
        unsplit.classify(puts, windows: [])
        XCTAssertNil(unsplit.during)
        XCTAssertEqual(unsplit.all.maxMicros, 300_000, accuracy: 300)
    }

    func testTheMetricParserReadsAnUnlabelledSample() {
        let text = "# HELP synod_snapshot_in_progress x\nsynod_snapshot_in_progress_total 7\nsynod_snapshot_in_progress 1\n"
        XCTAssertEqual(CompareHTTP.metric("synod_snapshot_in_progress", in: text), 1)
        XCTAssertNil(CompareHTTP.metric("synod_missing", in: text))
    }
}
