import XCTest
@testable import SynodKV

final class TxnTests: XCTestCase {
    private func put(_ key: String, _ value: String) -> RequestOp { .put(PutRequest(key: b(key), value: b(value))) }
    private func get(_ key: String) -> RequestOp { .range(RangeRequest(key: b(key))) }

    func testBranchesAndOneRevisionForAllWrites() throws {
        var store = KVStore()
        try store.put("k", "v") // rev 2
        let txn = TxnRequest(compare: [Compare(key: b("k"), result: .equal, target: .value(b("v")))],
                             success: [put("x", "1"), put("y", "2"), get("x")], failure: [put("z", "3")])
        let (response, events) = try store.txn(txn)
        XCTAssertTrue(response.succeeded)
        XCTAssertEqual(response.revision, 3)
        XCTAssertEqual(store.revision, 3)
        XCTAssertEqual(events.map(\.kv.modRevision), [3, 3])
        XCTAssertEqual(events.map(\.sub), [0, 1])
        guard case .range(let read) = response.responses[2] else { return XCTFail("expected range") }
        XCTAssertEqual(read.kvs.first?.value, b("1"), "a txn reads its own earlier writes")
        XCTAssertNil(try store.get("z"))

        let (failed, _) = try store.txn(txn.with(compare: [Compare(key: b("k"), result: .equal, target: .value(b("w")))]))
        XCTAssertFalse(failed.succeeded)
        XCTAssertEqual(try store.get("z")?.modRevision, 4)
    }

    func testReadOnlyTxnTakesNoRevision() throws {
        var store = KVStore()
        try store.put("k", "v")
        let (response, events) = try store.txn(TxnRequest(success: [get("k")]))
        XCTAssertTrue(response.succeeded, "no compares: success")
        XCTAssertEqual(response.revision, 2)
        XCTAssertTrue(events.isEmpty)
    }

    func testCompareTargetsAndResults() throws {
        var store = KVStore()
        _ = try store.leaseGrant(id: 5, ttlSeconds: 60)
        try store.put("k", "m", lease: 5) // rev 2
        try store.put("k", "m") // rev 3, version 2, lease detached
        func holds(_ target: Compare.Target, _ result: Compare.Result, key: String = "k", end: [UInt8] = []) -> Bool {
            store.compareHolds(Compare(key: b(key), rangeEnd: end, result: result, target: target))
        }
        XCTAssertTrue(holds(.version(2), .equal))
        XCTAssertTrue(holds(.version(1), .greater))
        XCTAssertTrue(holds(.version(3), .less))
        XCTAssertTrue(holds(.version(3), .notEqual))
        XCTAssertTrue(holds(.createRevision(2), .equal))
        XCTAssertTrue(holds(.modRevision(3), .equal))
        XCTAssertTrue(holds(.value(b("a")), .greater))
        XCTAssertTrue(holds(.value(b("z")), .less))
        XCTAssertTrue(holds(.lease(0), .equal))
        // A missing key compares as zero, except that a value compare always fails.
        XCTAssertTrue(holds(.createRevision(0), .equal, key: "missing"))
        XCTAssertTrue(holds(.version(0), .equal, key: "missing"))
        XCTAssertFalse(holds(.value([]), .equal, key: "missing"))
        XCTAssertFalse(holds(.value(b("x")), .notEqual, key: "missing"))
        // A range compare needs every key in the range to satisfy it.
        try store.put("k2", "m") // version 1
        XCTAssertTrue(holds(.value(b("m")), .equal, key: "k", end: b("l")))
        XCTAssertFalse(holds(.version(2), .equal, key: "k", end: b("l")))
        XCTAssertTrue(holds(.version(0), .greater, key: "k", end: b("l")))
    }

    func testNestedTxnsUseThePreTxnStateForCompares() throws {
        var store = KVStore()
        try store.put("flag", "on")
        let inner = TxnRequest(compare: [Compare(key: b("a"), result: .equal, target: .version(0))],
                               success: [put("b", "inner-success")], failure: [put("b", "inner-failure")])
        let outer = TxnRequest(compare: [Compare(key: b("flag"), result: .equal, target: .value(b("on")))],
                               success: [put("a", "1"), .txn(inner)], failure: [])
        let (response, events) = try store.txn(outer)
        XCTAssertTrue(response.succeeded)
        guard case .txn(let nested) = response.responses[1] else { return XCTFail("expected txn") }
        // "a" did not exist before the txn, so the nested compare succeeds although the outer
        // txn wrote it first (etcd evaluates every compare up front).
        XCTAssertTrue(nested.succeeded)
        XCTAssertEqual(try store.get("b")?.value, b("inner-success"))
        XCTAssertEqual(events.map(\.sub), [0, 1])
        XCTAssertEqual(store.revision, 3)
    }

    func testDuplicateKeyRule() throws {
        var store = KVStore()
        try store.put("a", "0")
        let message = "etcdserver: duplicate key given in txn request"
        assertKVError(.duplicateKey, message) { try store.txn(TxnRequest(success: [put("a", "1"), put("a", "2")])) }
        assertKVError(.duplicateKey, message) {
            try store.txn(TxnRequest(success: [.deleteRange(DeleteRangeRequest(key: b("a"), rangeEnd: b("c"))), put("b", "1")]))
        }
        assertKVError(.duplicateKey, message) {
            try store.txn(TxnRequest(success: [put("a", "1"), .txn(TxnRequest(success: [put("a", "2")]))]))
        }
        assertKVError(.duplicateKey, message) {
            try store.txn(TxnRequest(success: [.deleteRange(DeleteRangeRequest(key: b("a"), rangeEnd: [0])),
                                               .txn(TxnRequest(failure: [put("zz", "2")]))]))
        }
        // Allowed: the two branches of a nested txn, the two top-level branches, overlapping deletes.
        _ = try store.txn(TxnRequest(success: [.txn(TxnRequest(success: [put("a", "1")], failure: [put("a", "2")]))]))
        _ = try store.txn(TxnRequest(success: [put("a", "3")], failure: [put("a", "4")]))
        let (deleted, _) = try store.txn(TxnRequest(success: [
            .deleteRange(DeleteRangeRequest(key: b("a"), rangeEnd: b("c"))), .deleteRange(DeleteRangeRequest(key: b("a"))),
        ]))
        guard case .deleteRange(let first) = deleted.responses[0], case .deleteRange(let second) = deleted.responses[1] else {
            return XCTFail("expected deletes")
        }
        XCTAssertEqual([first.deleted, second.deleted], [1, 0])
        XCTAssertEqual(store.revision, 5)
    }

    func testFailingOperationLeavesStoreUntouched() throws {
        var store = KVStore()
        try store.put("a", "0")
        let before = store
        assertKVError(.leaseNotFound, "etcdserver: requested lease not found") {
            try store.txn(TxnRequest(success: [put("b", "1"), .put(PutRequest(key: b("c"), lease: 9))]))
        }
        assertKVError(.futureRevision, "etcdserver: mvcc: required revision is a future revision") {
            try store.txn(TxnRequest(success: [put("b", "1"), .range(RangeRequest(key: b("b"), revision: 3))]))
        }
        assertKVError(.keyNotFound, "etcdserver: key not found") {
            try store.txn(TxnRequest(success: [.txn(TxnRequest(success: [.put(PutRequest(key: b("q"), ignoreValue: true))]))]))
        }
        let many = Array(repeating: get("a"), count: KVStore.txnOperationsMax + 1)
        assertKVError(.tooManyOperations, "etcdserver: too many operations in txn request") {
            try store.txn(TxnRequest(success: many))
        }
        XCTAssertEqual(store, before)
    }
}

extension TxnRequest {
    func with(compare: [Compare]) -> TxnRequest {
        var copy = self
        copy.compare = compare
        return copy
    }
}
