import XCTest
@testable import SynodKV

final class LeaseWatchCompactTests: XCTestCase {
    func testCompactErrorsAndKeptVersions() throws {
        var store = KVStore()
        try store.put("a", "1") // 2
        try store.put("a", "2") // 3
        try store.put("b", "1") // 4
        _ = try store.deleteRange(DeleteRangeRequest(key: b("b"))) // 5
        try store.put("c", "1") // 6
        assertKVError(.futureRevision, "etcdserver: mvcc: required revision is a future revision") {
            try store.compact(revision: 7)
        }
        XCTAssertEqual(try store.compact(revision: 5), 6)
        assertKVError(.compacted, "etcdserver: mvcc: required revision has been compacted") {
            try store.compact(revision: 5)
        }
        assertKVError(.compacted, "etcdserver: mvcc: required revision has been compacted") {
            try store.compact(revision: 3)
        }
        // "a" keeps its latest write at or before 5; "b" (deleted at 5) is gone entirely.
        XCTAssertEqual(store.index.history(for: b("a"))?.entries.count, 1)
        XCTAssertNil(store.index.history(for: b("b")))
        XCTAssertEqual(try store.get("a", revision: 5)?.value, b("2"))
        XCTAssertEqual(try store.get("a")?.version, 2)
        XCTAssertEqual(store.revision, 6, "compaction takes no revision")
        XCTAssertEqual(try store.compact(revision: 6), 6)
    }

    func testLeaseGrantRevokeDeletesAttachedKeysInOneRevision() throws {
        var store = KVStore()
        _ = try store.leaseGrant(id: 1, ttlSeconds: 30)
        _ = try store.leaseGrant(id: 2, ttlSeconds: 60)
        assertKVError(.leaseExists, "etcdserver: lease already exists") { try store.leaseGrant(id: 1, ttlSeconds: 5) }
        assertKVError(.leaseTTLTooLarge, "etcdserver: too large lease TTL") {
            try store.leaseGrant(id: 3, ttlSeconds: KVStore.leaseTTLSecondsMax + 1)
        }
        XCTAssertEqual(store.leaseIDs, [1, 2])
        try store.put("z", "1", lease: 1) // 2
        try store.put("y", "1", lease: 1) // 3
        try store.put("x", "1", lease: 2) // 4
        try store.put("w", "1") // 5
        XCTAssertEqual(try store.leaseInfo(id: 1), LeaseInfo(id: 1, grantedTTL: 30, keys: [b("y"), b("z")]))
        // Moving a key to another lease detaches it from the first.
        try store.put("x", "2", lease: 1) // 6
        XCTAssertEqual(try store.leaseInfo(id: 2).keys, [])
        _ = try store.deleteRange(DeleteRangeRequest(key: b("z"))) // 7
        try store.put("z", "again", lease: 1) // 8

        let (revision, events) = try store.leaseRevoke(id: 1)
        XCTAssertEqual(revision, 9)
        XCTAssertEqual(store.revision, 9)
        XCTAssertEqual(events.map(\.kind), [.delete, .delete, .delete])
        XCTAssertEqual(events.map(\.kv.key), [b("x"), b("y"), b("z")], "deleted in key order")
        XCTAssertEqual(events.map(\.sub), [0, 1, 2])
        XCTAssertEqual(try store.keys(RangeRequest(key: [0], rangeEnd: [0])), ["w"])
        XCTAssertEqual(store.leaseIDs, [2])
        assertKVError(.leaseNotFound, "etcdserver: requested lease not found") { try store.leaseRevoke(id: 1) }
        assertKVError(.leaseNotFound, "etcdserver: requested lease not found") { try store.leaseInfo(id: 1) }
        // Revoking a lease with no keys takes no revision.
        XCTAssertEqual(try store.leaseRevoke(id: 2).revision, 9)
        XCTAssertEqual(store.revision, 9)
    }

    func testWatchHistoryAndCompaction() throws {
        var store = KVStore()
        try store.put("a", "1") // 2
        try store.put("b", "1") // 3
        try store.put("a", "2") // 4
        _ = try store.deleteRange(DeleteRangeRequest(key: b("a"))) // 5
        _ = try store.txn(TxnRequest(success: [.put(PutRequest(key: b("b"), value: b("2"))),
                                               .put(PutRequest(key: b("c"), value: b("1")))])) // 6
        let all = try store.events(from: 1, key: [0], rangeEnd: [0])
        XCTAssertEqual(all.map(\.kv.modRevision), [2, 3, 4, 5, 6, 6])
        XCTAssertEqual(all.map(\.kind), [.put, .put, .put, .delete, .put, .put])
        XCTAssertEqual(all.map(\.kv.key), [b("a"), b("b"), b("a"), b("a"), b("b"), b("c")])
        XCTAssertEqual(all[2].prevKv?.value, b("1"))
        XCTAssertEqual(all[3].prevKv?.value, b("2"))
        XCTAssertEqual(all[3].kv, KeyValue(key: b("a"), modRevision: 5))
        XCTAssertNil(all[0].prevKv)

        let batch = try store.events(from: 1, key: [0], rangeEnd: [0], revisionsMax: 5)
        XCTAssertEqual(batch.map(\.kv.modRevision), [2, 3, 4, 5, 6, 6], "a revision is never split")
        let smaller = try store.events(from: 1, key: [0], rangeEnd: [0], revisionsMax: 4)
        XCTAssertEqual(smaller.map(\.kv.modRevision), [2, 3, 4, 5])
        XCTAssertEqual(try store.events(from: 1, key: [0], rangeEnd: [0], revisionsMax: 0), [])
        let onlyA = try store.events(from: 4, key: b("a"))
        XCTAssertEqual(onlyA.map(\.kv.modRevision), [4, 5])
        XCTAssertEqual(try store.events(from: 7, key: [0], rangeEnd: [0]), [])

        // History after compaction: from the compaction revision on still works.
        _ = try store.compact(revision: 4)
        assertKVError(.compacted, "etcdserver: mvcc: required revision has been compacted") {
            try store.events(from: 3, key: [0], rangeEnd: [0])
        }
        let after = try store.events(from: 4, key: [0], rangeEnd: [0])
        XCTAssertEqual(after.map(\.kv.modRevision), [4, 5, 6, 6])
        XCTAssertNil(after[0].prevKv, "the write before the compaction revision is gone")
        XCTAssertEqual(after[1].prevKv?.value, b("2"))
    }

    func testLiveEventsMatchHistory() throws {
        var store = KVStore()
        var live: [WatchEvent] = []
        live += try store.put(PutRequest(key: b("a"), value: b("1"))).1
        live += try store.put(PutRequest(key: b("a"), value: b("2"))).1
        live += try store.deleteRange(DeleteRangeRequest(key: b("a"))).1
        live += try store.txn(TxnRequest(success: [.put(PutRequest(key: b("b"), value: b("1")))])).1
        XCTAssertEqual(try store.events(from: 1, key: [0], rangeEnd: [0]), live)
    }
}
