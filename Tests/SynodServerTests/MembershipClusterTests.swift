import Foundation
import GRPCCore
import Logging
@testable import SynodClient
import SynodCore
import SynodEtcdAPI
import XCTest
@testable import SynodServer

/// Membership changes through the real etcd gRPC API on in-process clusters: MemberAdd (learner
/// and voter), joining with `--initial-cluster-state existing`, MemberPromote, MemberUpdate,
/// MemberRemove (a follower, the leader), Maintenance.MoveLeader, and etcd's errors.
final class MembershipClusterTests: XCTestCase {
    struct NotYet: Error { var what: String }

    // MARK: - Raw gRPC helpers (errors come back as the server sent them)

    var callOptions: CallOptions {
        var options = CallOptions.defaults
        options.timeout = .seconds(10)
        return options
    }

    func memberList(_ endpoint: String) async throws -> [Etcdserverpb_Member] {
        try await withRaw(endpoint) { grpc in
            try await Etcdserverpb_Cluster.Client(wrapping: grpc).memberList(Etcdserverpb_MemberListRequest(), options: callOptions).members
        }
    }

    func status(_ endpoint: String) async throws -> Etcdserverpb_StatusResponse {
        try await withRaw(endpoint) { grpc in
            try await Etcdserverpb_Maintenance.Client(wrapping: grpc).status(Etcdserverpb_StatusRequest(), options: callOptions)
        }
    }

    func memberAdd(_ endpoint: String, _ peerURL: String, learner: Bool = false) async throws -> Etcdserverpb_MemberAddResponse {
        var request = Etcdserverpb_MemberAddRequest()
        request.peerUrls = [peerURL]
        request.isLearner = learner
        return try await withRaw(endpoint) { grpc in
            try await Etcdserverpb_Cluster.Client(wrapping: grpc).memberAdd(request, options: callOptions)
        }
    }

    func memberRemove(_ endpoint: String, _ id: UInt64) async throws -> Etcdserverpb_MemberRemoveResponse {
        var request = Etcdserverpb_MemberRemoveRequest()
        request.id = id
        return try await withRaw(endpoint) { grpc in
            try await Etcdserverpb_Cluster.Client(wrapping: grpc).memberRemove(request, options: callOptions)
        }
    }

    func memberPromote(_ endpoint: String, _ id: UInt64) async throws -> Etcdserverpb_MemberPromoteResponse {
        var request = Etcdserverpb_MemberPromoteRequest()
        request.id = id
        return try await withRaw(endpoint) { grpc in
            try await Etcdserverpb_Cluster.Client(wrapping: grpc).memberPromote(request, options: callOptions)
        }
    }

    func memberUpdate(_ endpoint: String, _ id: UInt64, _ urls: [String]) async throws -> Etcdserverpb_MemberUpdateResponse {
        var request = Etcdserverpb_MemberUpdateRequest()
        request.id = id
        request.peerUrls = urls
        return try await withRaw(endpoint) { grpc in
            try await Etcdserverpb_Cluster.Client(wrapping: grpc).memberUpdate(request, options: callOptions)
        }
    }

    func moveLeader(_ endpoint: String, _ target: UInt64) async throws {
        var request = Etcdserverpb_MoveLeaderRequest()
        request.targetID = target
        _ = try await withRaw(endpoint) { grpc in
            try await Etcdserverpb_Maintenance.Client(wrapping: grpc).moveLeader(request, options: callOptions)
        }
    }

    func put(_ endpoint: String, _ key: String, _ value: String) async throws {
        var request = Etcdserverpb_PutRequest()
        request.key = Data(key.utf8)
        request.value = Data(value.utf8)
        _ = try await withRaw(endpoint) { grpc in
            try await Etcdserverpb_KV.Client(wrapping: grpc).put(request, options: callOptions)
        }
    }

    func get(_ endpoint: String, _ key: String, serializable: Bool = false) async throws -> String? {
        var request = Etcdserverpb_RangeRequest()
        request.key = Data(key.utf8)
        request.serializable = serializable
        let response = try await withRaw(endpoint) { grpc in
            try await Etcdserverpb_KV.Client(wrapping: grpc).range(request, options: callOptions)
        }
        return response.kvs.first.map { String(decoding: $0.value, as: UTF8.self) }
    }

    /// Runs `body`, which must fail with an RPCError; returns it.
    func rpcFailure(_ what: String, file: StaticString = #filePath, line: UInt = #line,
                    _ body: () async throws -> Void) async -> RPCError? {
        do {
            try await body()
            XCTFail("\(what): succeeded", file: file, line: line)
            return nil
        } catch let error as RPCError {
            return error
        } catch {
            XCTFail("\(what): \(error)", file: file, line: line)
            return nil
        }
    }

    func assertFails(_ what: String, _ code: RPCError.Code, _ message: String, file: StaticString = #filePath, line: UInt = #line,
                     _ body: () async throws -> Void) async {
        guard let error = await rpcFailure(what, file: file, line: line, body) else { return }
        XCTAssertEqual(error.code, code, "\(what): \(error.message)", file: file, line: line)
        XCTAssertEqual(error.message, message, what, file: file, line: line)
    }

    /// The index of the node every listed member reports as leader.
    func leaderIndex(_ cluster: InProcessCluster, among indexes: [Int]) async throws -> Int {
        try await eventually(20) {
            var ids: [Int: UInt64] = [:]
            var leaders = Set<UInt64>()
            for i in indexes {
                let status = try await status(cluster.endpoints[i])
                ids[i] = status.header.memberID
                leaders.insert(status.leader)
            }
            guard leaders.count == 1, let leader = leaders.first, let index = ids.first(where: { $0.value == leader })?.key else {
                throw NotYet(what: "no agreed leader: \(leaders)")
            }
            return index
        }
    }

    func memberID(_ cluster: InProcessCluster, _ i: Int) async throws -> UInt64 {
        try await eventually { try await status(cluster.endpoints[i]).header.memberID }
    }

    // MARK: - Tests

    /// Add a learner, join it as a 4th node, promote it, remove another member; MemberList at
    /// every step, and the learner's refusals.
    func testLearnerJoinsIsPromotedAndAnotherMemberIsRemoved() async throws {
        let cluster = try InProcessCluster(nodes: 3)
        for i in 0..<3 { try cluster.start(i) }
        do {
            var ep = cluster.endpoints
            try await eventually { try await put(ep[0], "before", "1") }
            var members = try await eventually { try await memberList(ep[1]) }
            XCTAssertEqual(members.map(\.name).sorted(), ["n1", "n2", "n3"])
            XCTAssertFalse(members.contains { $0.isLearner })

            let spare = cluster.addSpare()
            ep = cluster.endpoints
            let peerURL = cluster.configurations[spare].listenPeerURLs
            let added = try await eventually { try await memberAdd(ep[0], peerURL, learner: true) }
            let learnerID = added.member.id
            XCTAssertNotEqual(learnerID, 0)
            XCTAssertEqual(added.member.peerUrls, [peerURL])
            XCTAssertTrue(added.member.isLearner)
            XCTAssertEqual(added.member.name, "", "unstarted")
            XCTAssertEqual(added.members.count, 4)
            for i in 0..<3 {
                members = try await eventually {
                    let list = try await memberList(ep[i])
                    guard list.count == 4 else { throw NotYet(what: "n\(i + 1) lists \(list.count)") }
                    return list
                }
                let entry = try XCTUnwrap(members.first { $0.id == learnerID })
                XCTAssertEqual(entry.name, "")
                XCTAssertEqual(entry.clientUrls, [])
                XCTAssertTrue(entry.isLearner)
            }

            // Errors while the learner has not started.
            await assertFails("promote an unstarted learner", .failedPrecondition,
                              "etcdserver: can only promote a learner member which is in sync with leader") {
                _ = try await memberPromote(ep[0], learnerID)
            }
            let leader = try await leaderIndex(cluster, among: [0, 1, 2])
            await assertFails("move-leader to a learner", .failedPrecondition, "etcdserver: bad leader transferee") {
                try await moveLeader(ep[leader], learnerID)
            }
            await assertFails("a second learner", .failedPrecondition, "etcdserver: too many learner members in cluster") {
                _ = try await memberAdd(ep[1], "http://127.0.0.1:1", learner: true)
            }
            await assertFails("a used peer URL", .failedPrecondition, "etcdserver: Peer URLs already exists") {
                _ = try await memberAdd(ep[2], cluster.configurations[0].listenPeerURLs)
            }
            await assertFails("a malformed peer URL", .invalidArgument, "etcdserver: given member URLs are invalid") {
                _ = try await memberAdd(ep[0], "not a url")
            }
            let n1 = try await memberID(cluster, 0)
            await assertFails("promote a voter", .failedPrecondition, "etcdserver: can only promote a learner member") {
                _ = try await memberPromote(ep[0], n1)
            }
            for (what, call) in [("remove", 0), ("promote", 1), ("update", 2)] {
                await assertFails("\(what) of an unknown id", .notFound, "etcdserver: member not found") {
                    switch call {
                    case 0: _ = try await memberRemove(ep[0], 0x1234abcd)
                    case 1: _ = try await memberPromote(ep[0], 0x1234abcd)
                    default: _ = try await memberUpdate(ep[0], 0x1234abcd, ["http://127.0.0.1:2"])
                    }
                }
            }

            // The learner joins: it learns its identity by discovery and catches up.
            try await cluster.join(spare)
            let started = try await eventually(30) {
                let list = try await memberList(ep[0])
                guard let entry = list.first(where: { $0.id == learnerID }), entry.name == "n\(spare + 1)" else {
                    throw NotYet(what: "learner not started: \(list)")
                }
                return entry
            }
            XCTAssertEqual(started.clientUrls, [cluster.configurations[spare].listenClientURLs])
            XCTAssertTrue(started.isLearner)
            let learnerEndpoint = ep[spare]
            let value = try await eventually(20) {
                guard let value = try await get(learnerEndpoint, "before", serializable: true) else { throw NotYet(what: "not caught up") }
                return value
            }
            XCTAssertEqual(value, "1", "a serializable read at the learner")
            let learnerStatus = try await status(learnerEndpoint)
            XCTAssertTrue(learnerStatus.isLearner)
            XCTAssertEqual(learnerStatus.header.memberID, learnerID)
            XCTAssertNotEqual(learnerStatus.leader, 0)
            for (what, call) in [("linearizable get", 0), ("put", 1), ("member list", 2)] {
                await assertFails("\(what) at the learner", .unavailable, "etcdserver: rpc not supported for learner") {
                    switch call {
                    case 0: _ = try await get(learnerEndpoint, "before")
                    case 1: try await put(learnerEndpoint, "via-learner", "x")
                    default: _ = try await memberList(learnerEndpoint)
                    }
                }
            }

            // Promote (retried while it is not in sync yet).
            let promoted = try await eventually(30) { try await memberPromote(ep[1], learnerID) }
            XCTAssertEqual(promoted.members.first { $0.id == learnerID }?.isLearner, false)
            members = try await memberList(ep[2])
            XCTAssertEqual(members.count, 4)
            XCTAssertFalse(members.contains { $0.isLearner })
            try await eventually(20) { try await put(learnerEndpoint, "via-n4", "4") }
            let read = try await eventually { try await get(learnerEndpoint, "via-n4") }
            XCTAssertEqual(read, "4", "a linearizable read at the promoted member")
            // Calls admitted by the member's published role (not by its driver) serve too, with
            // no other membership change to publish it (it once stayed "learner" until one).
            let listedByPromoted = try await eventually(10) { try await memberList(learnerEndpoint) }
            XCTAssertEqual(listedByPromoted.count, 4)

            // Update its peer URLs (a second one nobody listens on), then back.
            let updated = try await memberUpdate(ep[0], learnerID, [peerURL, "http://127.0.0.1:3"])
            XCTAssertEqual(updated.members.first { $0.id == learnerID }?.peerUrls, [peerURL, "http://127.0.0.1:3"])
            await assertFails("update to another member's peer URL", .failedPrecondition, "etcdserver: Peer URLs already exists") {
                _ = try await memberUpdate(ep[0], learnerID, [cluster.configurations[0].listenPeerURLs])
            }
            _ = try await memberUpdate(ep[0], learnerID, [peerURL])
            try await eventually { try await put(ep[spare], "after-update", "u") }

            // The joined member restarts from its data (same `existing` flags): its identity
            // comes from the data directory, not from --initial-cluster.
            await cluster.stop(spare)
            try await cluster.join(spare)
            try await eventually(20) { try await put(ep[spare], "after-restart", "r") }
            let restarted = try await status(ep[spare])
            XCTAssertEqual(restarted.header.memberID, learnerID)
            XCTAssertFalse(restarted.isLearner)

            // Remove a follower (not the leader, not the new member).
            let leaderNow = try await leaderIndex(cluster, among: [0, 1, 2, spare])
            let victim = [0, 1, 2].first { $0 != leaderNow }!
            let victimID = try await memberID(cluster, victim)
            let survivor = [0, 1, 2, spare].first { $0 != victim }!
            let removed = try await memberRemove(ep[survivor], victimID)
            XCTAssertEqual(removed.members.count, 3)
            XCTAssertFalse(removed.members.contains { $0.id == victimID })
            try await eventually(20) {
                guard cluster.wasRemoved(victim) else { throw NotYet(what: "n\(victim + 1) still running") }
            }
            do {
                try await cluster.tasks[victim]?.value
                XCTFail("the removed member's server returned normally")
            } catch {
                XCTAssertTrue(error is MemberRemovedError, "\(error)")
            }
            await cluster.stop(victim)
            let survivors = [0, 1, 2, spare].filter { $0 != victim }
            for i in survivors {
                let list = try await eventually {
                    let list = try await memberList(ep[i])
                    guard list.count == 3 else { throw NotYet(what: "n\(i + 1) lists \(list.count)") }
                    return list
                }
                XCTAssertEqual(Set(list.map(\.name)), Set(survivors.map { "n\($0 + 1)" }))
            }
            await assertFails("remove it again", .notFound, "etcdserver: member not found") {
                _ = try await memberRemove(ep[survivor], victimID)
            }
            try await eventually { try await put(ep[survivor], "after-remove", "r") }

            // The removed member refuses to start again, with one line.
            do {
                try cluster.start(victim)
                XCTFail("a removed member started again")
            } catch {
                let message = "\(error)"
                XCTAssertTrue(message.hasPrefix("the member has been permanently removed from the cluster"), message)
                XCTAssertFalse(message.contains("\n"), message)
            }
        } catch {
            await cluster.stopAll()
            throw error
        }
        await cluster.stopAll()
    }

    /// Removing the leader through itself: it answers, hands off, stops; the others elect a
    /// leader and take writes.
    func testRemovingTheLeaderElectsANewLeaderAndWritesContinue() async throws {
        let cluster = try InProcessCluster(nodes: 3)
        for i in 0..<3 { try cluster.start(i) }
        do {
            let ep = cluster.endpoints
            try await eventually { try await put(ep[0], "a", "1") }
            let leader = try await leaderIndex(cluster, among: [0, 1, 2])
            let leaderID = try await memberID(cluster, leader)
            let response = try await memberRemove(ep[leader], leaderID)
            XCTAssertEqual(response.members.count, 2)
            try await eventually(20) {
                guard cluster.wasRemoved(leader) else { throw NotYet(what: "the old leader still runs") }
            }
            await cluster.stop(leader)
            let rest = [0, 1, 2].filter { $0 != leader }
            let newLeader = try await leaderIndex(cluster, among: rest)
            XCTAssertTrue(rest.contains(newLeader))
            for i in rest {
                try await eventually { try await put(ep[i], "after-\(i)", "v") }
                let value = try await eventually { try await get(ep[i], "after-\(i)") }
                XCTAssertEqual(value, "v")
                let list = try await memberList(ep[i])
                XCTAssertEqual(list.count, 2)
                XCTAssertFalse(list.contains { $0.id == leaderID })
            }
        } catch {
            await cluster.stopAll()
            throw error
        }
        await cluster.stopAll()
    }

    /// A follower removed through its own endpoint answers, then stops; the others go on.
    func testRemovingAFollowerThroughItselfAnswersAndStops() async throws {
        let cluster = try InProcessCluster(nodes: 3)
        for i in 0..<3 { try cluster.start(i) }
        do {
            let ep = cluster.endpoints
            try await eventually { try await put(ep[0], "a", "1") }
            let leader = try await leaderIndex(cluster, among: [0, 1, 2])
            let follower = (leader + 1) % 3
            let followerID = try await memberID(cluster, follower)
            let response = try await memberRemove(ep[follower], followerID)
            XCTAssertEqual(response.members.count, 2)
            XCTAssertFalse(response.members.contains { $0.id == followerID })
            try await eventually(20) {
                guard cluster.wasRemoved(follower) else { throw NotYet(what: "the removed follower still runs") }
            }
            await cluster.stop(follower)
            let rest = [0, 1, 2].filter { $0 != follower }
            for i in rest { try await eventually { try await put(ep[i], "after-\(i)", "v") } }
        } catch {
            await cluster.stopAll()
            throw error
        }
        await cluster.stopAll()
    }

    /// MoveLeader: the target leads, every member reports it, reads and writes continue; etcd's
    /// errors for a follower, an unknown target, and the no-op transfer to the leader itself.
    func testMoveLeaderHandsLeadershipToTheTarget() async throws {
        let cluster = try InProcessCluster(nodes: 3)
        for i in 0..<3 { try cluster.start(i) }
        do {
            let ep = cluster.endpoints
            try await eventually { try await put(ep[0], "k", "0") }
            let leader = try await leaderIndex(cluster, among: [0, 1, 2])
            let target = (leader + 1) % 3
            let other = (leader + 2) % 3
            let targetID = try await memberID(cluster, target)
            await assertFails("move-leader at a follower", .failedPrecondition, "etcdserver: not leader") {
                try await moveLeader(ep[other], targetID)
            }
            await assertFails("move-leader to an unknown id", .failedPrecondition, "etcdserver: bad leader transferee") {
                try await moveLeader(ep[leader], 0x1234abcd)
            }
            try await moveLeader(ep[leader], targetID)
            let newLeader = try await leaderIndex(cluster, among: [0, 1, 2])
            XCTAssertEqual(newLeader, target)
            let oldStatus = try await status(ep[leader])
            XCTAssertEqual(oldStatus.leader, targetID, "the old leader follows the target")
            // Reads through the old leader are confirmed by the new one and see the newest write.
            try await put(ep[target], "k", "1")
            let value = try await get(ep[leader], "k")
            XCTAssertEqual(value, "1")
            try await put(ep[other], "k", "2")
            let last = try await get(ep[leader], "k")
            XCTAssertEqual(last, "2")
            try await moveLeader(ep[target], targetID)  // to itself: a no-op success
        } catch {
            await cluster.stopAll()
            throw error
        }
        await cluster.stopAll()
    }

    /// etcd's strict reconfiguration check: with a voter down, adding a voter or removing a
    /// live one would leave no quorum of started voters.
    func testChangesThatLeaveNoLiveQuorumAreRefusedAsUnhealthy() async throws {
        let cluster = try InProcessCluster(nodes: 3)
        for i in 0..<3 { try cluster.start(i) }
        do {
            let ep = cluster.endpoints
            try await eventually { try await put(ep[0], "a", "1") }
            let leader = try await leaderIndex(cluster, among: [0, 1, 2])
            let down = (leader + 1) % 3
            let live = (leader + 2) % 3
            let liveID = try await memberID(cluster, live)
            await cluster.stop(down)
            try await Task.sleep(for: .milliseconds(2500))  // beyond an election timeout
            await assertFails("add a voter", .unavailable, "etcdserver: unhealthy cluster") {
                _ = try await memberAdd(ep[leader], "http://127.0.0.1:4")
            }
            await assertFails("remove a live voter", .unavailable, "etcdserver: unhealthy cluster") {
                _ = try await memberRemove(ep[leader], liveID)
            }
            let count = try await memberList(ep[leader]).count
            XCTAssertEqual(count, 3)
        } catch {
            await cluster.stopAll()
            throw error
        }
        await cluster.stopAll()
    }

    /// A node started with `existing` whose peer URL no member knows stops with one line.
    func testJoiningWithAnUnknownPeerURLFailsCleanly() async throws {
        let cluster = try InProcessCluster(nodes: 3)
        for i in 0..<3 { try cluster.start(i) }
        do {
            try await eventually { try await put(cluster.endpoints[0], "a", "1") }
            let spare = cluster.addSpare()
            do {
                try await cluster.join(spare)
                XCTFail("joined without member add")
            } catch {
                XCTAssertEqual("\(error)",
                               "member with peer URL \(cluster.configurations[spare].listenPeerURLs) is not in the cluster; run member add first")
            }
            XCTAssertFalse(SynodNodeServer.hasData(cluster.configurations[spare].dataDir!), "nothing written")
        } catch {
            await cluster.stopAll()
            throw error
        }
        await cluster.stopAll()
    }

    /// Joining with a data directory of another cluster is refused with one line, whether it
    /// holds data or only the identity file.
    func testJoiningWithAnotherClustersDataDirectoryIsRefused() async throws {
        let other = try InProcessCluster(nodes: 1)
        try other.start(0)
        try await eventually { try await put(other.endpoints[0], "other", "1") }
        await other.stop(0)
        let cluster = try InProcessCluster(nodes: 3)
        for i in 0..<3 { try cluster.start(i) }
        do {
            try await eventually { try await put(cluster.endpoints[0], "a", "1") }
            let spare = cluster.addSpare()
            _ = try await eventually { try await memberAdd(cluster.endpoints[0], cluster.configurations[spare].listenPeerURLs) }
            let foreign = other.configurations[0].dataDir!
            // With data: the identity file names another cluster than the one that answers.
            cluster.configurations[spare].dataDir = foreign
            do {
                try await cluster.join(spare)
                XCTFail("joined with another cluster's data")
            } catch {
                let message = "\(error)"
                XCTAssertTrue(message.hasPrefix("cannot open data directory \(foreign): it belongs to cluster"), message)
                XCTAssertFalse(message.contains("\n"), message)
            }
            // Only the identity file (no data): discovery succeeds, then the identity check refuses.
            let bare = cluster.root + "/bare"
            try FileManager.default.createDirectory(atPath: bare, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: foreign + "/synod.meta", toPath: bare + "/synod.meta")
            cluster.configurations[spare].dataDir = bare
            do {
                try await cluster.join(spare)
                XCTFail("joined with another cluster's identity file")
            } catch {
                let message = "\(error)"
                XCTAssertTrue(message.hasPrefix("cannot open data directory \(bare):"), message)
                XCTAssertTrue(message.contains("belongs to another cluster"), message)
                XCTAssertFalse(message.contains("\n"), message)
            }
        } catch {
            await cluster.stopAll()
            await other.stopAll()
            throw error
        }
        await cluster.stopAll()
        await other.stopAll()
    }
}
