import XCTest
import SynodCore

private let n1 = NodeID(1), n2 = NodeID(2), n3 = NodeID(3), n4 = NodeID(4), n5 = NodeID(5)

/// Accept messages `from` sent in the steps of `trace` after index `start`, by slot.
private func acceptsSent(by from: NodeID, in cluster: Cluster, after start: Int = 0) -> [Slot: Value] {
    var sent: [Slot: Value] = [:]
    for entry in cluster.trace[start...] where entry.node == from {
        for envelope in entry.output.messages {
            if case .accept(_, let slot, let value, _) = envelope.message { sent[slot] = value }
        }
    }
    return sent
}

private func messages(in cluster: Cluster, where matches: (Envelope) -> Bool) -> [Envelope] {
    cluster.trace.flatMap { $0.output.messages + ($0.output.persist?.messagesAfterDurable ?? []) }.filter(matches)
}

/// Failures and recovery: leader change, stale leaders, catch-up, snapshots, restarts.
final class ReplicaScenarioTests: XCTestCase {
    func testNewLeaderReproposesAnAcceptedValueAndFillsHolesWithNoop() {
        var cluster = Cluster(seed: 1)
        let x = cluster.command("x")
        cluster.run("""
            elect 1
            propose 1 h
            drop all
            propose 1 x
            deliver 1->2
            drop all
            """)
        // Slot 1 ("h") reached no acceptor; slot 2 ("x") was accepted by n2 only: not chosen.
        XCTAssertEqual(cluster.replicas[n1]?.chosenThrough, 0)
        let start = cluster.trace.count
        cluster.run("isolate 1; elect 3")
        let reproposed = acceptsSent(by: n3, in: cluster, after: start)
        XCTAssertEqual(reproposed[1], .noop, "a hole is filled with a no-op")
        XCTAssertEqual(reproposed[2], .batch([x]), "the accepted value must be proposed again in its slot")
        cluster.run("propose 3 y; deliver all; tick 3 x 2; deliver all")
        for id in [n2, n3] {
            XCTAssertEqual(cluster.appliedValues(id), [.noop, .batch([x]), .batch([cluster.command("y")])], "\(id)")
        }
        // The old leader comes back, steps down, and learns the same log ("h" is never chosen).
        cluster.run("heal; cycle 6")
        XCTAssertEqual(cluster.leaders, [n3])
        XCTAssertEqual(cluster.appliedNames(n1), ["x", "y"])
        cluster.assertClean()
    }

    /// Two different values accepted for one slot in different ballots: the next leader must
    /// pick the one of the higher ballot (the core rule of Paxos, `SingleDecree.valueToPropose`).
    func testNewLeaderPicksTheValueOfTheHighestBallot() {
        var cluster = Cluster(nodes: 5, seed: 2)
        cluster.run("""
            elect 1
            propose 1 old
            deliver 1->5
            drop all
            isolate 1
            isolate 5
            elect 2
            propose 2 new
            deliver 2->3
            drop all
            """)
        // Slot 1: "old" accepted by n1 and n5 in n1's ballot, "new" by n2 and n3 in n2's
        // (higher) ballot. Neither is chosen (3 of 5 needed).
        XCTAssertEqual(cluster.replicas[n2]?.chosenThrough, 0)
        let start = cluster.trace.count
        cluster.run("isolate 2; connect 5; elect 4")
        XCTAssertEqual(acceptsSent(by: n4, in: cluster, after: start)[1], .batch([cluster.command("new")]))
        cluster.run("tick 4 x 2; deliver all")
        for id in [n3, n4, n5] { XCTAssertEqual(cluster.appliedNames(id), ["new"], "\(id)") }
        cluster.assertClean()
    }

    func testRejectCarriesTheHigherBallotAndAStaleLeaderStepsDown() throws {
        var cluster = Cluster(seed: 1) { $0.windowSlots = 1 }
        cluster.run("""
            elect 1
            propose 1 a
            deliver all
            tick 1 x 2
            deliver all
            isolate 1
            elect 2
            """)
        let stale = try XCTUnwrap(cluster.replicas[n1]?.ownBallot)
        let current = try XCTUnwrap(cluster.replicas[n2]?.ownBallot)
        XCTAssertGreaterThan(current, stale)
        XCTAssertEqual(cluster.leaders, [n1, n2], "n1 does not know yet")
        // n1 still leads in its own view: "b" takes the one window slot, "c" waits in its queue.
        cluster.run("heal; propose 1 b; propose 1 c")
        XCTAssertEqual(cluster.replicas[n1]?.queuedCommands, 1)
        cluster.deliverAll()
        let rejects = messages(in: cluster) { $0.to == n1 && $0.message == .reject(ballot: stale, promised: current) }
        XCTAssertFalse(rejects.isEmpty, "acceptors answer the stale Accept with the ballot they promised")
        XCTAssertEqual(cluster.replicas[n1]?.role, .follower)
        XCTAssertEqual(cluster.leaders, [n2])
        XCTAssertEqual(cluster.rejected[n1]?.map(\.command), [cluster.command("c")])
        XCTAssertEqual(cluster.rejected[n1]?.map(\.reason), [.noLeader(leaderHint: nil)])
        // The next heartbeat tells n1 who leads; "b" was never chosen.
        cluster.run("tick 2 x 2; deliver all; propose 1 d; deliver all; tick 2 x 2; deliver all")
        XCTAssertEqual(cluster.replicas[n1]?.leaderHint, n2)
        for id in cluster.ids { XCTAssertEqual(cluster.appliedNames(id), ["a", "d"], "\(id)") }
        cluster.assertClean()
    }

    func testRejectAloneMakesALeaderStepDown() throws {
        var cluster = Cluster(seed: 1)
        cluster.run("elect 1")
        let ballot = try XCTUnwrap(cluster.replicas[n1]?.ownBallot)
        let higher = Ballot(round: ballot.round + 3, node: n3)
        // A reject for a ballot other than the one it leads with is ignored.
        cluster.step(n1, .receive(Envelope(from: n2, to: n1, message: .reject(ballot: Ballot(round: ballot.round, node: n2), promised: higher))))
        XCTAssertEqual(cluster.replicas[n1]?.role, .leader)
        cluster.step(n1, .receive(Envelope(from: n2, to: n1, message: .reject(ballot: ballot, promised: higher))))
        XCTAssertEqual(cluster.replicas[n1]?.role, .follower)
        // Its next campaign goes above the ballot the reject reported.
        cluster.ageGuard(n2)
        cluster.ageGuard(n3)
        cluster.tickUntilCandidate(n1)
        XCTAssertGreaterThan(try XCTUnwrap(cluster.replicas[n1]?.ownBallot), higher)
        cluster.assertClean()
    }

    func testIsolatedFollowerCatchesUpAndAppliesInOrder() {
        var cluster = Cluster(seed: 1)
        cluster.run("""
            elect 1
            isolate 3
            propose 1 a
            propose 1 b
            propose 1 c
            deliver all
            tick 1 x 2
            deliver all
            """)
        XCTAssertEqual(cluster.appliedNames(n2), ["a", "b", "c"])
        XCTAssertEqual(cluster.appliedNames(n3), [])
        cluster.run("heal; tick 1 x 2; deliver all")
        XCTAssertEqual(cluster.appliedNames(n3), ["a", "b", "c"])
        XCTAssertEqual(cluster.applied[n3]?.count, 3)
        XCTAssertFalse(messages(in: cluster) { $0.from == n3 && $0.message == .catchUpRequest(firstSlot: 1) }.isEmpty)
        cluster.assertClean()
    }

    /// A follower that lags (its catch-up request to the old leader is pending) becomes leader
    /// while the old leader is dead: it must fetch the chosen prefix from a peer, or it can
    /// never apply anything again.
    func testNewLeaderBehindTheChosenPrefixCatchesUpFromAPeer() {
        var cluster = Cluster(seed: 1)
        cluster.run("""
            elect 1
            isolate 3
            propose 1 a
            propose 1 b
            deliver all
            tick 1 x 2
            deliver all
            heal
            tick 1 x 2
            deliver 1->3
            drop 1->2
            crash 1
            elect 3
            """)
        XCTAssertEqual(cluster.replicas[n2]?.chosenThrough, 2)
        cluster.run("cycle 20; propose 3 c; cycle 4")
        for id in [n2, n3] { XCTAssertEqual(cluster.appliedNames(id), ["a", "b", "c"], "\(id)") }
        cluster.assertClean()
    }

    func testCatchUpIsLimitedPerReplyAndContinues() {
        var cluster = Cluster(seed: 1) { $0.catchUpEntriesMax = 2 }
        cluster.run("elect 1; isolate 3")
        for index in 0..<7 { cluster.propose(n1, "c\(index)") }
        cluster.run("deliver all; tick 1 x 2; deliver all; heal; tick 1 x 2; deliver all")
        XCTAssertEqual(cluster.appliedNames(n3), (0..<7).map { "c\($0)" })
        let requests = messages(in: cluster) { envelope in
            if case .catchUpRequest = envelope.message { return envelope.from == n3 } else { return false }
        }
        XCTAssertEqual(requests.count, 4, "7 entries at 2 per reply")
        cluster.assertClean()
    }

    func testLaggingFollowerReceivesTheLeadersSnapshotFirst() {
        var cluster = Cluster(seed: 1)
        cluster.run("""
            elect 1
            isolate 3
            propose 1 a
            propose 1 b
            propose 1 c
            deliver all
            tick 1 x 2
            deliver all
            snapshot 1
            propose 1 d
            deliver all
            tick 1 x 2
            deliver all
            """)
        // The snapshot carries the membership governing the slots after it.
        let membership = MembershipHistory(initial: Configuration(members: [n1, n2, n3]).initialMembership)
        let snapshot = Snapshot(slot: 3, data: Array("state@3".utf8), membership: membership)
        XCTAssertEqual(cluster.replicas[n1]?.snapshot, snapshot)
        XCTAssertNil(cluster.replicas[n1]?.chosenValue(at: 2), "the log below the snapshot is compacted")
        cluster.run("heal; tick 1 x 2; deliver all")
        XCTAssertEqual(cluster.applied[n3], [.snapshot(snapshot), .entry(slot: 4, value: .batch([cluster.command("d")]))])
        XCTAssertEqual(cluster.replicas[n3]?.snapshot, snapshot)
        // A restart of the lagging node restores the snapshot it persisted, then the entries after it.
        cluster.run("crash 3; restart 3")
        XCTAssertEqual(cluster.applied[n3], [.snapshot(snapshot), .entry(slot: 4, value: .batch([cluster.command("d")]))])
        cluster.assertClean()
    }

    // MARK: Restart

    func testPromiseAndAcceptedEntriesSurviveARestart() throws {
        var cluster = Cluster(seed: 1)
        cluster.run("elect 2; propose 2 a; deliver all; tick 2 x 2; deliver all; propose 2 b; deliver 2->3; drop all")
        let ballot = try XCTUnwrap(cluster.replicas[n2]?.ownBallot)
        // n3 accepted "b" in slot 2 but never heard it was chosen.
        XCTAssertEqual(cluster.replicas[n3]?.chosenThrough, 1)
        cluster.run("crash 3; restart 3")
        let restarted = try XCTUnwrap(cluster.replicas[n3])
        XCTAssertEqual(restarted.promised, ballot)
        XCTAssertEqual(restarted.chosenThrough, 1)
        XCTAssertEqual(cluster.appliedNames(n3), ["a"], "chosen entries are applied again after a restart")
        // A ballot below the durable promise is rejected (even during the restart guard)...
        let low = Ballot(round: ballot.round, node: n1)
        XCTAssertLessThan(low, ballot)
        let rejection = cluster.step(n3, .receive(Envelope(from: n1, to: n3, message: .prepare(ballot: low, firstSlot: 1))))
        XCTAssertEqual(rejection.messages, [Envelope(from: n3, to: n1, message: .reject(ballot: low, promised: ballot))])
        // ...and a higher one, once the guard is over, learns the accepted entry.
        cluster.ageGuard(n3)
        let high = Ballot(round: ballot.round + 1, node: n1)
        let promise = cluster.step(n3, .receive(Envelope(from: n1, to: n3, message: .prepare(ballot: high, firstSlot: 1))))
        let expected = Message.promise(ballot: high, chosenThrough: 1,
                                       entries: [PromisedEntry(slot: 2, ballot: ballot, value: .batch([cluster.command("b")]))])
        XCTAssertEqual(promise.persist?.messagesAfterDurable, [Envelope(from: n3, to: n1, message: expected)])
        cluster.assertClean()
    }

    func testAPromiseAloneSurvivesARestart() throws {
        var cluster = Cluster(seed: 1)
        cluster.ageGuard(n3)
        let high = Ballot(round: 7, node: n1)
        cluster.step(n3, .receive(Envelope(from: n1, to: n3, message: .prepare(ballot: high, firstSlot: 1))))
        XCTAssertEqual(cluster.network, [Envelope(from: n3, to: n1, message: .promise(ballot: high, chosenThrough: 0, entries: []))])
        cluster.run("drop all; crash 3; restart 3")
        XCTAssertEqual(cluster.replicas[n3]?.promised, high)
        // The restarted acceptor refuses what the promise excludes: Prepare and Accept below it.
        let low = Ballot(round: 6, node: n2)
        let prepare = cluster.step(n3, .receive(Envelope(from: n2, to: n3, message: .prepare(ballot: low, firstSlot: 1))))
        XCTAssertEqual(prepare.messages, [Envelope(from: n3, to: n2, message: .reject(ballot: low, promised: high))])
        let accept = cluster.step(n3, .receive(Envelope(from: n2, to: n3, message: .accept(ballot: low, slot: 1, value: .noop, chosenThrough: 0))))
        XCTAssertEqual(accept.messages, [Envelope(from: n3, to: n2, message: .reject(ballot: low, promised: high))])
        XCTAssertNil(accept.persist, "nothing accepted")
        cluster.assertClean()
    }

    func testAPromiseThatWasNeverDurableIsNeitherSentNorRestored() throws {
        var cluster = Cluster(seed: 1)
        cluster.ageGuard(n3)
        cluster.run("hold 3")
        let high = Ballot(round: 4, node: n1)
        let output = cluster.step(n3, .receive(Envelope(from: n1, to: n3, message: .prepare(ballot: high, firstSlot: 1))))
        XCTAssertNotNil(output.persist)
        XCTAssertEqual(cluster.network, [], "the Promise waits for the disk")
        cluster.run("crash 3; restart 3")
        XCTAssertEqual(cluster.replicas[n3]?.promised, .zero)
        XCTAssertEqual(cluster.network, [])
        cluster.assertClean()
    }

    func testRestartedLeaderCampaignsAboveItsOldBallotAndKeepsTheLog() throws {
        var cluster = Cluster(seed: 2)
        cluster.run("elect 1; propose 1 a; deliver all; tick 1 x 2; deliver all")
        let old = try XCTUnwrap(cluster.replicas[n1]?.ownBallot)
        cluster.run("crash 1; restart 1")
        XCTAssertEqual(cluster.replicas[n1]?.role, .follower)
        XCTAssertEqual(cluster.appliedNames(n1), ["a"])
        cluster.ageGuard(n2)
        cluster.ageGuard(n3)
        cluster.tickUntilCandidate(n1)
        XCTAssertGreaterThan(try XCTUnwrap(cluster.replicas[n1]?.ownBallot), old, "a ballot is never reused")
        cluster.run("isolate 2; isolate 3")
        cluster.run("heal; cycle 40; propose 1 b; propose 2 b2; propose 3 b3; cycle 5")
        XCTAssertEqual(cluster.leaders.count, 1)
        for id in cluster.ids { XCTAssertEqual(cluster.appliedNames(id).first, "a", "\(id)") }
        cluster.assertClean()
    }
}
