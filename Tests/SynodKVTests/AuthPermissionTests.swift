import SynodCore
import XCTest
@testable import SynodKV

/// `AuthStore.isPermitted` against a model that enumerates keys, and hand-picked ranges.
final class AuthPermissionTests: XCTestCase {
    /// Keys over the alphabet {0, 1, 2}. Permissions and requests use keys of at most 2 bytes
    /// and range ends of at most 3; a single key `k` ends at `k + [0]`. The first uncovered
    /// key of a range is its start or the end of some permission, so every key that decides
    /// a case is among the keys of 1 to 3 bytes, which the model enumerates.
    private static let alphabet: [UInt8] = [0, 1, 2]
    private static let keys: [[UInt8]] = {
        var all: [[UInt8]] = []
        var level: [[UInt8]] = [[]]
        for _ in 1...3 {
            level = level.flatMap { prefix in alphabet.map { prefix + [$0] } }
            all += level
        }
        return all
    }()

    private static func less(_ a: [UInt8], _ b: [UInt8]) -> Bool { a.lexicographicallyPrecedes(b) }

    /// The model's reading of etcd's key/rangeEnd convention, key by key.
    private static func contains(key: [UInt8], rangeEnd: [UInt8], _ k: [UInt8]) -> Bool {
        if rangeEnd.isEmpty { return k == key }
        if rangeEnd == [0] { return !less(k, key) }
        return !less(k, key) && less(k, rangeEnd)
    }

    private static func modelPermitted(_ auth: AuthStore, user: String, key: [UInt8], rangeEnd: [UInt8],
                                       type: AuthPermission.PermissionType) -> Bool {
        guard let account = auth.users[user] else { return false }
        if account.roles.contains("root") { return true }
        // An empty single key and an empty range are refused.
        if rangeEnd.isEmpty && key.isEmpty { return false }
        if !rangeEnd.isEmpty && rangeEnd != [0] && !less(key, rangeEnd) { return false }
        let permissions = account.roles.compactMap { auth.roles[$0] }.flatMap(\.permissions)
        func allowed(_ k: [UInt8], _ access: AuthPermission.PermissionType) -> Bool {
            permissions.contains { $0.type.allows(access) && contains(key: $0.key, rangeEnd: $0.rangeEnd, k) }
        }
        for k in keys where contains(key: key, rangeEnd: rangeEnd, k) {
            switch type {
            case .readWrite: if !allowed(k, .read) || !allowed(k, .write) { return false }
            default: if !allowed(k, type) { return false }
            }
        }
        return true
    }

    func testIsPermittedMatchesAnEnumeratingModel() {
        var rng = SplitMix64(seed: 20240611)
        func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &rng) }
        func key(_ lengths: ClosedRange<Int>) -> [UInt8] { (0..<int(lengths)).map { _ in Self.alphabet[int(0...2)] } }
        func rangeEnd(after key: [UInt8], validOnly: Bool) -> [UInt8] {
            switch int(0...4) {
            case 0: return []
            case 1: return [0]
            default:
                var end = Self.keys[int(0...Self.keys.count - 1)]
                if validOnly && !Self.less(key, end) {
                    end = key + [Self.alphabet[int(0...2)]]
                }
                return end
            }
        }
        var permitted = 0
        var denied = 0
        for _ in 0..<6000 {
            var auth = AuthStore()
            auth.enabled = true
            for roleName in ["r1", "r2", "r3"] {
                var role = AuthRole(name: roleName)
                for _ in 0..<int(0...4) {
                    let k = key(1...2)
                    role.permissions.append(AuthPermission(type: AuthPermission.PermissionType.allCases[int(0...2)], key: k,
                                                           rangeEnd: rangeEnd(after: k, validOnly: true)))
                }
                auth.roles[roleName] = role
            }
            var roles = ["r1", "r2", "r3", "ghost"].filter { _ in int(0...2) > 0 }
            if int(0...15) == 0 { roles.append("root") }
            auth.users["u"] = AuthUser(name: "u", passwordHash: "h", noPassword: false, roles: roles)
            let user = int(0...30) == 0 ? "nobody" : "u"
            let requestKey = int(0...20) == 0 ? [] : key(1...2)
            let requestEnd = rangeEnd(after: requestKey, validOnly: int(0...5) > 0)
            let type = AuthPermission.PermissionType.allCases[int(0...2)]
            let expected = Self.modelPermitted(auth, user: user, key: requestKey, rangeEnd: requestEnd, type: type)
            let actual = auth.isPermitted(user: user, key: requestKey, rangeEnd: requestEnd, type: type)
            XCTAssertEqual(actual, expected, "\(type) \(requestKey)..\(requestEnd) for \(auth.users[user]?.roles ?? []) with \(auth.roles)")
            if expected { permitted += 1 } else { denied += 1 }
        }
        XCTAssertGreaterThan(permitted, 500, "the cases exercise both answers")
        XCTAssertGreaterThan(denied, 500)
    }

    func testCoverageEdgeCases() {
        func permitted(_ permissions: [AuthPermission], _ key: [UInt8], _ rangeEnd: [UInt8],
                       _ type: AuthPermission.PermissionType = .read) -> Bool {
            var auth = AuthStore()
            auth.roles["r"] = AuthRole(name: "r", permissions: permissions)
            auth.users["u"] = AuthUser(name: "u", passwordHash: "", noPassword: true, roles: ["r"])
            return auth.isPermitted(user: "u", key: key, rangeEnd: rangeEnd, type: type)
        }
        let everything = AuthPermission(type: .read, key: [0], rangeEnd: [0])
        XCTAssertTrue(permitted([everything], [0], [0]), "the whole key space")
        XCTAssertTrue(permitted([everything], b("k"), []))
        XCTAssertTrue(permitted([everything], [], [0]), "an empty start is the smallest key")
        XCTAssertFalse(permitted([everything], [], []), "the empty key is no key")
        XCTAssertFalse(permitted([everything], b("k"), [], .write), "a READ permission grants no write")
        XCTAssertTrue(permitted([readWrite("k")], b("k"), [], .write))
        XCTAssertTrue(permitted([readWrite("k")], b("k"), [], .readWrite))
        XCTAssertFalse(permitted([read("k"), write("j")], b("k"), [], .readWrite))
        XCTAssertTrue(permitted([read("k"), write("k")], b("k"), [], .readWrite))
        // Adjacent permissions cover their union; a single key meets the range after it.
        XCTAssertTrue(permitted([read("a", b("b")), read("b", b("c"))], b("a"), b("c")))
        XCTAssertTrue(permitted([read("b"), read("b\0", b("c"))], b("b"), b("c")))
        XCTAssertFalse(permitted([read("a", b("b")), read("b\0", b("c"))], b("a"), b("c")), "the key b is not covered")
        XCTAssertTrue(permitted([read("a", b("d")), read("b", b("c"))], b("a"), b("d")), "nested")
        XCTAssertTrue(permitted([read("a", b("c")), read("b", b("e"))], b("b\u{7f}"), b("d")), "overlapping")
        // A single key permission covers the one-key range [k, k\0) and nothing wider.
        XCTAssertTrue(permitted([read("k")], b("k"), b("k\0")))
        XCTAssertFalse(permitted([read("k")], b("k"), b("k\0\0")))
        XCTAssertFalse(permitted([read("k")], b("k"), b("l")))
        // From-key on both sides.
        XCTAssertTrue(permitted([read("k", [0])], b("m"), [0]))
        XCTAssertFalse(permitted([read("k", [0])], b("j"), [0]))
        XCTAssertFalse(permitted([read("k", b("zzzz"))], b("m"), [0]), "a bounded permission never covers a from-key range")
        XCTAssertTrue(permitted([read("a", b("m")), read("m", [0])], b("b"), [0]))
        // Empty ranges and the prefix form.
        XCTAssertFalse(permitted([everything], b("b"), b("a")), "an empty range is refused")
        XCTAssertFalse(permitted([everything], b("b"), b("b")))
        XCTAssertTrue(permitted([read("foo", b("fop"))], b("foo/"), b("foo0")))
        XCTAssertFalse(permitted([], b("k"), []))
    }

    func testRootAndUnknownUsers() {
        var auth = AuthStore()
        auth.users["admin"] = AuthUser(name: "admin", passwordHash: "", noPassword: true, roles: ["root"])
        auth.users["plain"] = AuthUser(name: "plain", passwordHash: "", noPassword: true, roles: ["ghost"])
        XCTAssertTrue(auth.isPermitted(user: "admin", key: [0], rangeEnd: [0], type: .readWrite))
        XCTAssertFalse(auth.isPermitted(user: "plain", key: b("a"), rangeEnd: [], type: .read), "a missing role grants nothing")
        XCTAssertFalse(auth.isPermitted(user: "nobody", key: b("a"), rangeEnd: [], type: .read))
        XCTAssertTrue(auth.isAdmin("admin"))
        XCTAssertFalse(auth.isAdmin("plain"))
        // Disabled: every check passes; enabled: they apply.
        XCTAssertNil(auth.checkRange(user: "", authRevision: 0, RangeRequest(key: b("a"))))
        XCTAssertNil(auth.checkAdmin(user: "plain"))
        auth.enabled = true
        XCTAssertEqual(auth.checkRange(user: "", authRevision: 0, RangeRequest(key: b("a"))), .userEmpty)
        XCTAssertEqual(auth.checkRange(user: "plain", authRevision: 1, RangeRequest(key: b("a"))), .permissionDenied)
        XCTAssertNil(auth.checkRange(user: "admin", authRevision: 1, RangeRequest(key: b("a"))))
        XCTAssertEqual(auth.checkAdmin(user: "plain"), .permissionDenied)
        XCTAssertEqual(auth.checkAdmin(user: "nobody"), .userNotFound)
        XCTAssertEqual(auth.checkAdmin(user: ""), .userEmpty)
        XCTAssertNil(auth.checkAdmin(user: "admin"))
        XCTAssertEqual(auth.checkLeaseGrant(user: ""), .userEmpty)
        XCTAssertNil(auth.checkLeaseGrant(user: "plain"))
        XCTAssertNil(auth.checkCompact(user: "", authRevision: 0), "etcd checks nothing for compaction")
    }
}

/// Every check refuses its request, and with that one check switched off (`AuthCheck`) the
/// same request passes: no check is dead weight, and each request kind is really checked.
final class AuthNegativeTests: XCTestCase {
    private let alice = "alice"

    /// Applies `command` for alice: refused with `expected`; with `check` skipped, applied.
    /// Skipping any other single check, but those in `alsoPassingWithout` (the checks of
    /// the txn branch or the operation a check is about), still refuses it.
    private func assertRefusedOnlyBy(_ check: AuthCheck, _ harness: AuthHarness, _ command: KVCommand,
                                     alsoPassingWithout: Set<AuthCheck> = [], expected: KVError = .permissionDenied,
                                     file: StaticString = #filePath, line: UInt = #line) {
        var refused = harness
        let wrapped = harness.by(alice, command)
        XCTAssertEqual(refused.run(wrapped), .failure(expected), "\(check) refuses", file: file, line: line)
        XCTAssertEqual(refused.machine.store, harness.machine.store, "nothing changed", file: file, line: line)
        var unchecked = harness
        let result = unchecked.run(wrapped, skipping: [check])
        if case .failure(let error) = result { XCTFail("without \(check) it fails anyway: \(error)", file: file, line: line) }
        // Switching off any other single check does not let it through.
        for other in AuthCheck.allCases where other != check && !alsoPassingWithout.contains(other) {
            var still = harness
            if case .success = still.run(wrapped, skipping: [other]) {
                XCTFail("skipping \(other) let it through too", file: file, line: line)
            }
        }
    }

    /// A server-side check: refused; passes with `check` skipped.
    private func assertReadRefusedOnlyBy(_ check: AuthCheck, _ auth: AuthStore, expected: KVError = .permissionDenied,
                                         file: StaticString = #filePath, line: UInt = #line,
                                         _ run: (AuthChecker) -> KVError?) {
        let checker = AuthChecker(store: auth, user: alice, authRevision: auth.revision)
        XCTAssertEqual(run(checker), expected, "\(check) refuses", file: file, line: line)
        var unchecked = checker
        unchecked.skipping = [check]
        XCTAssertNil(run(unchecked), "without \(check) it passes", file: file, line: line)
    }

    func testRange() throws {
        let h = AuthHarness.enabled(alice: [write("k")]) { $0.must(.put(PutRequest(key: b("k"), value: b("v")))) }
        let request = RangeRequest(key: b("k"))
        XCTAssertEqual(h.machine.auth.checkRange(user: alice, authRevision: h.machine.auth.revision, request), .permissionDenied)
        assertReadRefusedOnlyBy(.rangeRead, h.machine.auth) { $0.range(request) }
        XCTAssertEqual(try h.machine.store.range(request).kvs.count, 1, "the read itself would have returned the key")
        // Inside a txn the same range is refused at apply.
        assertRefusedOnlyBy(.rangeRead, h, .txn(TxnRequest(success: [.range(request)])), alsoPassingWithout: [.txnSuccessOps])
    }

    func testPut() throws {
        let h = AuthHarness.enabled(alice: [read("k")])
        assertRefusedOnlyBy(.putWrite, h, .put(PutRequest(key: b("k"), value: b("v"))))
    }

    func testPutPrevKv() {
        let h = AuthHarness.enabled(alice: [write("k")])
        assertRefusedOnlyBy(.putPrevKvRead, h, .put(PutRequest(key: b("k"), value: b("v"), prevKv: true)))
        var plain = h
        plain.must(plain.by(alice, .put(PutRequest(key: b("k"), value: b("v")))))
    }

    func testPutWithALeaseHoldingKeysTheUserCannotWrite() {
        let h = AuthHarness.enabled(alice: [readWrite("k")]) { h in
            h.must(.leaseGrant(id: 5, ttlSeconds: 60))
            h.must(.put(PutRequest(key: b("z"), value: b("root's"), lease: 5)))
        }
        assertRefusedOnlyBy(.putLeaseKeysWrite, h, .put(PutRequest(key: b("k"), value: b("v"), lease: 5)))
    }

    func testDeleteRange() {
        let h = AuthHarness.enabled(alice: [read("a", b("z"))]) { $0.must(.put(PutRequest(key: b("k"), value: b("v")))) }
        assertRefusedOnlyBy(.deleteWrite, h, .deleteRange(DeleteRangeRequest(key: b("a"), rangeEnd: b("z"))))
    }

    func testDeleteRangePrevKv() {
        let h = AuthHarness.enabled(alice: [write("a", b("z"))]) { $0.must(.put(PutRequest(key: b("k"), value: b("v")))) }
        assertRefusedOnlyBy(.deletePrevKvRead, h, .deleteRange(DeleteRangeRequest(key: b("a"), rangeEnd: b("z"), prevKv: true)))
    }

    func testTxnCompare() {
        let h = AuthHarness.enabled(alice: [write("k"), readWrite("x")])
        assertRefusedOnlyBy(.txnCompareRead, h, .txn(TxnRequest(
            compare: [Compare(key: b("k"), result: .equal, target: .version(0))],
            success: [.put(PutRequest(key: b("x"), value: b("v")))])))
    }

    func testTxnSuccessBranch() {
        let h = AuthHarness.enabled(alice: [readWrite("k")])
        // The compare fails, so the success branch is not even taken: it is checked anyway.
        assertRefusedOnlyBy(.txnSuccessOps, h, .txn(TxnRequest(
            compare: [Compare(key: b("k"), result: .equal, target: .version(7))],
            success: [.put(PutRequest(key: b("x"), value: b("v")))],
            failure: [.put(PutRequest(key: b("k"), value: b("v")))])), alsoPassingWithout: [.putWrite])
    }

    func testTxnFailureBranch() {
        let h = AuthHarness.enabled(alice: [readWrite("k")])
        // The compare holds, so the failure branch is not taken: it is checked anyway.
        assertRefusedOnlyBy(.txnFailureOps, h, .txn(TxnRequest(
            compare: [Compare(key: b("k"), result: .equal, target: .version(0))],
            success: [.put(PutRequest(key: b("k"), value: b("v")))],
            failure: [.deleteRange(DeleteRangeRequest(key: b("x")))])), alsoPassingWithout: [.deleteWrite])
    }

    func testNestedTxn() {
        let h = AuthHarness.enabled(alice: [readWrite("k")])
        let nested = TxnRequest(success: [.put(PutRequest(key: b("x"), value: b("v")))],
                                failure: [.range(RangeRequest(key: b("k")))])
        assertRefusedOnlyBy(.txnNested, h, .txn(TxnRequest(success: [.range(RangeRequest(key: b("k"))), .txn(nested)])),
                            alsoPassingWithout: [.txnSuccessOps, .putWrite])
        // Deeper still, and in the failure branch of the outer txn.
        assertRefusedOnlyBy(.txnNested, h, .txn(TxnRequest(
            compare: [Compare(key: b("k"), result: .equal, target: .version(0))],
            failure: [.txn(TxnRequest(success: [.txn(nested)]))])),
                            alsoPassingWithout: [.txnFailureOps, .txnSuccessOps, .putWrite])
    }

    func testWatch() {
        let h = AuthHarness.enabled(alice: [read("k", b("l")), write("m")])
        let auth = h.machine.auth
        XCTAssertNil(auth.checkWatch(user: alice, authRevision: auth.revision, key: b("k"), rangeEnd: []))
        XCTAssertNil(auth.checkWatch(user: alice, authRevision: auth.revision, key: b("k"), rangeEnd: b("l")))
        XCTAssertEqual(auth.checkWatch(user: alice, authRevision: auth.revision, key: b("m"), rangeEnd: []), .permissionDenied)
        assertReadRefusedOnlyBy(.watchRead, auth) { $0.watch(key: b("m"), rangeEnd: []) }
    }

    func testFromKeyWatch() {
        let h = AuthHarness.enabled(alice: [read("k", b("l"))])
        let auth = h.machine.auth
        XCTAssertEqual(auth.checkWatch(user: alice, authRevision: auth.revision, key: b("k"), rangeEnd: [0]), .permissionDenied)
        assertReadRefusedOnlyBy(.watchRead, auth) { $0.watch(key: b("k"), rangeEnd: [0]) }
        assertReadRefusedOnlyBy(.watchRead, auth) { $0.watch(key: [0], rangeEnd: [0]) }
    }

    func testLeaseRevoke() throws {
        let h = AuthHarness.enabled(alice: [readWrite("k")]) { h in
            h.must(.leaseGrant(id: 5, ttlSeconds: 60))
            h.must(.put(PutRequest(key: b("k"), value: b("mine"), lease: 5)))
            h.must(.put(PutRequest(key: b("z"), value: b("root's"), lease: 5)))
        }
        assertRefusedOnlyBy(.leaseRevokeKeysWrite, h, .leaseRevoke(id: 5))
        var unchecked = h
        unchecked.run(unchecked.by(alice, .leaseRevoke(id: 5)), skipping: [.leaseRevokeKeysWrite])
        XCTAssertNil(try unchecked.machine.store.get("z"), "the revoke would have deleted root's key")
        // Root may revoke it; so may the cluster's own (unwrapped) expiry.
        var root = h
        root.must(root.by("root", .leaseRevoke(id: 5)))
        var expiry = h
        expiry.must(.leaseRevoke(id: 5))
    }

    func testLeaseTimeToLiveKeys() {
        let h = AuthHarness.enabled(alice: [readWrite("k")]) { h in
            h.must(.leaseGrant(id: 5, ttlSeconds: 60))
            h.must(.put(PutRequest(key: b("z"), value: b("root's"), lease: 5)))
        }
        let revision = h.machine.auth.revision
        XCTAssertEqual(h.machine.checkLeaseTimeToLive(user: alice, authRevision: revision, leaseID: 5, keysRequested: true),
                       .permissionDenied)
        XCTAssertNil(h.machine.checkLeaseTimeToLive(user: alice, authRevision: revision, leaseID: 5, keysRequested: false))
        XCTAssertNil(h.machine.checkLeaseTimeToLive(user: "root", authRevision: revision, leaseID: 5, keysRequested: true))
        XCTAssertEqual(h.machine.checkLeaseTimeToLive(user: "", authRevision: 0, leaseID: 5, keysRequested: false), .userEmpty)
        let keys = h.machine.store.attachedKeys(lease: 5)
        XCTAssertEqual(keys, [b("z")])
        assertReadRefusedOnlyBy(.leaseTimeToLiveKeysRead, h.machine.auth) { $0.leaseKeysRead(keys) }
    }

    func testAdmin() {
        let h = AuthHarness.enabled(alice: [readWrite("k")])
        assertRefusedOnlyBy(.admin, h, .auth(.roleAdd(name: "mine")))
        assertRefusedOnlyBy(.admin, h, .auth(.userGrantRole(user: "alice", role: "root")))
        assertRefusedOnlyBy(.admin, h, .auth(.disable))
        assertRefusedOnlyBy(.admin, h, .alarm(action: .activate, member: AlarmMember(memberID: 1, alarm: .noSpace)))
        XCTAssertEqual(h.machine.auth.checkAdmin(user: alice), .permissionDenied)
        assertReadRefusedOnlyBy(.admin, h.machine.auth) { $0.admin() }
    }

    func testCompactNeedsNothing() {
        // etcd 3.4 checks no permission for compaction, not even credentials.
        var h = AuthHarness.enabled(alice: []) { h in
            h.must(.put(PutRequest(key: b("k"), value: b("v"))))
            h.must(.put(PutRequest(key: b("k"), value: b("w"))))
        }
        h.must(h.by(alice, .compact(revision: 2)))
        h.must(.compact(revision: 3))
        XCTAssertEqual(h.machine.store.compactRevision, 3)
    }

    /// Client writes with no credentials while auth is enabled.
    func testCredentials() {
        let h = AuthHarness.enabled(alice: [readWrite("k")])
        for command: KVCommand in [.put(PutRequest(key: b("k"), value: b("v"))), .deleteRange(DeleteRangeRequest(key: b("k"))),
                                   .txn(TxnRequest()), .leaseGrant(id: 3, ttlSeconds: 5), .auth(.roleAdd(name: "x")),
                                   .auth(.enable(tokenSecret: []))] {
            var refused = h
            XCTAssertEqual(refused.run(command), .failure(.userEmpty), "\(command)")
            var unchecked = h
            if case .failure(let error) = unchecked.run(command, skipping: [.credentials]) {
                XCTFail("without the credentials check \(command) fails anyway: \(error)")
            }
        }
    }

    /// The checks skipped one at a time cover every named check.
    func testEveryCheckHasANegativeTest() {
        let tested: Set<AuthCheck> = [.rangeRead, .putWrite, .putPrevKvRead, .putLeaseKeysWrite, .deleteWrite, .deletePrevKvRead,
                                      .txnCompareRead, .txnSuccessOps, .txnFailureOps, .txnNested, .watchRead,
                                      .leaseRevokeKeysWrite, .leaseTimeToLiveKeysRead, .admin, .credentials]
        XCTAssertEqual(tested, Set(AuthCheck.allCases))
    }
}
