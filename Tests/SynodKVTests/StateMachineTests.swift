import SynodCore
import XCTest
@testable import SynodKV

final class StateMachineTests: XCTestCase {
    private func command(_ kv: KVCommand, client: UInt64 = 1, sequence: UInt64) -> Command {
        Command(clientID: client, sequence: sequence, payload: kv.encoded())
    }

    func testExactlyOnce() throws {
        var machine = KVStateMachine()
        let put = command(.put(PutRequest(key: b("k"), value: b("v"))), sequence: 1)
        let first = machine.apply(put, slot: 1)
        guard case .applied(.success(let response)) = first.outcome else { return XCTFail("\(first.outcome)") }
        XCTAssertEqual(response.revision, 2)
        XCTAssertEqual(first.events.count, 1)

        let again = machine.apply(put, slot: 2)
        XCTAssertEqual(again.outcome, .duplicate(.success(response)))
        XCTAssertTrue(again.events.isEmpty)
        XCTAssertEqual(machine.store.revision, 2, "the duplicate was not applied again")
        XCTAssertEqual(try machine.store.get("k")?.version, 1)

        _ = machine.apply(command(.put(PutRequest(key: b("k"), value: b("w"))), sequence: 2), slot: 3)
        XCTAssertEqual(machine.apply(put, slot: 4).outcome, .stale)
        XCTAssertEqual(machine.store.revision, 3)
        // Another client's sequence 1 is its own.
        let other = machine.apply(command(.put(PutRequest(key: b("k"), value: b("x"))), client: 2, sequence: 1), slot: 5)
        XCTAssertEqual(other.outcome, .applied(.success(.put(PutResponse(revision: 4, prevKv: nil)))))
    }

    func testErrorsAndMalformedPayloadsAreRecordedResults() {
        var machine = KVStateMachine()
        let bad = Command(clientID: 1, sequence: 1, payload: [9, 9, 9])
        XCTAssertEqual(machine.apply(bad, slot: 1).outcome, .applied(.failure(.malformedCommand)))
        XCTAssertEqual(machine.apply(bad, slot: 2).outcome, .duplicate(.failure(.malformedCommand)))
        let revoke = command(.leaseRevoke(id: 4), sequence: 2)
        XCTAssertEqual(machine.apply(revoke, slot: 3).outcome, .applied(.failure(.leaseNotFound)))
        XCTAssertEqual(machine.store.revision, 1)
    }

    func testCommandRoundTrip() throws {
        var random = RandomCommands(seed: 7)
        for _ in 0..<500 {
            let original = random.command()
            XCTAssertEqual(try KVCommand(decoding: original.encoded()), original)
        }
        XCTAssertThrowsError(try KVCommand(decoding: [2, 0])) { error in
            XCTAssertEqual(error as? KVDecodingError, .unsupportedVersion(2))
        }
        XCTAssertThrowsError(try KVCommand(decoding: KVCommand.compact(revision: 3).encoded() + [0])) { error in
            XCTAssertEqual(error as? KVDecodingError, .trailingBytes)
        }
    }

    func testDeeplyNestedTxnIsRejectedNotRecursedForever() {
        var txn = TxnRequest()
        for _ in 0...KVCodec.nestingDepthMax + 1 { txn = TxnRequest(success: [.txn(txn)]) }
        XCTAssertThrowsError(try KVCommand(decoding: KVCommand.txn(txn).encoded())) { error in
            XCTAssertEqual(error as? KVDecodingError, .tooDeep)
        }
        // A hostile count larger than the input fails before allocating.
        XCTAssertThrowsError(try KVCommand(decoding: [1, 0, 0xff, 0xff, 0xff, 0xff]))
    }

    /// Truncations, bit flips and random bytes never trap: they decode or throw.
    func testDecodingGarbageNeverTraps() throws {
        var random = RandomCommands(seed: 99)
        var machine = KVStateMachine()
        for slot in 1...60 { _ = machine.apply(command(random.command(), sequence: UInt64(slot)), slot: Slot(slot)) }
        let snapshot = machine.snapshot()
        var decodedSome = 0
        for _ in 0..<3000 {
            let encoded = random.int(0...1) == 0 ? random.command().encoded() : snapshot
            var bytes = encoded
            switch random.int(0...2) {
            case 0: bytes = Array(bytes.prefix(random.int(0...bytes.count)))
            case 1:
                for _ in 0..<random.int(1...4) { bytes[random.int(0...bytes.count - 1)] ^= UInt8(random.int(1...255)) }
            default: bytes = (0..<random.int(0...64)).map { _ in UInt8(random.int(0...255)) }
            }
            if (try? KVCommand(decoding: bytes)) != nil { decodedSome += 1 }
            if (try? KVStateMachine(snapshot: bytes)) != nil { decodedSome += 1 }
            _ = machine.apply(Command(clientID: 5, sequence: UInt64(decodedSome + 1_000_000), payload: bytes), slot: 100)
        }
        XCTAssertGreaterThan(decodedSome, 0, "some mutations (e.g. of values) still decode")
    }

    /// The encoding written in pieces (as a node writes it to its snapshot file) is the same
    /// bytes as the whole encoding, for any piece size, and it stops when the writer fails.
    func testASnapshotWrittenInPiecesIsTheSameBytes() throws {
        var random = RandomCommands(seed: 77)
        var state = KVStateMachine()
        for i in 1...300 { _ = state.apply(command(random.command(), client: UInt64(i % 4), sequence: UInt64(i)), slot: Slot(i)) }
        let whole = state.snapshot()
        XCTAssertGreaterThan(whole.count, 1_000)
        for pieceBytes in [1, 7, 100, 4096, 1 << 20] {
            var pieces: [[UInt8]] = []
            XCTAssertTrue(state.writeSnapshot(pieceBytes: pieceBytes) { pieces.append($0); return true })
            XCTAssertEqual(Array(pieces.joined()), whole, "pieces of \(pieceBytes)")
            XCTAssertTrue(pieces.dropLast().allSatisfy { $0.count >= pieceBytes })
        }
        var calls = 0
        XCTAssertFalse(state.writeSnapshot(pieceBytes: 100) { _ in calls += 1; return calls < 3 })
        XCTAssertEqual(calls, 3, "no piece after the writer failed")
        // Decoding the bytes from a source (as from a file) gives the same state.
        let restored = try KVStateMachine(snapshot: SnapshotBytes(whole))
        XCTAssertEqual(restored.stateHash, state.stateHash)
    }

    func testSnapshotRoundTripAndDeterminism() throws {
        var random = RandomCommands(seed: 2024)
        var a = KVStateMachine()
        var other = KVStateMachine()
        var commands: [Command] = []
        for i in 1...400 { commands.append(command(random.command(), client: UInt64(i % 5), sequence: UInt64(i))) }
        for (slot, command) in commands.enumerated() {
            let outA = a.apply(command, slot: Slot(slot + 1))
            let outB = other.apply(command, slot: Slot(slot + 1))
            XCTAssertEqual(outA, outB)
        }
        XCTAssertGreaterThan(a.store.revision, 50, "the workload wrote")
        XCTAssertEqual(a.stateHash, other.stateHash)
        XCTAssertEqual(try a.store.hashKV(), try other.store.hashKV())

        let restored = try KVStateMachine(snapshot: a.snapshot())
        XCTAssertEqual(restored.stateHash, a.stateHash)
        XCTAssertEqual(restored.store, a.store)
        XCTAssertEqual(restored.sessions, a.sessions)
        XCTAssertEqual(restored.appliedSlot, a.appliedSlot)

        // A restored replica keeps agreeing with the original on further commands.
        var continued = restored
        for i in 401...450 {
            let next = command(random.command(), sequence: UInt64(i))
            XCTAssertEqual(continued.apply(next, slot: Slot(i)), a.apply(next, slot: Slot(i)))
        }
        XCTAssertEqual(continued.stateHash, a.stateHash)
        // And a different history hashes differently.
        _ = continued.apply(command(.put(PutRequest(key: b("new"), value: b("x"))), client: 77, sequence: 1), slot: 451)
        XCTAssertNotEqual(continued.stateHash, a.stateHash)
        XCTAssertNotEqual(try continued.store.hashKV(), try a.store.hashKV())
    }

    func testHashKVErrors() throws {
        var store = KVStore()
        try store.put("a", "1")
        try store.put("a", "2")
        let atTwo = try store.hashKV(revision: 2)
        try store.put("b", "1")
        XCTAssertEqual(try store.hashKV(revision: 2), atTwo, "later writes do not change an old revision's hash")
        XCTAssertThrowsError(try store.hashKV(revision: 9))
        _ = try store.compact(revision: 3)
        XCTAssertThrowsError(try store.hashKV(revision: 2))
    }
}
