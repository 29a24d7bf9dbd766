import SynodBytes
import XCTest
@testable import SynodCore

private let n1 = NodeID(1), n2 = NodeID(2), n3 = NodeID(3), n4 = NodeID(4), n5 = NodeID(5)

/// Membership changes in the core: the configuration is chosen through the log and governs
/// slots from `activeFrom` on (see the rule in Replica+Membership).
final class MembershipTests: XCTestCase {
    private func reconfigure(_ cluster: inout Cluster, at node: NodeID, _ change: MembershipChange, force: Bool = false,
                             requestID: UInt64 = 77) {
        cluster.step(node, .reconfigure(requestID: requestID, change: change, force: force))
    }

    private func outcome(_ cluster: Cluster, at node: NodeID, requestID: UInt64 = 77) -> Result<Reconfiguration, ReconfigurationError>? {
        cluster.reconfigured[node]?.last { $0.requestID == requestID }?.result
    }

    private func chosenReconfigurations(_ cluster: Cluster, _ node: NodeID) -> [(Slot, Reconfiguration)] {
        cluster.applied[node, default: []].compactMap {
            if case .entry(let slot, .reconfigure(let change)) = $0 { return (slot, change) }
            return nil
        }
    }

    /// A three-node cluster with n1 leading and a few commands chosen.
    private func startedCluster() -> Cluster {
        var cluster = Cluster(nodes: 3)
        cluster.run("elect 1; propose 1 a; propose 1 b; deliver all; cycle 3")
        return cluster
    }

    private func addLearner4(_ cluster: inout Cluster, at node: NodeID = n2) {
        reconfigure(&cluster, at: node, .add(peerURLs: ["http://n4"], isLearner: true, memberID: 444))
        cluster.run("deliver all; cycle 4")
    }

    func testCodecsRoundTripAndRejectGarbage() throws {
        var membership = Membership(members: [Member(id: n1, name: "a", peerURLs: ["http://a:1"], memberID: 9),
                                              Member(id: n2), Member(id: n5, isLearner: true, peerURLs: ["u", "v"])])
        membership.nextNodeID = 9
        var history = MembershipHistory(initial: membership)
        history.append(MembershipEpoch(chosenAt: 7, activeFrom: 39, membership: membership))
        XCTAssertEqual(try MembershipHistory(decoding: history.encoded()), history)
        let change = Reconfiguration(origin: n2, requestID: .max, change: .update(n5, peerURLs: ["x"], name: "five"),
                                     membership: membership, activeFrom: 40)
        XCTAssertEqual(try Reconfiguration(decoding: change.encoded()), change)
        for change in [MembershipChange.add(peerURLs: ["p"], isLearner: true, memberID: 3), .remove(n3), .promote(n4),
                       .update(n1, peerURLs: [], name: nil)] {
            XCTAssertEqual(try MembershipChange(decoding: change.encoded()), change)
        }
        for error in [ReconfigurationError.memberNotFound, .transferFailed("why"), .leaderChanged] {
            XCTAssertEqual(try ReconfigurationError(decoding: error.encoded()), error)
        }
        // Truncation, trailing bytes, a zero node id and a quorum larger than the voters are refused.
        let bytes = history.encoded()
        for cut in [0, 1, 5, bytes.count - 1] {
            XCTAssertThrowsError(try MembershipHistory(decoding: Array(bytes.prefix(cut))))
        }
        XCTAssertThrowsError(try MembershipHistory(decoding: bytes + [0]))
        var zero = LittleEndianWriter()
        zero.writeUInt8(1); zero.writeUInt32(1); zero.writeUInt64(0); zero.writeUInt64(1)
        zero.writeUInt32(5); zero.writeUInt32(1); zero.writeUInt32(1); zero.writeUInt32(1); zero.writeMember(Member(id: NodeID(0)))
        XCTAssertThrowsError(try MembershipHistory(decoding: zero.bytes))
        var quorum = LittleEndianWriter()
        quorum.writeUInt8(1); quorum.writeUInt32(1); quorum.writeUInt64(0); quorum.writeUInt64(1)
        quorum.writeUInt32(5); quorum.writeUInt32(3); quorum.writeUInt32(1); quorum.writeUInt32(1); quorum.writeMember(Member(id: n1))
        XCTAssertThrowsError(try MembershipHistory(decoding: quorum.bytes))
    }

    func testHistoryGovernsSlotsFromActivation() {
        let three = Configuration(members: [n1, n2, n3]).initialMembership
        var four = three
        four.upsert(Member(id: n4))
        var history = MembershipHistory(initial: three)
        history.append(MembershipEpoch(chosenAt: 10, activeFrom: 42, membership: four))
        XCTAssertEqual(history.membership(at: 41).voters, [n1, n2, n3])
        XCTAssertEqual(history.membership(at: 42).voters, [n1, n2, n3, n4])
        XCTAssertEqual(history.memberships(from: 30).count, 2)
        XCTAssertEqual(history.memberships(from: 42).count, 1)
        // As of slot 9 the change was not chosen; as of 50 only the new membership governs.
        XCTAssertEqual(history.asOf(slot: 9).epochs.count, 1)
        XCTAssertEqual(history.asOf(slot: 9).latest, three)
        XCTAssertEqual(history.asOf(slot: 50).epochs.map(\.membership), [four])
        XCTAssertEqual(history.asOf(slot: 20).epochs.count, 2)
    }

    func testLearnerJoinsBySnapshotCatchesUpAndNeverVotes() throws {
        var cluster = startedCluster()
        addLearner4(&cluster)
        // The follower that took the request answers it once it applied the chosen change.
        let change = try XCTUnwrap(try outcome(cluster, at: n2)?.get())
        XCTAssertEqual(change.membership.learners, [n4])
        XCTAssertEqual(change.membership.voters, [n1, n2, n3])
        XCTAssertEqual(change.membership.member(n4)?.peerURLs, ["http://n4"])
        XCTAssertEqual(change.membership.member(n4)?.memberID, 444)
        let (slot, _) = try XCTUnwrap(chosenReconfigurations(cluster, n1).first)
        XCTAssertEqual(change.activeFrom, slot + Replica.activationDelaySlots)
        // The leader filled no-ops so the change is in effect now.
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(cluster.replicas[n1]).chosenThrough + 1, change.activeFrom)
        XCTAssertEqual(cluster.replicas[n1]?.peers, [n2, n3, n4])

        cluster.join(n4)
        XCTAssertNil(cluster.replicas[n4]?.membershipHistory, "a joining replica knows no membership before its snapshot")
        cluster.run("cycle 12")
        let learner = try XCTUnwrap(cluster.replicas[n4])
        XCTAssertNotNil(learner.snapshot, "it joined through a snapshot")
        XCTAssertEqual(learner.chosenThrough, cluster.replicas[n1]?.chosenThrough)
        XCTAssertEqual(learner.membershipHistory?.latest.learners, [n4])
        cluster.run("propose 1 c; deliver all; cycle 2")
        XCTAssertEqual(cluster.appliedNames(n4).last, "c", "the learner applies new slots")
        // It never campaigns, even when the leader is gone.
        cluster.run("crash 1")
        for _ in 0..<60 { cluster.tick(n4) }
        XCTAssertEqual(cluster.replicas[n4]?.role, .follower)
        // Its Accepted never count: with n2 and n3 cut off, nothing is chosen by n1 + n4.
        cluster.run("restart 1; isolate 2; isolate 3")
        cluster.tickUntilCandidate(n1)
        cluster.run("deliver all; cycle 5")
        XCTAssertNotEqual(cluster.replicas[n1]?.role, .leader, "n1 + learner n4 are no phase-1 quorum of {1,2,3}")
        cluster.assertClean()
    }

    func testPromotionWaitsForTheLearnerToCatchUp() throws {
        var cluster = startedCluster()
        addLearner4(&cluster)
        // The learner has not started: promoting it is refused like etcd's "not in sync".
        reconfigure(&cluster, at: n1, .promote(n4), requestID: 5)
        cluster.run("deliver all; cycle 2")
        XCTAssertEqual(outcome(cluster, at: n1, requestID: 5).map { result -> ReconfigurationError? in
            if case .failure(let error) = result { return error } else { return nil }
        }, .learnerNotReady)
        cluster.join(n4)
        cluster.run("cycle 12")
        reconfigure(&cluster, at: n3, .promote(n4), requestID: 6)
        cluster.run("deliver all; cycle 6")
        let promoted = try XCTUnwrap(try outcome(cluster, at: n3, requestID: 6)?.get())
        XCTAssertEqual(promoted.membership.voters, [n1, n2, n3, n4])
        XCTAssertEqual(promoted.membership.phase2Quorum, 3)
        // Promoting a voter or an unknown node fails with etcd's reasons.
        reconfigure(&cluster, at: n1, .promote(n4), requestID: 7)
        reconfigure(&cluster, at: n1, .promote(NodeID(9)), requestID: 8)
        cluster.run("deliver all; cycle 2")
        XCTAssertEqual(failure(cluster, n1, 7), .notLearner)
        XCTAssertEqual(failure(cluster, n1, 8), .memberNotFound)
        // A four-voter cluster needs three: with n3 and n4 cut off nothing new is chosen.
        cluster.run("isolate 3; isolate 4; propose 1 blocked; deliver all; cycle 3")
        XCTAssertFalse(cluster.appliedNames(n1).contains("blocked"))
        cluster.run("heal; cycle 4")
        XCTAssertTrue(cluster.appliedNames(n4).contains("blocked"))
        cluster.assertClean()
    }

    private func failure(_ cluster: Cluster, _ node: NodeID, _ requestID: UInt64) -> ReconfigurationError? {
        guard case .failure(let error)? = outcome(cluster, at: node, requestID: requestID) else { return nil }
        return error
    }

    func testRemovingTheLeaderHandsOffAndItsBallotsAreIgnoredAfterwards() throws {
        var cluster = startedCluster()
        reconfigure(&cluster, at: n1, .remove(n1))
        // Long enough for the hand-off: the leader waits until its successor acknowledged a
        // heartbeat knowing every slot the old membership governs.
        cluster.run("deliver all; cycle 20")
        let change = try XCTUnwrap(try outcome(cluster, at: n1)?.get())
        XCTAssertEqual(change.membership.voters, [n2, n3])
        // After the removal took effect, n1 handed off; n2 or n3 leads.
        XCTAssertNotEqual(cluster.replicas[n1]?.role, .leader)
        let leaders = cluster.leaders
        XCTAssertEqual(leaders.count, 1)
        let newLeader = try XCTUnwrap(leaders.first)
        XCTAssertTrue([n2, n3].contains(newLeader))
        cluster.propose(newLeader, "after")
        cluster.run("deliver all; cycle 2")
        XCTAssertTrue(cluster.appliedNames(n2).contains("after"))
        XCTAssertTrue(cluster.appliedNames(n3).contains("after"))
        // The removed node never leads again: acceptors ignore its Prepares.
        XCTAssertFalse(cluster.replicas[n1]?.isVoter ?? true)
        let promisedBefore = cluster.replicas[n2]?.promised
        cluster.inject(Envelope(from: n1, to: n2, message: .prepare(ballot: Ballot(round: 999, node: n1), firstSlot: 1)))
        cluster.deliverAll()
        XCTAssertEqual(cluster.replicas[n2]?.promised, promisedBefore)
        cluster.assertClean()
    }

    func testARemovedFollowerLearnsItsRemoval() throws {
        // The leader chooses the removal and its activation no-ops in one burst: the removed
        // follower must still hear a commit notice covering the removal (it stays a peer until
        // the next change), or it never learns it and never stops.
        var cluster = startedCluster()
        reconfigure(&cluster, at: n1, .remove(n3))
        cluster.run("deliver all; cycle 6")
        XCTAssertEqual(try outcome(cluster, at: n1)?.get().membership.voters, [n1, n2])
        let removed = try XCTUnwrap(cluster.replicas[n3])
        XCTAssertEqual(removed.membershipHistory?.latest.contains(n3), false, "n3 applied its own removal")
        XCTAssertFalse(removed.isVoter)
        XCTAssertEqual(cluster.replicas[n1]?.peers, [n2, n3], "the removed member hears commit notices until the next change")
        cluster.assertClean()
    }

    func testRemovingADownVoterWorksButLeavingTooFewLiveVotersIsRefused() throws {
        var cluster = Cluster(nodes: 5)
        cluster.run("elect 1; propose 1 a; deliver all; cycle 3")
        cluster.run("crash 4; crash 5; cycle 12")
        // {1,2,3} are up; removing 2 would leave {1,3,4,5} needing 3 with only 2 up.
        reconfigure(&cluster, at: n1, .remove(n2), requestID: 1)
        cluster.run("deliver all; cycle 1")
        XCTAssertEqual(failure(cluster, n1, 1), .unhealthy)
        // Removing the down node 5 leaves {1,2,3,4} needing 3 with 3 up: allowed.
        reconfigure(&cluster, at: n1, .remove(n5), requestID: 2)
        cluster.run("deliver all; cycle 6")
        XCTAssertEqual(try outcome(cluster, at: n1, requestID: 2)?.get().membership.voters, [n1, n2, n3, n4])
        // Forced, an unhealthy removal goes through.
        reconfigure(&cluster, at: n1, .remove(n2), force: true, requestID: 3)
        cluster.run("deliver all; cycle 6")
        XCTAssertEqual(try outcome(cluster, at: n1, requestID: 3)?.get().membership.voters, [n1, n3, n4])
        // The last voter can never be removed.
        var single = Cluster(nodes: 1)
        single.run("elect 1")
        reconfigure(&single, at: n1, .remove(n1), requestID: 4)
        single.run("cycle 2")
        XCTAssertEqual(failure(single, n1, 4), .lastVoter)
        cluster.assertClean()
        single.assertClean()
    }

    func testChangesAreOneAtATimeAndAtLeastAlphaSlotsApart() throws {
        var cluster = startedCluster()
        reconfigure(&cluster, at: n1, .add(peerURLs: ["http://n4"], isLearner: true, memberID: 4), requestID: 1)
        reconfigure(&cluster, at: n1, .remove(n4), requestID: 2)
        reconfigure(&cluster, at: n1, .update(n2, peerURLs: ["http://two"], name: "two"), requestID: 3)
        cluster.run("deliver all; cycle 12")
        let changes = chosenReconfigurations(cluster, n2)
        XCTAssertEqual(changes.map(\.1.requestID), [1, 2, 3])
        for (previous, next) in zip(changes, changes.dropFirst()) {
            XCTAssertGreaterThanOrEqual(next.0, previous.1.activeFrom, "a change is proposed only once the previous one governs")
        }
        XCTAssertEqual(cluster.replicas[n3]?.membershipHistory?.latest.member(n2)?.name, "two")
        XCTAssertNil(cluster.replicas[n3]?.membershipHistory?.latest.member(n4))
        XCTAssertEqual(cluster.replicas[n3]?.membershipHistory?.latest.nextNodeID, 5, "ids are never reused")
        cluster.assertClean()
    }

    func testSnapshotCarriesTheMembershipAcrossRestart() throws {
        var cluster = startedCluster()
        addLearner4(&cluster)
        cluster.run("snapshot 2; crash 2; restart 2")
        let restarted = try XCTUnwrap(cluster.replicas[n2])
        XCTAssertEqual(restarted.snapshot?.membership?.latest.learners, [n4])
        XCTAssertEqual(restarted.membershipHistory?.latest.learners, [n4])
        // Without a snapshot, the initial membership record plus the chosen log rebuild it.
        cluster.run("crash 3; restart 3")
        XCTAssertEqual(cluster.replicas[n3]?.membershipHistory?.latest.learners, [n4])
        cluster.assertClean()
    }

    func testLeaderTransferHandsOffToACaughtUpTarget() throws {
        var cluster = startedCluster()
        cluster.step(n1, .transferLeadership(requestID: 11, target: n3))
        cluster.run("deliver all; cycle 4")
        XCTAssertEqual(cluster.leaders, [n3])
        XCTAssertEqual(try cluster.transfers[n1]?.last?.result.get(), n3)
        // The old leader now forwards linearizable reads instead of answering from a lease.
        cluster.step(n1, .read(readID: 1, consistency: .linearizable))
        XCTAssertEqual(cluster.network.last?.message, .readIndexRequest(readID: 1))
        // Transfers fail cleanly at a follower and to a non-voter.
        cluster.step(n1, .transferLeadership(requestID: 12, target: n2))
        XCTAssertEqual(transferFailure(cluster, n1, 12), .notLeader)
        cluster.step(n3, .transferLeadership(requestID: 13, target: NodeID(9)))
        XCTAssertEqual(transferFailure(cluster, n3, 13), .transferFailed("the target is not a voting member"))
        cluster.run("propose 3 after; deliver all; cycle 2")
        XCTAssertTrue(cluster.appliedNames(n1).contains("after"))
        cluster.assertClean()
    }

    private func transferFailure(_ cluster: Cluster, _ node: NodeID, _ requestID: UInt64) -> ReconfigurationError? {
        guard case .failure(let error)? = cluster.transfers[node]?.last(where: { $0.requestID == requestID })?.result else { return nil }
        return error
    }

    func testAJoiningReplicaThatLearnedSlotsBeforeAnySnapshotAdoptsTheSnapshotsMembership() throws {
        let configuration = Configuration(members: [n1, n2, n3])
        var joiner = try Replica(id: n4, configuration: configuration, seed: 3, joining: true)
        _ = joiner.step(.start)
        let ballot = Ballot(round: 2, node: n1)
        // Accepts and a commit notice from the leader: slot 1 is chosen here before any snapshot.
        for output in [joiner.step(.receive(Envelope(from: n1, to: n4, message: .accept(ballot: ballot, slot: 1, value: .noop, chosenThrough: 0)))),
                       joiner.step(.receive(Envelope(from: n1, to: n4, message: .commit(ballot: ballot, chosenThrough: 1))))] {
            if let batch = output.persist { _ = joiner.step(.durable(batch.id)) }
        }
        XCTAssertEqual(joiner.chosenThrough, 1)
        XCTAssertNil(joiner.membershipHistory)
        // It asks from slot 1, and a snapshot at slot 1 (not above what it knows) still teaches it the membership.
        for _ in 0..<10 { _ = joiner.step(.tick) }
        var four = configuration.initialMembership
        four.upsert(Member(id: n4, isLearner: true))
        let history = MembershipHistory(initial: four)
        let reply = joiner.step(.receive(Envelope(from: n2, to: n4, message: .catchUpReply(
            snapshot: Snapshot(slot: 1, data: [], membership: history), entries: [], chosenThrough: 1))))
        XCTAssertEqual(joiner.membershipHistory, history)
        XCTAssertEqual(joiner.peers, [n1, n2, n3])
        XCTAssertEqual(reply.persist?.records, [.membership(history)], "written down, so a restart needs no peer")
        let restarted = try Replica(id: n4, configuration: configuration, seed: 3,
                                    restoring: [.accepted(slot: 1, ballot: ballot, value: .noop), .chosen(slot: 1, value: .noop),
                                                .membership(history)], joining: true)
        XCTAssertEqual(restarted.membershipHistory, history)
        XCTAssertEqual(joiner.checkInvariants(), [])
    }

    func testReplaceAVoterThroughALearner() throws {
        // 3 -> add learner 4 -> promote 4 -> remove 3: every step is one voter away from the last.
        var cluster = startedCluster()
        addLearner4(&cluster)
        cluster.join(n4)
        cluster.run("cycle 12")
        reconfigure(&cluster, at: n1, .promote(n4), requestID: 2)
        cluster.run("deliver all; cycle 6")
        reconfigure(&cluster, at: n1, .remove(n3), requestID: 3)
        cluster.run("deliver all; cycle 6")
        XCTAssertEqual(try outcome(cluster, at: n1, requestID: 3)?.get().membership.voters, [n1, n2, n4])
        cluster.run("crash 3; propose 1 later; deliver all; cycle 3")
        XCTAssertTrue(cluster.appliedNames(n4).contains("later"))
        // With the old member gone for good, n2 and n4 still elect a leader.
        cluster.run("crash 1")
        for _ in 0..<80 where cluster.leaders.isEmpty { cluster.run("cycle 1") }
        XCTAssertEqual(cluster.leaders.count, 1)
        XCTAssertTrue([n2, n4].contains(cluster.leaders[0]))
        cluster.assertClean()
    }

    // MARK: One change at a time, also when a change is chosen out of order

    /// Five voters, n1 leads, a window of 4 slots. At c+1 "x1", c+2 "x2", c+3 the removal of
    /// n5, c+4 a no-op (activation). Every Accept for c+2 is lost; c+3 and c+4 are chosen first
    /// (out of order), then c+1, so the window has room again while c+2 is open and the
    /// removal of n5 is chosen but not yet in the chosen prefix. Then the removal of n4 is
    /// asked. Validated against the membership of the chosen prefix alone it would put n5 back
    /// (remove n5, then remove n4, ending with n5 a voter again); it must wait instead.
    private func outOfOrderChange(unsafeBase: Bool) throws -> (cluster: Cluster, c: Slot) {
        var cluster = Cluster(nodes: 5, seed: 9) { configuration in
            configuration.windowSlots = 4
            configuration.unsafeChangeBaseIgnoresChosenAboveGap = unsafeBase
        }
        cluster.run("elect 1; propose 1 a; deliver all; cycle 2")
        let c = try XCTUnwrap(cluster.replicas[n1]).chosenThrough
        cluster.propose(n1, "x1")
        cluster.propose(n1, "x2")
        reconfigure(&cluster, at: n1, .remove(n5), requestID: 1)
        func slot(of envelope: Envelope) -> Slot? {
            switch envelope.message {
            case .accept(_, let slot, _, _), .accepted(_, let slot): return slot
            default: return nil
            }
        }
        cluster.take { slot(of: $0) == c + 2 }
        cluster.deliver { slot(of: $0).map { $0 >= c + 3 } == true }
        cluster.deliverAll()
        let leader = try XCTUnwrap(cluster.replicas[n1])
        XCTAssertEqual(leader.chosenThrough, c + 1, "setup: c+2 is open")
        guard case .reconfigure? = leader.chosenValue(at: c + 3) else {
            XCTFail("setup: the removal of n5 is chosen above the gap")
            return (cluster, c)
        }
        XCTAssertLessThan((leader.leader?.nextSlot ?? .max) - 1 - leader.chosenThrough, 4, "setup: the window has room")
        reconfigure(&cluster, at: n1, .remove(n4), requestID: 2)
        return (cluster, c)
    }

    /// The proposal of the second change, if it went out.
    private func secondChange(_ cluster: Cluster) -> Reconfiguration? {
        cluster.network.compactMap { envelope -> Reconfiguration? in
            if case .accept(_, _, .reconfigure(let change), _) = envelope.message, change.requestID == 2 { return change }
            return nil
        }.first
    }

    func testChangeChosenAboveAGapIsTheBaseOfTheNext() throws {
        var (cluster, _) = try outOfOrderChange(unsafeBase: false)
        XCTAssertNil(secondChange(cluster), "the second change waits for the first to reach the chosen prefix")
        cluster.run("deliver all; cycle 30")
        let changes = chosenReconfigurations(cluster, n2)
        XCTAssertEqual(changes.map { $0.1.change }, [.remove(n5), .remove(n4)])
        XCTAssertEqual(changes.last?.1.membership.voters, [n1, n2, n3], "both removals are in effect")
        XCTAssertEqual(try outcome(cluster, at: n1, requestID: 2)?.get().membership.voters, [n1, n2, n3])
        // Each chosen membership is its predecessor with exactly its own change.
        var previous = Configuration(members: [n1, n2, n3, n4, n5]).initialMembership
        for (slot, change) in changes {
            XCTAssertNil(change.stepProblem(after: previous), "slot \(slot)")
            previous = change.membership
        }
        cluster.assertClean()
    }

    /// The negative control: with the old rule (only unchosen proposals count as open
    /// changes) the second removal goes out at once, built on the stale membership, with n5 a
    /// voter again; a replica that then learns the slots in order detects it and halts.
    func testOldRuleBuildsOnAStaleMembershipAndIsDetected() throws {
        let (cluster, c) = try outOfOrderChange(unsafeBase: true)
        let second = try XCTUnwrap(secondChange(cluster), "the old rule proposes at once")
        XCTAssertEqual(second.membership.voters, [n1, n2, n3, n5])
        var replica = try XCTUnwrap(cluster.replicas[n2])
        var halted: String?
        for slot in (c + 1)...(c + 5) {
            let value = try XCTUnwrap(cluster.replicas[n1]?.log[slot]?.acceptedValue)
            let output = replica.step(.receive(Envelope(from: n1, to: n2, message: .catchUpReply(
                snapshot: nil, entries: [ChosenEntry(slot: slot, value: value)], chosenThrough: slot))))
            halted = halted ?? output.halted
        }
        XCTAssertTrue(halted?.contains("(remove(n4)) changes 2 voters at once") == true, "\(halted ?? "not halted")")
    }
}
