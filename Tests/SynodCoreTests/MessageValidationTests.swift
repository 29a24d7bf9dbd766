import SynodCore
import XCTest

/// Malformed messages from the network are ignored, never acted on and never a crash.
final class MessageValidationTests: XCTestCase {
    private let members = [NodeID(1), NodeID(2), NodeID(3)]

    private func replica() throws -> Replica {
        var replica = try Replica(id: NodeID(1), configuration: Configuration(members: members), seed: 1)
        _ = replica.step(.start)
        // Let the restart lease guard expire so a valid Prepare would be promised.
        for _ in 0..<10 { _ = replica.step(.tick) }
        return replica
    }

    func testOutOfRangeBallotsAndSlotsAreIgnored() throws {
        var replica = try self.replica()
        let hostile: [Message] = [
            .prepare(ballot: Ballot(round: .max, node: NodeID(2)), firstSlot: 1),
            .prepare(ballot: Ballot(round: 3, node: NodeID(9)), firstSlot: 1),
            .prepare(ballot: Ballot(round: 3, node: NodeID(2)), firstSlot: 0),
            .accept(ballot: Ballot(round: 3, node: NodeID(2)), slot: 0, value: .noop, chosenThrough: 0),
            .reject(ballot: Ballot(round: 1, node: NodeID(1)), promised: Ballot(round: .max, node: NodeID(2))),
            .catchUpReply(snapshot: nil, entries: [ChosenEntry(slot: 0, value: .noop)], chosenThrough: 0),
        ]
        for message in hostile {
            let output = replica.step(.receive(Envelope(from: NodeID(2), to: NodeID(1), message: message)))
            XCTAssertTrue(output.isEmpty, "acted on \(message)")
        }
        XCTAssertEqual(replica.promised, .zero)
        XCTAssertEqual(replica.checkInvariants(), [])
        // Nothing of the hostile ballots was remembered: the next election picks round 1.
        var campaign = replica
        for _ in 0..<40 where campaign.role == .follower { _ = campaign.grantPreVotes(in: campaign.step(.tick)) }
        XCTAssertEqual(campaign.ownBallot, Ballot(round: 1, node: NodeID(1)))
        // A message claiming to come from a non-member is ignored too.
        let stranger = Envelope(from: NodeID(7), to: NodeID(1), message: .prepare(ballot: Ballot(round: 1, node: NodeID(7)), firstSlot: 1))
        XCTAssertTrue(replica.step(.receive(stranger)).isEmpty)
        // The same replica still takes a well-formed Prepare, durably, before answering.
        let valid = replica.step(.receive(Envelope(from: NodeID(2), to: NodeID(1),
                                                   message: .prepare(ballot: Ballot(round: 3, node: NodeID(2)), firstSlot: 1))))
        XCTAssertEqual(valid.persist?.records, [.promised(Ballot(round: 3, node: NodeID(2)))])
        XCTAssertTrue(valid.messages.isEmpty, "a Promise must wait for its record to be durable")
        XCTAssertEqual(valid.persist?.messagesAfterDurable.map(\.message.kind), ["Promise"])
    }

    func testWellFormednessRules() {
        let ballot = Ballot(round: 1, node: NodeID(2))
        XCTAssertTrue(Message.prepare(ballot: ballot, firstSlot: 1).isWellFormed())
        XCTAssertFalse(Message.prepare(ballot: Ballot(round: Message.ballotRoundMax + 1, node: NodeID(2)), firstSlot: 1).isWellFormed())
        XCTAssertFalse(Message.accepted(ballot: Ballot(round: 0, node: NodeID(2)), slot: 1).isWellFormed())
        // Ballots of nodes this replica has not heard of yet are allowed (membership changes),
        // node 0 never is.
        XCTAssertTrue(Message.promise(ballot: ballot, chosenThrough: 0,
                                      entries: [PromisedEntry(slot: 1, ballot: Ballot(round: 1, node: NodeID(8)), value: .noop)])
            .isWellFormed())
        XCTAssertFalse(Message.promise(ballot: ballot, chosenThrough: 0,
                                       entries: [PromisedEntry(slot: 1, ballot: Ballot(round: 1, node: NodeID(0)), value: .noop)])
            .isWellFormed())
        XCTAssertFalse(Message.handOff(ballot: ballot, target: NodeID(0)).isWellFormed())
        XCTAssertTrue(Message.forward(commands: []).isWellFormed())
    }

    /// A chunk must lie inside its snapshot: a forged one that claims bytes past the end (or
    /// an offset past it, or an overflowing sum) is refused before any replica sees it.
    func testSnapshotChunksMustLieInsideTheirSnapshot() {
        func chunk(total: UInt64, offset: UInt64, bytes: Int, slot: Slot = 5) -> Message {
            .snapshotChunk(SnapshotChunk(slot: slot, total: total, checksum: 1, offset: offset,
                                         data: [UInt8](repeating: 7, count: bytes), membership: nil, chosenThrough: 5))
        }
        XCTAssertTrue(chunk(total: 10, offset: 0, bytes: 4).isWellFormed())
        XCTAssertTrue(chunk(total: 10, offset: 6, bytes: 4).isWellFormed())
        XCTAssertFalse(chunk(total: 10, offset: 7, bytes: 4).isWellFormed(), "past the end")
        XCTAssertFalse(chunk(total: 10, offset: 11, bytes: 0).isWellFormed(), "offset past the end")
        XCTAssertFalse(chunk(total: 10, offset: 4, bytes: 0).isWellFormed(), "an empty chunk of a non-empty snapshot")
        XCTAssertFalse(chunk(total: 10, offset: UInt64.max, bytes: 4).isWellFormed(), "an overflowing offset")
        XCTAssertFalse(chunk(total: 10, offset: 0, bytes: 4, slot: 0).isWellFormed())
        XCTAssertTrue(Message.snapshotChunkRequest(slot: 5, checksum: 1, offset: 0).isWellFormed())
        XCTAssertFalse(Message.snapshotChunkRequest(slot: 0, checksum: 1, offset: 0).isWellFormed())
    }
}
