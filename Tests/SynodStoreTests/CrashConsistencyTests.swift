import SynodCore
@testable import SynodStore
import XCTest

/// Crash consistency: crashes at every write and fsync boundary, unsynced data dropped or
/// torn at random bytes, and bits flipped in random records. After recovery every record
/// reported durable is present and intact, nothing corrupt is returned, and corruption is
/// reported rather than hidden.
final class CrashConsistencyTests: XCTestCase {
    private typealias Support = StorageTestSupport

    /// The non-promise records of a log, in order (segments repeat the highest promise).
    private func entries(_ records: [DurableRecord]) -> [DurableRecord] {
        records.filter { if case .promised = $0 { return false } else { return true } }
    }

    /// Runs a workload and crashes after the `crashPoint`-th storage step (append, write, or
    /// fsync), with or without torn writes; checks the recovered log is exactly a prefix of
    /// what was appended that contains everything acknowledged.
    private func crashAndCheck(seed: UInt64, crashPoint: Int, tearing: Bool) throws {
        let fileSystem = FaultInjectingFileSystem()
        let (storage, _, _) = try Support.open(fileSystem, options: Support.options(segmentBytes: 2 << 10))
        var random = SplitMix64(seed: seed)
        var slot: Slot = 0
        var round: UInt64 = 0
        var appended: [DurableRecord] = []
        var acknowledgedCount = 0
        var pendingCount = 0
        var steps = 0
        var id: UInt64 = 0
        stepping: while steps < crashPoint {
            switch random.next() % 3 {
            case 0:
                id += 1
                let batch = (0..<Int(1 + random.next() % 3)).map { _ in Support.randomRecord(&random, slot: &slot, round: &round) }
                storage.append(PersistBatch(id: id, records: batch, messagesAfterDurable: []))
                appended += batch
            default:
                guard try storage.beginSync() != nil else { continue stepping }
                pendingCount = appended.count
                steps += 1
                if steps == crashPoint { break stepping }
                _ = try storage.completeSync()
                acknowledgedCount = pendingCount
            }
            steps += 1
        }
        if tearing {
            fileSystem.crash(random: &random, tearing: true)
        } else {
            fileSystem.crash()
        }
        let recovered = entries(try Support.open(fileSystem, options: Support.options(segmentBytes: 2 << 10)).records)
        let expected = entries(appended)
        XCTAssertGreaterThanOrEqual(recovered.count, entries(Array(appended.prefix(acknowledgedCount))).count,
                                    "seed \(seed) crash \(crashPoint): an acknowledged record is missing")
        XCTAssertEqual(recovered, Array(expected.prefix(recovered.count)),
                       "seed \(seed) crash \(crashPoint): recovered records are not a prefix of what was written")
    }

    func testCrashAtEveryWriteAndSyncBoundaryLosesNothingAcknowledged() throws {
        for seed in 1...8 as ClosedRange<UInt64> {
            for crashPoint in 1...60 { try crashAndCheck(seed: seed, crashPoint: crashPoint, tearing: false) }
        }
    }

    func testTornWritesAtRandomBytesAreCutOffCleanly() throws {
        for seed in 100...400 as ClosedRange<UInt64> {
            try crashAndCheck(seed: seed, crashPoint: 1 + Int(seed % 50), tearing: true)
        }
    }

    /// After a torn tail is cut off, the log keeps working: more records, another crash,
    /// and everything acknowledged is still there.
    func testTheLogIsUsableAfterATornTail() throws {
        var tornSeen = 0
        for seed in 1...120 as ClosedRange<UInt64> {
            let fileSystem = FaultInjectingFileSystem()
            var random = SplitMix64(seed: seed)
            var (storage, _, _) = try Support.open(fileSystem)
            let ballot = Ballot(round: 1, node: NodeID(1))
            var acknowledged: [DurableRecord] = []
            for slot in 1...10 {
                let record = DurableRecord.accepted(slot: Slot(slot), ballot: ballot, value: .batch([
                    Command(clientID: 1, sequence: UInt64(slot), payload: [UInt8](repeating: UInt8(slot), count: 100))]))
                storage.append(PersistBatch(id: UInt64(slot), records: [record], messagesAfterDurable: []))
                if slot < 10 {
                    try storage.sync()
                    acknowledged.append(record)
                } else {
                    _ = try storage.beginSync()  // written, never synced
                }
            }
            fileSystem.crash(random: &random, tearing: true)
            let reopened = try Support.open(fileSystem)
            if reopened.report.tornTail != nil { tornSeen += 1 }
            XCTAssertEqual(Array(entries(reopened.records).prefix(9)), acknowledged)
            storage = reopened.storage
            let next = DurableRecord.chosen(slot: 10, value: .noop)
            storage.append(PersistBatch(id: 100, records: [next], messagesAfterDurable: []))
            try storage.sync()
            fileSystem.crash(random: &random, tearing: true)
            let again = entries(try Support.open(fileSystem).records)
            XCTAssertEqual(Array(again.prefix(9)), acknowledged)
            XCTAssertEqual(again.last, next)
        }
        XCTAssertGreaterThan(tornSeen, 5, "torn tails should occur in some seeds")
    }

    /// A flipped bit anywhere in the written part of a segment is reported as corruption,
    /// naming the file, never returned as a record and never silently dropped.
    func testFlippedBitsAreReportedNotHidden() throws {
        for seed in 1...300 as ClosedRange<UInt64> {
            let fileSystem = FaultInjectingFileSystem()
            let (storage, _, _) = try Support.open(fileSystem)
            var random = SplitMix64(seed: seed)
            var slot: Slot = 0
            var round: UInt64 = 0
            for id in 1...Int(1 + random.next() % 30) {
                let batch = (0..<Int(1 + random.next() % 3)).map { _ in Support.randomRecord(&random, slot: &slot, round: &round) }
                storage.append(PersistBatch(id: UInt64(id), records: batch, messagesAfterDurable: []))
                try storage.sync()
            }
            let wal = Support.directory + "/wal"
            let names = try fileSystem.listDirectory(wal)
            let path = wal + "/" + names[Int(random.next() % UInt64(names.count))]
            let content = try XCTUnwrap(fileSystem.durableContent(of: path))
            guard let lastData = content.lastIndex(where: { $0 != 0 }) else { continue }
            let offset = Int(random.next() % UInt64(lastData + 1))
            fileSystem.flipBit(path: path, byteOffset: offset, bit: Int(random.next() % 8))
            fileSystem.crash()
            XCTAssertThrowsError(try Support.open(fileSystem), "seed \(seed): flip at \(offset) of \(path) went unnoticed") { error in
                switch error as? StorageError {
                case .corruption(let where_, _, _): XCTAssertEqual(where_, path, "seed \(seed)")
                case .incompatibleVersion: break  // the flip hit the segment header's version byte
                default: XCTFail("seed \(seed): \(error)")
                }
            }
        }
    }

    /// The hardest case for telling corruption from a torn write: damage to the header of
    /// the very last, acknowledged record, with nothing but zeros after it. Every bit of its
    /// frame header is flipped in turn; each must be reported, none may pass as a torn tail.
    func testDamageToTheLastRecordsHeaderIsNotMistakenForATornTail() throws {
        for bit in 0..<(8 * 9) {
            let fileSystem = FaultInjectingFileSystem()
            let (storage, _, _) = try Support.open(fileSystem)
            let ballot = Ballot(round: 3, node: NodeID(1))
            storage.append(PersistBatch(id: 1, records: [.promised(ballot)], messagesAfterDurable: []))
            try storage.sync()
            let lastStart = storage.wal.activeTail
            storage.append(PersistBatch(id: 2, records: [.accepted(slot: 1, ballot: ballot, value: .batch([
                Command(clientID: 9, sequence: 1, payload: [1, 2, 3])]))], messagesAfterDurable: []))
            try storage.sync()
            let path = storage.wal.activePath
            fileSystem.flipBit(path: path, byteOffset: Int(lastStart) + bit / 8, bit: bit % 8)
            fileSystem.crash()
            XCTAssertThrowsError(try Support.open(fileSystem), "flipping header bit \(bit) of the last record went unnoticed") { error in
                guard case StorageError.corruption(let where_, let offset, _) = error else { return XCTFail("\(error)") }
                XCTAssertEqual(where_, path)
                XCTAssertEqual(offset, lastStart)
            }
        }
    }

    /// A damaged length in an earlier record can claim every later record as its own, so that
    /// the log seems to end in a torn write. Every bit of the length of the second of several
    /// synced records is flipped in turn: each must be reported.
    func testADamagedLengthCannotSwallowTheRecordsAfterIt() throws {
        for bit in 0..<32 {
            let fileSystem = FaultInjectingFileSystem()
            let (storage, _, _) = try Support.open(fileSystem)
            let ballot = Ballot(round: 3, node: NodeID(1))
            var starts: [UInt64] = []
            for slot in 1...5 {
                starts.append(storage.wal.activeTail)
                storage.append(PersistBatch(id: UInt64(slot), records: [.accepted(slot: Slot(slot), ballot: ballot, value: .batch([
                    Command(clientID: 9, sequence: UInt64(slot), payload: [UInt8](repeating: 0x33, count: 40))]))], messagesAfterDurable: []))
                try storage.sync()
            }
            let path = storage.wal.activePath
            fileSystem.flipBit(path: path, byteOffset: Int(starts[1]) + bit / 8, bit: bit % 8)
            fileSystem.crash()
            XCTAssertThrowsError(try Support.open(fileSystem), "flipping length bit \(bit) of record 2 went unnoticed") { error in
                guard case StorageError.corruption = error else { return XCTFail("\(error)") }
            }
        }
    }

    /// Random sequences of appends, syncs, snapshots and crashes against a model of what an
    /// acceptor must find after recovery: the highest promise, and every acknowledged
    /// accepted value at or above the latest snapshot.
    func testRandomOperationSequencesKeepEveryAcknowledgedRecord() throws {
        for seed in 1...80 as ClosedRange<UInt64> {
            let fileSystem = FaultInjectingFileSystem()
            var random = SplitMix64(seed: seed)
            var storage = try Support.open(fileSystem).storage
            var slot: Slot = 0
            var round: UInt64 = 0
            var id: UInt64 = 0
            var acknowledgedPromise = Ballot.zero
            var acknowledgedAccepts: [Slot: DurableRecord] = [:]
            var acknowledgedSnapshot: Slot = 0
            var inFlight: [DurableRecord] = []
            for _ in 0..<200 {
                switch random.next() % 10 {
                case 0...4:
                    id += 1
                    var batch = [Support.randomRecord(&random, slot: &slot, round: &round)]
                    if random.next() % 15 == 0, slot > 0 { batch.append(.snapshot(Snapshot(slot: slot, data: [UInt8(truncatingIfNeeded: slot)]))) }
                    storage.append(PersistBatch(id: id, records: batch, messagesAfterDurable: []))
                    inFlight += batch
                case 5...8:
                    try storage.sync()
                    for record in inFlight {
                        switch record {
                        case .promised(let ballot): acknowledgedPromise = max(acknowledgedPromise, ballot)
                        case .accepted(let recordSlot, let ballot, _):
                            acknowledgedPromise = max(acknowledgedPromise, ballot)
                            acknowledgedAccepts[recordSlot] = record
                        case .snapshot(let snapshot): acknowledgedSnapshot = max(acknowledgedSnapshot, snapshot.slot)
                        case .chosen, .membership, .repaired: break
                        }
                    }
                    inFlight.removeAll()
                default:
                    fileSystem.crash(random: &random, tearing: true)
                    let reopened = try Support.open(fileSystem)
                    storage = reopened.storage
                    id = 0
                    inFlight.removeAll()
                    var promise = Ballot.zero
                    var snapshotSlot: Slot = 0
                    var accepts: [Slot: DurableRecord] = [:]
                    for record in reopened.records {
                        switch record {
                        case .promised(let ballot): promise = max(promise, ballot)
                        case .accepted(let recordSlot, let ballot, _):
                            promise = max(promise, ballot)
                            accepts[recordSlot] = record
                        case .snapshot(let snapshot): snapshotSlot = snapshot.slot
                        case .chosen, .membership, .repaired: break
                        }
                    }
                    XCTAssertGreaterThanOrEqual(promise, acknowledgedPromise, "seed \(seed): promise regressed")
                    XCTAssertGreaterThanOrEqual(snapshotSlot, acknowledgedSnapshot, "seed \(seed): snapshot lost")
                    for (acknowledgedSlot, record) in acknowledgedAccepts where acknowledgedSlot > snapshotSlot {
                        XCTAssertEqual(accepts[acknowledgedSlot], record, "seed \(seed): slot \(acknowledgedSlot) lost")
                    }
                }
            }
        }
    }
}
