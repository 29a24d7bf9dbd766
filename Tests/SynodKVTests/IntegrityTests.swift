import SynodCore
import XCTest
@testable import SynodKV

/// The replicated integrity check: the incremental live-key hash, the check command, alarms.
final class IntegrityTests: XCTestCase {
    private func command(_ kv: KVCommand, client: UInt64, sequence: UInt64 = 1) -> Command {
        Command(clientID: client, sequence: sequence, payload: kv.encoded())
    }

    /// The O(1)-per-write hash always equals a full recomputation, through puts, deletes,
    /// txns, lease revokes, compactions and a snapshot restore.
    func testIncrementalHashMatchesRecomputation() throws {
        for seed in UInt64(1)...20 {
            var random = RandomCommands(seed: seed)
            var machine = KVStateMachine()
            for i in 1...300 {
                _ = machine.apply(command(random.command(), client: UInt64(i)), slot: Slot(i))
                XCTAssertEqual(machine.store.liveKeysHash, machine.store.computeLiveKeysHash(), "seed \(seed) step \(i)")
            }
            let restored = try KVStateMachine(snapshot: machine.snapshot())
            XCTAssertEqual(restored.store.liveKeysHash, machine.store.liveKeysHash, "seed \(seed)")
            XCTAssertEqual(restored.store.integrityHash, machine.store.integrityHash, "seed \(seed)")
        }
    }

    /// Any change to a live key's value, lease or revisions changes the hash; history that is
    /// no longer live (an overwritten value) does not matter.
    func testHashCoversLiveState() throws {
        var a = KVStore()
        var b = KVStore()
        _ = try a.put(PutRequest(key: Array("k".utf8), value: Array("v1".utf8)))
        _ = try b.put(PutRequest(key: Array("k".utf8), value: Array("v2".utf8)))
        XCTAssertNotEqual(a.integrityHash, b.integrityHash, "values differ")
        XCTAssertNotEqual(a.liveKeysHash, b.liveKeysHash)
        var c = KVStore()
        _ = try c.put(PutRequest(key: Array("j".utf8), value: Array("v1".utf8)))
        XCTAssertNotEqual(a.liveKeysHash, c.liveKeysHash, "keys differ")
        _ = try a.deleteRange(DeleteRangeRequest(key: Array("k".utf8)))
        XCTAssertEqual(a.liveKeysHash, 0, "nothing live")
        XCTAssertNotEqual(a.integrityHash, KVStore().integrityHash, "the revision is part of the hash")
    }

    /// Replicas applying the same log agree at every check; a replica whose state was changed
    /// behind the log's back (the broken variant the check exists for) reports a mismatch at
    /// the first check after the change, naming the revision, and the healthy ones do not.
    func testCheckFindsACorruptedReplicaAndOnlyIt() throws {
        var random = RandomCommands(seed: 7)
        var healthy = KVStateMachine()
        var follower = KVStateMachine()
        var corrupt = KVStateMachine()
        var slot: Slot = 0
        var previous: (id: UInt64, hash: UInt64) = (0, 0)
        func runCheck(_ id: UInt64) -> (IntegrityMismatch?, IntegrityMismatch?, IntegrityMismatch?) {
            slot += 1
            let check = command(.integrityCheck(id: id, previousID: previous.id, previousHash: previous.hash), client: 1_000_000 + id)
            let results = (healthy.apply(check, slot: slot).integrityMismatch,
                           follower.apply(check, slot: slot).integrityMismatch,
                           corrupt.apply(check, slot: slot).integrityMismatch)
            // The proposer (the leader, `healthy` here) sends its own record next time.
            if let record = healthy.integrityRecords.last { previous = (record.id, record.hash) }
            return results
        }
        for round in UInt64(1)...5 {
            for _ in 0..<40 {
                slot += 1
                let next = command(random.command(), client: slot)
                _ = healthy.apply(next, slot: slot)
                _ = follower.apply(next, slot: slot)
                _ = corrupt.apply(next, slot: slot)
            }
            let (a, b, c) = runCheck(round)
            XCTAssertNil(a); XCTAssertNil(b); XCTAssertNil(c)
        }
        // Corrupt one replica outside the log (what `corrupt-apply` does in the server).
        _ = try corrupt.store.put(PutRequest(key: Array("a".utf8), value: Array("garbage".utf8)))
        slot += 1
        let next = command(.put(PutRequest(key: Array("b".utf8), value: Array("x".utf8))), client: 99_999)
        _ = healthy.apply(next, slot: slot)
        _ = follower.apply(next, slot: slot)
        _ = corrupt.apply(next, slot: slot)
        // The next check records the diverged hashes; the one after compares them.
        var (a, b, c) = runCheck(10)
        XCTAssertNil(a); XCTAssertNil(b); XCTAssertNil(c)
        (a, b, c) = runCheck(11)
        XCTAssertNil(a)
        XCTAssertNil(b)
        let mismatch = try XCTUnwrap(c, "the corrupted replica must notice")
        XCTAssertEqual(mismatch.checkID, 10)
        XCTAssertEqual(mismatch.revision, corrupt.store.revision)
        XCTAssertNotEqual(mismatch.localHash, mismatch.expectedHash)
    }

    /// A check naming a record the replica does not have (it restored a later snapshot, or the
    /// leader had none) compares nothing.
    func testUnknownPreviousCheckIsSkipped() {
        var machine = KVStateMachine()
        let output = machine.apply(command(.integrityCheck(id: 5, previousID: 4, previousHash: 123), client: 1), slot: 1)
        XCTAssertNil(output.integrityMismatch)
        XCTAssertEqual(machine.integrityRecords.map(\.id), [5])
        for id in UInt64(6)...20 {
            _ = machine.apply(command(.integrityCheck(id: id, previousID: id - 1, previousHash: machine.integrityRecords.last?.hash ?? 0),
                                      client: id), slot: Slot(id))
        }
        XCTAssertEqual(machine.integrityRecords.count, KVStateMachine.integrityRecordsMax)
    }

    func testAlarmsAreReplicatedStateAndSurviveSnapshots() throws {
        var machine = KVStateMachine()
        let corrupt = AlarmMember(memberID: 42, alarm: .corrupt)
        let space = AlarmMember(memberID: 7, alarm: .noSpace)
        _ = machine.apply(command(.alarm(action: .activate, member: corrupt), client: 1), slot: 1)
        _ = machine.apply(command(.alarm(action: .activate, member: space), client: 2), slot: 2)
        _ = machine.apply(command(.integrityCheck(id: 9, previousID: 0, previousHash: 0), client: 3), slot: 3)
        XCTAssertEqual(machine.alarms, [corrupt, space])
        let restored = try KVStateMachine(snapshot: machine.snapshot())
        XCTAssertEqual(restored, machine)
        _ = machine.apply(command(.alarm(action: .deactivate, member: space), client: 4), slot: 4)
        XCTAssertEqual(machine.alarms, [corrupt])
        // Round trip of the new commands.
        for kv in [KVCommand.alarm(action: .deactivate, member: corrupt), .integrityCheck(id: 1, previousID: 2, previousHash: 3)] {
            XCTAssertEqual(try KVCommand(decoding: kv.encoded()), kv)
        }
        // An alarm of type NONE is not a valid command.
        var bytes = KVCommand.alarm(action: .activate, member: corrupt).encoded()
        bytes[bytes.count - 1] = 0
        XCTAssertThrowsError(try KVCommand(decoding: bytes))
    }
}
