import XCTest
@testable import SynodCore

private let n1 = NodeID(1), n2 = NodeID(2), n3 = NodeID(3)

/// A replica that finds its own safety broken stops for good (fail-stop) and tells its peers.
final class FailStopTests: XCTestCase {
    /// n2 applied "a" at slot 1; a catch-up reply then claims slot 1 was chosen as "forged".
    func testTwoValuesForOneSlotHaltTheReplica() throws {
        var cluster = Cluster(seed: 1)
        cluster.run("elect 1; propose 1 a; deliver all; tick 1 x 2; deliver all")
        var replica = try XCTUnwrap(cluster.replicas[n2])
        let slot = try XCTUnwrap(cluster.applied[n2]?.compactMap { item -> Slot? in
            if case .entry(let slot, let value) = item, !value.commands.isEmpty { return slot }
            return nil
        }.first)
        let forged = Value.batch([Command(clientID: 99, sequence: 1, payload: Array("forged".utf8))])
        let output = replica.step(.receive(Envelope(from: n3, to: n2, message: .catchUpReply(
            snapshot: nil, entries: [ChosenEntry(slot: slot, value: forged)], chosenThrough: slot))))
        let reason = try XCTUnwrap(output.halted)
        XCTAssertTrue(reason.contains("slot \(slot) learned chosen"), reason)
        // Nothing of the step is carried out; only the peers are told.
        XCTAssertNil(output.persist)
        XCTAssertEqual(output.apply, [])
        XCTAssertEqual(Set(output.messages.map(\.to)), [n1, n3])
        XCTAssertTrue(output.messages.allSatisfy { $0.message == .safetyAlarm(reason: reason) })
        // Every later step does nothing but repeat the reason.
        for input in [Input.tick, .propose(cluster.command("later")), .read(readID: 1, consistency: .linearizable)] {
            let later = replica.step(input)
            XCTAssertEqual(later.halted, reason)
            XCTAssertTrue(later.messages.isEmpty && later.persist == nil && later.apply.isEmpty && later.readsReady.isEmpty)
        }
        // A peer that hears the alarm reports it to its driver (which raises an alarm).
        var peer = try XCTUnwrap(cluster.replicas[n1])
        let heard = peer.step(.receive(output.messages[0]))
        XCTAssertEqual(heard.peerAlarms, [PeerAlarm(node: n2, reason: reason)])
        XCTAssertNil(heard.halted)
    }

    /// The per-step check catches a state that went backwards across one step, even where no
    /// single relation between fields is broken afterwards.
    func testSafetyInvariantsCompareAgainstTheStateBeforeTheStep() throws {
        var cluster = Cluster(seed: 1)
        cluster.run("elect 1; propose 1 a; deliver all; tick 1 x 2; deliver all")
        let replica = try XCTUnwrap(cluster.replicas[n2])
        XCTAssertNil(replica.firstBrokenSafetyInvariant(since: StepSnapshot(replica)))
        var later = StepSnapshot(replica)
        later.promised = Ballot(round: replica.promised.round + 1, node: n3)
        XCTAssertTrue(replica.firstBrokenSafetyInvariant(since: later)?.contains("promised ballot went down") == true)
        later = StepSnapshot(replica)
        later.chosenThrough = replica.chosenThrough + 1
        XCTAssertTrue(replica.firstBrokenSafetyInvariant(since: later)?.contains("chosen prefix went down") == true)
        later = StepSnapshot(replica)
        later.appliedThrough = replica.appliedThrough + 1
        XCTAssertTrue(replica.firstBrokenSafetyInvariant(since: later)?.contains("applied prefix went down") == true)
    }

    /// The alarm reason is bounded: a long one is cut to the limit and still encodes.
    func testAlarmReasonIsBounded() throws {
        var cluster = Cluster(seed: 1)
        cluster.run("elect 1; propose 1 a; deliver all; tick 1 x 2; deliver all")
        var replica = try XCTUnwrap(cluster.replicas[n2])
        replica.detectedConflicts = [String(repeating: "é", count: 5_000)]
        let output = replica.step(.tick)
        XCTAssertNotNil(output.halted)
        for envelope in output.messages {
            guard case .safetyAlarm(let reason) = envelope.message else { return XCTFail("unexpected \(envelope.message)") }
            XCTAssertLessThanOrEqual(reason.utf8.count, Message.safetyAlarmReasonBytesMax)
            XCTAssertTrue(envelope.message.isWellFormed())
        }
    }
}
