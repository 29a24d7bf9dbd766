import XCTest
@testable import SynodCore

private let n1 = NodeID(1), n2 = NodeID(2), n3 = NodeID(3)

/// Repair after damage to synced records (`Replica+Repair`): a replica whose disk lost a write
/// it had synced abstains until the others tell it what it may have promised and accepted.
final class ReplicaRepairTests: XCTestCase {
    /// "b" is chosen in slot 2 by n1 and n2 while n3 is cut off; n2 never hears it was chosen.
    /// Then n1 crashes and n2's disk loses its acceptance of slot 2. Returns the slot of "b".
    private func chooseWithN2ThenLoseIt(_ cluster: inout Cluster, repairing: Bool) -> Slot {
        cluster.run("""
            elect 1
            propose 1 a
            cycle 3
            isolate 3
            propose 1 b
            """)
        // n2 accepts "b"; n1 learns it chosen; the commit notice to n2 is lost.
        cluster.deliver { $0.from == n1 && $0.to == n2 && { if case .accept = $0.message { return true } else { return false } }($0) }
        cluster.deliver { $0.from == n2 && $0.to == n1 }
        cluster.take { _ in true }
        let slot = cluster.replicas[n1]!.chosenThrough
        XCTAssertEqual(cluster.replicas[n1]?.chosenValue(at: slot), .batch([cluster.command("b")]))
        XCTAssertLessThan(cluster.replicas[n2]!.chosenThrough, slot, "n2 must not know slot \(slot) chosen")
        cluster.crash(n1)
        cluster.crash(n2)
        cluster.restartDamaged(n2, repairing: repairing) { record in
            if case .accepted(let accepted, _, _) = record { return accepted == slot }
            return false
        }
        cluster.run("heal")
        cluster.isolated = [n1]  // n1 is down: keep it out of elect's guard ageing
        return slot
    }

    /// The broken variant, which the test below must not be: n2 trusts what it could read and
    /// votes at once, so n3 wins phase 1 with n2's promise that forgets "b" and chooses its
    /// own next command in that slot — two values for one slot, which the harness reports.
    func testVotingRightAfterLosingAnAcceptanceChoosesASecondValue() {
        var cluster = Cluster(seed: 7)
        cluster.violationsExpected = true
        let slot = chooseWithN2ThenLoseIt(&cluster, repairing: false)
        cluster.run("elect 3; propose 3 c; cycle 4")
        XCTAssertEqual(cluster.replicas[n3]?.chosenValue(at: slot), .batch([cluster.command("c")]))
        XCTAssertTrue(cluster.violations.contains { $0.contains("in slot \(slot)") }, "\(cluster.violations)")
    }

    /// With repair, n2 abstains: n3 alone cannot lead. Once n1 is back, n2 asks both for their
    /// promise and highest slot, a leader elected by n1 and n3 proposes "b" again, n2 learns
    /// it chosen and only then votes again, with a promise at least the highest it heard.
    func testADamagedReplicaAbstainsUntilItLearnedWhatItMayHaveAccepted() {
        var cluster = Cluster(seed: 7)
        let slot = chooseWithN2ThenLoseIt(&cluster, repairing: true)
        XCTAssertEqual(cluster.replicas[n2]?.isRepairing, true)
        let restartedAt = cluster.trace.count
        cluster.run("propose 3 c; cycle 60")
        XCTAssertEqual(cluster.leaders, [], "n3 must not win phase 1 with an abstaining n2 and n1 down")
        XCTAssertEqual(cluster.replicas[n2]?.isRepairing, true, "n1 has not answered")
        XCTAssertFalse(cluster.trace[restartedAt...].contains { $0.node == n2 && ($0.output.persist?.messagesAfterDurable ?? []).contains { envelope in
            if case .promise = envelope.message { return true } else { return false }
        } }, "a repairing replica promises nothing")
        cluster.restart(n1)
        cluster.isolated = []
        cluster.run("cycle 60")
        XCTAssertEqual(cluster.replicas[n2]?.isRepairing, false)
        XCTAssertEqual(cluster.leaders.count, 1)
        for id in [n1, n2, n3] {
            XCTAssertEqual(cluster.replicas[id]?.chosenValue(at: slot), .batch([cluster.command("b")]), "\(id)")
        }
        XCTAssertTrue(cluster.trace.contains { $0.node == n2 && $0.output.repairFinished })
        XCTAssertTrue(cluster.durableRecords[n2, default: []].contains(.repaired))
        // It votes again: a new command reaches all three.
        cluster.run("propose \(cluster.leaders[0].rawValue) d; cycle 4")
        XCTAssertEqual(cluster.appliedNames(n2).last, "d")
        cluster.assertClean()
    }

    /// The fence: a repairing replica takes the highest promise any voter reports (a ballot
    /// it may have promised and lost), so it never accepts below it.
    func testTheFenceIsTheHighestReportedPromise() {
        var replica = try! Replica(id: n1, configuration: Configuration(members: [n1, n2, n3]), seed: 1, repairing: true)
        var output = replica.step(.start, clock: ClockTime(nanoseconds: 1))
        let queries = output.messages.filter { if case .repairQuery = $0.message { return true } else { return false } }
        XCTAssertEqual(Set(queries.map(\.to)), [n2, n3])
        guard case .repairQuery(let nonce) = queries[0].message else { return XCTFail() }
        let high = Ballot(round: 9, node: n3)
        output = replica.step(.receive(Envelope(from: n2, to: n1, message: .repairReport(nonce: nonce, promised: Ballot(round: 2, node: n2),
                                                                                         highestSlot: 0, repairing: false))),
                              clock: ClockTime(nanoseconds: 2))
        XCTAssertTrue(replica.isRepairing, "n3 has not answered")
        // A report from a repairing voter, or for another query, does not count.
        _ = replica.step(.receive(Envelope(from: n3, to: n1, message: .repairReport(nonce: nonce, promised: high, highestSlot: 0, repairing: true))),
                         clock: ClockTime(nanoseconds: 3))
        _ = replica.step(.receive(Envelope(from: n3, to: n1, message: .repairReport(nonce: nonce &+ 1, promised: high, highestSlot: 0, repairing: false))),
                         clock: ClockTime(nanoseconds: 4))
        XCTAssertTrue(replica.isRepairing)
        output = replica.step(.receive(Envelope(from: n3, to: n1, message: .repairReport(nonce: nonce, promised: high, highestSlot: 0, repairing: false))),
                              clock: ClockTime(nanoseconds: 5))
        XCTAssertFalse(replica.isRepairing)
        XCTAssertTrue(output.repairFinished)
        XCTAssertEqual(replica.promised, high)
        XCTAssertEqual(output.persist?.records, [.promised(high), .repaired])
        // An Accept below the fence is refused.
        output = replica.step(.receive(Envelope(from: n2, to: n1, message: .accept(ballot: Ballot(round: 5, node: n2), slot: 1, value: .noop, chosenThrough: 0))),
                              clock: ClockTime(nanoseconds: 6))
        XCTAssertTrue(output.messages.contains { if case .reject(_, let promised) = $0.message { return promised == high } else { return false } })
    }
}
