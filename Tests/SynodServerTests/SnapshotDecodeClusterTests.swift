import Foundation
import SynodClient
import XCTest
@testable import SynodServer

/// A member decodes its snapshot off its loop (at restart here, as a joiner or a far-behind
/// follower does): meanwhile `/health` says so at once, and a read waits for the state rather
/// than answering from the empty state that stands in for it.
final class SnapshotDecodeClusterTests: XCTestCase {
    func testARestartedMemberDecodingItsSnapshotSaysSoAndItsReadsWaitForTheState() async throws {
        let cluster = try InProcessCluster(nodes: 3, snapshotCount: 100)
        for i in 0..<3 { try cluster.start(i) }
        do {
            let member = 2
            try await putKeys(250, into: cluster, appliedAt: member)
            await cluster.stop(member)
            var failpoints = Failpoints()
            failpoints.decodeDelayMilliseconds = 3_000
            cluster.failpoints[member] = failpoints
            try cluster.start(member)
            let server = try XCTUnwrap(cluster.servers[member])
            let report = try await eventually(5) {
                let report = await SynodNodeServer.health(server.node)
                guard report.reason.contains("decoding a snapshot") else { throw NodeError.timedOut }
                return report
            }
            XCTAssertFalse(report.healthy)
            XCTAssertTrue(server.node.isDecodingSnapshot)
            XCTAssertTrue(server.metrics.exposition().contains("synod_snapshot_decoding 1"))
            // A serializable read sent now is answered once the state is there, with the
            // value written before the restart (not from the empty state: "absent").
            let started = Date()
            let value = try await withClient(try cluster.client([member])) { client in
                try await eventually { try await client.get("k0", serializable: true).kvs.first.map { String(decoding: $0.value, as: UTF8.self) } }
            }
            XCTAssertEqual(value, "v0")
            XCTAssertFalse(server.node.isDecodingSnapshot)
            XCTAssertGreaterThan(Date().timeIntervalSince(started), 0.5, "the read waited for the decode")
            let healthy = try await eventually {
                let report = await SynodNodeServer.health(server.node)
                guard report.healthy else { throw NodeError.timedOut }
                return report
            }
            XCTAssertTrue(healthy.healthy)
            XCTAssertTrue(server.metrics.exposition().contains("synod_snapshot_decoding 0"))
        } catch {
            await cluster.stopAll()
            throw error
        }
        await cluster.stopAll()
    }

    func testTheDecodeDelayFailpointParses() throws {
        let failpoints = try Failpoints.parse("decode-delay=2s")
        XCTAssertEqual(failpoints.decodeDelayMilliseconds, 2_000)
        XCTAssertEqual(failpoints.description, "decode-delay=2000ms")
        XCTAssertThrowsError(try Failpoints.parse("decode-delay"))
    }
}
