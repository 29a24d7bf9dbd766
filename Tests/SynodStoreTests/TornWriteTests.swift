import SynodCore
@testable import SynodStore
import XCTest

/// A crash may leave any subset of the last write's disk sectors on disk — a later sector and
/// not an earlier one. Recovery discards that write (it was never synced, so never
/// acknowledged) and keeps everything before it; the same damage in a write that other writes
/// follow is corruption, because a write starts only after the previous one was synced.
final class TornWriteTests: XCTestCase {
    private typealias Support = StorageTestSupport

    private static let ballot = Ballot(round: 2, node: NodeID(1))

    /// An accepted record whose payload is `bytes` bytes of non-zero, slot-dependent data.
    private static func record(_ slot: Slot, bytes: Int) -> DurableRecord {
        .accepted(slot: slot, ballot: ballot, value: .batch([
            Command(clientID: 7, sequence: slot, payload: (0..<bytes).map { UInt8(1 + ($0 + Int(slot)) % 250) })]))
    }

    private func entries(_ records: [DurableRecord]) -> [DurableRecord] {
        records.filter { if case .promised = $0 { return false } else { return true } }
    }

    /// Five synced writes; the last is three records spanning several sectors. Returns the
    /// storage, the records of each write, and each write's byte range in the active segment.
    private func writeLog(_ fileSystem: FaultInjectingFileSystem, options: StorageOptions = Support.options(segmentBytes: 64 << 10))
        throws -> (storage: DurableStorage, writes: [[DurableRecord]], ranges: [Range<Int>]) {
        let storage = try Support.open(fileSystem, options: options).storage
        var writes: [[DurableRecord]] = []
        var ranges: [Range<Int>] = []
        for write in 1...5 {
            let base = Slot(write * 10)
            let records = write == 5 ? [Self.record(base, bytes: 900), Self.record(base + 1, bytes: 700), Self.record(base + 2, bytes: 800)]
                                     : [Self.record(base, bytes: 100 * write)]
            let start = Int(storage.wal.activeTail)
            storage.append(PersistBatch(id: UInt64(write), records: records, messagesAfterDurable: []))
            try storage.sync()
            writes.append(records)
            ranges.append(start..<Int(storage.wal.activeTail))
        }
        return (storage, writes, ranges)
    }

    /// The sectors a byte range touches, clipped to it.
    private func sectors(of range: Range<Int>) -> [Range<Int>] {
        FaultInjectingFileSystem.sectors(offset: range.lowerBound, count: range.count)
    }

    func testAnySubsetOfTheLastWritesSectorsMissingDiscardsThatWriteAndKeepsTheRest() throws {
        let probe = FaultInjectingFileSystem()
        let layout = try writeLog(probe)
        let pieces = sectors(of: layout.ranges[4])
        XCTAssertGreaterThanOrEqual(pieces.count, 5, "the last write should span several sectors")
        var holesBeforeData = 0
        for lost in 1..<(1 << pieces.count) {
            let fileSystem = FaultInjectingFileSystem()
            let (storage, writes, _) = try writeLog(fileSystem)
            let path = storage.wal.activePath
            for (index, piece) in pieces.enumerated() where lost & (1 << index) != 0 {
                fileSystem.overwrite(path: path, byteOffset: piece.lowerBound, with: [UInt8](repeating: 0, count: piece.count))
            }
            if lost & 1 != 0 && lost != (1 << pieces.count) - 1 { holesBeforeData += 1 }
            fileSystem.crash()
            let reopened = try Support.open(fileSystem, options: Support.options(segmentBytes: 64 << 10))
            XCTAssertEqual(entries(reopened.records), Array(writes.prefix(4).joined()), "sectors lost: \(String(lost, radix: 2))")
            if lost == (1 << pieces.count) - 1 {
                XCTAssertNil(reopened.report.tornTail, "a write none of whose sectors reached the disk leaves the clean end")
            } else {
                XCTAssertEqual(reopened.report.tornTail?.offset, UInt64(layout.ranges[4].lowerBound), "sectors lost: \(String(lost, radix: 2))")
                XCTAssertEqual(reopened.report.tornTail?.path, path)
            }
            // The log goes on from there, and the next recovery finds no damage.
            let next = Self.record(99, bytes: 50)
            reopened.storage.append(PersistBatch(id: 9, records: [next], messagesAfterDurable: []))
            try reopened.storage.sync()
            fileSystem.crash()
            let again = try Support.open(fileSystem, options: Support.options(segmentBytes: 64 << 10))
            XCTAssertEqual(entries(again.records), Array(writes.prefix(4).joined()) + [next])
            XCTAssertNil(again.report.tornTail)
        }
        XCTAssertGreaterThan(holesBeforeData, 5, "cases where the write's first sector is lost but a later one is on disk")
    }

    /// The same missing sector in any earlier write is corruption: a later write exists, and a
    /// write starts only after the one before it was synced. Also shows that the negative
    /// control, a recovery that cuts the log at any damage, loses acknowledged records here.
    func testALostSectorInAWriteThatOthersFollowIsCorruption() throws {
        for write in 0..<4 {
            let fileSystem = FaultInjectingFileSystem()
            let (storage, writes, ranges) = try writeLog(fileSystem)
            let path = storage.wal.activePath
            let piece = sectors(of: ranges[write]).last!
            fileSystem.overwrite(path: path, byteOffset: piece.lowerBound, with: [UInt8](repeating: 0, count: piece.count))
            fileSystem.crash()
            XCTAssertThrowsError(try Support.open(fileSystem, options: Support.options(segmentBytes: 64 << 10)), "write \(write + 1)") { error in
                guard case StorageError.corruption(let where_, let offset, let reason) = error else { return XCTFail("\(error)") }
                XCTAssertEqual(where_, path)
                XCTAssertTrue(ranges[write].contains(Int(offset)), "offset \(offset) outside write \(write + 1): \(reason)")
                XCTAssertTrue(reason.contains("synced"), reason)
            }

            var broken = Support.options(segmentBytes: 64 << 10)
            broken.unsafeTruncateAtDamage = true
            let trusting = try Support.open(fileSystem, options: broken)
            XCTAssertLessThan(entries(trusting.records).count, writes.joined().count,
                              "the negative control should lose the acknowledged records after the damage")
        }
    }

    /// Damage that zeros cannot explain, in the last write too: a flipped bit, or a whole
    /// earlier write's bytes where the last write should be (a misdirected write: a valid mark,
    /// but the wrong write number).
    func testDamageThatIsNoLostSectorIsCorruptionEvenInTheLastWrite() throws {
        let fileSystem = FaultInjectingFileSystem()
        let (storage, _, ranges) = try writeLog(fileSystem)
        let path = storage.wal.activePath
        fileSystem.flipBit(path: path, byteOffset: ranges[4].lowerBound + 700, bit: 3)
        fileSystem.crash()
        XCTAssertThrowsError(try Support.open(fileSystem, options: Support.options(segmentBytes: 64 << 10))) { error in
            guard case StorageError.corruption(_, _, let reason) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(reason.contains("not a missing piece"), reason)
        }

        let misdirected = FaultInjectingFileSystem()
        let second = try writeLog(misdirected)
        let content = try XCTUnwrap(misdirected.durableContent(of: second.storage.wal.activePath))
        let earlier = Array(content[second.ranges[3]])
        misdirected.overwrite(path: second.storage.wal.activePath, byteOffset: second.ranges[4].lowerBound, with: earlier)
        misdirected.crash()
        XCTAssertThrowsError(try Support.open(misdirected, options: Support.options(segmentBytes: 64 << 10))) { error in
            guard case StorageError.corruption(_, let offset, let reason) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(Int(offset), second.ranges[4].lowerBound)
            XCTAssertTrue(reason.contains("write number 4, expected 5"), reason)
        }
    }

    /// Crashes with random tearing (prefixes and sector subsets) of big writes: whatever was
    /// acknowledged survives, the log is a prefix of what was written, and sector-subset
    /// tears that used to stop the node are cut off.
    func testWritesWhoseSectorsLandInAnyOrderLoseNothingAcknowledged() throws {
        var discarded = 0
        for seed in 1...200 as ClosedRange<UInt64> {
            let fileSystem = FaultInjectingFileSystem()
            var random = SplitMix64(seed: seed)
            var (storage, _, _) = try Support.open(fileSystem, options: Support.options(segmentBytes: 16 << 10))
            var acknowledged: [DurableRecord] = []
            var written: [DurableRecord] = []
            var slot: Slot = 0
            for round in 0..<3 {
                for _ in 0..<Int(1 + random.next() % 6) {
                    let batch = (0..<Int(1 + random.next() % 4)).map { _ -> DurableRecord in
                        slot += 1
                        return Self.record(slot, bytes: Int(1 + random.next() % 1500))
                    }
                    storage.append(PersistBatch(id: slot, records: batch, messagesAfterDurable: []))
                    written += batch
                    try storage.sync()
                    acknowledged = written
                }
                let batch = (0..<Int(1 + random.next() % 5)).map { _ -> DurableRecord in
                    slot += 1
                    return Self.record(slot, bytes: Int(1 + random.next() % 1500))
                }
                storage.append(PersistBatch(id: slot, records: batch, messagesAfterDurable: []))
                written += batch
                _ = try storage.beginSync()
                fileSystem.crash(random: &random, tearing: true)
                let reopened = try Support.open(fileSystem, options: Support.options(segmentBytes: 16 << 10))
                if reopened.report.discardedBytes > 0 { discarded += 1 }
                let recovered = entries(reopened.records)
                XCTAssertGreaterThanOrEqual(recovered.count, acknowledged.count, "seed \(seed) round \(round): acknowledged record lost")
                XCTAssertEqual(recovered, Array(written.prefix(recovered.count)), "seed \(seed) round \(round): not a prefix")
                written = recovered
                acknowledged = recovered
                storage = reopened.storage
            }
        }
        XCTAssertGreaterThan(discarded, 50, "torn last writes should be discarded in many runs")
    }

    /// Segments written before write marks existed (format version 1) are still read, and the
    /// next write goes to a new version 2 segment.
    func testVersion1SegmentsAreStillReadAndNeverAppendedTo() throws {
        let fileSystem = FaultInjectingFileSystem()
        _ = try Support.open(fileSystem)
        fileSystem.crash()
        let wal = Support.directory + "/wal"
        for name in try fileSystem.listDirectory(wal) { try fileSystem.remove(wal + "/" + name) }
        var segment = SegmentHeader(sequence: 1, version: 1).encoded()
        let old = [DurableRecord.promised(Self.ballot), Self.record(1, bytes: 40), .chosen(slot: 1, value: .noop)]
        for record in old { RecordCodec.append(record, to: &segment) }
        let file = try fileSystem.open(wal + "/" + SegmentHeader.fileName(sequence: 1), create: true)
        try file.preallocate(4 << 10)
        try file.write(segment, at: 0)
        try file.sync()
        file.close()
        try fileSystem.syncDirectory(wal)

        // A crash while creating segment 2 left it blank: it is removed, and the new segment
        // takes its number (numbering past it would leave a gap the next start refuses).
        let blank = try fileSystem.open(wal + "/" + SegmentHeader.fileName(sequence: 2), create: true)
        try blank.preallocate(4 << 10)
        try blank.sync()
        blank.close()
        try fileSystem.syncDirectory(wal)

        let opened = try Support.open(fileSystem)
        XCTAssertEqual(opened.records, old)
        XCTAssertEqual(opened.storage.wal.activeSequence, 2, "a version 1 segment is never appended to")
        let next = Self.record(2, bytes: 30)
        opened.storage.append(PersistBatch(id: 1, records: [next], messagesAfterDurable: []))
        try opened.storage.sync()
        fileSystem.crash()
        let again = try Support.open(fileSystem)
        XCTAssertEqual(entries(again.records), entries(old) + [next])
    }
}
