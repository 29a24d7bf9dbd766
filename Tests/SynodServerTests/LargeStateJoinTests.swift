import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import SynodClient
import SynodCore
import SynodTransport
import XCTest
@testable import SynodServer

/// A member joins a cluster whose state is several times larger than any peer frame, while
/// clients keep writing: the snapshot travels in chunks (issue 16). The frame limits are
/// lowered to 2 MiB so that a state of 8 MiB is enough; `Scripts/join-bench.sh` does the same
/// with the default limits and gigabytes.
final class LargeStateJoinTests: XCTestCase {
    static let limits = PeerCodecLimits(frameBytesMax: 2 << 20, snapshotBytesMax: 1 << 20)
    static let valueBytes = 64 << 10
    static let keys = 128  // 8 MiB of values: 4 frames' worth, 8 times the snapshot limit

    func testALearnerJoinsAClusterWhoseStateExceedsTheFrameLimitWhileClientsWrite() async throws {
        let cluster = try InProcessCluster(nodes: 3, snapshotCount: 100)
        cluster.peerCodecLimits = Self.limits
        for i in 0..<3 { try cluster.start(i) }
        let writer = Writer()
        var background: Task<Void, Never>?
        do {
            let client = try cluster.client([0, 1, 2])
            try await withClient(client) { client in
                try await eventually { _ = try await client.put("warm", "up") }
                for index in 0..<Self.keys {
                    let value = String(repeating: Character(UnicodeScalar(UInt8(97 + index % 26))), count: Self.valueBytes)
                    _ = try await client.put("big/\(index)", value)
                }
            }

            // Clients keep writing small keys while the learner joins.
            let writes = try cluster.client([0, 1, 2])
            background = Task { [writer] in
                let runner = Task { try await writes.run() }
                defer { writes.close(); runner.cancel() }
                var sequence = 0
                while !Task.isCancelled {
                    sequence += 1
                    if (try? await writes.put("live/\(sequence % 50)", "\(sequence)")) != nil { writer.acknowledged(sequence) }
                    try? await Task.sleep(for: .milliseconds(5))
                }
            }

            let spare = cluster.addSpare()
            let admin = try cluster.client([0, 1, 2])
            let peerURL = cluster.configurations[spare].listenPeerURLs
            _ = try await withClient(admin) { admin in
                try await eventually { try await admin.memberAdd(peerURLs: [peerURL], isLearner: true) }
            }
            try await cluster.join(spare)
            let learner = try cluster.client([spare])
            try await withClient(learner) { learner in
                // Caught up: every big value, read locally at the learner.
                let count = try await eventually(90) {
                    let response = try await learner.get("big/", prefix: true, serializable: true, countOnly: true)
                    guard response.count == Self.keys else { throw NotYet(what: "learner holds \(response.count) of \(Self.keys)") }
                    return response.count
                }
                XCTAssertEqual(count, Int64(Self.keys))
                let last = try await learner.get("big/\(Self.keys - 1)", serializable: true)
                XCTAssertEqual(last.kvs.first?.value.count, Self.valueBytes)
                XCTAssertEqual(last.kvs.first?.value.first, UInt8(97 + (Self.keys - 1) % 26))
                // And it keeps up with the writes that went on during the join.
                let target = writer.last
                XCTAssertGreaterThan(target, 0, "clients kept writing")
                try await eventually(30) {
                    let values = try await learner.get("live/", prefix: true, serializable: true).kvs
                        .compactMap { Int(String(decoding: $0.value, as: UTF8.self)) }
                    guard (values.max() ?? 0) >= target else { throw NotYet(what: "learner behind the writes") }
                }
            }
            background?.cancel()
            _ = await background?.value

            // The snapshot came in chunks (none of which could have held it whole).
            let metrics = try await metricsText(cluster, spare)
            let chunks = try XCTUnwrap(metricValue(metrics, "synod_snapshot_chunks_received_total"))
            // Chunks are a quarter of the snapshot limit; the snapshot (of at least 100 of the
            // 128 big values) was more than twice the frame limit.
            let chunkBytes = Self.limits.snapshotBytesMax / 4
            XCTAssertGreaterThanOrEqual(chunks, Double(2 * Self.limits.frameBytesMax / chunkBytes), "\(chunks) chunks")
            XCTAssertEqual(metricValue(metrics, "synod_snapshot_checksum_failures"), 0)
            XCTAssertGreaterThanOrEqual(metricValue(metrics, "synod_snapshots_installed_total") ?? 0, 1)

            // The joiner wrote the chunks to a spool file that became its snapshot file (no
            // temporary file left), and no member keeps its snapshot's bytes in memory once
            // the file is durable: chunks were read from the sender's file.
            XCTAssertGreaterThanOrEqual(metricValue(metrics, "synod_snapshots_spooled") ?? 0, 1)
            XCTAssertEqual(metricValue(metrics, "synod_snapshot_spool_failures"), 0)
            let snapDirectory = (cluster.configurations[spare].dataDir ?? "") + "/snap"
            let names = try FileManager.default.contentsOfDirectory(atPath: snapDirectory)
            XCTAssertTrue(names.contains { $0.hasSuffix(".snap") }, "\(names)")
            XCTAssertFalse(names.contains { $0.hasSuffix(".tmp") }, "\(names)")
            for member in [0, 1, 2, spare] {
                try await eventually(10) {
                    let held = metricValue(try await metricsText(cluster, member), "synod_snapshot_memory_bytes")
                    guard held == 0 else { throw NotYet(what: "member \(member) holds \(held ?? -1) snapshot bytes in memory") }
                }
            }
        } catch {
            background?.cancel()
            await cluster.stopAll()
            throw error
        }
        await cluster.stopAll()
    }

    private func metricsText(_ cluster: InProcessCluster, _ index: Int) async throws -> String {
        let url = try XCTUnwrap(URL(string: (cluster.configurations[index].listenMetricsURLs ?? "") + "/metrics"))
        return String(decoding: try await URLSession.shared.data(from: url).0, as: UTF8.self)
    }

    private func metricValue(_ text: String, _ name: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(name + " ") {
            return Double(line.split(separator: " ").last ?? "")
        }
        return nil
    }

    struct NotYet: Error { var what: String }

    /// The highest sequence a background writer had acknowledged.
    final class Writer: @unchecked Sendable {
        private let lock = NSLock()
        private var highest = 0
        func acknowledged(_ sequence: Int) { lock.withLock { highest = max(highest, sequence) } }
        var last: Int { lock.withLock { highest } }
    }
}
