import XCTest
import SynodCore

private let n1 = NodeID(1), n2 = NodeID(2), n3 = NodeID(3)

/// Configuration checks, and single replicas driven by hand through `step(_:)`.
final class ReplicaTests: XCTestCase {
    // MARK: Configuration

    func testMajorityDefaultsAreValid() throws {
        for count in 1...7 {
            let members = (1...count).map { NodeID(UInt32($0)) }
            let configuration = Configuration(members: members)
            XCTAssertNoThrow(try configuration.validate(), "\(count) members")
            XCTAssertGreaterThan(configuration.phase1Quorum + configuration.phase2Quorum, count)
            XCTAssertLessThan(configuration.leaseTicks + configuration.maxClockDriftTicks, configuration.electionTimeoutTicks)
        }
    }

    func testNonIntersectingQuorumsAreRejectedWithAClearMessage() {
        var configuration = Configuration(members: [n1, n2, n3, NodeID(4)])
        configuration.phase1Quorum = 2
        configuration.phase2Quorum = 2
        XCTAssertThrowsError(try configuration.validate()) { error in
            XCTAssertEqual(error as? ConfigurationError, .quorumsDoNotIntersect(phase1: 2, phase2: 2, members: 4))
            let text = String(describing: error)
            XCTAssertTrue(text.contains("phase-1 quorum 2 + phase-2 quorum 2 must exceed the 4 members"), text)
        }
        XCTAssertThrowsError(try Replica(id: n1, configuration: configuration, seed: 1))
        // Flexible Paxos: 3 + 2 > 4 is fine.
        configuration.phase1Quorum = 3
        XCTAssertNoThrow(try configuration.validate())
        // The negative-control escape hatch lets the broken configuration through.
        configuration.phase1Quorum = 2
        configuration.unsafeAllowNonIntersectingQuorums = true
        XCTAssertNoThrow(try configuration.validate())
    }

    func testLeaseMustStayBelowElectionTimeoutMinusDrift() {
        var configuration = Configuration(members: [n1, n2, n3])
        configuration.electionTimeoutTicks = 10
        configuration.maxClockDriftTicks = 2
        configuration.leaseTicks = 8  // 8 + 2 == 10: a new leader could be elected while the lease lasts
        XCTAssertThrowsError(try configuration.validate()) { error in
            guard case .timing(let text)? = error as? ConfigurationError else { return XCTFail("\(error)") }
            XCTAssertTrue(text.contains("leaseTicks (8) must be below electionTimeoutTicks (10) - maxClockDriftTicks (2)"), text)
        }
        configuration.leaseTicks = 7
        XCTAssertNoThrow(try configuration.validate())
    }

    func testOtherBoundsAreChecked() {
        var configuration = Configuration(members: [n1, n2, n3])
        configuration.windowSlots = 0
        XCTAssertThrowsError(try configuration.validate()) { XCTAssertEqual($0 as? ConfigurationError, .nonPositive("windowSlots")) }
        configuration = Configuration(members: [n1, n1])
        XCTAssertThrowsError(try configuration.validate()) { XCTAssertEqual($0 as? ConfigurationError, .duplicateMember) }
        configuration = Configuration(members: [n1, n2, n3])
        configuration.phase2Quorum = 4
        XCTAssertThrowsError(try configuration.validate()) {
            XCTAssertEqual($0 as? ConfigurationError, .quorumOutOfRange(name: "phase-2", size: 4, members: 3))
        }
    }

    func testNonMemberIDIsRejectedByInit() {
        XCTAssertThrowsError(try Replica(id: NodeID(9), configuration: Configuration(members: [n1, n2, n3]), seed: 1)) { error in
            XCTAssertEqual(error as? ConfigurationError, .notAMember(NodeID(9)))
        }
    }

    // MARK: Election, by hand

    /// Ticks a lone replica until it campaigns (its pre-vote granted by the peers it asks);
    /// returns the output of the step that started phase 1.
    private func tickUntilCampaign(_ replica: inout Replica) -> Output {
        for _ in 0..<100 {
            let ticked = replica.step(.tick)
            XCTAssertNil(ticked.persist, "a quiet follower persists nothing, pre-voting included")
            let output = replica.grantPreVotes(in: ticked)
            XCTAssertEqual(replica.checkInvariants(), [])
            if replica.role == .candidate { return output }
            XCTAssertNil(output.persist, "a quiet follower persists nothing")
        }
        XCTFail("never campaigned")
        return Output()
    }

    func testCampaignSendsPrepareOnlyAfterItsPromiseIsDurable() throws {
        let configuration = Configuration(members: [n1, n2, n3])
        var replica = try Replica(id: n1, configuration: configuration, seed: 7)
        // A new replica writes down the membership it starts from, and nothing else.
        let start = replica.step(.start)
        XCTAssertEqual(start.persist?.records, [.membership(MembershipHistory(initial: configuration.initialMembership))])
        XCTAssertTrue(start.messages.isEmpty)
        let output = tickUntilCampaign(&replica)
        // The randomized timeout is within electionTimeoutTicks ..< 2 * electionTimeoutTicks.
        XCTAssertGreaterThanOrEqual(replica.now, UInt64(configuration.electionTimeoutTicks))
        XCTAssertLessThan(replica.now, UInt64(2 * configuration.electionTimeoutTicks))

        let ballot = try XCTUnwrap(replica.ownBallot)
        XCTAssertEqual(ballot.node, n1)
        XCTAssertEqual(replica.promised, ballot)
        XCTAssertFalse(output.messages.contains { if case .prepare = $0.message { return true } else { return false } },
                       "Prepare must wait for the own promise to be durable")
        let batch = try XCTUnwrap(output.persist)
        XCTAssertTrue(batch.records.contains(.promised(ballot)))
        XCTAssertEqual(Set(batch.messagesAfterDurable),
                       [Envelope(from: n1, to: n2, message: .prepare(ballot: ballot, firstSlot: 1)),
                        Envelope(from: n1, to: n3, message: .prepare(ballot: ballot, firstSlot: 1))])

        // A peer's promise alone is not a quorum while the own promise is not durable.
        let promise = Envelope(from: n2, to: n1, message: .promise(ballot: ballot, chosenThrough: 0, entries: []))
        _ = replica.step(.receive(promise))
        XCTAssertEqual(replica.role, .candidate)
        // Durable: own vote + one peer = 2 of 3.
        let leading = replica.step(.durable(batch.id))
        XCTAssertEqual(replica.role, .leader)
        XCTAssertEqual(replica.leaderHint, n1)
        XCTAssertEqual(replica.checkInvariants(), [])
        // The new leader announces itself at once.
        XCTAssertTrue(leading.messages.contains(Envelope(from: n1, to: n2,
                                                         message: .heartbeat(ballot: ballot, chosenThrough: 0, sequence: 1))))
    }

    func testDurableBeforePromiseAlsoElects() throws {
        var replica = try Replica(id: n1, configuration: Configuration(members: [n1, n2, n3]), seed: 3)
        _ = replica.step(.start)
        let batch = try XCTUnwrap(tickUntilCampaign(&replica).persist)
        let ballot = try XCTUnwrap(replica.ownBallot)
        _ = replica.step(.durable(batch.id))
        XCTAssertEqual(replica.role, .candidate, "its own promise alone is 1 of 3")
        // A promise for some other ballot does not count.
        let stale = Ballot(round: ballot.round, node: n2)
        _ = replica.step(.receive(Envelope(from: n2, to: n1, message: .promise(ballot: stale, chosenThrough: 0, entries: []))))
        XCTAssertEqual(replica.role, .candidate)
        _ = replica.step(.receive(Envelope(from: n3, to: n1, message: .promise(ballot: ballot, chosenThrough: 0, entries: []))))
        XCTAssertEqual(replica.role, .leader)
        XCTAssertEqual(replica.checkInvariants(), [])
    }

    func testAcceptorPromiseLeavesOnlyAfterDurableAndRejectsLowerBallots() throws {
        // Seed 1 gives n3 an election deadline past its restart guard (checked below).
        var replica = try Replica(id: n3, configuration: Configuration(members: [n1, n2, n3]), seed: 1)
        _ = replica.step(.start)
        let high = Ballot(round: 5, node: n1)
        let prepare = Envelope(from: n1, to: n3, message: .prepare(ballot: high, firstSlot: 1))
        // A fresh acceptor promises nobody for one election timeout (it may have acked a lease
        // just before a crash): no answer at all, and nothing persisted.
        XCTAssertTrue(replica.step(.receive(prepare)).isEmpty)
        XCTAssertEqual(replica.promised, .zero)
        for _ in 0..<10 { _ = replica.step(.tick) }
        XCTAssertEqual(replica.role, .follower)
        let output = replica.step(.receive(prepare))
        XCTAssertEqual(output.messages, [])
        let batch = try XCTUnwrap(output.persist)
        XCTAssertEqual(batch.records, [.promised(high)])
        XCTAssertEqual(batch.messagesAfterDurable,
                       [Envelope(from: n3, to: n1, message: .promise(ballot: high, chosenThrough: 0, entries: []))])
        let low = Ballot(round: 4, node: n2)
        let rejection = replica.step(.receive(Envelope(from: n2, to: n3, message: .prepare(ballot: low, firstSlot: 1))))
        XCTAssertEqual(rejection.messages, [Envelope(from: n3, to: n2, message: .reject(ballot: low, promised: high))])
        XCTAssertNil(rejection.persist)
        XCTAssertEqual(replica.promised, high)
        XCTAssertEqual(replica.checkInvariants(), [])
    }

    func testProposalWithoutAKnownLeaderIsRejected() throws {
        var replica = try Replica(id: n2, configuration: Configuration(members: [n1, n2, n3]), seed: 1)
        _ = replica.step(.start)
        let command = Command(clientID: 1, sequence: 1, payload: [1])
        let output = replica.step(.propose(command))
        XCTAssertEqual(output.rejected.map(\.command), [command])
        XCTAssertEqual(output.rejected.map(\.reason), [.noLeader(leaderHint: nil)])
        XCTAssertEqual(output.messages, [])
        let read = replica.step(.read(readID: 1, consistency: .linearizable))
        XCTAssertEqual(read.readsFailed.map(\.readID), [1])
        XCTAssertEqual(read.readsFailed.map(\.reason), [.noLeader(leaderHint: nil)])
    }

    func testSerializableReadIsReadyAtOnce() throws {
        var replica = try Replica(id: n2, configuration: Configuration(members: [n1, n2, n3]), seed: 1)
        _ = replica.step(.start)
        XCTAssertEqual(replica.step(.read(readID: 4, consistency: .serializable)).readsReady, [4])
    }

    func testMessagesForOthersOrFromNonMembersAreIgnored() throws {
        var replica = try Replica(id: n3, configuration: Configuration(members: [n1, n2, n3]), seed: 1)
        _ = replica.step(.start)
        for _ in 0..<10 { _ = replica.step(.tick) }
        XCTAssertEqual(replica.role, .follower)
        let prepare = Message.prepare(ballot: Ballot(round: 3, node: NodeID(9)), firstSlot: 1)
        XCTAssertTrue(replica.step(.receive(Envelope(from: NodeID(9), to: n3, message: prepare))).isEmpty)
        XCTAssertTrue(replica.step(.receive(Envelope(from: n1, to: n2, message: prepare))).isEmpty)
        XCTAssertEqual(replica.promised, .zero)
    }
}
