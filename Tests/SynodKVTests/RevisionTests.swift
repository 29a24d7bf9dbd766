import XCTest
@testable import SynodKV

final class RevisionTests: XCTestCase {
    func testEmptyStoreStartsAtRevisionOne() throws {
        let store = KVStore()
        XCTAssertEqual(store.revision, 1)
        XCTAssertNil(try store.get("a"))
        XCTAssertEqual(try store.range(RangeRequest(key: b("a"))).revision, 1)
    }

    func testCreateModVersionAcrossPutDeleteRecreate() throws {
        var store = KVStore()
        XCTAssertEqual(try store.put("k", "v1").revision, 2)
        var kv = try XCTUnwrap(store.get("k"))
        XCTAssertEqual([kv.createRevision, kv.modRevision, kv.version], [2, 2, 1])
        try store.put("other", "x") // rev 3
        try store.put("k", "v2") // rev 4
        kv = try XCTUnwrap(store.get("k"))
        XCTAssertEqual([kv.createRevision, kv.modRevision, kv.version], [2, 4, 2])
        XCTAssertEqual(kv.value, b("v2"))

        let (deleted, events) = try store.deleteRange(DeleteRangeRequest(key: b("k"), prevKv: true))
        XCTAssertEqual(deleted.deleted, 1)
        XCTAssertEqual(deleted.revision, 5)
        XCTAssertEqual(deleted.prevKvs.map(\.value), [b("v2")])
        XCTAssertEqual(events, [WatchEvent(kind: .delete, kv: KeyValue(key: b("k"), modRevision: 5), prevKv: kv, sub: 0)])
        XCTAssertNil(try store.get("k"))

        try store.put("k", "v3") // rev 6: a new generation
        kv = try XCTUnwrap(store.get("k"))
        XCTAssertEqual([kv.createRevision, kv.modRevision, kv.version], [6, 6, 1])
        XCTAssertEqual(store.revision, 6)
    }

    func testDeleteOfNothingTakesNoRevision() throws {
        var store = KVStore()
        try store.put("a", "1")
        let (response, events) = try store.deleteRange(DeleteRangeRequest(key: b("zzz")))
        XCTAssertEqual(response.deleted, 0)
        XCTAssertEqual(response.revision, 2)
        XCTAssertEqual(store.revision, 2)
        XCTAssertTrue(events.isEmpty)
    }

    func testDeleteRangeSharesOneRevisionWithSubRevisions() throws {
        var store = KVStore()
        for key in ["a", "b", "c", "d"] { try store.put(key, key) }
        let (response, events) = try store.deleteRange(DeleteRangeRequest(key: b("b"), rangeEnd: b("d")))
        XCTAssertEqual(response.deleted, 2)
        XCTAssertEqual(store.revision, 6)
        XCTAssertEqual(events.map(\.kv.modRevision), [6, 6])
        XCTAssertEqual(events.map(\.sub), [0, 1])
        XCTAssertEqual(try store.keys(RangeRequest(key: [0], rangeEnd: [0])), ["a", "d"])
    }

    func testPutPrevKvAndEvents() throws {
        var store = KVStore()
        try store.put("k", "old")
        let old = try store.get("k")
        let (response, events) = try store.put(PutRequest(key: b("k"), value: b("new"), prevKv: true))
        XCTAssertEqual(response.prevKv, old)
        XCTAssertEqual(events.count, 1)
        XCTAssertEqual(events[0].kind, .put)
        XCTAssertEqual(events[0].prevKv, old)
        XCTAssertEqual(events[0].kv.value, b("new"))
        let (noPrev, _) = try store.put(PutRequest(key: b("k"), value: b("x")))
        XCTAssertNil(noPrev.prevKv)
    }

    func testPutErrors() throws {
        var store = KVStore()
        assertKVError(.emptyKey, "etcdserver: key is not provided") { try store.put(PutRequest(key: [])) }
        assertKVError(.keyNotFound, "etcdserver: key not found") {
            try store.put(PutRequest(key: b("missing"), ignoreValue: true))
        }
        assertKVError(.keyNotFound, "etcdserver: key not found") {
            try store.put(PutRequest(key: b("missing"), value: b("v"), ignoreLease: true))
        }
        assertKVError(.leaseNotFound, "etcdserver: requested lease not found") {
            try store.put(PutRequest(key: b("k"), value: b("v"), lease: 42))
        }
        assertKVError(.valueProvided, "etcdserver: value is provided") {
            try store.put(PutRequest(key: b("k"), value: b("v"), ignoreValue: true))
        }
        assertKVError(.leaseProvided, "etcdserver: lease is provided") {
            try store.put(PutRequest(key: b("k"), lease: 1, ignoreLease: true))
        }
        assertKVError(.emptyKey, "etcdserver: key is not provided") {
            try store.deleteRange(DeleteRangeRequest(key: []))
        }
        XCTAssertEqual(store.revision, 1, "failed writes take no revision")
    }

    func testIgnoreValueAndIgnoreLeaseKeepOldFields() throws {
        var store = KVStore()
        _ = try store.leaseGrant(id: 7, ttlSeconds: 10)
        try store.put("k", "v", lease: 7)
        _ = try store.put(PutRequest(key: b("k"), ignoreValue: true))
        var kv = try XCTUnwrap(store.get("k"))
        XCTAssertEqual(kv.value, b("v"))
        XCTAssertEqual(kv.lease, 0, "a put without ignore_lease detaches the lease")
        XCTAssertEqual(try store.leaseInfo(id: 7).keys, [])
        try store.put("k", "v2", lease: 7)
        _ = try store.put(PutRequest(key: b("k"), value: b("v3"), ignoreLease: true))
        kv = try XCTUnwrap(store.get("k"))
        XCTAssertEqual(kv.value, b("v3"))
        XCTAssertEqual(kv.lease, 7)
        XCTAssertEqual(kv.version, 4)
        XCTAssertEqual(try store.leaseInfo(id: 7).keys, [b("k")])
    }
}
