import XCTest
import SynodCore

private let n1 = NodeID(1), n2 = NodeID(2), n3 = NodeID(3)

private func accepts(_ output: Output, to peer: NodeID) -> [(slot: Slot, value: Value)] {
    output.messages.compactMap { envelope in
        guard envelope.to == peer, case .accept(_, let slot, let value, _) = envelope.message else { return nil }
        return (slot, value)
    }
}

/// A three-node cluster in normal operation: election, replication, batching, forwarding,
/// reads and determinism. The harness checks invariants, in-order applies and cross-node
/// agreement after every step.
final class ReplicaClusterTests: XCTestCase {
    func testOneLeaderChoosesAndEveryNodeAppliesInSlotOrder() {
        var cluster = Cluster(seed: 1)
        cluster.run("""
            elect 1
            propose 1 a
            propose 1 b
            propose 1 c
            deliver all
            tick 1 x 2
            deliver all
            """)
        XCTAssertEqual(cluster.leaders, [n1])
        for id in cluster.ids {
            XCTAssertEqual(cluster.appliedNames(id), ["a", "b", "c"], "\(id)")
            XCTAssertEqual(cluster.applied[id]?.map(slotOf), [1, 2, 3], "\(id)")
            XCTAssertEqual(cluster.replicas[id]?.chosenThrough, 3)
            XCTAssertEqual(cluster.replicas[id]?.appliedThrough, 3)
        }
        // Heartbeats keep the leader in place: still exactly one leader much later.
        cluster.run("cycle 60")
        XCTAssertEqual(cluster.leaders, [n1])
        XCTAssertEqual(Set(cluster.ids.compactMap { cluster.replicas[$0]?.leaderHint }), [n1])
        cluster.assertClean()
    }

    func testAnElectionAmongThreeTickingNodesEndsWithOneLeader() {
        for seed in UInt64(1)...20 {
            var cluster = Cluster(seed: seed)
            cluster.run("cycle 40")
            XCTAssertEqual(cluster.leaders.count, 1, "seed \(seed)")
            let leader = cluster.leaders[0]
            cluster.propose(leader, "x")
            cluster.run("cycle 3")
            for id in cluster.ids { XCTAssertEqual(cluster.appliedNames(id), ["x"], "seed \(seed) \(id)") }
            cluster.assertClean()
        }
    }

    /// Promise and Accepted reveal acceptor state, so they leave only through a persist batch's
    /// `messagesAfterDurable`. The one documented exception (Replica+Acceptor `onAccept`): an
    /// Accepted for a slot the acceptor already knows chosen, which cannot help choose another value.
    func testStateRevealingMessagesWaitForDurabilityOverAWholeRun() {
        var cluster = Cluster(seed: 5)
        cluster.run("""
            elect 1
            propose 1 a
            propose 1 b
            drop 1->3
            deliver all
            tick 1 x 4
            deliver all
            propose 2 c
            cycle 3
            isolate 1
            elect 2
            propose 2 d
            cycle 3
            heal
            cycle 10
            crash 3
            propose 2 e
            cycle 2
            restart 3
            cycle 20
            """)
        var promises = 0, accepteds = 0
        for envelope in cluster.sentAfterDurable {
            switch envelope.message {
            case .promise: promises += 1
            case .accepted: accepteds += 1
            default: break
            }
        }
        XCTAssertGreaterThan(promises, 0)
        XCTAssertGreaterThan(accepteds, 0)
        for (envelope, slotKnownChosen) in cluster.sentAtOnce {
            switch envelope.message {
            case .prepare, .promise:
                XCTFail("\(envelope.message.kind) sent without waiting for durability: \(envelope)")
            case .accepted:
                XCTAssertTrue(slotKnownChosen, "Accepted for a slot not known chosen sent at once: \(envelope)")
            default: break
            }
        }
        for id in cluster.ids { XCTAssertEqual(cluster.appliedNames(id), ["a", "b", "c", "d", "e"], "\(id)") }
        cluster.assertClean()
    }

    /// Flexible quorums (and a single node) elect, replicate and serve reads in both read modes.
    func testFlexibleQuorumsAndASingleNode() {
        for (nodes, phase1, phase2) in [(1, 1, 1), (3, 3, 1), (3, 1, 3), (4, 3, 2), (5, 4, 2), (5, 2, 4)] {
            for mode in ReadMode.allCases {
                let label = "\(nodes) nodes, q1 \(phase1), q2 \(phase2), \(mode)"
                var cluster = Cluster(nodes: nodes, seed: 2) { configuration in
                    configuration.phase1Quorum = phase1
                    configuration.phase2Quorum = phase2
                    configuration.readMode = mode
                }
                cluster.run("cycle 40")
                XCTAssertEqual(cluster.leaders.count, 1, label)
                guard let leader = cluster.leaders.first else { continue }
                let follower = cluster.ids.first { $0 != leader } ?? leader
                cluster.propose(leader, "a")
                cluster.propose(follower, "b")
                cluster.run("cycle 6")
                cluster.step(leader, .read(readID: 1, consistency: .linearizable))
                cluster.step(follower, .read(readID: 2, consistency: .linearizable))
                cluster.run("cycle 4")
                for id in cluster.ids { XCTAssertEqual(cluster.appliedNames(id), ["a", "b"], "\(label) \(id)") }
                XCTAssertEqual(cluster.readsReady[leader]?.contains(1), true, label)
                XCTAssertEqual(cluster.readsReady[follower]?.contains(2), true, label)
                cluster.assertClean()
            }
        }
    }

    // MARK: Batching and the window

    func testManyCommandsInOneStepArePackedIntoFewSlots() {
        var cluster = Cluster(seed: 1)
        cluster.run("elect 1")
        let commands = (0..<1000).map { Command(clientID: 100 + UInt64($0), sequence: 1, payload: [UInt8(truncatingIfNeeded: $0)]) }
        let output = cluster.step(n1, .receive(Envelope(from: n2, to: n1, message: .forward(commands: commands))))
        let slots = accepts(output, to: n2)
        // batchCommandsMax = 256: 1000 commands need 4 slots, far fewer than 1000.
        XCTAssertEqual(slots.map(\.slot), [1, 2, 3, 4])
        XCTAssertEqual(slots.map { $0.value.commands.count }, [256, 256, 256, 232])
        XCTAssertEqual(slots.flatMap { $0.value.commands }, commands, "batches keep arrival order")
        cluster.run("deliver all; tick 1 x 2; deliver all")
        for id in cluster.ids {
            XCTAssertEqual(cluster.appliedValues(id).flatMap(\.commands), commands, "\(id)")
        }
        cluster.assertClean()
    }

    /// `proposeAll` (the server's per-loop-turn proposal) packs local commands like a Forward
    /// does; at a follower it becomes one Forward to the leader.
    func testProposeAllPacksLocalCommandsIntoOneSlot() {
        var cluster = Cluster(seed: 1)
        cluster.run("elect 1")
        let commands = (0..<300).map { Command(clientID: 100 + UInt64($0), sequence: 1, payload: [UInt8(truncatingIfNeeded: $0)]) }
        let output = cluster.step(n1, .proposeAll(Array(commands[0..<200])))
        XCTAssertEqual(accepts(output, to: n2).map { $0.value.commands.count }, [200])
        let fromFollower = cluster.step(n2, .proposeAll(Array(commands[200...])))
        let forwards = fromFollower.messages.compactMap { envelope -> [Command]? in
            guard envelope.to == n1, case .forward(let forwarded) = envelope.message else { return nil }
            return forwarded
        }
        XCTAssertEqual(forwards, [Array(commands[200...])])
        cluster.run("deliver all; tick 1 x 2; deliver all")
        for id in cluster.ids {
            XCTAssertEqual(cluster.appliedValues(id).flatMap(\.commands), commands, "\(id)")
        }
        cluster.assertClean()
    }

    func testWindowBoundsSlotsInFlight() {
        var cluster = Cluster(seed: 1) { configuration in
            configuration.windowSlots = 3
            configuration.batchCommandsMax = 10
        }
        cluster.run("elect 1")
        let start = cluster.trace.count
        // One command per step: each takes a slot of its own until the window is full.
        for index in 0..<1000 { cluster.propose(n1, "c\(index)") }
        XCTAssertEqual(cluster.replicas[n1]?.queuedCommands, 997)
        cluster.run("deliver all; tick 1 x 2; deliver all")
        let names = (0..<1000).map { "c\($0)" }
        for id in cluster.ids { XCTAssertEqual(cluster.appliedNames(id), names, "\(id)") }
        // 3 single-command slots, then full batches of 10 (batching, not one slot per command).
        XCTAssertEqual(cluster.appliedValues(n1).count, 3 + 100)  // 997 = 99 x 10 + 7

        // Replay the leader's steps: slots it sent Accept for but had not yet learned chosen.
        var proposed: Set<Slot> = [], chosen: Set<Slot> = [], widest = 0
        for entry in cluster.trace[start...] where entry.node == n1 {
            for envelope in entry.output.messages {
                if case .accept(_, let slot, _, _) = envelope.message { proposed.insert(slot) }
            }
            for case .chosen(let slot, _) in entry.output.persist?.records ?? [] { chosen.insert(slot) }
            let inFlight = proposed.subtracting(chosen).count
            widest = max(widest, inFlight)
            XCTAssertLessThanOrEqual(inFlight, 3, "window exceeded after \(entry.input)")
        }
        XCTAssertEqual(widest, 3, "the window is used fully")
        cluster.assertClean()
    }

    func testBatchBytesMaxSplitsBatches() {
        var cluster = Cluster(seed: 1) { $0.batchBytesMax = 10 }
        cluster.run("elect 1")
        let big = Command(clientID: 1, sequence: 1, payload: Array(repeating: 1, count: 25))
        let small = (2...5).map { Command(clientID: UInt64($0), sequence: 1, payload: [1, 2, 3, 4]) }
        let output = cluster.step(n1, .receive(Envelope(from: n2, to: n1, message: .forward(commands: [big] + small))))
        // A command larger than the limit still fits alone; 4-byte commands go two per slot.
        XCTAssertEqual(accepts(output, to: n2).map { $0.value.commands.count }, [1, 2, 2])
    }

    // MARK: Forwarding

    func testFollowerForwardsProposalsToTheLeader() throws {
        var cluster = Cluster(seed: 1)
        cluster.run("elect 1")
        XCTAssertEqual(cluster.replicas[n2]?.leaderHint, n1)
        let command = cluster.command("f")
        let output = cluster.step(n2, .propose(command))
        XCTAssertEqual(output.messages, [Envelope(from: n2, to: n1, message: .forward(commands: [command]))])
        XCTAssertEqual(output.rejected.count, 0)
        cluster.run("deliver all; tick 1 x 2; deliver all")
        for id in cluster.ids { XCTAssertEqual(cluster.appliedNames(id), ["f"]) }
        cluster.assertClean()
    }

    // MARK: Reads

    func testReadIndexReadWaitsForAHeartbeatRoundAckedByAQuorum() throws {
        var cluster = Cluster(seed: 1) { $0.readMode = .readIndex }
        cluster.run("elect 1; propose 1 a; deliver all; tick 1 x 2; deliver all")
        let ballot = try XCTUnwrap(cluster.replicas[n1]?.ownBallot)
        let output = cluster.step(n1, .read(readID: 1, consistency: .linearizable))
        XCTAssertEqual(output.readsReady, [], "read index: no local answer without a round")
        let round = output.messages.compactMap { envelope -> UInt64? in
            if case .heartbeat(_, _, let sequence) = envelope.message { return sequence }
            return nil
        }
        XCTAssertEqual(round.count, 2, "a heartbeat round starts for the read")
        let sequence = try XCTUnwrap(round.first)
        // An ack for an earlier round proves nothing about the time after the read arrived.
        let old = cluster.step(n1, .receive(Envelope(from: n2, to: n1, message: .heartbeatAck(ballot: ballot, sequence: sequence - 1, chosenThrough: 1))))
        XCTAssertEqual(old.readsReady, [])
        cluster.tick(n1)  // time passes, no ack: still waiting
        XCTAssertEqual(cluster.readsReady[n1], [])
        // One peer ack + the leader = 2 of 3.
        cluster.deliver { $0.to == n2 || ($0.from == n2 && $0.to == n1) }
        XCTAssertEqual(cluster.readsReady[n1], [1])
        cluster.assertClean()
    }

    func testLeaseReadIsImmediateWhileFreshAndWaitsOnceExpired() {
        var cluster = Cluster(seed: 1)
        cluster.run("elect 1; propose 1 a; deliver all")
        XCTAssertEqual(cluster.step(n1, .read(readID: 1, consistency: .linearizable)).readsReady, [1],
                       "a fresh lease answers at once")
        // Ticks without acks: the lease (6 ticks from the acked heartbeat's send) runs out.
        for _ in 0..<6 {
            cluster.tick(n1)
            cluster.take { _ in true }
        }
        let output = cluster.step(n1, .read(readID: 2, consistency: .linearizable))
        XCTAssertEqual(output.readsReady, [], "an expired lease must not answer locally")
        cluster.run("deliver all")
        XCTAssertEqual(cluster.readsReady[n1], [1], "no round acked yet")
        cluster.run("tick 1 x 2; deliver all")
        XCTAssertEqual(cluster.readsReady[n1], [1, 2])
        cluster.assertClean()
    }

    func testFollowerLinearizableReadAsksTheLeaderAndWaitsToApply() {
        var cluster = Cluster(seed: 1)
        cluster.run("elect 1; propose 1 a")
        // The Accepts reach n3 only: n2 knows nothing of slot 1 yet.
        cluster.run("deliver 1->3; deliver 3->1; drop all")
        XCTAssertEqual(cluster.replicas[n1]?.chosenThrough, 1)
        let output = cluster.step(n2, .read(readID: 9, consistency: .linearizable))
        XCTAssertEqual(output.messages, [Envelope(from: n2, to: n1, message: .readIndexRequest(readID: 9))])
        XCTAssertEqual(output.readsReady, [])
        cluster.run("deliver all")
        XCTAssertEqual(cluster.readsReady[n2], [9])
        XCTAssertEqual(cluster.appliedNames(n2), ["a"], "the read is answered only after applying the leader's index")
        cluster.assertClean()
    }

    // MARK: Determinism

    private static let script = """
        cycle 25
        propose 1 a
        propose 2 b
        propose 3 c
        cycle 3
        drop all
        isolate 1
        cycle 30
        propose 2 d
        propose 3 e
        read 2 linearizable 1
        heal
        cycle 30
        """

    func testIdenticalRunsProduceIdenticalOutputs() {
        var first = Cluster(seed: 11), second = Cluster(seed: 11), other = Cluster(seed: 12)
        first.run(Self.script)
        second.run(Self.script)
        other.run(Self.script)
        XCTAssertGreaterThan(first.trace.count, 100)
        XCTAssertEqual(first.trace, second.trace)
        XCTAssertNotEqual(first.trace, other.trace, "a different seed changes the election timeouts")
        first.assertClean()
        other.assertClean()
    }
}

private func slotOf(_ apply: Apply) -> Slot {
    switch apply {
    case .snapshot(let snapshot): return snapshot.slot
    case .entry(let slot, _): return slot
    }
}
