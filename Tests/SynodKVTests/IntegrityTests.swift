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

    /// Three replicas apply the same log; one was corrupted behind the log's back (the broken
    /// variant the check exists for). At the next check all three record their hashes and
    /// report them through the log; every replica then raises CORRUPT for the odd one, and
    /// only for it, whichever member it is (the leader included) and in whatever order the
    /// reports arrive.
    func testReportsFindTheMemberOutOfLineWithTheMajority() throws {
        for corruptIndex in 0..<3 {
            for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0]] {
                var random = RandomCommands(seed: 7)
                var replicas = [KVStateMachine(), KVStateMachine(), KVStateMachine()]
                let members: [UInt64] = [101, 202, 303]
                var slot: Slot = 0
                func applyToAll(_ kv: KVCommand) -> [[IntegrityMismatch]] {
                    slot += 1
                    let next = command(kv, client: 1_000_000 + slot)
                    return replicas.indices.map { replicas[$0].apply(next, slot: slot).integrityMismatches }
                }
                for _ in 0..<60 { _ = applyToAll(random.command()) }
                // A healthy check: everyone agrees, nobody is alarmed.
                _ = applyToAll(.integrityCheck(id: 1))
                for i in order {
                    let hash = try XCTUnwrap(replicas[i].integrityRecords.last).hash
                    let found = applyToAll(.integrityReport(checkID: 1, memberID: members[i], hash: hash, voters: 3))
                    XCTAssertEqual(found.flatMap { $0 }, [])
                }
                XCTAssertTrue(replicas.allSatisfy { $0.alarms.isEmpty })

                _ = try replicas[corruptIndex].store.put(PutRequest(key: Array("a".utf8), value: Array("garbage".utf8)))
                _ = applyToAll(.put(PutRequest(key: Array("b".utf8), value: Array("x".utf8))))
                _ = applyToAll(.integrityCheck(id: 2))
                var alarmedAt: [[IntegrityMismatch]] = []
                for i in order {
                    let hash = try XCTUnwrap(replicas[i].integrityRecords.last).hash
                    let found = applyToAll(.integrityReport(checkID: 2, memberID: members[i], hash: hash, voters: 3))
                    if !found[0].isEmpty { alarmedAt = found }
                }
                let expected = AlarmMember(memberID: members[corruptIndex], alarm: .corrupt)
                for (index, replica) in replicas.enumerated() {
                    XCTAssertEqual(replica.alarms, [expected], "corrupt \(corruptIndex), order \(order), replica \(index)")
                }
                XCTAssertEqual(alarmedAt.map { $0.map(\.memberID) }, [[members[corruptIndex]], [members[corruptIndex]], [members[corruptIndex]]])
                let mismatch = try XCTUnwrap(alarmedAt.first?.first)
                XCTAssertNotEqual(mismatch.memberHash, mismatch.majorityHash)
                // The revision is the one the reporting replica (replica 0 here) recorded at the check.
                XCTAssertEqual(mismatch.revision, replicas[0].integrityRecords.last?.revision)
            }
        }
    }

    /// No majority, no verdict: with two of three reports different, nobody is alarmed yet.
    func testNoAlarmWithoutAMajority() {
        var machine = KVStateMachine()
        _ = machine.apply(command(.integrityCheck(id: 5), client: 1), slot: 1)
        _ = machine.apply(command(.integrityReport(checkID: 5, memberID: 1, hash: 10, voters: 3), client: 2), slot: 2)
        let output = machine.apply(command(.integrityReport(checkID: 5, memberID: 2, hash: 11, voters: 3), client: 3), slot: 3)
        XCTAssertEqual(output.integrityMismatches, [])
        XCTAssertTrue(machine.alarms.isEmpty)
        for id in UInt64(6)...20 {
            _ = machine.apply(command(.integrityCheck(id: id), client: 100 + id), slot: Slot(id))
            _ = machine.apply(command(.integrityReport(checkID: id, memberID: 1, hash: id, voters: 3), client: 200 + id), slot: Slot(id))
        }
        XCTAssertEqual(machine.integrityRecords.count, KVStateMachine.integrityRecordsMax)
        XCTAssertEqual(machine.integrityReports.count, KVStateMachine.integrityRecordsMax)
    }

    func testAlarmsAreReplicatedStateAndSurviveSnapshots() throws {
        var machine = KVStateMachine()
        let corrupt = AlarmMember(memberID: 42, alarm: .corrupt)
        let space = AlarmMember(memberID: 7, alarm: .noSpace)
        _ = machine.apply(command(.alarm(action: .activate, member: corrupt), client: 1), slot: 1)
        _ = machine.apply(command(.alarm(action: .activate, member: space), client: 2), slot: 2)
        _ = machine.apply(command(.integrityCheck(id: 9), client: 3), slot: 3)
        _ = machine.apply(command(.integrityReport(checkID: 9, memberID: 42, hash: 77, voters: 3), client: 5), slot: 5)
        XCTAssertEqual(machine.alarms, [corrupt, space])
        let restored = try KVStateMachine(snapshot: machine.snapshot())
        XCTAssertEqual(restored, machine)
        _ = machine.apply(command(.alarm(action: .deactivate, member: space), client: 4), slot: 4)
        XCTAssertEqual(machine.alarms, [corrupt])
        // Round trip of the new commands.
        for kv in [KVCommand.alarm(action: .deactivate, member: corrupt), .integrityCheck(id: 1),
                   .integrityReport(checkID: 1, memberID: 2, hash: 3, voters: 5)] {
            XCTAssertEqual(try KVCommand(decoding: kv.encoded()), kv)
        }
        // An alarm of type NONE is not a valid command.
        var bytes = KVCommand.alarm(action: .activate, member: corrupt).encoded()
        bytes[bytes.count - 1] = 0
        XCTAssertThrowsError(try KVCommand(decoding: bytes))
    }

    /// A check that straddles an upgrade: two members reported FNV-1a hashes (report tag 10,
    /// written before state hashes used XXH64), the third an XXH64 hash. The two kinds are
    /// counted apart, so nobody is alarmed; the same reports all of one kind alarm the third
    /// (the negative control: pooled together, the upgrade would raise a false CORRUPT).
    func testReportsOfTwoHashAlgorithmsAreNeverCompared() throws {
        var mixed = KVStateMachine()
        _ = mixed.apply(command(.integrityCheck(id: 4), client: 1), slot: 1)
        _ = mixed.apply(command(.integrityReportFNV(checkID: 4, memberID: 1, hash: 10, voters: 3), client: 2), slot: 2)
        _ = mixed.apply(command(.integrityReportFNV(checkID: 4, memberID: 2, hash: 10, voters: 3), client: 3), slot: 3)
        let straddling = mixed.apply(command(.integrityReport(checkID: 4, memberID: 3, hash: 99, voters: 3), client: 4), slot: 4)
        XCTAssertEqual(straddling.integrityMismatches, [])
        XCTAssertTrue(mixed.alarms.isEmpty)
        XCTAssertEqual(mixed.integrityReports.map(\.algorithm), [.fnv1a, .xxh64])

        var pooled = KVStateMachine()
        _ = pooled.apply(command(.integrityCheck(id: 4), client: 1), slot: 1)
        _ = pooled.apply(command(.integrityReport(checkID: 4, memberID: 1, hash: 10, voters: 3), client: 2), slot: 2)
        _ = pooled.apply(command(.integrityReport(checkID: 4, memberID: 2, hash: 10, voters: 3), client: 3), slot: 3)
        let outOfLine = pooled.apply(command(.integrityReport(checkID: 4, memberID: 3, hash: 99, voters: 3), client: 4), slot: 4)
        XCTAssertEqual(outOfLine.integrityMismatches.map(\.memberID), [3])

        // Tag 10 is the FNV-1a report, tag 11 this build's; both round-trip.
        let old = KVCommand.integrityReportFNV(checkID: 1, memberID: 2, hash: 3, voters: 5)
        let current = KVCommand.integrityReport(checkID: 1, memberID: 2, hash: 3, voters: 5)
        XCTAssertEqual(old.encoded()[1], 10)
        XCTAssertEqual(current.encoded()[1], 11)
        XCTAssertEqual(try KVCommand(decoding: old.encoded()), old)
        XCTAssertEqual(try KVCommand(decoding: current.encoded()), current)
        // The mixed state survives a snapshot with each report set's algorithm.
        XCTAssertEqual(try KVStateMachine(snapshot: mixed.snapshot()), mixed)
    }

    /// A version 3 snapshot (FNV-1a state hashes, no algorithm byte): its report sets are
    /// restored as FNV-1a ones, and its records, which this build would report as its own
    /// kind, are dropped.
    func testVersion3SnapshotKeepsReportsAsFNVAndDropsRecords() throws {
        var machine = KVStateMachine()
        _ = machine.apply(command(.put(PutRequest(key: Array("k".utf8), value: Array("v".utf8))), client: 1), slot: 1)
        _ = machine.apply(command(.integrityCheck(id: 8), client: 2), slot: 2)
        _ = machine.apply(command(.integrityReport(checkID: 8, memberID: 5, hash: 77, voters: 3), client: 3), slot: 3)
        var bytes = machine.snapshot()
        XCTAssertEqual(bytes[0], 5)
        // A version 4 snapshot is a version 5 one without the auth store at its end (an
        // untouched one: enabled, revision, secret, users and roles, 21 bytes).
        bytes.removeLast(1 + 8 + 4 + 4 + 4)
        bytes[0] = 4
        let version4 = bytes
        XCTAssertEqual(try KVStateMachine(snapshot: version4), machine)
        // The tail: [report sets u32 = 1][checkID u64][algorithm u8][count u32 = 1][member u64][hash u64].
        let algorithmOffset = bytes.count - (1 + 4 + 16)
        XCTAssertEqual(bytes[algorithmOffset], IntegrityHashAlgorithm.xxh64.rawValue)
        bytes.remove(at: algorithmOffset)
        bytes[0] = 3
        let restored = try KVStateMachine(snapshot: bytes)
        XCTAssertEqual(restored.integrityRecords, [])
        XCTAssertEqual(restored.integrityReports, [IntegrityReports(checkID: 8, hashes: [5: 77], algorithm: .fnv1a)])
        XCTAssertEqual(restored.store, machine.store)
        // An unknown algorithm byte in a version 4 snapshot is refused, not guessed.
        var unknown = version4
        unknown[algorithmOffset] = 9
        XCTAssertThrowsError(try KVStateMachine(snapshot: unknown))
    }
}
