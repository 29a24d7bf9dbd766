import Foundation
import XCTest
import SynodCore

private let n1 = NodeID(1), n2 = NodeID(2), n3 = NodeID(3)

/// A deposed leader that has not heard of its successor learns, from a delayed catch-up reply,
/// slots the successor chose beyond the deposed leader's own next slot; then a client command
/// arrives at it.
///
/// Found by this suite: `Replica.fillWindow` computed `state.nextSlot - 1 - chosenThrough`,
/// which underflowed (an arithmetic overflow trap, i.e. a crash triggered by network input).
/// Fixed in Replica+Leader.swift by clamping `nextSlot` past the chosen prefix; kept as a
/// regression test. A trap would take the whole test run down with it, so the scenario runs
/// in a child process (this same test binary, running only `testChildScenario` with
/// `SYNOD_CHILD_SCENARIO=1`) and the parent checks that it exits cleanly.
final class ReplicaStaleLeaderCrashTests: XCTestCase {
    private static let childVariable = "SYNOD_CHILD_SCENARIO"

    /// Builds the state: n1 leads in a ballot a newer leader (n2) has already superseded, n1's
    /// chosen prefix now reaches past its own next slot, and a client command arrives at n1.
    private static func staleLeaderScenario() -> Cluster {
        var cluster = Cluster(seed: 1) { $0.windowSlots = 2 }
        // n2 leads first and chooses "a" in slot 1 with n3; n1 misses it. n2 crashes.
        cluster.run("elect 2; isolate 1; propose 2 a; deliver all; tick 2 x 2; deliver all; crash 2; heal")
        // n1 is elected by n3, which reports slot 1 chosen; n1's catch-up request for it is
        // delayed in the network.
        cluster.ageGuard(n3)
        cluster.tickUntilCandidate(n1)
        let isCatchUp: (Envelope) -> Bool = { envelope in
            switch envelope.message {
            case .catchUpRequest, .catchUpReply: return true
            default: return false
            }
        }
        cluster.deliver { !isCatchUp($0) }
        let delayed = cluster.take(where: isCatchUp)
        XCTAssertEqual(cluster.replicas[n1]?.role, .leader, "setup: n1 leads")
        XCTAssertEqual(delayed.count, 1, "setup: one catch-up request in flight")
        // n1 is cut off and takes a command (slot 2); n2 restarts and leads with n3, choosing
        // y1 and y2 in slots 2 and 3. n1 still believes it leads.
        cluster.run("isolate 1; propose 1 x1; restart 2")
        cluster.ageGuard(n3)
        cluster.elect(n2)
        cluster.run("propose 2 y1; propose 2 y2; deliver all; tick 2 x 2; deliver all")
        XCTAssertEqual(cluster.replicas[n3]?.chosenThrough, 3, "setup: n3 knows slots 1...3 chosen")
        XCTAssertEqual(cluster.replicas[n1]?.role, .leader, "setup: n1 still believes it leads")
        // n1 can reach n3 again (not n2); the delayed request arrives and n3 answers it.
        cluster.isolated = []
        cluster.cutLinks = [[n1, n2], [n2, n1]]
        for envelope in delayed { cluster.inject(envelope) }
        cluster.deliver(where: isCatchUp)
        XCTAssertEqual(cluster.replicas[n1]?.chosenThrough, 3, "setup: n1 learned slots 1...3")
        // A client command at n1 (before the fix: a trap in Replica.fillWindow, since
        // nextSlot was 3 and chosenThrough 3).
        cluster.propose(n1, "x2")
        // Whatever n1 does with it, it must not propose inside the chosen prefix.
        cluster.run("deliver all")
        return cluster
    }

    /// Runs only inside the child process.
    func testChildScenario() {
        guard ProcessInfo.processInfo.environment[Self.childVariable] == "1" else { return }
        let cluster = Self.staleLeaderScenario()
        cluster.assertClean()
    }

    /// The child process must finish without crashing and without failures.
    func testDeposedLeaderSurvivesLearningSlotsBeyondItsNextSlot() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        process.arguments = ["SynodCoreTests.ReplicaStaleLeaderCrashTests/testChildScenario"]
        var environment = ProcessInfo.processInfo.environment
        environment[Self.childVariable] = "1"
        process.environment = environment
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = errors
        try process.run()
        let errorText = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let crashLine = errorText.split(separator: "\n").first { $0.contains("runtime failure") || $0.contains("Fatal error") }
        XCTAssertEqual(process.terminationReason, .exit,
                       "the scenario crashed the replica: \(crashLine.map(String.init) ?? "signal \(process.terminationStatus)")")
        XCTAssertEqual(process.terminationStatus, 0, "child scenario failed:\n\(errorText.suffix(2000))")
        XCTAssertTrue(errorText.contains("testChildScenario' passed"), "the child did not run the scenario:\n\(errorText.suffix(2000))")
    }
}
