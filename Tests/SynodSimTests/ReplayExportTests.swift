import Foundation
import SynodCore
@testable import SynodSim
import XCTest

/// The structured replay (`SimulationOptions.record`, `synod sim --html`): deterministic, a
/// faithful record of the simulator's state, neutral to the run, and it pins a `--break`
/// run's violation to a step.
final class ReplayExportTests: XCTestCase {
    private func recorded(_ seed: UInt64, _ configure: (inout SimulationOptions) -> Void = { _ in }) -> SimulationOptions {
        var options = SimulationOptions(seed: seed)
        options.durationSeconds = 2
        configure(&options)
        options.record = true
        return options
    }

    func testTheSameSeedGivesTheSameReplay() throws {
        let first = try XCTUnwrap(Simulator.run(recorded(11)).replay)
        let second = try XCTUnwrap(Simulator.run(recorded(11)).replay)
        XCTAssertEqual(first, second)
        XCTAssertGreaterThan(first.steps.count, 100)
        XCTAssertEqual(first.steps.map(\.index), Array(first.steps.indices))
        // Every kind of message of a run, with ballots and slots on the sends.
        let types = Set(first.steps.flatMap(\.messages).map(\.type))
        for type in ["Prepare", "Promise", "Accept", "Accepted"] { XCTAssertTrue(types.contains(type), "\(type) missing: \(types)") }
        let accept = try XCTUnwrap(first.steps.flatMap(\.messages).first { $0.type == "Accept" && $0.fate == .sent })
        XCTAssertNotNil(accept.ballot)
        XCTAssertEqual(accept.slots?.count, 1)
        // Each delivery or loss refers to a message sent (or lost) earlier in the record.
        var sent: Set<Int> = []
        for step in first.steps {
            for message in step.messages {
                switch message.fate {
                case .sent, .dropped: sent.insert(message.id)
                case .delivered: XCTAssertTrue(sent.contains(message.id), "delivery of unsent message \(message.id) at step \(step.index)")
                }
            }
        }
        XCTAssertTrue(first.steps.flatMap(\.notes).contains { $0.kind == .role && $0.text.contains("becomes leader") })
        XCTAssertTrue(first.steps.flatMap(\.notes).contains { $0.kind == .chosen && $0.slot != nil })
        XCTAssertTrue(first.steps.flatMap(\.notes).contains { $0.kind == .client && $0.operation != nil })
    }

    /// Recording changes nothing about the run: same trace hash, same counts, same story.
    func testRecordingDoesNotChangeTheRun() {
        for seed: UInt64 in [3, 12] {
            var plain = SimulationOptions(seed: seed)
            plain.durationSeconds = 2
            plain.trace = true
            var withReplay = plain
            withReplay.record = true
            var a = Simulator.run(plain)
            var b = Simulator.run(withReplay)
            XCTAssertNotNil(b.replay)
            b.replay = nil
            a.replay = nil
            XCTAssertEqual(a, b, "seed \(seed)")
        }
    }

    /// The state the replay shows after step k is the simulator's own state right after step k.
    func testTheStateInTheReplayIsTheSimulatorsState() throws {
        let simulation = Simulation(recorded(5))
        var seen: [Int: [UInt32: [String]]] = [:]
        simulation.recordedStepObserver = { index in
            guard index % 37 == 0 || index < 40 else { return }
            var states: [UInt32: [String]] = [:]
            for node in simulation.nodes {
                let replica = node.replica
                let status = node.refusedToStart ? "refused" : node.removed ? "removed" : !node.up ? "down" : node.stalled ? "stalled" : "up"
                states[node.id.rawValue] = [status, replica.role.rawValue, replica.ownBallot?.description ?? "-", replica.promised.description,
                                            "\(replica.chosenThrough)", "\(replica.appliedThrough)", "\(replica.holdsLease)"]
            }
            seen[index] = states
        }
        let replay = try XCTUnwrap(simulation.run().replay)
        XCTAssertGreaterThan(seen.count, 40)
        for (index, states) in seen {
            let shown = replay.nodes(atStep: index)
            XCTAssertEqual(Set(shown.map(\.id)), Set(states.keys), "step \(index)")
            for node in shown {
                let fields = [node.status.rawValue, node.role, node.ballot ?? "-", node.promised, "\(node.chosenThrough)", "\(node.appliedThrough)", "\(node.lease)"]
                XCTAssertEqual(fields, states[node.id], "n\(node.id) at step \(index)")
            }
        }
    }

    /// Two different values chosen for one slot (phase-1 and phase-2 quorums that need not
    /// intersect): the replay names the slot, both values, who accepted what, and the step.
    func testANonIntersectingQuorumRunsReplayHoldsTheAgreementViolation() throws {
        let result = Simulator.run(recorded(4) { $0.durationSeconds = 4; $0.breaks = [.nonIntersectingQuorums] })
        let replay = try XCTUnwrap(result.replay)
        let violation = try XCTUnwrap(replay.violation)
        XCTAssertEqual(violation.kind, "agreement")
        XCTAssertEqual(violation.text, result.violations.first)
        let slot = try XCTUnwrap(violation.slot)
        XCTAssertEqual(violation.chosenValues.count, 2)
        XCTAssertNotEqual(violation.chosenValues[0], violation.chosenValues[1])
        XCTAssertEqual(violation.chosenSteps.last, violation.step)
        XCTAssertTrue(replay.steps[violation.step].notes.contains { $0.kind == .violation && $0.text.contains("slot \(slot)") })
        XCTAssertTrue(Set(violation.acceptances.map(\.value)).isSuperset(of: violation.chosenValues))
        XCTAssertFalse(violation.messageIDs.isEmpty)
        // The replay stops a little after the violation.
        XCTAssertLessThanOrEqual(replay.steps.count, violation.step + 1 + Simulation.replayStepsAfterViolation)
    }

    /// A stale read from a lease counted in ticks: found by the linearizability check at the
    /// end of the run, pinned to the step where the stale read completed.
    func testATickLeaseRunsReplayHoldsTheStaleRead() throws {
        let result = Simulator.run(recorded(6) { $0.durationSeconds = 4; $0.breaks = [.tickLease] })
        let replay = try XCTUnwrap(result.replay)
        let violation = try XCTUnwrap(replay.violation)
        XCTAssertEqual(violation.kind, "linearizability")
        XCTAssertFalse(violation.operations.isEmpty)
        let last = try XCTUnwrap(violation.operations.compactMap(\.step).max())
        XCTAssertEqual(violation.step, last)
        let completing = try XCTUnwrap(violation.operations.first { $0.step == last })
        XCTAssertTrue(replay.steps[last].notes.contains { $0.kind == .client && $0.operation == completing.id })
        // Two nodes believe they lead at once around the stale read.
        XCTAssertGreaterThanOrEqual(replay.nodes(atStep: last).filter { $0.role == "leader" && $0.status == .up }.count, 2)
    }

    func testTheReplayIsCodable() throws {
        let replay = try XCTUnwrap(Simulator.run(recorded(2) { $0.durationSeconds = 1 }).replay)
        let data = try JSONEncoder().encode(replay)
        XCTAssertEqual(try JSONDecoder().decode(SimReplay.self, from: data), replay)
    }
}
