@testable import SynodSim
import SynodCore
import XCTest

/// The simulator's own parts: the disk that loses unsynced writes, and the state machine.
final class SimComponentTests: XCTestCase {
    private func batch(_ id: UInt64, _ records: [DurableRecord]) -> PersistBatch {
        PersistBatch(id: id, records: records, messagesAfterDurable: [])
    }

    func testCrashLosesEverythingNotSynced() {
        var disk = SimDisk()
        let ballot = Ballot(round: 1, node: NodeID(1))
        disk.write(batch(1, [.promised(ballot)]))
        XCTAssertEqual(disk.startSync(), 1)
        disk.write(batch(2, [.accepted(slot: 1, ballot: ballot, value: .noop)]))
        XCTAssertNil(disk.startSync(), "one fsync at a time")
        XCTAssertEqual(disk.completeSync(through: 1).map(\.id), [1])
        // Group commit: the next fsync covers everything written meanwhile.
        disk.write(batch(3, [.accepted(slot: 2, ballot: ballot, value: .noop)]))
        XCTAssertEqual(disk.startSync(), 3)
        XCTAssertEqual(disk.crash(), 2)
        XCTAssertEqual(disk.durable, [.promised(ballot)])
    }

    func testDurableSnapshotCompactsButKeepsTheHighestPromise() {
        var disk = SimDisk()
        let low = Ballot(round: 1, node: NodeID(1))
        let high = Ballot(round: 3, node: NodeID(2))
        let snapshot = Snapshot(slot: 1, data: [1])
        disk.write(batch(1, [.promised(low), .accepted(slot: 1, ballot: high, value: .noop),
                             .accepted(slot: 2, ballot: high, value: .noop), .snapshot(snapshot)]))
        _ = disk.startSync()
        _ = disk.completeSync(through: 1)
        XCTAssertEqual(disk.durable, [.promised(high), .snapshot(snapshot), .accepted(slot: 2, ballot: high, value: .noop)])
    }

    func testStateMachineAppliesOnceAndRoundTripsThroughSnapshots() throws {
        var kv = SimKV()
        let put = Command(clientID: 7, sequence: 1, payload: KVCommand.put(key: "a", value: "x").encoded())
        XCTAssertEqual(kv.apply(put, slot: 1), .applied(.ok))
        XCTAssertEqual(kv.apply(put, slot: 2), .duplicate(.ok), "a retried command is not applied twice")
        let cas = Command(clientID: 7, sequence: 2, payload: KVCommand.compareAndSet(key: "a", expected: "x", new: "y").encoded())
        XCTAssertEqual(kv.apply(cas, slot: 3), .applied(.compareAndSet(true)))
        XCTAssertEqual(kv.apply(put, slot: 4), .stale)
        XCTAssertEqual(kv.values["a"], "y")
        let restored = try XCTUnwrap(SimKV.decode(kv.encoded()))
        XCTAssertEqual(restored.values, kv.values)
        XCTAssertEqual(restored.sessions, kv.sessions)
        XCTAssertEqual(restored.stateHash, kv.stateHash)
        let bytes = kv.encoded()
        for cut in 0..<bytes.count { XCTAssertNil(SimKV.decode(Array(bytes.prefix(cut))), "truncated at \(cut)") }
        XCTAssertNil(KVCommand.decode([9, 0, 0]))
    }
}
