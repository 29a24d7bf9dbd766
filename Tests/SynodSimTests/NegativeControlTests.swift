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
