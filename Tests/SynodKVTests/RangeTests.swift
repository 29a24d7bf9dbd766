import XCTest
@testable import SynodKV

final class RangeTests: XCTestCase {
    /// a=1 (rev 2), b=22 (rev 3), c=3 (rev 4), b2 put again at rev 5 (b version 2), d=0 (rev 6).
    private func sample() throws -> KVStore {
        var store = KVStore()
        try store.put("a", "1")
        try store.put("b", "22")
        try store.put("c", "3")
        try store.put("b", "2")
        try store.put("d", "0")
        return store
    }

    func testSingleKeyPrefixAndAllKeys() throws {
        var store = try sample()
        try store.put("ab", "x")
        XCTAssertEqual(try store.keys(RangeRequest(key: b("a"))), ["a"])
        // Prefix "a": range_end is the key with its last byte incremented.
        XCTAssertEqual(try store.keys(RangeRequest(key: b("a"), rangeEnd: b("b"))), ["a", "ab"])
        XCTAssertEqual(try store.keys(RangeRequest(key: b("b"), rangeEnd: [0])), ["b", "c", "d"])
        XCTAssertEqual(try store.keys(RangeRequest(key: [0], rangeEnd: [0])), ["a", "ab", "b", "c", "d"])
        XCTAssertEqual(try store.keys(RangeRequest(key: b("zz"), rangeEnd: b("a"))), [], "end before start")
        XCTAssertEqual(try store.keys(RangeRequest(key: b("nope"))), [])
        assertKVError(.emptyKey, "etcdserver: key is not provided") { try store.range(RangeRequest(key: [])) }
    }

    func testLimitMoreAndCount() throws {
        let store = try sample()
        let all = RangeRequest(key: [0], rangeEnd: [0], limit: 2)
        let limited = try store.range(all)
        XCTAssertEqual(limited.kvs.map(\.key), [b("a"), b("b")])
        XCTAssertTrue(limited.more)
        XCTAssertEqual(limited.count, 4)
        XCTAssertEqual(limited.revision, 6)
        let exact = try store.range(RangeRequest(key: [0], rangeEnd: [0], limit: 4))
        XCTAssertFalse(exact.more)
        XCTAssertEqual(exact.kvs.count, 4)
        let countOnly = try store.range(RangeRequest(key: [0], rangeEnd: [0], countOnly: true))
        XCTAssertEqual(countOnly.count, 4)
        XCTAssertTrue(countOnly.kvs.isEmpty)
        let keysOnly = try store.range(RangeRequest(key: [0], rangeEnd: [0], keysOnly: true))
        XCTAssertEqual(keysOnly.kvs.map(\.value), [[], [], [], []])
        XCTAssertEqual(keysOnly.kvs.map(\.version), [1, 2, 1, 1])
    }

    func testSortOrders() throws {
        let store = try sample()
        func keys(_ order: RangeRequest.SortOrder, _ target: RangeRequest.SortTarget, limit: Int64 = 0) throws -> [String] {
            try store.keys(RangeRequest(key: [0], rangeEnd: [0], limit: limit, sortOrder: order, sortTarget: target))
        }
        XCTAssertEqual(try keys(.none, .key), ["a", "b", "c", "d"])
        XCTAssertEqual(try keys(.ascend, .key), ["a", "b", "c", "d"])
        XCTAssertEqual(try keys(.descend, .key), ["d", "c", "b", "a"])
        XCTAssertEqual(try keys(.descend, .key, limit: 1), ["d"], "limit applies after sorting")
        XCTAssertEqual(try keys(.ascend, .value), ["d", "a", "b", "c"])
        XCTAssertEqual(try keys(.none, .value), ["d", "a", "b", "c"], "non-key target with none sorts ascending")
        XCTAssertEqual(try keys(.descend, .value), ["c", "b", "a", "d"])
        XCTAssertEqual(try keys(.descend, .version), ["b", "a", "c", "d"], "ties broken by key")
        XCTAssertEqual(try keys(.ascend, .mod), ["a", "c", "b", "d"])
        XCTAssertEqual(try keys(.descend, .create), ["d", "c", "b", "a"])
    }

    func testRevisionFilters() throws {
        let store = try sample()
        let minMod = try store.range(RangeRequest(key: [0], rangeEnd: [0], minModRevision: 5))
        XCTAssertEqual(minMod.kvs.map(\.key), [b("b"), b("d")])
        XCTAssertEqual(minMod.count, 4, "count ignores the filters")
        XCTAssertEqual(try store.keys(RangeRequest(key: [0], rangeEnd: [0], maxModRevision: 4)), ["a", "c"])
        XCTAssertEqual(try store.keys(RangeRequest(key: [0], rangeEnd: [0], minCreateRevision: 3,
                                                   maxCreateRevision: 4)), ["b", "c"])
    }

    func testPastRevisionsAndErrors() throws {
        var store = try sample()
        _ = try store.deleteRange(DeleteRangeRequest(key: b("a"))) // rev 7
        XCTAssertEqual(try store.get("b", revision: 3)?.value, b("22"))
        XCTAssertEqual(try store.get("b", revision: 4)?.version, 1)
        XCTAssertEqual(try store.get("b", revision: 5)?.value, b("2"))
        XCTAssertNil(try store.get("b", revision: 2), "not yet created")
        XCTAssertEqual(try store.get("a", revision: 6)?.value, b("1"))
        XCTAssertNil(try store.get("a"))
        XCTAssertEqual(try store.keys(RangeRequest(key: [0], rangeEnd: [0], revision: 3)), ["a", "b"])
        XCTAssertEqual(try store.range(RangeRequest(key: b("a"), revision: 3)).revision, 7,
                       "the header carries the current revision")
        assertKVError(.futureRevision, "etcdserver: mvcc: required revision is a future revision") {
            try store.range(RangeRequest(key: b("a"), revision: 8))
        }
    }

    func testCompactionBoundary() throws {
        var store = try sample()
        XCTAssertEqual(try store.compact(revision: 4), 6)
        assertKVError(.compacted, "etcdserver: mvcc: required revision has been compacted") {
            try store.range(RangeRequest(key: b("a"), revision: 3))
        }
        // Reading exactly at the compaction revision still works, with the kept versions.
        XCTAssertEqual(try store.keys(RangeRequest(key: [0], rangeEnd: [0], revision: 4)), ["a", "b", "c"])
        XCTAssertEqual(try store.get("b", revision: 4)?.value, b("22"))
        XCTAssertEqual(try store.get("b", revision: 5)?.value, b("2"))
        XCTAssertEqual(try store.get("b")?.createRevision, 3)
    }
}
