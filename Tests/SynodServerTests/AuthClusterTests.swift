import Foundation
import GRPCCore
import Logging
import Synchronization
@testable import SynodClient
import SynodEtcdAPI
import XCTest
@testable import SynodServer

/// etcd's auth on in-process clusters through the real gRPC API: tokens valid on every member
/// and across a leader change and a membership change, their time-to-live, permission checks
/// served by every member, SynodClient with credentials, and no secret in any log line.
final class AuthClusterTests: XCTestCase {
    struct NotYet: Error { var what: String }

    // MARK: - Raw gRPC with a token

    var options: CallOptions {
        var options = CallOptions.defaults
        options.timeout = .seconds(10)
        return options
    }

    func metadata(_ token: String?) -> Metadata {
        var metadata = Metadata()
        if let token { metadata.addString(token, forKey: "token") }
        return metadata
    }

    func authenticate(_ endpoint: String, _ user: String, _ password: String) async throws -> String {
        var request = Etcdserverpb_AuthenticateRequest()
        request.name = user
        request.password = password
        return try await withRaw(endpoint) { try await Etcdserverpb_Auth.Client(wrapping: $0).authenticate(request, options: options).token }
    }

    func put(_ endpoint: String, _ key: String, _ value: String, token: String?) async throws {
        var request = Etcdserverpb_PutRequest()
        request.key = Data(key.utf8)
        request.value = Data(value.utf8)
        _ = try await withRaw(endpoint) { grpc in
            try await Etcdserverpb_KV.Client(wrapping: grpc).put(request, metadata: metadata(token), options: options)
        }
    }

    func get(_ endpoint: String, _ key: String, token: String?) async throws -> String? {
        var request = Etcdserverpb_RangeRequest()
        request.key = Data(key.utf8)
        let response = try await withRaw(endpoint) { grpc in
            try await Etcdserverpb_KV.Client(wrapping: grpc).range(request, metadata: metadata(token), options: options)
        }
        return response.kvs.first.map { String(decoding: $0.value, as: UTF8.self) }
    }

    func admin(_ endpoint: String, token: String?, _ body: (Etcdserverpb_Auth.Client<SynodClient.Transport>, Metadata) async throws -> Void)
        async throws {
        try await withRaw(endpoint) { grpc in try await body(Etcdserverpb_Auth.Client(wrapping: grpc), metadata(token)) }
    }

    func rpcError(_ body: () async throws -> Void) async -> RPCError? {
        do {
            try await body()
            return nil
        } catch let error as RPCError {
            return error
        } catch {
            return RPCError(code: .unknown, message: "\(error)")
        }
    }

    /// root (role root) and alice (role reader: READ on the prefix app/), then auth enabled.
    func setUpAuth(_ endpoint: String) async throws {
        try await admin(endpoint, token: nil) { auth, _ in
            var root = Etcdserverpb_AuthUserAddRequest()
            root.name = "root"
            root.password = "root-pw-31"
            _ = try await auth.userAdd(root, options: options)
            var grant = Etcdserverpb_AuthUserGrantRoleRequest()
            grant.user = "root"
            grant.role = "root"
            _ = try await auth.userGrantRole(grant, options: options)
            var alice = Etcdserverpb_AuthUserAddRequest()
            alice.name = "alice"
            alice.password = "alice-pw-47"
            _ = try await auth.userAdd(alice, options: options)
            var role = Etcdserverpb_AuthRoleAddRequest()
            role.name = "reader"
            _ = try await auth.roleAdd(role, options: options)
            var permission = Etcdserverpb_AuthRoleGrantPermissionRequest()
            permission.name = "reader"
            permission.perm.permType = .read
            permission.perm.key = Data("app/".utf8)
            permission.perm.rangeEnd = Data("app0".utf8)
            _ = try await auth.roleGrantPermission(permission, options: options)
            grant.user = "alice"
            grant.role = "reader"
            _ = try await auth.userGrantRole(grant, options: options)
            _ = try await auth.authEnable(Etcdserverpb_AuthEnableRequest(), options: options)
        }
    }

    // MARK: - Tests

    /// A token issued by one member works on every member, after the leader moved and on a
    /// member that joined after it was issued; each member enforces alice's permissions.
    func testTokenIsValidOnEveryMemberAcrossLeaderAndMembershipChanges() async throws {
        let cluster = try InProcessCluster(nodes: 3)
        for i in 0..<3 { try cluster.start(i) }
        defer { Task { await cluster.stopAll() } }
        let ep = cluster.endpoints
        try await eventually { try await self.put(ep[0], "app/x", "1", token: nil) }
        try await setUpAuth(ep[0])

        let rootToken = try await eventually { try await self.authenticate(ep[1], "root", "root-pw-31") }
        let aliceToken = try await authenticate(ep[2], "alice", "alice-pw-47")
        for endpoint in ep {
            try await put(endpoint, "app/x", "2", token: rootToken)
            let read = try await get(endpoint, "app/x", token: aliceToken)
            XCTAssertEqual(read, "2")
            let denied = await rpcError { try await self.put(endpoint, "app/x", "3", token: aliceToken) }
            XCTAssertEqual(denied?.code, .permissionDenied)
            XCTAssertEqual(denied?.message, "etcdserver: permission denied")
            let outside = await rpcError { _ = try await self.get(endpoint, "other", token: aliceToken) }
            XCTAssertEqual(outside?.message, "etcdserver: permission denied")
            let anonymous = await rpcError { _ = try await self.get(endpoint, "app/x", token: nil) }
            XCTAssertEqual(anonymous?.message, "etcdserver: user name is empty")
            let forged = await rpcError { _ = try await self.get(endpoint, "app/x", token: rootToken + "x") }
            XCTAssertEqual(forged?.code, .unauthenticated)
            XCTAssertEqual(forged?.message, "etcdserver: invalid auth token")
        }
        let wrong = await rpcError { _ = try await self.authenticate(ep[0], "alice", "nope") }
        XCTAssertEqual(wrong?.message, "etcdserver: authentication failed, invalid user ID or password")

        // Move the leadership to another member: the tokens stay valid.
        let statuses = try await withRaw(ep[0]) { grpc in
            try await Etcdserverpb_Maintenance.Client(wrapping: grpc).status(Etcdserverpb_StatusRequest(), options: options)
        }
        var leaderIndex = 0
        for (i, endpoint) in ep.enumerated() {
            let status = try await withRaw(endpoint) { grpc in
                try await Etcdserverpb_Maintenance.Client(wrapping: grpc).status(Etcdserverpb_StatusRequest(), options: options)
            }
            if status.header.memberID == statuses.leader { leaderIndex = i }
        }
        let target = (leaderIndex + 1) % 3
        let targetID = try await withRaw(ep[target]) { grpc in
            try await Etcdserverpb_Maintenance.Client(wrapping: grpc).status(Etcdserverpb_StatusRequest(), options: options).header.memberID
        }
        var move = Etcdserverpb_MoveLeaderRequest()
        move.targetID = targetID
        let aliceMove = await rpcError {
            _ = try await self.withRaw(ep[leaderIndex]) { grpc in
                try await Etcdserverpb_Maintenance.Client(wrapping: grpc).moveLeader(move, metadata: self.metadata(aliceToken), options: self.options)
            }
        }
        XCTAssertEqual(aliceMove?.message, "etcdserver: permission denied", "moving the leader needs root")
        _ = try await withRaw(ep[leaderIndex]) { grpc in
            try await Etcdserverpb_Maintenance.Client(wrapping: grpc).moveLeader(move, metadata: metadata(rootToken), options: options)
        }
        for endpoint in ep {
            try await eventually { try await self.put(endpoint, "app/y", "after-move", token: rootToken) }
            let read = try await eventually { try await self.get(endpoint, "app/y", token: aliceToken) }
            XCTAssertEqual(read, "after-move")
        }

        // A member that joins later knows the secret from the log (or its snapshot): the same
        // token works there. Membership changes need root.
        let spare = cluster.addSpare()
        let peerURL = cluster.configurations[spare].listenPeerURLs
        var add = Etcdserverpb_MemberAddRequest()
        add.peerUrls = [peerURL]
        add.isLearner = false
        let aliceAdd = await rpcError {
            _ = try await self.withRaw(ep[0]) { grpc in
                try await Etcdserverpb_Cluster.Client(wrapping: grpc).memberAdd(add, metadata: self.metadata(aliceToken), options: self.options)
            }
        }
        XCTAssertEqual(aliceAdd?.message, "etcdserver: permission denied")
        _ = try await eventually {
            try await self.withRaw(ep[0]) { grpc in
                try await Etcdserverpb_Cluster.Client(wrapping: grpc).memberAdd(add, metadata: self.metadata(rootToken), options: self.options)
            }
        }
        try await cluster.join(spare)
        let joined = cluster.endpoints[spare]
        let read = try await eventually(30) {
            guard let value = try await self.get(joined, "app/y", token: aliceToken) else { throw NotYet(what: "no app/y yet") }
            return value
        }
        XCTAssertEqual(read, "after-move")
        let deniedThere = await rpcError { try await self.put(joined, "app/z", "1", token: aliceToken) }
        XCTAssertEqual(deniedThere?.message, "etcdserver: permission denied")
    }

    /// `--auth-token-ttl`: a token stops working when it runs out; SynodClient with credentials
    /// authenticates again by itself (after expiry and after the auth revision moved).
    func testTokensExpireAndSynodClientRenewsThem() async throws {
        let cluster = try InProcessCluster(nodes: 1)
        cluster.configurations[0].authTokenTTLSeconds = 1
        try cluster.start(0)
        defer { Task { await cluster.stopAll() } }
        let ep = cluster.endpoints
        try await eventually { try await self.put(ep[0], "app/x", "1", token: nil) }
        try await setUpAuth(ep[0])
        let token = try await eventually { try await self.authenticate(ep[0], "alice", "alice-pw-47") }
        let before = try await get(ep[0], "app/x", token: token)
        XCTAssertEqual(before, "1")
        try await Task.sleep(for: .milliseconds(2_100))
        let expired = await rpcError { _ = try await self.get(ep[0], "app/x", token: token) }
        XCTAssertEqual(expired?.message, "etcdserver: invalid auth token")

        var configuration = SynodClientConfiguration(endpoints: ep)
        configuration.credentials = ("alice", "alice-pw-47")
        try await withClient(try SynodClient(configuration: configuration)) { client in
            let first = try await client.get("app/x")
            XCTAssertEqual(first.kvs.first.map { String(decoding: $0.value, as: UTF8.self) }, "1")
            try await Task.sleep(for: .milliseconds(2_100))  // its token expired meanwhile
            let second = try await client.get("app/x")
            XCTAssertEqual(second.kvs.count, 1)
            do {
                _ = try await client.put("app/x", "no")
                XCTFail("alice may not write")
            } catch SynodClientError.server(let code, let message, _) {
                XCTAssertEqual(code, .permissionDenied)
                XCTAssertEqual(message, "etcdserver: permission denied")
            }
        }
        // The auth revision moves (a new role): a token from before is old; the client renews.
        let rootToken = try await authenticate(ep[0], "root", "root-pw-31")
        try await admin(ep[0], token: rootToken) { auth, metadata in
            var role = Etcdserverpb_AuthRoleAddRequest()
            role.name = "another"
            _ = try await auth.roleAdd(role, metadata: metadata, options: options)
        }
        let stale = await rpcError { try await self.put(ep[0], "app/x", "2", token: rootToken) }
        XCTAssertEqual(stale?.message, "etcdserver: revision of auth store is old")
        configuration.credentials = ("root", "root-pw-31")
        try await withClient(try SynodClient(configuration: configuration)) { client in
            _ = try await client.put("app/x", "3")
        }
    }

    /// Passwords, password hashes and tokens appear in no log line, at trace level.
    func testNoSecretInTheLogs() async throws {
        let lines = LogLines()
        let cluster = try InProcessCluster(nodes: 1)
        let root = cluster.root
        var options = try cluster.configurations[0].validate()
        options.bcryptCost = 4
        let logger = Logger(label: "auth-test") { _ in CapturingLogHandler(lines: lines) }
        let server = try SynodNodeServer(options: options, logger: logger, group: cluster.group)
        let task = Task { try await server.run() }
        defer {
            task.cancel()
            Task { try? await cluster.group.shutdownGracefully(); try? FileManager.default.removeItem(atPath: root) }
        }
        let ep = cluster.endpoints[0]
        try await eventually { try await self.put(ep, "app/x", "1", token: nil) }
        try await setUpAuth(ep)
        let token = try await eventually { try await self.authenticate(ep, "alice", "alice-pw-47") }
        _ = try await get(ep, "app/x", token: token)
        _ = await rpcError { try await self.put(ep, "app/x", "2", token: token) }
        _ = await rpcError { _ = try await self.authenticate(ep, "alice", "wrong-pw-59") }
        _ = await rpcError { _ = try await self.get(ep, "app/x", token: token + "tampered") }
        let hash = try await server.node.withState { $0.kv.auth.users["alice"]?.passwordHash ?? "" }
        XCTAssertFalse(hash.isEmpty)
        let logged = lines.all
        XCTAssertGreaterThan(logged.count, 5, "the handler captured the member's log")
        for secret in ["alice-pw-47", "root-pw-31", "wrong-pw-59", token, hash] {
            XCTAssertFalse(logged.contains { $0.contains(secret) }, "a log line holds a secret")
        }
    }
}

/// Collects every log line (message and metadata) of a member.
final class LogLines: Sendable {
    private let lines = Mutex<[String]>([])
    func append(_ line: String) { lines.withLock { $0.append(line) } }
    var all: [String] { lines.withLock { $0 } }
}

struct CapturingLogHandler: LogHandler {
    let lines: LogLines
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        lines.append("\(event.level) \(event.message) \(metadata.merging(event.metadata ?? [:]) { $1 })")
    }
}
