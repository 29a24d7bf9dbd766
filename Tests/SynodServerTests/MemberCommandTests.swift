import Foundation
import GRPCCore
import SynodEtcdAPI
import XCTest
@testable import SynodClient

/// SynodClient's membership and leader-transfer calls against an in-process cluster, their
/// argument checks, and the `synod member ...` / `synod move-leader` / `synod recover`
/// command lines (run as the built `synod` binary).
final class MemberCommandTests: XCTestCase {
    // MARK: - Client, no server

    func testPeerURLsAreCheckedBeforeSending() throws {
        XCTAssertEqual(try SynodClient.validatedPeerURLs([" http://10.0.0.4:2380 ", "https://h:1/"]),
                       ["http://10.0.0.4:2380", "https://h:1/"])
        for bad in [[], [""], ["10.0.0.4:2380"], ["ftp://h:1"], ["http://h"], ["http://h:0"], ["http://h:1/path"],
                    ["http://:1"], ["http://h:1", "http://h:1"]] {
            XCTAssertThrowsError(try SynodClient.validatedPeerURLs(bad), "\(bad)") { error in
                guard case SynodClientError.invalidArgument = error else { return XCTFail("\(bad): \(error)") }
            }
        }
    }

    func testOnlyFailuresThatProveNothingHappenedAreRepeated() {
        XCTAssertTrue(SynodClient.isSafeToRepeat(RPCError(code: .unavailable, message: "connection refused")))
        XCTAssertTrue(SynodClient.isSafeToRepeat(RPCError(code: .unavailable, message: "etcdserver: no leader")))
        XCTAssertFalse(SynodClient.isSafeToRepeat(RPCError(code: .unavailable, message: "etcdserver: request timed out")))
        XCTAssertFalse(SynodClient.isSafeToRepeat(RPCError(code: .unavailable, message: "etcdserver: leader changed")))
        XCTAssertFalse(SynodClient.isSafeToRepeat(RPCError(code: .deadlineExceeded, message: "timed out")))
        XCTAssertFalse(SynodClient.isSafeToRepeat(RPCError(code: .failedPrecondition, message: "etcdserver: member not found")))
    }

    // MARK: - Client against a cluster

    func testMembershipCallsAndMoveLeaderAgainstACluster() async throws {
        let cluster = try InProcessCluster(nodes: 3)
        do {
            for i in 0..<3 { try cluster.start(i) }
            try await withClient(try cluster.client()) { client in
                _ = try await eventually { try await client.put("warm", "up") }
                let initial = try await client.memberList(linearizable: true)
                XCTAssertEqual(initial.members.count, 3)
                let spare = freePorts(2).map { "http://127.0.0.1:\($0)" }

                let added: Etcdserverpb_MemberAddResponse
                do {
                    added = try await eventually { try await client.memberAdd(peerURLs: [spare[0]], isLearner: true) }
                } catch SynodClientError.server(let code, let message, _) where code == .unimplemented {
                    throw XCTSkip("the server does not implement MemberAdd yet: \(message)")
                }
                let id = added.member.id
                XCTAssertNotEqual(id, 0)
                XCTAssertTrue(added.member.isLearner)
                XCTAssertEqual(added.member.peerUrls, [spare[0]])
                XCTAssertEqual(added.members.count, 4)
                XCTAssertNotEqual(added.header.clusterID, 0)

                await assertServerError("etcdserver: too many learner members in cluster") {
                    _ = try await client.memberAdd(peerURLs: [spare[1]], isLearner: true)
                }
                await assertServerError("etcdserver: Peer URLs already exists") {
                    _ = try await client.memberUpdate(id: id, peerURLs: [initial.members[0].peerUrls[0]])
                }
                await assertServerError("in sync with leader") { _ = try await client.memberPromote(id: id) }
                await assertServerError("etcdserver: member not found") { _ = try await client.memberPromote(id: 0x1234abcd) }

                _ = try await client.memberUpdate(id: id, peerURLs: [spare[1]])
                let updated = try await client.memberList(linearizable: true)
                XCTAssertEqual(updated.members.first { $0.id == id }?.peerUrls, [spare[1]])

                _ = try await client.memberRemove(id: id)
                let removed = try await eventually { () async throws -> Etcdserverpb_MemberListResponse in
                    let list = try await client.memberList(linearizable: true)
                    guard list.members.count == 3 else { throw SynodClientError.invalidArgument("\(list.members.count) members") }
                    return list
                }
                XCTAssertFalse(removed.members.contains { $0.id == id })
                await assertServerError("etcdserver: member not found") { _ = try await client.memberRemove(id: id) }

                // Leader transfer: to a follower, then to itself (a no-op), then to nobody.
                let statuses = await client.statusAll()
                let leader = try XCTUnwrap(statuses.compactMap { try? $0.result.get() }.first { $0.leader == $0.header.memberID }).leader
                let follower = try XCTUnwrap(initial.members.first { $0.id != leader }).id
                let transfer = try await client.moveLeader(to: follower)
                XCTAssertEqual(transfer.previousLeader, leader)
                XCTAssertEqual(transfer.newLeader, follower)
                let now = try await eventually { () async throws -> UInt64 in
                    let status = try await client.status(endpoint: cluster.endpoints[0])
                    guard status.leader == follower else { throw SynodClientError.invalidArgument("leader \(status.leader)") }
                    return status.leader
                }
                XCTAssertEqual(now, follower)
                let again = try await eventually { try await client.moveLeader(to: follower) }
                XCTAssertEqual(again.previousLeader, follower)
                await assertServerError("etcdserver: bad leader transferee") { _ = try await client.moveLeader(to: 0x1234abcd) }

                // Only a follower's endpoint: MoveLeader cannot be sent to the leader.
                let other = try XCTUnwrap(initial.members.first { $0.id != follower })
                let followerEndpoint = cluster.endpoints[try XCTUnwrap(Int(other.name.dropFirst())) - 1]
                let single = try SynodClient(configuration: SynodClientConfiguration(endpoints: [followerEndpoint]))
                try await withClient(single) { single in
                    do {
                        _ = try await single.moveLeader(to: follower)
                        XCTFail("moved leadership through a follower")
                    } catch SynodClientError.invalidArgument(let message) {
                        XCTAssertTrue(message.hasPrefix("no leader endpoint given at [\(followerEndpoint)]"), message)
                    }
                }
            }
        } catch {
            await cluster.stopAll()
            throw error
        }
        await cluster.stopAll()
    }

    func assertServerError(_ expected: String, file: StaticString = #filePath, line: UInt = #line,
                           _ body: () async throws -> Void) async {
        do {
            try await body()
            XCTFail("expected the server error '\(expected)'", file: file, line: line)
        } catch SynodClientError.server(_, let message, _) {
            XCTAssertTrue(message.contains(expected), "'\(message)' does not contain '\(expected)'", file: file, line: line)
        } catch {
            XCTFail("expected the server error '\(expected)', got \(error)", file: file, line: line)
        }
    }

    // MARK: - Command lines

    /// The `synod` executable built next to the test bundle (`swift build --build-tests`).
    static func synodBinary() -> String? {
        var candidates: [String] = []
        for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
            candidates.append(bundle.bundleURL.deletingLastPathComponent().appendingPathComponent("synod").path)
        }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        candidates.append(root.appendingPathComponent(".build/debug/synod").path)
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    struct Run: Sendable {
        var status: Int32
        var out: String
        var err: String
    }

    static func run(_ arguments: [String]) throws -> Run {
        guard let binary = Self.synodBinary() else { throw XCTSkip("the synod binary is not built") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Run(status: process.terminationStatus, out: String(decoding: outData, as: UTF8.self),
                   err: String(decoding: errData, as: UTF8.self))
    }

    /// `synod(_:)` off the cooperative thread pool (the in-process servers need it).
    func synodAsync(_ arguments: [String]) async throws -> Run {
        guard Self.synodBinary() != nil else { throw XCTSkip("the synod binary is not built") }
        return try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try Self.run(arguments) })
            }
        }
    }

    func testBadInputIsRefusedWithOneErrorLine() throws {
        let nowhere = ["--endpoints", "127.0.0.1:1", "--timeout", "1s"]
        let cases: [([String], String)] = [
            (["member", "remove", "xyz"], "Error: bad member ID 'xyz', expecting an ID in hexadecimal"),
            (["member", "promote", "12345678901234567"], "Error: bad member ID '12345678901234567'"),
            (["member", "update", "g1", "--peer-urls", "http://h:1"], "Error: bad member ID 'g1'"),
            (["move-leader", "1x"], "Error: bad member ID '1x'"),
            (["member", "add", "n4", "--peer-urls", ""], "Error: --peer-urls is empty"),
            (["member", "add", "n4", "--peer-urls", "http://h:1,,http://h:2"], "Error: --peer-urls 'http://h:1,,http://h:2' has an empty entry"),
            (["member", "add", "n4", "--peer-urls", "10.0.0.4:2380"], "Error: invalid argument: peer URL '10.0.0.4:2380' must start with http://"),
            (["member", "add", "a=b", "--peer-urls", "http://h:1"], "Error: member name 'a=b' must be non-empty"),
            (["member", "update", "1f", "--peer-urls", " "], "Error: --peer-urls is empty"),
        ]
        for (arguments, expected) in cases {
            let run = try Self.run(arguments + nowhere)
            XCTAssertEqual(run.status, 1, "\(arguments): \(run.err)")
            XCTAssertTrue(run.err.hasPrefix(expected), "\(arguments): \(run.err)")
            XCTAssertEqual(run.err.filter { $0 == "\n" }.count, 1, "one line: \(run.err)")
            XCTAssertEqual(run.out, "")
        }
        let unreachable = try Self.run(["member", "remove", "1f"] + nowhere)
        XCTAssertEqual(unreachable.status, 2, unreachable.err)
        let missing = try Self.run(["recover", "--data-dir", "/nonexistent/synod-data"])
        XCTAssertEqual(missing.status, 1)
        XCTAssertEqual(missing.err, "synod recover: error: data directory /nonexistent/synod-data does not exist\n")
    }

    func testCommandOutputsAgainstACluster() async throws {
        let cluster = try InProcessCluster(nodes: 3)
        do {
            for i in 0..<3 { try cluster.start(i) }
            let initial = try await withClient(try cluster.client()) { client in
                _ = try await eventually { try await client.put("warm", "up") }
                return try await client.memberList(linearizable: true)
            }
            let endpoints = ["--endpoints", cluster.endpoints.joined(separator: ",")]
            let spare = "http://127.0.0.1:\(freePorts(1)[0])"
            var add = try await synodAsync(["member", "add", "n4", "--peer-urls", spare, "--learner"] + endpoints)
            for _ in 0..<50 where add.status != 0 && !add.err.contains("unimplemented") && !add.err.contains("not supported") {
                try await Task.sleep(for: .milliseconds(200))
                add = try await synodAsync(["member", "add", "n4", "--peer-urls", spare, "--learner"] + endpoints)
            }
            if add.status != 0 && (add.err.contains("not supported") || add.err.contains("unimplemented")) {
                throw XCTSkip("the server does not implement MemberAdd yet: \(add.err)")
            }
            XCTAssertEqual(add.status, 0, add.err)
            let lines = add.out.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            let header = try XCTUnwrap(lines.first)
            let match = header.wholeMatch(of: /Member +([0-9a-f]{1,16}) added to cluster +([0-9a-f]{1,16})/)
            XCTAssertNotNil(match, header)
            XCTAssertEqual(header.count, "Member ".count + 16 + " added to cluster ".count + 16, "ids in %16x")
            let id = String(try XCTUnwrap(match).1)
            XCTAssertEqual(String(try XCTUnwrap(match).2), String(initial.header.clusterID, radix: 16))
            let cluster3 = initial.members.sorted { $0.name < $1.name }.map { "\($0.name)=\($0.peerUrls[0])" }
            let expectedCluster = (cluster3 + ["n4=\(spare)"]).joined(separator: ",")
            let sortedCluster = { (text: String) in text.split(separator: ",").sorted().joined(separator: ",") }
            XCTAssertEqual(lines[1], "")
            XCTAssertEqual(lines[2], "SYNOD_NAME=\"n4\"")
            let clusterLine = try XCTUnwrap(lines[3].wholeMatch(of: /SYNOD_INITIAL_CLUSTER="(.*)"/)).1
            XCTAssertEqual(sortedCluster(String(clusterLine)), sortedCluster(expectedCluster))
            XCTAssertEqual(lines[4], "SYNOD_INITIAL_ADVERTISE_PEER_URLS=\"\(spare)\"")
            XCTAssertEqual(lines[5], "SYNOD_INITIAL_CLUSTER_STATE=\"existing\"")
            XCTAssertTrue(lines[8].hasPrefix("  synod serve --name n4 --data-dir n4.synod --listen-peer-urls \(spare) --initial-advertise-peer-urls \(spare) --initial-cluster "), lines[8])
            XCTAssertTrue(lines[8].hasSuffix(" --initial-cluster-state existing"), lines[8])

            let list = try await synodAsync(["member", "list"] + endpoints)
            XCTAssertTrue(list.out.contains("\(id), unstarted, , \(spare), , true\n"), list.out)

            let promote = try await synodAsync(["member", "promote", id] + endpoints)
            XCTAssertEqual(promote.status, 1)
            XCTAssertTrue(promote.err.hasPrefix("Error: etcdserver: can only promote a learner member which is in sync with leader"), promote.err)

            let other = "http://127.0.0.1:\(freePorts(1)[0])"
            let update = try await synodAsync(["member", "update", id, "--peer-urls", other] + endpoints)
            XCTAssertEqual(update.out, "Member \(pad(id)) updated in cluster \(pad(String(initial.header.clusterID, radix: 16)))\n", update.err)

            let remove = try await synodAsync(["member", "remove", id] + endpoints)
            XCTAssertEqual(remove.out, "Member \(pad(id)) removed from cluster \(pad(String(initial.header.clusterID, radix: 16)))\n", remove.err)
            let again = try await synodAsync(["member", "remove", id] + endpoints)
            XCTAssertEqual(again.status, 1)
            XCTAssertEqual(again.err, "Error: etcdserver: member not found\n")

            let status = try await withClient(try cluster.client()) { client in
                await client.statusAll().compactMap { try? $0.result.get() }
            }
            let leader = try XCTUnwrap(status.first { $0.leader == $0.header.memberID }).leader
            let target = try XCTUnwrap(initial.members.first { $0.id != leader }).id
            let move = try await synodAsync(["move-leader", String(target, radix: 16)] + endpoints)
            XCTAssertEqual(move.out, "Leadership transferred from \(String(leader, radix: 16)) to \(String(target, radix: 16))\n", move.err)
        } catch {
            await cluster.stopAll()
            throw error
        }
        await cluster.stopAll()
    }

    func pad(_ hex: String) -> String { String(repeating: " ", count: max(0, 16 - hex.count)) + hex }
}
