import SynodCore
import XCTest
@testable import SynodKV

/// Each auth change's success and error paths, with etcd 3.4's semantics and messages.
final class AuthCommandTests: XCTestCase {
    func testErrorMessagesAndCodesAreEtcds() {
        let expected: [(KVError, String, Int)] = [
            (.rootUserNotExist, "etcdserver: root user does not exist", 9),
            (.rootRoleNotExist, "etcdserver: root user does not have root role", 9),
            (.userAlreadyExists, "etcdserver: user name already exists", 9),
            (.userEmpty, "etcdserver: user name is empty", 3),
            (.userNotFound, "etcdserver: user name not found", 9),
            (.roleAlreadyExists, "etcdserver: role name already exists", 9),
            (.roleNotFound, "etcdserver: role name not found", 9),
            (.roleEmpty, "etcdserver: role name is empty", 3),
            (.authFailed, "etcdserver: authentication failed, invalid user ID or password", 3),
            (.permissionNotGiven, "etcdserver: permission not given", 3),
            (.permissionDenied, "etcdserver: permission denied", 7),
            (.roleNotGranted, "etcdserver: role is not granted to the user", 9),
            (.permissionNotGranted, "etcdserver: permission is not granted to the role", 9),
            (.authNotEnabled, "etcdserver: authentication is not enabled", 9),
            (.invalidAuthToken, "etcdserver: invalid auth token", 16),
            (.invalidAuthManagement, "etcdserver: invalid auth management", 3),
            (.authOldRevision, "etcdserver: revision of auth store is old", 3),
        ]
        for (error, message, code) in expected {
            XCTAssertEqual(error.message, message)
            XCTAssertEqual(error.grpcStatusCode, code, message)
            XCTAssertTrue(KVError.allCases.contains(error), "\(error) has a wire tag")
        }
        XCTAssertEqual(Set(KVError.allCases).count, KVError.allCases.count)
        // The tags of the errors that existed before auth did not move.
        XCTAssertEqual(KVError.malformedCommand.tag, 11)
    }

    func testUserAddDeleteAndChangePassword() {
        var h = AuthHarness()
        XCTAssertEqual(h.machine.auth.revision, 1, "etcd's auth revision starts at 1")
        XCTAssertEqual(h.error(h.auth(.userAdd(name: "", passwordHash: "x", noPassword: false))), .userEmpty)
        XCTAssertEqual(h.auth(.userAdd(name: "alice", passwordHash: "h1", noPassword: false)), .success(.auth(revision: 1)))
        XCTAssertEqual(h.machine.auth.revision, 2)
        XCTAssertEqual(h.machine.auth.users["alice"], AuthUser(name: "alice", passwordHash: "h1", noPassword: false))
        XCTAssertEqual(h.error(h.auth(.userAdd(name: "alice", passwordHash: "h2", noPassword: false))), .userAlreadyExists)
        XCTAssertEqual(h.machine.auth.users["alice"]?.passwordHash, "h1")
        XCTAssertEqual(h.machine.auth.revision, 2, "a failed change takes no revision")

        h.must(.auth(.userAdd(name: "tls", passwordHash: "ignored", noPassword: true)))
        XCTAssertEqual(h.machine.auth.users["tls"], AuthUser(name: "tls", passwordHash: "", noPassword: true))

        h.must(.auth(.userChangePassword(name: "alice", passwordHash: "h3")))
        XCTAssertEqual(h.machine.auth.users["alice"]?.passwordHash, "h3")
        XCTAssertEqual(h.error(h.auth(.userChangePassword(name: "nobody", passwordHash: "h"))), .userNotFound)

        XCTAssertEqual(h.error(h.auth(.userDelete(name: "nobody"))), .userNotFound)
        let before = h.machine.auth.revision
        h.must(.auth(.userDelete(name: "alice")))
        XCTAssertNil(h.machine.auth.users["alice"])
        XCTAssertEqual(h.machine.auth.revision, before + 1)
        XCTAssertEqual(h.machine.store.revision, 1, "auth changes take no key-space revision")
    }

    func testGrantAndRevokeRole() {
        var h = AuthHarness()
        h.must(.auth(.userAdd(name: "u", passwordHash: "h", noPassword: false)))
        XCTAssertEqual(h.error(h.auth(.userGrantRole(user: "u", role: "r"))), .roleNotFound)
        XCTAssertEqual(h.error(h.auth(.userGrantRole(user: "nobody", role: "root"))), .userNotFound)
        h.must(.auth(.roleAdd(name: "r")))
        h.must(.auth(.roleAdd(name: "a")))
        h.must(.auth(.userGrantRole(user: "u", role: "r")))
        h.must(.auth(.userGrantRole(user: "u", role: "a")))
        // The role root need not exist to be granted (etcd).
        h.must(.auth(.userGrantRole(user: "u", role: "root")))
        XCTAssertEqual(h.machine.auth.users["u"]?.roles, ["a", "r", "root"], "kept sorted")
        XCTAssertNil(h.machine.auth.roles["root"])
        // Granting a role again succeeds and changes nothing, the revision included.
        let revision = h.machine.auth.revision
        XCTAssertEqual(h.auth(.userGrantRole(user: "u", role: "a")), .success(.auth(revision: 1)))
        XCTAssertEqual(h.machine.auth.revision, revision)

        XCTAssertEqual(h.error(h.auth(.userRevokeRole(user: "nobody", role: "a"))), .userNotFound)
        XCTAssertEqual(h.error(h.auth(.userRevokeRole(user: "u", role: "zzz"))), .roleNotGranted)
        h.must(.auth(.userRevokeRole(user: "u", role: "a")))
        XCTAssertEqual(h.machine.auth.users["u"]?.roles, ["r", "root"])
        XCTAssertEqual(h.machine.auth.revision, revision + 1)
        XCTAssertEqual(h.error(h.auth(.userRevokeRole(user: "u", role: "a"))), .roleNotGranted)
    }

    func testRoleAddDeleteAndPermissions() {
        var h = AuthHarness()
        XCTAssertEqual(h.error(h.auth(.roleAdd(name: ""))), .roleEmpty)
        h.must(.auth(.roleAdd(name: "r")))
        XCTAssertEqual(h.error(h.auth(.roleAdd(name: "r"))), .roleAlreadyExists)
        h.must(.auth(.roleAdd(name: "root")))

        XCTAssertEqual(h.error(h.auth(.roleGrantPermission(role: "nope", permission: read("a")))), .roleNotFound)
        for invalid in [AuthPermission(type: .read, key: [], rangeEnd: []), read("b", b("a")), read("b", b("b"))] {
            XCTAssertEqual(h.error(h.auth(.roleGrantPermission(role: "r", permission: invalid))), .invalidAuthManagement,
                           "etcd's isValidPermissionRange refuses \(invalid)")
        }
        h.must(.auth(.roleGrantPermission(role: "r", permission: read("m", b("p")))))
        h.must(.auth(.roleGrantPermission(role: "r", permission: write("c"))))
        h.must(.auth(.roleGrantPermission(role: "r", permission: read("m"))))
        h.must(.auth(.roleGrantPermission(role: "r", permission: read("x", [0]))))
        XCTAssertEqual(h.machine.auth.roles["r"]?.permissions, [write("c"), read("m"), read("m", b("p")), read("x", [0])],
                       "sorted by key, then range end")
        // Same key and range end: the type is replaced, nothing added.
        h.must(.auth(.roleGrantPermission(role: "r", permission: readWrite("m", b("p")))))
        XCTAssertEqual(h.machine.auth.roles["r"]?.permissions, [write("c"), read("m"), readWrite("m", b("p")), read("x", [0])])

        XCTAssertEqual(h.error(h.auth(.roleRevokePermission(role: "nope", key: b("c"), rangeEnd: []))), .roleNotFound)
        XCTAssertEqual(h.error(h.auth(.roleRevokePermission(role: "r", key: b("m"), rangeEnd: b("q")))), .permissionNotGranted)
        let revision = h.machine.auth.revision
        h.must(.auth(.roleRevokePermission(role: "r", key: b("m"), rangeEnd: b("p"))))
        XCTAssertEqual(h.machine.auth.roles["r"]?.permissions, [write("c"), read("m"), read("x", [0])])
        XCTAssertEqual(h.machine.auth.revision, revision + 1)

        // Deleting a role takes it from every user.
        h.must(.auth(.userAdd(name: "u", passwordHash: "h", noPassword: false)))
        h.must(.auth(.userAdd(name: "v", passwordHash: "h", noPassword: false)))
        h.must(.auth(.userGrantRole(user: "u", role: "r")))
        h.must(.auth(.userGrantRole(user: "v", role: "r")))
        h.must(.auth(.userGrantRole(user: "v", role: "root")))
        XCTAssertEqual(h.error(h.auth(.roleDelete(name: "nope"))), .roleNotFound)
        h.must(.auth(.roleDelete(name: "r")))
        XCTAssertNil(h.machine.auth.roles["r"])
        XCTAssertEqual(h.machine.auth.users["u"]?.roles, [])
        XCTAssertEqual(h.machine.auth.users["v"]?.roles, ["root"])
        // While disabled, the role root may be deleted too (it was added here), and with it
        // every user's root role.
        h.must(.auth(.roleDelete(name: "root")))
        XCTAssertEqual(h.machine.auth.users["v"]?.roles, [])
    }

    func testEnableNeedsRootWithRootRoleAndDisable() {
        var h = AuthHarness()
        XCTAssertEqual(h.error(h.auth(.enable(tokenSecret: [7]))), .rootUserNotExist)
        h.must(.auth(.userAdd(name: "root", passwordHash: "h", noPassword: false)))
        XCTAssertEqual(h.error(h.auth(.enable(tokenSecret: [7]))), .rootRoleNotExist)
        h.must(.auth(.userGrantRole(user: "root", role: "root")))
        let revision = h.machine.auth.revision
        XCTAssertEqual(h.auth(.enable(tokenSecret: [7])), .success(.auth(revision: 1)))
        XCTAssertTrue(h.machine.auth.enabled)
        XCTAssertEqual(h.machine.auth.tokenSecret, [7])
        XCTAssertEqual(h.machine.auth.revision, revision, "etcd's AuthEnable keeps the auth revision")

        // Enabled: enabling again (as root) succeeds and changes nothing, the secret included.
        XCTAssertEqual(h.run(h.by("root", .auth(.enable(tokenSecret: [8])))), .success(.auth(revision: 1)))
        XCTAssertEqual(h.machine.auth.tokenSecret, [7])

        h.must(h.by("root", .auth(.disable)))
        XCTAssertFalse(h.machine.auth.enabled)
        XCTAssertEqual(h.machine.auth.tokenSecret, [])
        XCTAssertEqual(h.machine.auth.revision, revision + 1, "disabling bumps the revision")
        // Disabling a disabled store succeeds and changes nothing.
        h.must(.auth(.disable))
        XCTAssertEqual(h.machine.auth.revision, revision + 1)
    }

    func testRootIsProtectedWhileEnabledOnly() {
        var h = AuthHarness.enabled(alice: [])
        XCTAssertEqual(h.error(h.run(h.by("root", .auth(.userDelete(name: "root"))))), .invalidAuthManagement)
        XCTAssertEqual(h.error(h.run(h.by("root", .auth(.userRevokeRole(user: "root", role: "root"))))), .invalidAuthManagement)
        XCTAssertEqual(h.error(h.run(h.by("root", .auth(.roleDelete(name: "root"))))), .invalidAuthManagement)
        XCTAssertEqual(h.machine.auth.users["root"]?.roles, ["root"])
        // Other users' root role may be revoked.
        h.must(h.by("root", .auth(.userGrantRole(user: "alice", role: "root"))))
        h.must(h.by("root", .auth(.userRevokeRole(user: "alice", role: "root"))))

        h.must(h.by("root", .auth(.disable)))
        h.must(.auth(.userRevokeRole(user: "root", role: "root")))
        h.must(.auth(.userDelete(name: "root")))
        XCTAssertNil(h.machine.auth.users["root"])
    }

    /// While enabled, auth changes need the role root; the unwrapped (credential-less) ones
    /// fail as etcd's requests without a token do.
    func testManagementNeedsRootWhileEnabled() {
        var h = AuthHarness.enabled(alice: [readWrite("a")])
        XCTAssertEqual(h.error(h.auth(.roleAdd(name: "x"))), .userEmpty)
        XCTAssertEqual(h.error(h.auth(.enable(tokenSecret: [1]))), .userEmpty)
        XCTAssertEqual(h.error(h.auth(.disable)), .userEmpty)
        XCTAssertEqual(h.error(h.run(h.by("alice", .auth(.roleAdd(name: "x"))))), .permissionDenied)
        XCTAssertEqual(h.error(h.run(h.by("alice", .auth(.disable)))), .permissionDenied)
        XCTAssertEqual(h.error(h.run(h.by("ghost", .auth(.roleAdd(name: "x"))))), .userNotFound)
        XCTAssertEqual(h.error(h.run(h.by("", .auth(.roleAdd(name: "x"))))), .userEmpty)
        XCTAssertNil(h.machine.auth.roles["x"])
        XCTAssertTrue(h.machine.auth.enabled)
        h.must(h.by("root", .auth(.roleAdd(name: "x"))))
        XCTAssertNotNil(h.machine.auth.roles["x"])
        // A stale token does not stop an admin change (etcd's IsAdminPermitted checks no revision).
        h.must(.authorized(user: "root", authRevision: 1, command: .auth(.roleAdd(name: "y"))))
    }

    func testAuthorizedCommandsWithAuthDisabledApplyAsIs() {
        var h = AuthHarness()
        XCTAssertEqual(h.run(.authorized(user: "nobody", authRevision: 0, command: .put(PutRequest(key: b("k"), value: b("v"))))),
                       .success(.put(PutResponse(revision: 2, prevKv: nil))))
        h.must(.authorized(user: "", authRevision: 0, command: .auth(.roleAdd(name: "r"))))
        XCTAssertEqual(h.error(h.run(.authorized(user: "u", authRevision: 1, command: .authorized(
            user: "v", authRevision: 1, command: .compact(revision: 1))))), .malformedCommand)
    }

    func testCallerChecksFollowEtcdsOrder() throws {
        var h = AuthHarness.enabled(alice: [readWrite("a")])
        let put = KVCommand.put(PutRequest(key: b("a"), value: b("1")))
        XCTAssertEqual(h.error(h.run(put)), .userEmpty, "no credentials")
        XCTAssertEqual(h.error(h.run(.authorized(user: "alice", authRevision: 0, command: put))), .userEmpty)
        XCTAssertEqual(h.error(h.run(.authorized(user: "ghost", authRevision: h.machine.auth.revision, command: put))),
                       .permissionDenied, "an unknown user is denied (etcd isOpPermitted)")
        let issued = h.machine.auth.revision
        h.must(h.by("root", .auth(.roleAdd(name: "other"))))
        XCTAssertEqual(h.error(h.run(.authorized(user: "alice", authRevision: issued, command: put))), .authOldRevision)
        h.must(h.by("alice", put))
        XCTAssertEqual(try h.machine.store.get("a")?.value, b("1"))
        // root may write anywhere; a newer token than the store's is accepted.
        h.must(.authorized(user: "root", authRevision: h.machine.auth.revision + 5,
                           command: .put(PutRequest(key: b("zzz"), value: b("r")))))
        // Lease grant needs credentials only; compaction needs nothing (etcd).
        XCTAssertEqual(h.error(h.run(.leaseGrant(id: 9, ttlSeconds: 10))), .userEmpty)
        h.must(h.by("alice", .leaseGrant(id: 9, ttlSeconds: 10)))
        h.must(h.by("alice", .compact(revision: 2)))
        h.must(.compact(revision: 3))
        // The cluster's own commands pass unwrapped.
        h.must(.leaseKeepAlive(id: 9))
        h.must(.leaseRevoke(id: 9))
        h.must(.publishMember(memberID: 1, attributes: MemberAttributes(name: "m", clientURLs: [])))
        h.must(.integrityCheck(id: 1))
        h.must(.alarm(action: .activate, member: AlarmMember(memberID: 1, alarm: .noSpace)))
        // A client's maintenance through the wrapper needs root.
        XCTAssertEqual(h.error(h.run(h.by("alice", .alarm(action: .deactivate, member: AlarmMember(memberID: 1, alarm: .noSpace))))),
                       .permissionDenied)
        h.must(h.by("root", .alarm(action: .deactivate, member: AlarmMember(memberID: 1, alarm: .noSpace))))
        XCTAssertTrue(h.machine.alarms.isEmpty)
    }

    func testAuthThroughTheLogWithSessions() {
        var machine = KVStateMachine()
        let add = Command(clientID: 1, sequence: 1, payload: KVCommand.auth(.userAdd(name: "u", passwordHash: "h", noPassword: false)).encoded())
        XCTAssertEqual(machine.apply(add, slot: 1).outcome, .applied(.success(.auth(revision: 1))))
        XCTAssertEqual(machine.apply(add, slot: 2).outcome, .duplicate(.success(.auth(revision: 1))))
        let again = Command(clientID: 1, sequence: 2, payload: add.payload)
        XCTAssertEqual(machine.apply(again, slot: 3).outcome, .applied(.failure(.userAlreadyExists)))
        XCTAssertEqual(machine.auth.revision, 2)
    }

    // MARK: - Encoding

    func testEveryAuthCommandRoundTrips() throws {
        let changes: [AuthCommand] = [
            .enable(tokenSecret: [0, 1, 255]), .enable(tokenSecret: []), .disable,
            .userAdd(name: "ünï", passwordHash: "$2a$10$abc", noPassword: false), .userAdd(name: "t", passwordHash: "", noPassword: true),
            .userDelete(name: "u"), .userChangePassword(name: "u", passwordHash: "p"),
            .userGrantRole(user: "u", role: "r"), .userRevokeRole(user: "u", role: "r"),
            .roleAdd(name: "r"), .roleDelete(name: "r"),
            .roleGrantPermission(role: "r", permission: AuthPermission(type: .readWrite, key: [0], rangeEnd: [0])),
            .roleRevokePermission(role: "r", key: b("a"), rangeEnd: b("b")),
        ]
        var commands = changes.map { KVCommand.auth($0) }
        commands += changes.map { KVCommand.authorized(user: "root", authRevision: 42, command: .auth($0)) }
        commands.append(.authorized(user: "alice", authRevision: .max, command: .txn(TxnRequest(
            compare: [Compare(key: b("a"), result: .equal, target: .version(1))],
            success: [.put(PutRequest(key: b("a"), value: b("v"), prevKv: true))],
            failure: [.txn(TxnRequest(success: [.deleteRange(DeleteRangeRequest(key: b("b")))]))]))))
        for command in commands {
            let bytes = command.encoded()
            XCTAssertEqual(try KVCommand(decoding: bytes), command)
            // Every truncation throws, and so does a trailing byte.
            for length in 0..<bytes.count {
                XCTAssertThrowsError(try KVCommand(decoding: Array(bytes.prefix(length))), "\(command) cut at \(length)")
            }
            XCTAssertThrowsError(try KVCommand(decoding: bytes + [0]))
        }
        var random = RandomCommands(seed: 5)
        for _ in 0..<1000 {
            let command = random.authCommand()
            XCTAssertEqual(try KVCommand(decoding: command.encoded()), command)
        }
    }

    func testMalformedAuthCommandsThrow() {
        let version = KVCommand.encodingVersion
        XCTAssertThrowsError(try KVCommand(decoding: [version, 12, 11]), "unknown auth tag") { error in
            XCTAssertEqual(error as? KVDecodingError, .invalid)
        }
        var badType = KVCommand.auth(.roleGrantPermission(role: "r", permission: read("a"))).encoded()
        // [version][12][9][role: u32 1 + "r"][type]...
        badType[2 + 1 + 5] = 3
        XCTAssertThrowsError(try KVCommand(decoding: badType)) { error in
            XCTAssertEqual(error as? KVDecodingError, .invalid)
        }
        // A name longer than the bound.
        let long = String(repeating: "x", count: AuthStore.textBytesMax + 1)
        XCTAssertThrowsError(try KVCommand(decoding: KVCommand.auth(.roleAdd(name: long)).encoded()))
        XCTAssertNoThrow(try KVCommand(decoding: KVCommand.auth(.roleAdd(name: String(long.dropLast()))).encoded()))
        // The server's shortcut (wrapping an encoding it already has) is the same encoding.
        for inner in [KVCommand.compact(revision: 9), .put(PutRequest(key: b("k"), value: b("v"))), .leaseRevoke(id: 3)] {
            let shortcut = KVCommand.encodedAuthorized(user: "alice", authRevision: 4, encodedCommand: inner.encoded())
            XCTAssertEqual(shortcut, KVCommand.authorized(user: "alice", authRevision: 4, command: inner).encoded())
            XCTAssertEqual(try KVCommand(decoding: shortcut), .authorized(user: "alice", authRevision: 4, command: inner))
        }
        // The wrapper never wraps itself.
        var writerBytes: [UInt8] = [version, 13]
        let user = b("u")
        writerBytes += [UInt8(user.count), 0, 0, 0] + user + [1, 0, 0, 0, 0, 0, 0, 0]
        let inner = KVCommand.authorized(user: "v", authRevision: 1, command: .compact(revision: 1)).encoded()
        writerBytes += [UInt8(inner.count), 0, 0, 0] + inner
        XCTAssertThrowsError(try KVCommand(decoding: writerBytes)) { error in
            XCTAssertEqual(error as? KVDecodingError, .invalid)
        }
        // Garbage after the auth tags never traps.
        var random = RandomCommands(seed: 17)
        for _ in 0..<3000 {
            var bytes: [UInt8] = [version, UInt8(random.int(12...13))]
            bytes += (0..<random.int(0...40)).map { _ in UInt8(random.int(0...255)) }
            _ = try? KVCommand(decoding: bytes)
            var encoded = random.authCommand().encoded()
            encoded[random.int(0...encoded.count - 1)] ^= UInt8(random.int(1...255))
            _ = try? KVCommand(decoding: encoded)
        }
    }

    // MARK: - Snapshots and hashes

    private func populated() -> AuthHarness {
        var h = AuthHarness.enabled(alice: [readWrite("a", b("c")), read("x", [0])]) { h in
            h.must(.auth(.userAdd(name: "tls", passwordHash: "", noPassword: true)))
            h.must(.auth(.roleAdd(name: "empty")))
            h.must(.auth(.userGrantRole(user: "tls", role: "empty")))
            h.must(.auth(.userGrantRole(user: "tls", role: "limited")))
        }
        h.must(h.by("alice", .put(PutRequest(key: b("b"), value: b("v")))))
        return h
    }

    func testSnapshotCarriesTheAuthStore() throws {
        let h = populated()
        let bytes = h.machine.snapshot()
        XCTAssertEqual(bytes[0], 5)
        var restored = AuthHarness(machine: try KVStateMachine(snapshot: bytes))
        XCTAssertEqual(restored.machine, h.machine)
        XCTAssertEqual(restored.machine.auth.tokenSecret, [1, 2, 3])
        XCTAssertEqual(restored.machine.snapshot(), bytes)
        // The restored replica enforces the same permissions.
        XCTAssertEqual(restored.error(restored.run(restored.by("alice", .put(PutRequest(key: b("d"), value: b("v")))))),
                       .permissionDenied)
        restored.must(restored.by("alice", .put(PutRequest(key: b("a"), value: b("v")))))

        // Equal states built in another order encode to equal bytes.
        var other = AuthHarness()
        other.must(.auth(.roleAdd(name: "empty")))
        other.must(.auth(.userAdd(name: "tls", passwordHash: "", noPassword: true)))
        other.must(.auth(.roleAdd(name: "limited")))
        other.must(.auth(.userAdd(name: "alice", passwordHash: "$2a$10$alice", noPassword: false)))
        other.must(.auth(.userAdd(name: "root", passwordHash: "$2a$10$root", noPassword: false)))
        var reordered = other.machine.auth
        for (name, user) in h.machine.auth.users { reordered.users[name] = user }
        for (name, role) in h.machine.auth.roles { reordered.roles[name] = role }
        reordered.enabled = true
        reordered.tokenSecret = [1, 2, 3]
        reordered.revision = h.machine.auth.revision
        var machine = h.machine
        machine.auth = reordered
        XCTAssertEqual(machine.snapshot(), bytes)

        // Every truncation throws; so does a snapshot whose users are out of order.
        for length in stride(from: 0, to: bytes.count, by: 7) {
            XCTAssertThrowsError(try KVStateMachine(snapshot: Array(bytes.prefix(length))))
        }
        var bad = h.machine
        bad.auth.revision = 0
        XCTAssertThrowsError(try KVStateMachine(snapshot: bad.snapshot())) { error in
            XCTAssertEqual(error as? KVDecodingError, .invalid)
        }
        var writer = LittleEndianWriterProbe()
        writer.users(["b", "a"])
        XCTAssertThrowsError(try KVStateMachine(snapshot: Array(KVStateMachine().snapshot().dropLast(21)) + writer.bytes)) { error in
            XCTAssertEqual(error as? KVDecodingError, .invalid)
        }
    }

    func testOlderSnapshotsDecodeWithAuthDisabledAndEmpty() throws {
        var h = AuthHarness()
        h.must(.put(PutRequest(key: b("k"), value: b("v"))))
        var bytes = h.machine.snapshot()
        bytes.removeLast(21) // the untouched auth store
        bytes[0] = 4
        let restored = try KVStateMachine(snapshot: bytes)
        XCTAssertEqual(restored, h.machine)
        XCTAssertEqual(restored.auth, AuthStore())
        XCTAssertFalse(restored.auth.enabled)
        XCTAssertEqual(restored.auth.revision, 1)
    }

    func testIntegrityHashCoversAuthOnceUsed() {
        var a = AuthHarness()
        a.must(.put(PutRequest(key: b("k"), value: b("v"))))
        XCTAssertEqual(a.machine.integrityHash, a.machine.store.integrityHash, "untouched auth: the hash older builds compute")
        var b1 = a
        a.must(.auth(.roleAdd(name: "r")))
        XCTAssertNotEqual(a.machine.integrityHash, a.machine.store.integrityHash)
        XCTAssertNotEqual(a.machine.integrityHash, b1.machine.integrityHash)
        b1.must(.auth(.roleAdd(name: "r")))
        XCTAssertEqual(a.machine.integrityHash, b1.machine.integrityHash)
        b1.must(.auth(.roleGrantPermission(role: "r", permission: read("k"))))
        XCTAssertNotEqual(a.machine.integrityHash, b1.machine.integrityHash, "permissions are part of it")
        a.must(.integrityCheck(id: 1))
        XCTAssertEqual(a.machine.integrityRecords.last?.hash, a.machine.integrityHash)
    }
}

/// Writes an auth store part by hand, for malformed snapshots.
struct LittleEndianWriterProbe {
    var bytes: [UInt8] = []

    mutating func u32(_ value: Int) { bytes += withUnsafeBytes(of: UInt32(value).littleEndian, Array.init) }

    mutating func string(_ text: String) {
        u32(text.utf8.count)
        bytes += Array(text.utf8)
    }

    /// An enabled store at revision 2 with these users (no roles), in the given order.
    mutating func users(_ names: [String]) {
        bytes += [1] + withUnsafeBytes(of: UInt64(2).littleEndian, Array.init)
        u32(0) // secret
        u32(names.count)
        for name in names {
            string(name)
            string("h")
            bytes.append(0)
            u32(0)
        }
        u32(0) // roles
    }
}
