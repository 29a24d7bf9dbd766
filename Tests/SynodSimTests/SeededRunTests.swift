import SynodCore
import SynodSim
import XCTest

/// The simulator's main guarantee: seeded runs of the correct protocol under every fault
/// type find no violation, and replaying a seed reproduces the run exactly.
final class SeededRunTests: XCTestCase {
    private func summarize(_ results: [SimulationResult]) -> String {
        let failing = results.filter { !$0.violations.isEmpty }
        let operations = results.reduce(0) { $0 + $1.operations }
        let chosen = results.reduce(0) { $0 + $1.chosenSlots }
        let crashes = results.reduce(0) { $0 + $1.crashes }
        let partitions = results.reduce(0) { $0 + $1.partitions }
        return "runs: \(results.count), violations: \(failing.count), ops: \(operations), chosen slots: \(chosen), "
            + "crashes: \(crashes), partitions: \(partitions)"
            + failing.prefix(3).map { "\n  " + $0.failureLine }.joined()
    }

    /// 300 runs across 3, 5 and 7 nodes with loss, duplication, reordering, partitions,
    /// crashes, power loss and bounded drift.
    func testThreeHundredSeededRunsAcrossClusterSizesFindNoViolation() {
        let runs = (1...300).map { seed -> SimulationOptions in
            var options = SimulationOptions(seed: UInt64(seed))
            options.nodes = [3, 5, 7][seed % 3]
            options.durationSeconds = 3
            return options
        }
        let results = SimulationBatch.run(runs, jobs: SimulationBatch.defaultJobs)
        print(summarize(results))
        XCTAssertEqual(results.count, 300)
        XCTAssertTrue(results.allSatisfy { $0.violations.isEmpty }, summarize(results))
        // The faults really happened and the clusters really worked.
        XCTAssertGreaterThan(results.reduce(0) { $0 + $1.crashes }, 300)
        XCTAssertGreaterThan(results.reduce(0) { $0 + $1.partitions }, 300)
        XCTAssertGreaterThan(results.reduce(0) { $0 + $1.messagesDropped }, 10_000)
        XCTAssertGreaterThan(results.filter { $0.chosenSlots > 50 }.count, 290, "too many runs chose almost nothing")
        XCTAssertTrue(results.allSatisfy { $0.chosenSlots > 0 }, "a run chose nothing at all")
        XCTAssertGreaterThan(results.reduce(0) { $0 + $1.attemptsTimedOut }, 300, "client attempts rarely timed out: faults too mild")
    }

    /// Regression (found when Commit notices were added): seed 200 on 7 nodes had a leader of
    /// an old ballot, cut off in a minority, learn slots 39 and 40 through a catch-up snapshot
    /// after a newer leader had chosen other values there, keep leading, and report "chosen
    /// through 41" in its next Accept; a follower that had accepted the old leader's values for
    /// those slots then marked them chosen. A leader now steps down when it learns that one of
    /// its pending slots was decided elsewhere (markChosen, install).
    func testStaleLeaderDoesNotVouchForSlotsDecidedByANewerBallot() {
        var options = SimulationOptions(seed: 200)
        options.nodes = 7
        options.durationSeconds = 3
        let result = SimulationBatch.run([options], jobs: 1)[0]
        XCTAssertTrue(result.violations.isEmpty, result.failureLine)
        XCTAssertGreaterThan(result.chosenSlots, 100)
    }

    /// Regression (found when snapshots started to travel in chunks): seed 273 on 3 nodes had
    /// n1, cut off from the start, receive half of a snapshot from n3; then n2 and n3 were
    /// removed, leaving voters n1 and n4. n1 knew only its removed peers, refused n4's
    /// pre-votes (n4 votes in no membership n1 knew) and asked n3 for the next chunk forever:
    /// no progress. A replica that knows it is behind now asks an unknown campaigner for the
    /// missing slots, and a transfer that brings nothing for the stall interval is abandoned
    /// whichever path keeps asking.
    func testAStaleVoterCatchesUpFromACampaignerItDoesNotKnow() {
        var options = SimulationOptions(seed: 273)
        options.nodes = 3
        options.durationSeconds = 3
        let result = SimulationBatch.run([options], jobs: 1)[0]
        XCTAssertTrue(result.violations.isEmpty, result.failureLine)
        XCTAssertGreaterThan(result.chosenSlots, 300)
    }

    /// The storage faults really happen in the default runs, and are survived: torn writes at
    /// every crash, failed fsyncs that stop a node, and damage to synced writes (flipped bits,
    /// lost and misdirected writes) that a node's recovery must report, never hide, and that
    /// the node repairs from the others before it votes again.
    func testStorageFaultsAreInjectedAndSurvived() {
        let runs = (1...60).map { seed -> SimulationOptions in
            var options = SimulationOptions(seed: 30_000 + UInt64(seed))
            options.nodes = seed % 2 == 0 ? 3 : 5
            options.durationSeconds = 3
            options.faults.corruptionRate = 0.3
            options.faults.syncFailureRate = 0.01
            return options
        }
        let results = SimulationBatch.run(runs, jobs: SimulationBatch.defaultJobs)
        XCTAssertTrue(results.allSatisfy { $0.violations.isEmpty }, summarize(results))
        XCTAssertGreaterThan(results.reduce(0) { $0 + $1.repairsStarted }, 5, "corruption was rarely injected")
        XCTAssertGreaterThan(results.reduce(0) { $0 + $1.repairsFinished }, 5, "damaged nodes rarely finished repairing")
        XCTAssertEqual(results.reduce(0) { $0 + $1.corruptionsDetected }, 0, "a node refused to start: \(summarize(results))")
        XCTAssertGreaterThan(results.reduce(0) { $0 + $1.storageFailures }, 5, "fsync failures were rarely injected")
    }

    func testReadIndexModeRunsFindNoViolation() {
        let runs = (1...40).map { seed -> SimulationOptions in
            var options = SimulationOptions(seed: 10_000 + UInt64(seed))
            options.readMode = .readIndex
            options.nodes = seed % 2 == 0 ? 3 : 5
            options.durationSeconds = 3
            return options
        }
        let results = SimulationBatch.run(runs, jobs: SimulationBatch.defaultJobs)
        XCTAssertTrue(results.allSatisfy { $0.violations.isEmpty }, summarize(results))
    }

    func testReplayingASeedGivesTheIdenticalRun() {
        var options = SimulationOptions(seed: 4242)
        options.nodes = 5
        let first = Simulator.run(options)
        let second = Simulator.run(options)
        XCTAssertEqual(first.traceHash, second.traceHash)
        XCTAssertEqual(first, second)
        options.seed = 4243
        let other = Simulator.run(options)
        XCTAssertNotEqual(first.traceHash, other.traceHash, "a different seed should give a different run")
    }

    func testTracingDoesNotChangeTheRun() {
        var options = SimulationOptions(seed: 77)
        let plain = Simulator.run(options)
        options.trace = true
        let traced = Simulator.run(options)
        XCTAssertEqual(plain.traceHash, traced.traceHash)
        XCTAssertFalse(traced.trace.isEmpty)
        XCTAssertTrue(plain.trace.isEmpty)
    }

    func testFaultFreeTraceTellsThePaxosStory() {
        var options = SimulationOptions(seed: 1)
        options.faults = .none
        options.durationSeconds = 0.5
        options.trace = true
        let result = Simulator.run(options)
        XCTAssertTrue(result.violations.isEmpty, result.failureLine)
        let story = result.trace.joined(separator: "\n")
        for phrase in ["Prepare b1.", "Promise b1.", "becomes leader with ballot b1.", "Accept b1.", "Accepted b1.", "slot 1 chosen: ["] {
            XCTAssertTrue(story.contains(phrase), "trace lacks \(phrase)")
        }
        XCTAssertFalse(story.contains("Heartbeat"), "heartbeats are hidden unless asked for")
        XCTAssertEqual(result.operationsUnknown, 0, "nothing should time out without faults")
        XCTAssertEqual(result.elections, 1, "a fault-free run elects exactly one leader")
    }
}
