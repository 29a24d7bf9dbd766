import Foundation
import GRPCCore
import Synchronization
@testable import SynodClient
import SynodEtcdAPI
import XCTest
@testable import SynodServer

/// etcd's Lock and Election services on an in-process cluster, through SynodClient's gRPC
/// calls: mutual exclusion, release by Unlock, lease revoke and expiry, waiters that give up,
/// campaign/proclaim/leader/observe/resign, and etcd's errors.
final class LockElectionTests: XCTestCase {
    struct Timeout: Error {}

    /// Runs `body` against a fresh cluster of `nodes` members with one client on all of them.
    func withCluster(nodes: Int = 1, transport: GRPCTransportKind? = nil, _ body: (SynodClient) async throws -> Void) async throws {
        let cluster = try InProcessCluster(nodes: nodes)
        cluster.grpcTransport = transport
        for i in 0..<nodes { try cluster.start(i) }
        do {
            try await withClient(try cluster.client()) { client in
                _ = try await eventually { try await client.put("ready", "1") }
                try await body(client)
            }
        } catch {
            await cluster.stopAll()
            throw error
        }
        await cluster.stopAll()
    }

    /// The server's code and message for a failing call.
    func failure(_ body: () async throws -> Void) async -> (code: RPCError.Code, message: String)? {
        do {
            try await body()
            return nil
        } catch SynodClientError.server(let code, let message, _) {
            return (code, message)
        } catch {
            return (.unknown, "\(error)")
        }
    }

    /// Whether `task` finished within `seconds`.
    func finishes<T: Sendable>(_ task: Task<T, any Error>, within seconds: Double) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        let done = Atomic<Bool>(false)
        let watcher = Task {
            _ = try? await task.value
            done.store(true, ordering: .releasing)
        }
        defer { watcher.cancel() }
        while Date() < deadline {
            if done.load(ordering: .acquiring) { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return done.load(ordering: .acquiring)
    }

    func keys(_ client: SynodClient, _ prefix: String) async throws -> [String] {
        try await client.get(prefix, prefix: true).kvs.map { String(decoding: $0.key, as: UTF8.self) }
    }

    // MARK: - Lock

    func testLockIsMutuallyExclusiveAndUnlockHandsItOver() async throws {
        try await withCluster { client in
            let first = try await client.leaseGrant(ttl: 60).id
            let second = try await client.leaseGrant(ttl: 60).id
            let held = try await client.lock("door", lease: first)
            XCTAssertEqual(String(decoding: held.key, as: UTF8.self), "door/" + String(first, radix: 16))
            let waiter = Task { try await client.lock("door", lease: second) }
            let early = await finishes(waiter, within: 1.0)
            XCTAssertFalse(early, "a second locker got the lock while the first held it")
            let observed1 = try await keys(client, "door/")
            XCTAssertEqual(observed1.count, 2, "the waiter queues its own key")
            try await client.unlock(key: held.key)
            let handedOver = await finishes(waiter, within: 5)
            XCTAssertTrue(handedOver, "the waiter did not get the lock after Unlock")
            let second_ = try await waiter.value
            XCTAssertEqual(String(decoding: second_.key, as: UTF8.self), "door/" + String(second, radix: 16))
            XCTAssertGreaterThan(second_.header.revision, held.header.revision)
            // The same lease asking again gets its key back at once.
            let again = try await client.lock("door", lease: second)
            XCTAssertEqual(again.key, second_.key)
        }
    }

    func testLockIsReleasedWhenTheHoldersLeaseIsRevokedOrExpires() async throws {
        try await withCluster { client in
            let holder = try await client.leaseGrant(ttl: 60).id
            let waiting = try await client.leaseGrant(ttl: 60).id
            _ = try await client.lock("gate", lease: holder)
            let waiter = Task { try await client.lock("gate", lease: waiting) }
            let early = await finishes(waiter, within: 1.0)
            XCTAssertFalse(early)
            try await client.leaseRevoke(id: holder)
            let afterRevoke = await finishes(waiter, within: 5)
            XCTAssertTrue(afterRevoke, "revoking the holder's lease did not release the lock")
            _ = try await waiter.value

            // A holder whose lease is not kept alive loses the lock when it expires.
            let short = try await client.leaseGrant(ttl: 2).id
            let next = try await client.leaseGrant(ttl: 60).id
            _ = try await client.lock("latch", lease: short)
            let waiter2 = Task { try await client.lock("latch", lease: next) }
            let afterExpiry = await finishes(waiter2, within: 12)
            XCTAssertTrue(afterExpiry, "the holder's lease expired but the waiter still waits")
            let got = try await waiter2.value
            XCTAssertEqual(String(decoding: got.key, as: UTF8.self), "latch/" + String(next, radix: 16))
        }
    }

    func testLockErrors() async throws {
        try await withCluster { client in
            // A lease that does not exist: etcd's "requested lease not found", with code
            // Unknown (etcd's recipe gets it from its in-process client).
            let missing = await failure { _ = try await client.lock("gone", lease: 0x7777) }
            XCTAssertEqual(missing?.code, .unknown)
            XCTAssertEqual(missing?.message, "etcdserver: requested lease not found")
            let observed2 = try await keys(client, "gone/")
            XCTAssertEqual(observed2, [])

            // Lease 0: as etcd's session, the server grants a lease of 60 s for the lock.
            let auto = try await client.lock("auto", lease: 0)
            let autoLease = UInt64(String(decoding: auto.key, as: UTF8.self).dropFirst("auto/".count), radix: 16)
            XCTAssertNotNil(autoLease)
            let autoTTL = try await client.leaseTimeToLive(id: Int64(bitPattern: autoLease ?? 0))
            XCTAssertEqual(autoTTL.grantedTtl, 60)

            // A waiter whose lease expires while it waits fails, and its key is gone.
            let holder = try await client.leaseGrant(ttl: 60).id
            let short = try await client.leaseGrant(ttl: 2).id
            _ = try await client.lock("held", lease: holder)
            let lost = await failure { _ = try await client.lock("held", lease: short) }
            XCTAssertEqual(lost?.code, .unknown)
            XCTAssertEqual(lost?.message, "mutex: session is expired")
            let observed3 = try await keys(client, "held/")
            XCTAssertEqual(observed3, ["held/" + String(holder, radix: 16)])
        }
    }

    func testACancelledWaiterStopsAndDeletesItsKey() async throws {
        try await withCluster { client in
            let holder = try await client.leaseGrant(ttl: 60).id
            let waiting = try await client.leaseGrant(ttl: 60).id
            let held = try await client.lock("room", lease: holder)
            let waiter = Task { try await client.lock("room", lease: waiting) }
            _ = try await eventually {
                guard try await self.keys(client, "room/").count == 2 else { throw Timeout() }
            }
            waiter.cancel()
            let ended = await finishes(waiter, within: 5)
            XCTAssertTrue(ended, "the cancelled waiter did not end")
            _ = try await eventually {
                guard try await self.keys(client, "room/") == ["room/" + String(holder, radix: 16)] else { throw Timeout() }
            }
            // Its lease lives on, without the key: the server removed it, not the lease.
            let observed4 = try await client.leaseTimeToLive(id: waiting)
            XCTAssertGreaterThan(observed4.ttl, 0)
            try await client.unlock(key: held.key)
            let observed5 = try await keys(client, "room/")
            XCTAssertEqual(observed5, [])
        }
    }

    // MARK: - Election

    func testCampaignProclaimLeaderObserveResign() async throws {
        try await withCluster(nodes: 3) { client in
            let noLeader = await failure { _ = try await client.leader("poll") }
            XCTAssertEqual(noLeader?.code, .unknown)
            XCTAssertEqual(noLeader?.message, "election: no leader")

            let observed = Mutex<[String]>([])
            let observer = Task {
                for try await response in client.observe("poll") {
                    let line = String(decoding: response.kv.key, as: UTF8.self) + "=" + String(decoding: response.kv.value, as: UTF8.self)
                    observed.withLock { $0.append(line) }
                }
            }
            defer { observer.cancel() }

            let a = try await client.leaseGrant(ttl: 60).id
            let b = try await client.leaseGrant(ttl: 60).id
            let aKey = "poll/" + String(a, radix: 16)
            let bKey = "poll/" + String(b, radix: 16)
            let won = try await client.campaign("poll", lease: a, value: "alpha")
            XCTAssertEqual(String(decoding: won.leader.name, as: UTF8.self), "poll")
            XCTAssertEqual(String(decoding: won.leader.key, as: UTF8.self), aKey)
            XCTAssertEqual(won.leader.lease, a)
            let leader = try await client.leader("poll")
            XCTAssertEqual(String(decoding: leader.kv.value, as: UTF8.self), "alpha")
            XCTAssertEqual(leader.kv.createRevision, won.leader.rev)

            try await client.proclaim(won.leader, value: "alpha2")
            let observed6 = try await client.leader("poll")
            XCTAssertEqual(String(decoding: observed6.kv.value, as: UTF8.self), "alpha2")

            let contender = Task { try await client.campaign("poll", lease: b, value: "beta") }
            let early = await finishes(contender, within: 1.0)
            XCTAssertFalse(early, "a second campaign won while the first led")
            try await client.resign(won.leader)
            let bWon = await finishes(contender, within: 5)
            XCTAssertTrue(bWon, "the contender did not win after the leader resigned")
            let second = try await contender.value
            XCTAssertEqual(String(decoding: second.leader.key, as: UTF8.self), bKey)

            // The old leader key no longer proclaims.
            let stale = await failure { try await client.proclaim(won.leader, value: "again") }
            XCTAssertEqual(stale?.code, .unknown)
            XCTAssertEqual(stale?.message, "election: not leader")
            // Resigning with a stale key deletes nothing.
            try await client.resign(won.leader)
            let observed7 = try await client.leader("poll")
            XCTAssertEqual(String(decoding: observed7.kv.key, as: UTF8.self), bKey)

            // Campaigning again with the same lease and another value updates the value.
            let again = try await client.campaign("poll", lease: b, value: "beta2")
            XCTAssertEqual(again.leader.rev, second.leader.rev)
            let observed8 = try await client.leader("poll")
            XCTAssertEqual(String(decoding: observed8.kv.value, as: UTF8.self), "beta2")

            _ = try await eventually {
                guard observed.withLock({ $0 }) == ["\(aKey)=alpha", "\(aKey)=alpha2", "\(bKey)=beta", "\(bKey)=beta2"] else {
                    throw Timeout()
                }
            }
            XCTAssertEqual(observed.withLock { $0 }, ["\(aKey)=alpha", "\(aKey)=alpha2", "\(bKey)=beta", "\(bKey)=beta2"])
        }
    }

    func testElectionErrors() async throws {
        try await withCluster { client in
            var request = V3electionpb_ProclaimRequest()
            request.value = Data("x".utf8)
            let missing = await failure {
                _ = try await client.withFailover { [request] connection, options in
                    try await V3electionpb_Election.Client(wrapping: connection.grpc).proclaim(request, options: options)
                }
            }
            XCTAssertEqual(missing?.code, .unknown)
            XCTAssertEqual(missing?.message, "\"leader\" field must be provided")

            let noLease = await failure { _ = try await client.campaign("vote", lease: 0x5555, value: "v") }
            XCTAssertEqual(noLease?.code, .unknown)
            XCTAssertEqual(noLease?.message, "etcdserver: requested lease not found")

            // A campaign whose lease expires while it waits fails; its key is gone.
            let holder = try await client.leaseGrant(ttl: 60).id
            let short = try await client.leaseGrant(ttl: 2).id
            _ = try await client.campaign("vote", lease: holder, value: "h")
            let lost = await failure { _ = try await client.campaign("vote", lease: short, value: "s") }
            XCTAssertEqual(lost?.message, "election: not leader")
            let observed9 = try await keys(client, "vote/")
            XCTAssertEqual(observed9, ["vote/" + String(holder, radix: 16)])

            // A cancelled campaign resigns.
            let other = try await client.leaseGrant(ttl: 60).id
            let waiter = Task { try await client.campaign("vote", lease: other, value: "o") }
            _ = try await eventually {
                guard try await self.keys(client, "vote/").count == 2 else { throw Timeout() }
            }
            waiter.cancel()
            _ = try await eventually {
                guard try await self.keys(client, "vote/").count == 1 else { throw Timeout() }
            }
        }
    }

    /// The services are served by grpc-swift's own HTTP/2 transport too (`--grpc-transport`),
    /// where a client's cancel reaches a waiter the same way.
    func testLockAndObserveOnTheGRPCSwiftTransport() async throws {
        try await withCluster(transport: .grpcSwift) { client in
            let first = try await client.leaseGrant(ttl: 60).id
            let second = try await client.leaseGrant(ttl: 60).id
            _ = try await client.lock("t", lease: first)
            let waiter = Task { try await client.lock("t", lease: second) }
            _ = try await eventually {
                guard try await self.keys(client, "t/").count == 2 else { throw Timeout() }
            }
            waiter.cancel()
            _ = try await eventually {
                guard try await self.keys(client, "t/") == ["t/" + String(first, radix: 16)] else { throw Timeout() }
            }
            let won = try await client.campaign("e", lease: first, value: "v1")
            var iterator = client.observe("e").makeAsyncIterator()
            let seen = try await iterator.next()
            XCTAssertEqual(seen?.kv.value, Data("v1".utf8))
            try await client.proclaim(won.leader, value: "v2")
            let next = try await iterator.next()
            XCTAssertEqual(next?.kv.value, Data("v2".utf8))
        }
    }

    // MARK: - Auth

    /// Lock and Election act with the caller's credentials: alice (READWRITE on app/ only)
    /// locks and campaigns under app/, and is refused elsewhere with etcd's permission error.
    func testLockAndElectionCheckTheCallersPermissions() async throws {
        let cluster = try InProcessCluster(nodes: 1)
        try cluster.start(0)
        defer { Task { await cluster.stopAll() } }
        let endpoint = cluster.endpoints[0]
        var options = CallOptions.defaults
        options.timeout = .seconds(10)
        try await withClient(try cluster.client()) { client in
            _ = try await eventually { try await client.put("ready", "1") }
        }
        try await withRaw(endpoint) { grpc in
            let auth = Etcdserverpb_Auth.Client(wrapping: grpc)
            for (name, password) in [("root", "root-pw-1"), ("alice", "alice-pw-2")] {
                var user = Etcdserverpb_AuthUserAddRequest()
                user.name = name
                user.password = password
                _ = try await auth.userAdd(user, options: options)
            }
            var grant = Etcdserverpb_AuthUserGrantRoleRequest()
            grant.user = "root"
            grant.role = "root"
            _ = try await auth.userGrantRole(grant, options: options)
            var role = Etcdserverpb_AuthRoleAddRequest()
            role.name = "app"
            _ = try await auth.roleAdd(role, options: options)
            var permission = Etcdserverpb_AuthRoleGrantPermissionRequest()
            permission.name = "app"
            permission.perm.permType = .readwrite
            permission.perm.key = Data("app/".utf8)
            permission.perm.rangeEnd = Data("app0".utf8)
            _ = try await auth.roleGrantPermission(permission, options: options)
            grant.user = "alice"
            grant.role = "app"
            _ = try await auth.userGrantRole(grant, options: options)
            _ = try await auth.authEnable(Etcdserverpb_AuthEnableRequest(), options: options)
        }
        var configuration = SynodClientConfiguration(endpoints: [endpoint])
        configuration.credentials = ("alice", "alice-pw-2")
        try await withClient(try SynodClient(configuration: configuration)) { alice in
            let lease = try await eventually { try await alice.leaseGrant(ttl: 60).id }
            let held = try await alice.lock("app/lock", lease: lease)
            XCTAssertEqual(String(decoding: held.key, as: UTF8.self), "app/lock/" + String(lease, radix: 16))
            let denied = await failure { _ = try await alice.lock("secret/lock", lease: lease) }
            XCTAssertEqual(denied?.code, .unknown)  // as etcd: the recipe's client error, code Unknown
            XCTAssertEqual(denied?.message, "etcdserver: permission denied")
            let won = try await alice.campaign("app/el", lease: lease, value: "a")
            let leader = try await alice.leader("app/el")
            XCTAssertEqual(won.leader.rev, leader.kv.createRevision)
            let campaignDenied = await failure { _ = try await alice.campaign("secret/el", lease: lease, value: "a") }
            XCTAssertEqual(campaignDenied?.message, "etcdserver: permission denied")
            let leaderDenied = await failure { _ = try await alice.leader("secret/el") }
            XCTAssertEqual(leaderDenied?.message, "etcdserver: permission denied")
            let observeDenied = await failure { for try await _ in alice.observe("secret/el") {} }
            XCTAssertEqual(observeDenied?.message, "etcdserver: permission denied")
        }
        // Without credentials the calls are refused as etcd refuses an anonymous caller.
        try await withClient(try cluster.client()) { anonymous in
            let refused = await failure { _ = try await anonymous.lock("app/lock", lease: 1) }
            XCTAssertEqual(refused?.message, "etcdserver: user name is empty")
        }
    }
}
