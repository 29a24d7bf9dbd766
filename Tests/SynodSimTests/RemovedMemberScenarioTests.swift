import SynodCore
import XCTest

/// Core scenarios behind two fixes the reconfiguration runs led to (see
/// `ReconfigurationRunTests.testRemovedMembersDoNotDisruptTheCluster`): a removed member that
/// missed its removal must not depose the leader, and reads need phase-1 promises from every
/// governing membership, not only heartbeat acks.
final class RemovedMemberScenarioTests: XCTestCase {
    /// A tiny synchronous cluster: a persist batch is durable at once, messages are delivered
    /// in send order, isolated nodes neither send nor receive.
    private struct Cluster {
        var replicas: [NodeID: Replica] = [:]
        var ids: [NodeID]
        var inFlight: [Envelope] = []
        var isolated: Set<NodeID> = []
        var sent: [Envelope] = []
        var readsReady: [UInt64] = []
        var reconfigured: [ReconfigurationOutcome] = []
        /// One clock for the whole cluster, advanced by a tick per round of ticks.
        var clock = ClockTime(nanoseconds: 1_000_000_000)

        init(_ count: UInt32, configure: (inout Configuration) -> Void = { _ in }) throws {
            ids = (1...count).map { NodeID($0) }
            var configuration = Configuration(members: ids)
            configure(&configuration)
            for id in ids {
                replicas[id] = try Replica(id: id, configuration: configuration, seed: 7)
                step(id, .start)
            }
        }

        @discardableResult
        mutating func step(_ id: NodeID, _ input: Input) -> Output {
            let output = replicas[id]!.step(input, clock: clock)
            readsReady += output.readsReady
            reconfigured += output.reconfigured
            sent += output.messages
            inFlight += output.messages
            if let batch = output.persist {
                sent += batch.messagesAfterDurable
                inFlight += batch.messagesAfterDurable
                step(id, .durable(batch.id))
            }
            return output
        }

        mutating func deliverAll() {
            var budget = 100_000
            while !inFlight.isEmpty && budget > 0 {
                budget -= 1
                let envelope = inFlight.removeFirst()
                guard replicas[envelope.to] != nil, !isolated.contains(envelope.to), !isolated.contains(envelope.from) else { continue }
                step(envelope.to, .receive(envelope))
            }
        }

        mutating func tick(_ count: Int) {
            for _ in 0..<count {
                clock = clock.adding(nanoseconds: Configuration(members: ids).tickNanoseconds)
                for id in ids { step(id, .tick) }
                deliverAll()
            }
        }

        var leader: NodeID? { ids.first { replicas[$0]!.role == .leader } }

        mutating func electLeader() throws -> NodeID {
            for _ in 0..<200 where leader == nil { tick(1) }
            return try XCTUnwrap(leader, "no leader elected")
        }
    }

    private let removed = NodeID(9)
    private let removedBallot = Ballot(round: 1_000, node: NodeID(9))

    func testAHigherBallotOfANonVoterDoesNotDeposeTheLeader() throws {
        var cluster = try Cluster(3)
        let leader = try cluster.electLeader()
        let follower = cluster.ids.first { $0 != leader }!
        cluster.tick(5)
        for message in [Message.heartbeat(ballot: removedBallot, chosenThrough: 0, sequence: 1),
                        .accept(ballot: removedBallot, slot: 500, value: .noop, chosenThrough: 0),
                        .commit(ballot: removedBallot, chosenThrough: 0)] {
            for target in [leader, follower] {
                let output = cluster.step(target, .receive(Envelope(from: removed, to: target, message: message)))
                XCTAssertFalse(output.messages.contains { $0.to == removed }, "\(target) answered \(message.kind) of a non-voter")
                XCTAssertNil(output.persist?.records.first { if case .accepted = $0 { return true } else { return false } },
                             "\(target) accepted for a non-voter")
            }
            XCTAssertEqual(cluster.replicas[leader]!.role, .leader, "\(message.kind) of a non-voter deposed the leader")
            XCTAssertEqual(cluster.replicas[follower]!.leaderHint, leader, "\(message.kind) of a non-voter moved the follower")
        }
        // The control: the same Heartbeat from a voter of the membership does depose it.
        let voter = cluster.ids.first { $0 != leader && $0 != follower }!
        cluster.step(leader, .receive(Envelope(from: voter, to: leader,
                                               message: .heartbeat(ballot: Ballot(round: 1_000, node: voter), chosenThrough: 0, sequence: 1))))
        XCTAssertNotEqual(cluster.replicas[leader]!.role, .leader)
    }

    /// A leader elected by {1, 2} of {1, 2, 3} adds voter 4 (forced; 3 is cut off and 4 never
    /// starts): heartbeat acks of 1 and 2 are a lease quorum of {1, 2, 3, 4} but not a phase-1
    /// quorum, so it serves no read and asks 3 and 4 to promise. (Check-quorum is off: with
    /// two of four voters the leader would step down, which is right, but hides the rule.)
    func testReadsWaitForPromisesOfANewlyGoverningMembership() throws {
        var cluster = try Cluster(3) { $0.checkQuorum = false }
        cluster.isolated = [NodeID(3)]
        let leader = try cluster.electLeader()
        cluster.tick(5)
        cluster.step(leader, .read(readID: 1, consistency: .linearizable))
        cluster.tick(5)
        XCTAssertTrue(cluster.readsReady.contains(1), "a read before the change is served")

        cluster.step(leader, .reconfigure(requestID: 77, change: .add(peerURLs: [], isLearner: false, memberID: 4), force: true))
        for _ in 0..<50 where cluster.reconfigured.isEmpty { cluster.tick(1) }
        let outcome = try XCTUnwrap(cluster.reconfigured.first)
        guard case .success(let change) = outcome.result else { return XCTFail("the change failed: \(outcome)") }
        XCTAssertEqual(change.membership.voters, [NodeID(1), NodeID(2), NodeID(3), NodeID(4)])
        XCTAssertEqual(cluster.leader, leader)

        // The lease confirmed before the change runs out first (a lease spans leaseTicks).
        cluster.tick(Configuration(members: cluster.ids).leaseTicks + 1)
        cluster.sent.removeAll()
        cluster.step(leader, .read(readID: 2, consistency: .linearizable))
        cluster.tick(12)
        XCTAssertFalse(cluster.readsReady.contains(2), "a read was served without a phase-1 quorum of {1, 2, 3, 4}")
        XCTAssertTrue(cluster.sent.contains { $0.to == NodeID(4) && $0.message.kind == "Prepare" }, "the leader did not ask voter 4 to promise")
    }
}
