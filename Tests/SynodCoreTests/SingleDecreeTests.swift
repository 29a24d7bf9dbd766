import XCTest
import SynodCore

private typealias Acceptor = SingleDecree.Acceptor<String>
private typealias Proposer = SingleDecree.Proposer<String>
private typealias AcceptedValue = SingleDecree.AcceptedValue<String>

private func ballot(_ round: UInt64, _ node: UInt32) -> Ballot { Ballot(round: round, node: NodeID(node)) }
private let threeAcceptors = [NodeID(1), NodeID(2), NodeID(3)]

/// Unit and scenario tests of the single-decree building block; the randomized agreement test
/// and its negative controls are in `SingleDecreeRandomizedTests`.
final class SingleDecreeTests: XCTestCase {
    // MARK: Acceptor

    func testAcceptorPromisesAndReportsItsAcceptedValue() {
        var acceptor = Acceptor()
        XCTAssertEqual(acceptor.receivePrepare(ballot(1, 10)), .promise(ballot: ballot(1, 10), accepted: nil))
        XCTAssertEqual(acceptor.receiveAccept(ballot(1, 10), value: "a"), .accepted(ballot: ballot(1, 10)))
        XCTAssertEqual(acceptor.receivePrepare(ballot(2, 11)),
                       .promise(ballot: ballot(2, 11), accepted: AcceptedValue(ballot: ballot(1, 10), value: "a")))
        XCTAssertEqual(acceptor.promised, ballot(2, 11))
    }

    func testAcceptorRejectsLowerBallotsWithItsPromise() {
        var acceptor = Acceptor()
        _ = acceptor.receivePrepare(ballot(5, 10))
        XCTAssertEqual(acceptor.receivePrepare(ballot(4, 11)), .reject(ballot: ballot(4, 11), promised: ballot(5, 10)))
        // Same round, lower node id: still a lower ballot.
        XCTAssertEqual(acceptor.receiveAccept(ballot(5, 9), value: "x"), .reject(ballot: ballot(5, 9), promised: ballot(5, 10)))
        XCTAssertNil(acceptor.accepted, "a rejected Accept must not be recorded")
        XCTAssertEqual(acceptor.promised, ballot(5, 10), "a reject never lowers the promise")
    }

    func testAcceptorAnswersARepeatedPrepareAgain() {
        var acceptor = Acceptor()
        let first = acceptor.receivePrepare(ballot(3, 10))
        XCTAssertEqual(acceptor.receivePrepare(ballot(3, 10)), first)
    }

    func testAcceptWithoutPrepareRaisesThePromise() {
        var acceptor = Acceptor()
        XCTAssertEqual(acceptor.receiveAccept(ballot(2, 10), value: "a"), .accepted(ballot: ballot(2, 10)))
        XCTAssertEqual(acceptor.promised, ballot(2, 10))
        XCTAssertEqual(acceptor.receivePrepare(ballot(1, 11)), .reject(ballot: ballot(1, 11), promised: ballot(2, 10)))
    }

    func testRestoredAcceptorKeepsItsPromise() {
        var acceptor = Acceptor(promised: ballot(7, 10), accepted: AcceptedValue(ballot: ballot(6, 10), value: "a"))
        XCTAssertEqual(acceptor.receivePrepare(ballot(6, 11)), .reject(ballot: ballot(6, 11), promised: ballot(7, 10)))
        XCTAssertEqual(acceptor.receivePrepare(ballot(8, 11)),
                       .promise(ballot: ballot(8, 11), accepted: AcceptedValue(ballot: ballot(6, 10), value: "a")))
    }

    // MARK: The value rule

    func testValueToProposeIsOwnWhenNothingWasAccepted() {
        XCTAssertEqual(SingleDecree.valueToPropose(promises: [nil, nil], own: "mine"), "mine")
        XCTAssertEqual(SingleDecree.valueToPropose(promises: [AcceptedValue?](), own: "mine"), "mine")
    }

    func testValueToProposeTakesTheHighestBallotNotTheFirstOrTheMostCommon() {
        let promises: [AcceptedValue?] = [
            AcceptedValue(ballot: ballot(1, 10), value: "old"),
            nil,
            AcceptedValue(ballot: ballot(3, 12), value: "newest"),
            AcceptedValue(ballot: ballot(1, 10), value: "old"),
            AcceptedValue(ballot: ballot(3, 11), value: "same-round-lower-node"),
        ]
        XCTAssertEqual(SingleDecree.valueToPropose(promises: promises, own: "mine"), "newest")
        XCTAssertEqual(SingleDecree.valueToPropose(promises: promises.reversed(), own: "mine"), "newest")
    }

    // MARK: Quorums

    func testQuorumValidation() throws {
        let five = (1...5).map { NodeID(UInt32($0)) }
        XCTAssertEqual(SingleDecree.Quorums.majority(five).phase1, 3)
        // Flexible Paxos: a large phase-1 quorum allows a small phase-2 quorum.
        let flexible = try SingleDecree.Quorums(members: five, phase1: 4, phase2: 2)
        XCTAssertTrue(flexible.intersect)
        XCTAssertThrowsError(try SingleDecree.Quorums(members: five, phase1: 3, phase2: 2)) { error in
            XCTAssertEqual(error as? ConfigurationError, .quorumsDoNotIntersect(phase1: 3, phase2: 2, members: 5))
        }
        XCTAssertThrowsError(try SingleDecree.Quorums(members: five, phase1: 6, phase2: 3))
        XCTAssertThrowsError(try SingleDecree.Quorums(members: [NodeID(1), NodeID(1)], phase1: 2, phase2: 2))
        XCTAssertThrowsError(try SingleDecree.Quorums(members: [], phase1: 1, phase2: 1))
        let unsafe = try SingleDecree.Quorums(members: five, phase1: 2, phase2: 2, unsafeAllowNonIntersectingQuorums: true)
        XCTAssertFalse(unsafe.intersect)
    }

    // MARK: Proposer

    func testBasicChoose() {
        var acceptors = [Acceptor](repeating: Acceptor(), count: 3)
        var proposer = Proposer(ballot: ballot(1, 10), value: "a", quorums: .majority(threeAcceptors))
        XCTAssertNil(proposer.receivePrepareReply(acceptors[0].receivePrepare(proposer.ballot), from: NodeID(1)))
        XCTAssertEqual(proposer.phase, .preparing)
        XCTAssertEqual(proposer.receivePrepareReply(acceptors[1].receivePrepare(proposer.ballot), from: NodeID(2)), .sendAccept("a"))
        // A late promise after phase 1 changes nothing.
        XCTAssertNil(proposer.receivePrepareReply(acceptors[2].receivePrepare(proposer.ballot), from: NodeID(3)))
        XCTAssertNil(proposer.receiveAcceptReply(acceptors[0].receiveAccept(proposer.ballot, value: "a"), from: NodeID(1)))
        // A duplicate acceptance does not count twice.
        XCTAssertNil(proposer.receiveAcceptReply(.accepted(ballot: proposer.ballot), from: NodeID(1)))
        XCTAssertEqual(proposer.acceptedCount, 1)
        XCTAssertEqual(proposer.receiveAcceptReply(acceptors[2].receiveAccept(proposer.ballot, value: "a"), from: NodeID(3)), .chosen("a"))
        XCTAssertEqual(proposer.phase, .chosen("a"))
    }

    func testCompetingProposerMustAdoptTheAcceptedValue() {
        var acceptors = [Acceptor](repeating: Acceptor(), count: 3)
        let quorums = SingleDecree.Quorums.majority(threeAcceptors)
        // P1 gets "a" accepted by acceptors 1 and 2: chosen, though P1 never learns it
        // (the Accepted replies are lost).
        var p1 = Proposer(ballot: ballot(1, 10), value: "a", quorums: quorums)
        _ = p1.receivePrepareReply(acceptors[0].receivePrepare(p1.ballot), from: NodeID(1))
        XCTAssertEqual(p1.receivePrepareReply(acceptors[1].receivePrepare(p1.ballot), from: NodeID(2)), .sendAccept("a"))
        _ = acceptors[0].receiveAccept(p1.ballot, value: "a")
        _ = acceptors[1].receiveAccept(p1.ballot, value: "a")

        // P2, with a higher ballot and its own value "b", reaches acceptors 2 and 3. Acceptor 2
        // reports "a", so P2 must propose "a", not "b".
        var p2 = Proposer(ballot: ballot(2, 11), value: "b", quorums: quorums)
        XCTAssertNil(p2.receivePrepareReply(acceptors[2].receivePrepare(p2.ballot), from: NodeID(3)))
        XCTAssertEqual(p2.receivePrepareReply(acceptors[1].receivePrepare(p2.ballot), from: NodeID(2)), .sendAccept("a"))
        _ = p2.receiveAcceptReply(acceptors[2].receiveAccept(p2.ballot, value: "a"), from: NodeID(3))
        XCTAssertEqual(p2.receiveAcceptReply(acceptors[1].receiveAccept(p2.ballot, value: "a"), from: NodeID(2)), .chosen("a"))

        // P1's late acceptance request to acceptor 3 is now refused.
        XCTAssertEqual(acceptors[2].receiveAccept(p1.ballot, value: "a"), .reject(ballot: p1.ballot, promised: p2.ballot))
    }

    func testRejectCarriesTheHigherBallotAndEndsTheProposer() {
        var acceptors = [Acceptor](repeating: Acceptor(), count: 3)
        let quorums = SingleDecree.Quorums.majority(threeAcceptors)
        var low = Proposer(ballot: ballot(1, 10), value: "a", quorums: quorums)
        _ = low.receivePrepareReply(acceptors[0].receivePrepare(low.ballot), from: NodeID(1))
        _ = low.receivePrepareReply(acceptors[1].receivePrepare(low.ballot), from: NodeID(2))
        XCTAssertEqual(low.phase, .accepting("a"))
        // A higher ballot gets promised on acceptor 1 before the Accept arrives.
        _ = acceptors[0].receivePrepare(ballot(4, 12))
        let reply = acceptors[0].receiveAccept(low.ballot, value: "a")
        XCTAssertEqual(reply, .reject(ballot: ballot(1, 10), promised: ballot(4, 12)))
        XCTAssertEqual(low.receiveAcceptReply(reply, from: NodeID(1)), .preempted(by: ballot(4, 12)))
        XCTAssertEqual(low.phase, .preempted(by: ballot(4, 12)))
        // Finished: later acceptances cannot make it report a choice.
        XCTAssertNil(low.receiveAcceptReply(.accepted(ballot: low.ballot), from: NodeID(2)))
        XCTAssertNil(low.receiveAcceptReply(.accepted(ballot: low.ballot), from: NodeID(3)))
        XCTAssertEqual(low.phase, .preempted(by: ballot(4, 12)))
    }

    func testRejectInPhaseOneEndsTheProposer() {
        var acceptor = Acceptor()
        _ = acceptor.receivePrepare(ballot(3, 12))
        var proposer = Proposer(ballot: ballot(2, 10), value: "a", quorums: .majority(threeAcceptors))
        XCTAssertEqual(proposer.receivePrepareReply(acceptor.receivePrepare(proposer.ballot), from: NodeID(1)),
                       .preempted(by: ballot(3, 12)))
        XCTAssertNil(proposer.receivePrepareReply(.promise(ballot: proposer.ballot, accepted: nil), from: NodeID(2)))
        XCTAssertNil(proposer.receivePrepareReply(.promise(ballot: proposer.ballot, accepted: nil), from: NodeID(3)))
        XCTAssertEqual(proposer.phase, .preempted(by: ballot(3, 12)))
    }

    func testProposerIgnoresOtherBallotsAndNonMembers() {
        var proposer = Proposer(ballot: ballot(2, 10), value: "a", quorums: .majority(threeAcceptors))
        XCTAssertNil(proposer.receivePrepareReply(.promise(ballot: ballot(1, 10), accepted: nil), from: NodeID(1)))
        XCTAssertNil(proposer.receivePrepareReply(.promise(ballot: proposer.ballot, accepted: nil), from: NodeID(99)))
        XCTAssertNil(proposer.receivePrepareReply(.reject(ballot: ballot(1, 10), promised: ballot(5, 5)), from: NodeID(1)))
        XCTAssertNil(proposer.receivePrepareReply(.promise(ballot: proposer.ballot, accepted: nil), from: NodeID(1)))
        XCTAssertNil(proposer.receivePrepareReply(.promise(ballot: proposer.ballot, accepted: nil), from: NodeID(1)),
                     "a repeated promise from the same acceptor must not count twice")
        XCTAssertEqual(proposer.promiseCount, 1)
        XCTAssertEqual(proposer.phase, .preparing)
    }

    func testFlexibleQuorumsChooseWithASmallPhaseTwoQuorum() throws {
        let five = (1...5).map { NodeID(UInt32($0)) }
        let quorums = try SingleDecree.Quorums(members: five, phase1: 4, phase2: 2)
        var acceptors = [Acceptor](repeating: Acceptor(), count: 5)
        var p1 = Proposer(ballot: ballot(1, 10), value: "a", quorums: quorums)
        for index in 0..<3 { XCTAssertNil(p1.receivePrepareReply(acceptors[index].receivePrepare(p1.ballot), from: five[index])) }
        XCTAssertEqual(p1.receivePrepareReply(acceptors[3].receivePrepare(p1.ballot), from: five[3]), .sendAccept("a"))
        _ = p1.receiveAcceptReply(acceptors[4].receiveAccept(p1.ballot, value: "a"), from: five[4])
        XCTAssertEqual(p1.receiveAcceptReply(acceptors[3].receiveAccept(p1.ballot, value: "a"), from: five[3]), .chosen("a"))
        // Any phase-1 quorum of 4 includes acceptor 4 or 5, so a later proposer must adopt "a".
        var p2 = Proposer(ballot: ballot(2, 11), value: "b", quorums: quorums)
        var event: Proposer.Event?
        for index in [0, 1, 2, 4] { event = p2.receivePrepareReply(acceptors[index].receivePrepare(p2.ballot), from: five[index]) }
        XCTAssertEqual(event, .sendAccept("a"))
    }
}
