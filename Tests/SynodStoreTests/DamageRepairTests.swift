import SynodCore
@testable import SynodStore
import XCTest

/// With `repairDamage` (a member with peers), damage to synced writes is skipped and reported
/// instead of refusing to start, and recorded in the repair ledger until the replica's
/// `.repaired` record is durable (`RepairLedger`).
final class DamageRepairTests: XCTestCase {
    private typealias Support = StorageTestSupport

    private static let ballot = Ballot(round: 3, node: NodeID(2))

    private static func record(_ slot: Slot) -> DurableRecord {
        .accepted(slot: slot, ballot: ballot, value: .batch([Command(clientID: 9, sequence: slot, payload: Array(repeating: UInt8(slot), count: 300))]))
    }

    private static var repairing: StorageOptions {
        var options = Support.options(segmentBytes: 64 << 10)
        options.repairDamage = true
        return options
    }

    private func accepted(_ records: [DurableRecord]) -> [Slot] {
        records.compactMap { if case .accepted(let slot, _, _) = $0 { return slot } else { return nil } }
    }

    /// Six synced writes of one record each (slots 1...6); returns each write's range.
    private func writeLog(_ fileSystem: FaultInjectingFileSystem) throws -> (storage: DurableStorage, ranges: [Range<Int>]) {
        let storage = try Support.open(fileSystem, options: Self.repairing).storage
        var ranges: [Range<Int>] = []
        for slot in 1...6 as ClosedRange<Slot> {
            let start = Int(storage.wal.activeTail)
            storage.append(PersistBatch(id: slot, records: [Self.record(slot)], messagesAfterDurable: []))
            try storage.sync()
            ranges.append(start..<Int(storage.wal.activeTail))
        }
        return (storage, ranges)
    }

    func testAFlippedBitALostWriteAndAMisdirectedWriteAreSkippedAndReported() throws {
        // A flipped bit in write 2 (slot 2): its mark is valid, so the scan goes on after it.
        let flipped = FaultInjectingFileSystem()
        var layout = try writeLog(flipped)
        flipped.flipBit(path: layout.storage.wal.activePath, byteOffset: layout.ranges[1].lowerBound + 100, bit: 1)
        flipped.crash()
        var opened = try Support.open(flipped, options: Self.repairing)
        XCTAssertEqual(accepted(opened.records), [1, 3, 4, 5, 6])
        XCTAssertEqual(opened.report.damage.map(\.offset), [UInt64(layout.ranges[1].lowerBound)])
        XCTAssertTrue(opened.report.repairNeeded)
        XCTAssertTrue(opened.report.description.contains("repair from the other members"), opened.report.description)

        // A lost write (zeros where write 3 was, later writes intact): found by the next mark.
        let lost = FaultInjectingFileSystem()
        layout = try writeLog(lost)
        lost.overwrite(path: layout.storage.wal.activePath, byteOffset: layout.ranges[2].lowerBound,
                       with: [UInt8](repeating: 0, count: layout.ranges[2].count))
        lost.crash()
        opened = try Support.open(lost, options: Self.repairing)
        XCTAssertEqual(accepted(opened.records), [1, 2, 4, 5, 6])
        XCTAssertTrue(opened.report.repairNeeded)

        // A misdirected write: write 4's bytes landed over write 5, and write 4's place is empty.
        let misdirected = FaultInjectingFileSystem()
        layout = try writeLog(misdirected)
        let path = layout.storage.wal.activePath
        let content = try XCTUnwrap(misdirected.durableContent(of: path))
        misdirected.overwrite(path: path, byteOffset: layout.ranges[4].lowerBound, with: Array(content[layout.ranges[3]]))
        misdirected.overwrite(path: path, byteOffset: layout.ranges[3].lowerBound, with: [UInt8](repeating: 0, count: layout.ranges[3].count))
        misdirected.crash()
        opened = try Support.open(misdirected, options: Self.repairing)
        // Write 4 reads from where it landed; write 5 is lost; write 6 still reads.
        XCTAssertEqual(accepted(opened.records), [1, 2, 3, 4, 6])
        XCTAssertEqual(opened.report.damage.count, 2, "\(opened.report.damage)")
        XCTAssertTrue(opened.report.repairNeeded)
        // Without repair the same log refuses to start, as before.
        XCTAssertThrowsError(try Support.open(misdirected, options: Support.options(segmentBytes: 64 << 10)))
    }

    /// The ledger: damage stays pending across restarts until `.repaired` is durable; then the
    /// same damage found again needs no repair, new damage does, and a damaged segment is not
    /// appended to.
    func testDamageStaysPendingUntilRepairedAndIsNotRepairedTwice() throws {
        let fileSystem = FaultInjectingFileSystem()
        let layout = try writeLog(fileSystem)
        let damagedSegment = layout.storage.wal.activePath
        fileSystem.flipBit(path: damagedSegment, byteOffset: layout.ranges[1].lowerBound + 50, bit: 4)
        fileSystem.crash()
        var opened = try Support.open(fileSystem, options: Self.repairing)
        XCTAssertTrue(opened.report.repairNeeded)
        XCTAssertNotEqual(opened.storage.wal.activePath, damagedSegment, "a damaged segment is not written to again")
        // A crash before the repair finished: still pending.
        opened.storage.append(PersistBatch(id: 1, records: [Self.record(7)], messagesAfterDurable: []))
        try opened.storage.sync()
        fileSystem.crash()
        opened = try Support.open(fileSystem, options: Self.repairing)
        XCTAssertTrue(opened.report.repairNeeded)
        XCTAssertEqual(accepted(opened.records), [1, 3, 4, 5, 6, 7])
        // The replica finished: its promise and `.repaired` are durable.
        opened.storage.append(PersistBatch(id: 1, records: [.promised(Self.ballot), .repaired], messagesAfterDurable: []))
        try opened.storage.sync()
        fileSystem.crash()
        opened = try Support.open(fileSystem, options: Self.repairing)
        XCTAssertFalse(opened.report.repairNeeded, opened.report.description)
        XCTAssertEqual(opened.report.damageAlreadyRepaired, 1)
        XCTAssertTrue(opened.records.contains(.repaired))
        // New damage elsewhere needs a repair again.
        fileSystem.flipBit(path: damagedSegment, byteOffset: layout.ranges[4].lowerBound + 60, bit: 2)
        fileSystem.crash()
        opened = try Support.open(fileSystem, options: Self.repairing)
        XCTAssertTrue(opened.report.repairNeeded)
        XCTAssertEqual(opened.report.damage.count, 2)
        XCTAssertEqual(opened.report.damageAlreadyRepaired, 1)
    }

    /// Pending damage outlives the damaged segment: a snapshot may prune it while the repair
    /// runs, and a restart must still repair (nothing else remembers what was lost).
    func testPendingRepairSurvivesTheDamagedSegmentsRemoval() throws {
        let fileSystem = FaultInjectingFileSystem()
        let layout = try writeLog(fileSystem)
        let damagedSegment = layout.storage.wal.activePath
        fileSystem.flipBit(path: damagedSegment, byteOffset: layout.ranges[2].lowerBound + 40, bit: 0)
        fileSystem.crash()
        var opened = try Support.open(fileSystem, options: Self.repairing)
        XCTAssertTrue(opened.report.repairNeeded)
        opened.storage.append(PersistBatch(id: 1, records: [.snapshot(Snapshot(slot: 10, data: [1, 2, 3]))], messagesAfterDurable: []))
        try opened.storage.sync()
        XCTAssertFalse(fileSystem.exists(damagedSegment), "the snapshot pruned the damaged segment")
        fileSystem.crash()
        opened = try Support.open(fileSystem, options: Self.repairing)
        XCTAssertTrue(opened.report.damage.isEmpty)
        XCTAssertTrue(opened.report.repairNeeded, "the damage is gone from the log but not repaired")
    }

    /// A ledger that fails its checksum: what awaits repair is unknown, so recovery refuses.
    func testADamagedLedgerIsCorruption() throws {
        let fileSystem = FaultInjectingFileSystem()
        let layout = try writeLog(fileSystem)
        fileSystem.flipBit(path: layout.storage.wal.activePath, byteOffset: layout.ranges[1].lowerBound + 10, bit: 6)
        fileSystem.crash()
        _ = try Support.open(fileSystem, options: Self.repairing)
        let ledger = Support.directory + "/" + RepairLedger.fileName
        fileSystem.flipBit(path: ledger, byteOffset: 3, bit: 0)
        XCTAssertThrowsError(try Support.open(fileSystem, options: Self.repairing)) { error in
            guard case StorageError.corruption(let path, _, let reason) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(path, ledger)
            XCTAssertTrue(reason.contains("checksum"), reason)
        }
    }

    /// A damaged snapshot file is passed over for the next older one and reported for repair
    /// (the replica catches up past its slot before it votes); without repair it is refused.
    func testADamagedSnapshotFallsBackToTheOlderOneAndNeedsRepair() throws {
        let fileSystem = FaultInjectingFileSystem()
        let storage = try Support.open(fileSystem, options: Self.repairing).storage
        for (index, slot) in ([10, 20] as [Slot]).enumerated() {
            storage.append(PersistBatch(id: UInt64(index + 1), records: [Self.record(slot), .snapshot(Snapshot(slot: slot, data: Array(repeating: UInt8(slot), count: 64)))],
                                        messagesAfterDurable: []))
            try storage.sync()
        }
        storage.append(PersistBatch(id: 3, records: [Self.record(21)], messagesAfterDurable: []))
        try storage.sync()
        let newest = Support.directory + "/snap/" + SnapshotStore.fileName(slot: 20)
        fileSystem.flipBit(path: newest, byteOffset: 60, bit: 2)
        fileSystem.crash()
        XCTAssertThrowsError(try Support.open(fileSystem, options: Support.options(segmentBytes: 64 << 10)))
        let opened = try Support.open(fileSystem, options: Self.repairing)
        XCTAssertEqual(opened.report.snapshotSlot, 10)
        XCTAssertEqual(opened.report.damage.map(\.segment), ["snap/" + SnapshotStore.fileName(slot: 20)])
        XCTAssertTrue(opened.report.repairNeeded)
        // Log records after the older snapshot are kept (here the segment was not pruned);
        // what only the damaged snapshot held is caught up from the others.
        XCTAssertEqual(accepted(opened.records), [20, 21])
    }
}
