import Foundation
import SynodClient
import SynodCore
import SynodKV
import SynodTransport
import XCTest
@testable import SynodServer

/// Fail-stop and losing leadership in a running cluster.
final class SafetyClusterTests: XCTestCase {
    /// Sends `envelopes` to the peer port `port` as node `sender` of cluster `clusterID`: what a
    /// buggy (or forged) peer would send.
    private func sendAsPeer(port: Int, clusterID: UInt64, sender: NodeID, _ envelopes: [Envelope]) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        XCTAssertEqual(connected, 0, "connect to the peer port")
        var bytes = PeerHello(clusterID: clusterID, sender: sender).encoded()
        for envelope in envelopes { try PeerFrameCodec.encode(envelope, into: &bytes) }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        XCTAssertEqual(written, bytes.count)
        Thread.sleep(forTimeInterval: 0.3)  // let the frames arrive before the connection closes
    }

    /// Writes one key (waiting for a leader) and returns the index of the member that leads.
    private func writeAndFindLeader(_ cluster: InProcessCluster) async throws -> Int {
        try await withClient(try cluster.client()) { client -> Int in
            _ = try await eventually { try await client.put("a", "1") }
            let status = try await client.status(endpoint: cluster.endpoints[0])
            var ids: [UInt64] = []
            for endpoint in cluster.endpoints { ids.append(try await client.status(endpoint: endpoint).header.memberID) }
            return ids.firstIndex(of: status.leader) ?? 0
        }
    }

    /// A follower is told by a "peer" that a slot it applied was chosen with another value:
    /// it halts at once with one reason, writes `synod.halted`, refuses to start again on its
    /// data directory, and the other members raise the CORRUPT alarm for it.
    func testConflictingChosenValueHaltsTheMemberAndRaisesAnAlarm() async throws {
        let cluster = try InProcessCluster(nodes: 3)
        for i in 0..<3 { try cluster.start(i) }
        do {
            let leaderIndex = try await writeAndFindLeader(cluster)
            let victim = (leaderIndex + 1) % 3
            let server = try XCTUnwrap(cluster.servers[victim])
            let victimMemberID = server.node.memberID
            let peerPort = try XCTUnwrap(Int(cluster.configurations[victim].listenPeerURLs.split(separator: ":").last ?? ""))
            let sender = NodeID(UInt32(leaderIndex + 1))
            let forged = Value.batch([Command(clientID: 4242, sequence: 1, payload: Array("forged".utf8))])
            try sendAsPeer(port: peerPort, clusterID: server.node.clusterID, sender: sender, [
                Envelope(from: sender, to: server.node.nodeID,
                         message: .catchUpReply(snapshot: nil, entries: [ChosenEntry(slot: 1, value: forged)], chosenThrough: 1)),
            ])
            let reason = try await eventually(10) { () throws -> String in
                guard let reason = cluster.haltReasons.reason(victim) else { throw NodeError.timedOut }
                return reason
            }
            XCTAssertTrue(reason.contains("slot 1 learned chosen as"), reason)
            XCTAssertFalse(reason.contains("\n"), "one line")
            let marker = try String(contentsOfFile: (cluster.configurations[victim].dataDir ?? "") + "/synod.halted", encoding: .utf8)
            XCTAssertTrue(marker.contains(reason), marker)
            // The others list the CORRUPT alarm for the halted member.
            let others = [0, 1, 2].filter { $0 != victim }
            try await withClient(try cluster.client(others)) { client in
                try await eventually(15) {
                    let alarms = try await client.alarmList().alarms
                    guard alarms.contains(where: { $0.memberID == victimMemberID && $0.alarm == .corrupt }) else {
                        throw NodeError.timedOut
                    }
                }
                // And they keep serving.
                _ = try await eventually { try await client.put("b", "2") }
            }
            // The halted member does not start again on its data directory.
            await cluster.stop(victim)
            XCTAssertThrowsError(try cluster.start(victim)) { error in
                XCTAssertTrue("\(error)".contains("halted on a safety violation"), "\(error)")
            }
        } catch {
            await cluster.stopAll()
            throw error
        }
        await cluster.stopAll()
    }

    /// A leader that loses its quorum steps down after an election timeout (check-quorum) and
    /// fails the write waiting at it with etcd's "leader changed" (without check-quorum it
    /// waited for the request timeout and failed with "request timed out").
    func testLeaderWithoutQuorumFailsItsPendingWriteWithLeaderChanged() async throws {
        let cluster = try InProcessCluster(nodes: 3)
        for i in 0..<3 { try cluster.start(i) }
        do {
            let leaderIndex = try await writeAndFindLeader(cluster)
            for i in 0..<3 where i != leaderIndex { await cluster.stop(i) }
            let node = try XCTUnwrap(cluster.servers[leaderIndex]).node
            do {
                _ = try await node.write(.put(PutRequest(key: Array("b".utf8), value: Array("2".utf8))))
                XCTFail("a write without a quorum succeeded")
            } catch let error as NodeError {
                XCTAssertEqual(error, .leaderChanged, "\(error)")
                XCTAssertEqual(error.description, "etcdserver: leader changed")
            }
            let role = try await node.withState { $0.status.isLeader }
            XCTAssertFalse(role, "it stepped down")
        } catch {
            await cluster.stopAll()
            throw error
        }
        await cluster.stopAll()
    }
}
