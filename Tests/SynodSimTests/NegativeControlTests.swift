import SynodCore
import SynodSim
import XCTest

/// Each deliberately broken variant must be caught within the default run count of
/// `synod sim` (100 runs), which shows the checks can fail.
final class NegativeControlTests: XCTestCase {
    static let defaultRuns = 100

    /// Runs seeds 1, 2, ... in small parallel batches until one is flagged; returns that result.
    private func firstViolation(_ configure: (inout SimulationOptions) -> Void) -> (result: SimulationResult?, runs: Int) {
        var runs = 0
        while runs < Self.defaultRuns {
            let batch = (runs..<min(runs + 10, Self.defaultRuns)).map { index -> SimulationOptions in
                var options = SimulationOptions(seed: UInt64(index + 1))
                configure(&options)
                return options
            }
            runs += batch.count
            if let flagged = SimulationBatch.run(batch, jobs: SimulationBatch.defaultJobs).first(where: { !$0.violations.isEmpty }) {
                return (flagged, runs)
            }
        }
        return (nil, runs)
    }

    func testSendingBeforeFsyncIsCaught() throws {
        let (flagged, runs) = firstViolation { $0.breaks = [.noPromiseFsync] }
        let result = try XCTUnwrap(flagged, "no-promise-fsync not caught in \(runs) runs")
        print("no-promise-fsync caught after \(runs) runs: \(result.failureLine)")
    }

    func testNonIntersectingQuorumsAreCaught() throws {
        let (flagged, runs) = firstViolation { $0.breaks = [.nonIntersectingQuorums] }
        let result = try XCTUnwrap(flagged, "non-intersecting-quorums not caught in \(runs) runs")
        print("non-intersecting-quorums caught after \(runs) runs: \(result.failureLine)")
        XCTAssertTrue(result.violations.contains { $0.contains("agreement") || $0.contains("linearizable") || $0.contains("lost") },
                      "expected a safety violation, got \(result.violations)")
    }

    func testStaleLeaseIsCaught() throws {
        let (flagged, runs) = firstViolation { $0.breaks = [.staleLease] }
        let result = try XCTUnwrap(flagged, "stale-lease not caught in \(runs) runs")
        print("stale-lease caught after \(runs) runs: \(result.failureLine)")
        XCTAssertTrue(result.violations.contains { $0.contains("not linearizable") }, "\(result.violations)")
    }

    /// Membership changes that govern the next slot at once and overlap (two voters added or
    /// removed in one burst, small clusters, frequent changes): a leader counts a slot with the
    /// membership it knew, while the chosen log says another one governs it. The quorum check
    /// (every chosen slot accepted by a phase-2 quorum of its governing membership) or the
    /// agreement check catches it.
    func testUnsafeReconfigurationIsCaught() throws {
        let (flagged, runs) = firstViolation { options in
            options.breaks = [.unsafeReconfig]
            options.nodes = 3
            options.faults.reconfigIntervalMillis = 50
            options.faults.crashWeight = 0
        }
        let result = try XCTUnwrap(flagged, "unsafe-reconfig not caught in \(runs) runs")
        print("unsafe-reconfig caught after \(runs) runs: \(result.failureLine)")
        XCTAssertTrue(result.violations.contains { $0.contains("quorum:") || $0.contains("agreement") || $0.contains("linearizable") || $0.contains("lost") },
                      "expected a safety violation, got \(result.violations)")
    }

    /// The control of the control: the same churn is harmless with the rule (changes govern
    /// α slots later, one at a time).
    func testTheSameChurnIsHarmlessWithTheRule() {
        let runs = (1...20).map { seed -> SimulationOptions in
            var options = SimulationOptions(seed: UInt64(seed))
            options.nodes = 3
            options.faults.reconfigIntervalMillis = 50
            options.faults.reconfigBurstRate = 1
            options.faults.crashWeight = 0
            return options
        }
        let results = SimulationBatch.run(runs, jobs: SimulationBatch.defaultJobs)
        let failing = results.filter { !$0.violations.isEmpty }
        XCTAssertTrue(failing.isEmpty, failing.map(\.failureLine).joined(separator: "\n"))
        XCTAssertGreaterThan(results.reduce(0) { $0 + $1.reconfigurations }, 40)
    }

    /// The control of the control: the same clock stalls are harmless when reads use a read
    /// index instead of a lease, so what stale-lease catches really is the lease.
    func testClockStallsAreHarmlessWithReadIndex() {
        let runs = (1...40).map { seed -> SimulationOptions in
            var options = SimulationOptions(seed: UInt64(seed))
            options.breaks = [.staleLease]
            options.readMode = .readIndex
            return options
        }
        let results = SimulationBatch.run(runs, jobs: SimulationBatch.defaultJobs)
        let failing = results.filter { !$0.violations.isEmpty }
        XCTAssertTrue(failing.isEmpty, failing.map(\.failureLine).joined(separator: "\n"))
    }

    /// A lease counted in ticks (a clock that stops while the process is stopped): the leader
    /// is stalled with its peer links cut, the others elect a new leader and write, and the old
    /// one wakes alone and answers clients from its lease.
    func testTickLeaseIsCaught() throws {
        let (flagged, runs) = firstViolation { $0.breaks = [.tickLease] }
        let result = try XCTUnwrap(flagged, "tick-lease not caught in \(runs) runs")
        print("tick-lease caught after \(runs) runs: \(result.failureLine)")
        XCTAssertTrue(result.violations.contains { $0.contains("not linearizable") }, "\(result.violations)")
        XCTAssertGreaterThan(result.stalls, 0)
    }

    /// The control of the control: the same stalls (always the leader, always cut off) are
    /// harmless with the lease on a clock that keeps running.
    func testLeaderStallsAreHarmlessWithTheClockLease() {
        let runs = (1...40).map { seed -> SimulationOptions in
            var options = SimulationOptions(seed: UInt64(seed))
            options.faults.stallsAimAtLeader = true
            return options
        }
        let results = SimulationBatch.run(runs, jobs: SimulationBatch.defaultJobs)
        let failing = results.filter { !$0.violations.isEmpty }
        XCTAssertTrue(failing.isEmpty, failing.map(\.failureLine).joined(separator: "\n"))
        XCTAssertGreaterThan(results.reduce(0) { $0 + $1.stalls }, 60)
    }

    /// A membership change validated against the chosen prefix and the leader's unchosen
    /// proposals only, missing a change chosen out of order above a gap: it builds on a stale
    /// membership. Every replica's per-step check (a chosen change must be one step from the
    /// membership before it) catches it and halts, and the simulator reports it.
    func testStaleChangeBaseIsCaught() throws {
        let (flagged, runs) = firstViolation { $0.breaks = [.staleChangeBase] }
        let result = try XCTUnwrap(flagged, "stale-change-base not caught in \(runs) runs")
        print("stale-change-base caught after \(runs) runs: \(result.failureLine)")
        XCTAssertTrue(result.violations.contains { $0.contains("membership") && ($0.contains("voters at once") || $0.contains("another membership") || $0.contains("instead of one")) },
                      "\(result.violations)")
    }

    /// Replicas that install a chunked snapshot without checking its checksum, while the
    /// network damages chunks: a damaged snapshot is installed and the replicas end with
    /// different states (or one cannot decode what it installed).
    func testTrustingSnapshotChunksIsCaught() throws {
        let (flagged, runs) = firstViolation { $0.breaks = [.trustSnapshotChunks] }
        let result = try XCTUnwrap(flagged, "trust-snapshot-chunks not caught in \(runs) runs")
        print("trust-snapshot-chunks caught after \(runs) runs: \(result.failureLine)")
        XCTAssertGreaterThan(result.chunksCorrupted, 0)
        XCTAssertEqual(result.snapshotChecksumFailures, 0)
        XCTAssertTrue(result.violations.contains { $0.contains("different states") || $0.contains("undecodable snapshot") }, "\(result.violations)")
    }

    /// A recovery that cuts the log off at any damage instead of refusing to start: the
    /// synced records after a flipped bit disappear silently, which the simulator reports
    /// (it knows the damage it injected, and recovery must name it).
    func testTruncatingADamagedLogIsCaught() throws {
        let (flagged, runs) = firstViolation { $0.breaks = [.truncateDamagedLog] }
        let result = try XCTUnwrap(flagged, "truncate-damaged-log not caught in \(runs) runs")
        print("truncate-damaged-log caught after \(runs) runs: \(result.failureLine)")
        XCTAssertTrue(result.violations.contains { $0.contains("corruption hidden") || $0.contains("agreement") || $0.contains("lost") },
                      "\(result.violations)")
    }

    /// A node that found synced writes damaged and votes at once, trusting what it could read,
    /// instead of repairing from the others first: a promise it sends forgets a value it had
    /// durably accepted, which the simulator's vote check catches (`checkVote`). With repair
    /// (every other run here) the same damage passes.
    func testVotingWithoutRepairingIsCaught() throws {
        let (flagged, runs) = firstViolation {
            $0.breaks = [.skipRepair]
            $0.nodes = 3
        }
        let result = try XCTUnwrap(flagged, "skip-repair not caught in \(runs) runs")
        print("skip-repair caught after \(runs) runs: \(result.failureLine)")
        XCTAssertTrue(result.violations.contains { $0.contains("vote:") || $0.contains("agreement") || $0.contains("linearizable") },
                      "\(result.violations)")
        XCTAssertGreaterThan(result.repairsStarted, 0)
        XCTAssertEqual(result.repairsFinished, 0)
    }

    /// A node that answers reads while the state of a snapshot it installs is still being
    /// decoded off its loop, from the empty state standing in for it: a read misses what was
    /// written long before, which the linearizability check catches. (Every other run here
    /// decodes the same way and holds such reads until the state is there.)
    func testReadsWhileDecodingASnapshotAreCaught() throws {
        let (flagged, runs) = firstViolation { $0.breaks = [.unsafeDecodeReads] }
        let result = try XCTUnwrap(flagged, "unsafe-decode-reads not caught in \(runs) runs")
        print("unsafe-decode-reads caught after \(runs) runs: \(result.failureLine)")
        XCTAssertTrue(result.violations.contains { $0.contains("linearizable") }, "\(result.violations)")
    }

    /// The control of the control: with the checksum checked, the same damage is noticed
    /// (snapshots refused and fetched again) and every run passes.
    func testDamagedSnapshotChunksAreRefusedAndFetchedAgain() {
        let runs = (1...20).map { seed -> SimulationOptions in
            var options = SimulationOptions(seed: UInt64(seed))
            options.faults.chunkCorruptionRate = 0.3
            return options
        }
        let results = SimulationBatch.run(runs, jobs: SimulationBatch.defaultJobs)
        let failing = results.filter { !$0.violations.isEmpty }
        XCTAssertTrue(failing.isEmpty, failing.map(\.failureLine).joined(separator: "\n"))
        XCTAssertGreaterThan(results.reduce(0) { $0 + $1.chunksCorrupted }, 10)
        XCTAssertGreaterThan(results.reduce(0) { $0 + $1.snapshotChecksumFailures }, 5)
    }

    func testUnsafeQuorumsNeedTheExplicitSwitch() {
        var configuration = Configuration(members: [NodeID(1), NodeID(2), NodeID(3)])
        configuration.phase1Quorum = 1
        configuration.phase2Quorum = 2
        XCTAssertThrowsError(try configuration.validate()) { error in
            XCTAssertTrue(String(describing: error).contains("must exceed"), "\(error)")
        }
        configuration.unsafeAllowNonIntersectingQuorums = true
        XCTAssertNoThrow(try configuration.validate())
    }
}
