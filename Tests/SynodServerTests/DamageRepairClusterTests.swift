import Foundation
import SynodClient
import SynodCore
import SynodStore
import XCTest
@testable import SynodServer

/// A member whose disk lost a synced WAL write repairs it from the others instead of refusing
/// to start; a member with nobody to repair from refuses with one clear sentence.
final class DamageRepairClusterTests: XCTestCase {
    /// Zeros one synced write in the middle of the member's newest WAL segment (a lost write:
    /// the disk acknowledged the fsync and never wrote it). Returns the damaged file.
    private func loseAWrite(dataDirectory: String) throws -> String {
        let walDirectory = dataDirectory + "/wal"
        let segments = try FileManager.default.contentsOfDirectory(atPath: walDirectory).filter { $0.hasSuffix(".wal") }.sorted()
        let path = walDirectory + "/" + (try XCTUnwrap(segments.last))
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let writes = WALLayout.writes(in: bytes)
        XCTAssertGreaterThan(writes.count, 4, "the segment should hold several writes")
        let lost = writes[writes.count / 2]
        bytes.replaceSubrange(lost, with: [UInt8](repeating: 0, count: lost.count))
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    private func isRepairing(_ server: SynodNodeServer) async throws -> Bool {
        try await server.node.loop.submit { server.node.driver.replica.isRepairing }.get()
    }

    func testAMemberThatLostASyncedWriteRepairsFromTheOthersAndLosesNothing() async throws {
        let cluster = try InProcessCluster(nodes: 3)
        for i in 0..<3 { try cluster.start(i) }
        do {
            let victim = 2
            // Every member has applied the writes before the victim stops.
            try await putKeys(40, into: cluster, appliedAt: victim)
            await cluster.stop(victim)
            let dataDirectory = try XCTUnwrap(cluster.configurations[victim].dataDir)
            _ = try loseAWrite(dataDirectory: dataDirectory)
            // Without repair this data directory refuses to start (what happened before).
            XCTAssertThrowsError(try DurableStorage.open(fileSystem: POSIXFileSystem(), directory: dataDirectory,
                                                         identity: DataDirectoryIdentity(clusterID: cluster.servers[0]!.node.clusterID,
                                                                                         nodeID: UInt32(victim + 1))))
            // Another member is down when the victim starts: the repair waits for its answer
            // (every other voter must answer), and /health says why the victim is unhealthy.
            await cluster.stop(0)
            try cluster.start(victim)
            let server = try XCTUnwrap(cluster.servers[victim])
            let repairingAtStart = try await isRepairing(server)
            XCTAssertTrue(repairingAtStart, "the victim found the damage and repairs")
            XCTAssertTrue(server.metrics.exposition().contains("synod_repairing 1"))
            let report = try await eventually {
                let report = await SynodNodeServer.health(server.node)
                guard report.reason.contains("repairing") else { throw NodeError.timedOut }
                return report
            }
            XCTAssertFalse(report.healthy)
            let repairingWithoutAVoter = try await isRepairing(server)
            XCTAssertTrue(repairingWithoutAVoter, "repair cannot finish without every other voter's answer")
            try cluster.start(0)
            try await withClient(try cluster.client([0, 1])) { client in
                for i in 40..<50 { _ = try await eventually { try await client.put("k\(i)", "v\(i)") } }
            }
            try await eventually(20) { guard try await !isRepairing(server) else { throw NodeError.timedOut } }
            XCTAssertTrue(server.metrics.exposition().contains("synod_repairing 0"))
            try await eventually(20) {
                let report = await SynodNodeServer.health(server.node)
                guard report.healthy else { throw NodeError.timedOut }
            }
            let ledger = try String(contentsOfFile: dataDirectory + "/repair-ledger", encoding: .utf8)
            XCTAssertTrue(ledger.contains("repaired "), ledger)
            XCTAssertFalse(ledger.contains("pending "), ledger)
            // Nothing acknowledged is lost, read from the repaired member itself.
            try await withClient(try cluster.client([victim])) { client in
                try await eventually {
                    let all = try await client.get("k", prefix: true, serializable: true)
                    guard all.kvs.count == 50 else { throw NodeError.timedOut }
                }
            }
            // It votes again: the others alone are not needed for a write once one stops.
            await cluster.stop(0)
            try await withClient(try cluster.client([1, 2])) { client in
                _ = try await eventually(20) { try await client.put("after", "repair") }
            }
            // A restart after the repair finds the same damage already repaired.
            await cluster.stop(victim)
            try cluster.start(victim)
            let repairingAgain = try await isRepairing(try XCTUnwrap(cluster.servers[victim]))
            XCTAssertFalse(repairingAgain)
        } catch {
            await cluster.stopAll()
            throw error
        }
        await cluster.stopAll()
    }

    /// A damaged snapshot file: the member starts from the log without it, catches up past its
    /// slot from the others before it votes, and serves everything.
    func testAMemberWithADamagedSnapshotRepairsFromTheOthers() async throws {
        let cluster = try InProcessCluster(nodes: 3, snapshotCount: 100)
        for i in 0..<3 { try cluster.start(i) }
        do {
            let victim = 1
            try await withClient(try cluster.client()) { client in
                for i in 0..<250 { _ = try await eventually { try await client.put("s\(i)", "v\(i)") } }
            }
            let snapDirectory = try XCTUnwrap(cluster.configurations[victim].dataDir) + "/snap"
            try await eventually {
                let files = try FileManager.default.contentsOfDirectory(atPath: snapDirectory).filter { $0.hasSuffix(".snap") }
                guard !files.isEmpty else { throw NodeError.timedOut }
            }
            await cluster.stop(victim)
            let files = try FileManager.default.contentsOfDirectory(atPath: snapDirectory).filter { $0.hasSuffix(".snap") }.sorted()
            let path = snapDirectory + "/" + (try XCTUnwrap(files.last))
            var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            XCTAssertGreaterThan(bytes.count, 100)
            bytes[bytes.count / 2] ^= 0x40
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            try cluster.start(victim)
            let server = try XCTUnwrap(cluster.servers[victim])
            let repairingAtStart = try await isRepairing(server)
            XCTAssertTrue(repairingAtStart)
            try await withClient(try cluster.client([0, 2])) { client in
                _ = try await eventually { try await client.put("after", "damage") }
            }
            try await eventually(20) { guard try await !isRepairing(server) else { throw NodeError.timedOut } }
            try await withClient(try cluster.client([victim])) { client in
                try await eventually {
                    guard try await client.get("s", prefix: true, serializable: true).kvs.count == 250,
                          try await client.get("after", serializable: true).kvs.count == 1 else { throw NodeError.timedOut }
                }
            }
        } catch {
            await cluster.stopAll()
            throw error
        }
        await cluster.stopAll()
    }

    func testASingleMemberWithADamagedLogRefusesWithTheReason() async throws {
        let cluster = try InProcessCluster(nodes: 1)
        try cluster.start(0)
        do {
            try await withClient(try cluster.client()) { client in
                for i in 0..<20 { _ = try await eventually { try await client.put("k\(i)", "v\(i)") } }
            }
            await cluster.stop(0)
            _ = try loseAWrite(dataDirectory: try XCTUnwrap(cluster.configurations[0].dataDir))
            XCTAssertThrowsError(try cluster.start(0)) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains("cannot be repaired from the other members"), text)
                XCTAssertTrue(text.contains("no other voter to repair from"), text)
            }
        } catch {
            await cluster.stopAll()
            throw error
        }
        await cluster.stopAll()
    }
}
