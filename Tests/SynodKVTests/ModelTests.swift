import SynodCore
import XCTest
@testable import SynodKV

/// Random operations against a deliberately simple reference model (a dictionary plus a
/// revision counter), comparing range results at the latest revision after every step.
final class ModelTests: XCTestCase {
    private struct Model {
        var revision: Int64 = 1
        var kvs: [[UInt8]: KeyValue] = [:]
        var leases: [Int64: Set<[UInt8]>] = [:]

        func inRange(_ key: [UInt8], _ start: [UInt8], _ end: [UInt8]) -> Bool {
            if end.isEmpty { return key == start }
            if key.lexicographicallyPrecedes(start) { return false }
            return end == [0] || key.lexicographicallyPrecedes(end)
        }

        func sortedKVs(_ start: [UInt8], _ end: [UInt8]) -> [KeyValue] {
            kvs.values.filter { inRange($0.key, start, end) }.sorted { $0.key.lexicographicallyPrecedes($1.key) }
        }

        /// Writes at `revision` (the caller bumps it once per request).
        mutating func put(_ key: [UInt8], _ value: [UInt8], lease: Int64, at revision: Int64) {
            let old = kvs[key]
            if let old, old.lease != 0 { leases[old.lease]?.remove(key) }
            if lease != 0 { leases[lease]?.insert(key) }
            kvs[key] = KeyValue(key: key, createRevision: old?.createRevision ?? revision, modRevision: revision,
                                version: (old?.version ?? 0) + 1, value: value, lease: lease)
        }

        mutating func delete(_ key: [UInt8]) {
            if let old = kvs.removeValue(forKey: key), old.lease != 0 { leases[old.lease]?.remove(key) }
        }
    }

    func testRandomOperationsMatchModel() throws {
        for seed in UInt64(1)...8 {
            try run(seed: seed, steps: 400)
        }
    }

    private func run(seed: UInt64, steps: Int) throws {
        var random = RandomCommands(seed: seed)
        var store = KVStore()
        var model = Model()
        for step in 0..<steps {
            let context = "seed \(seed) step \(step)"
            switch random.int(0...9) {
            case 0...3:
                let key = random.key()
                let value = random.value()
                let lease: Int64 = random.int(0...3) == 0 ? Int64(random.int(1...3)) : 0
                if lease != 0 && model.leases[lease] == nil {
                    XCTAssertThrowsError(try store.put(PutRequest(key: key, value: value, lease: lease)), context)
                } else {
                    _ = try store.put(PutRequest(key: key, value: value, lease: lease))
                    model.revision += 1
                    model.put(key, value, lease: lease, at: model.revision)
                }
            case 4, 5:
                let key = random.key()
                let end = random.rangeEnd()
                let doomed = model.sortedKVs(key, end)
                let (response, events) = try store.deleteRange(DeleteRangeRequest(key: key, rangeEnd: end, prevKv: true))
                XCTAssertEqual(response.prevKvs, doomed, context)
                XCTAssertEqual(events.count, doomed.count, context)
                if !doomed.isEmpty { model.revision += 1 }
                for kv in doomed { model.delete(kv.key) }
            case 6:
                // Compare-and-swap on one key's version, as clients do for optimistic updates.
                let key = random.key()
                let other = random.key()
                let expected = Int64(random.int(0...2))
                let txn = TxnRequest(
                    compare: [Compare(key: key, result: .equal, target: .version(expected))],
                    success: [.put(PutRequest(key: key, value: [1]))],
                    failure: [.deleteRange(DeleteRangeRequest(key: other))])
                let (response, _) = try store.txn(txn)
                let holds = (model.kvs[key]?.version ?? 0) == expected
                XCTAssertEqual(response.succeeded, holds, context)
                if holds {
                    model.revision += 1
                    model.put(key, [1], lease: 0, at: model.revision)
                } else if model.kvs[other] != nil {
                    model.revision += 1
                    model.delete(other)
                }
            case 7:
                let id = Int64(random.int(1...3))
                if model.leases[id] == nil {
                    _ = try store.leaseGrant(id: id, ttlSeconds: 10)
                    model.leases[id] = []
                } else {
                    let keys = model.leases[id] ?? []
                    _ = try store.leaseRevoke(id: id)
                    if !keys.isEmpty { model.revision += 1 }
                    for key in keys { model.delete(key) }
                    model.leases[id] = nil
                }
            case 8:
                let target = Int64(random.int(1...Int(model.revision)))
                _ = try? store.compact(revision: target)
            default:
                let key = random.key()
                let end = random.rangeEnd()
                let limit = Int64(random.int(0...3))
                let expected = model.sortedKVs(key, end)
                let response = try store.range(RangeRequest(key: key, rangeEnd: end, limit: limit))
                XCTAssertEqual(response.count, Int64(expected.count), context)
                XCTAssertEqual(response.more, limit > 0 && expected.count > Int(limit), context)
                XCTAssertEqual(response.kvs, Array(expected.prefix(limit > 0 ? Int(limit) : expected.count)), context)
            }
            XCTAssertEqual(store.revision, model.revision, context)
            XCTAssertEqual(try store.range(RangeRequest(key: [0], rangeEnd: [0])).kvs, model.sortedKVs([0], [0]), context)
            for id in store.leaseIDs {
                let keys = (model.leases[id] ?? []).sorted { $0.lexicographicallyPrecedes($1) }
                XCTAssertEqual(try store.leaseInfo(id: id).keys, keys, context)
            }
            XCTAssertEqual(store.leaseIDs, model.leases.keys.sorted(), context)
        }
    }
}
