import Foundation
import NIOCore
import NIOPosix
@testable import SynodClient
import SynodCore
import SynodEtcdAPI
import XCTest
@testable import SynodServer

/// The replicated integrity check and alarms on a real (in-process) cluster, and
/// at-most-once retries through `synod-request-id`.
final class IntegrityClusterTests: XCTestCase {
    /// GET over plain HTTP/1.1; returns the body.
    private func httpGet(_ url: String, path: String, group: EventLoopGroup) async throws -> String {
        let hostPort = url.replacingOccurrences(of: "http://", with: "").split(separator: ":")
        let port = try XCTUnwrap(Int(hostPort.last ?? ""))
        let channel = try await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: port) { channel in
            channel.eventLoop.makeCompletedFuture {
                try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
            }
        }
        let text = try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: "GET \(path) HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"))
            var received: [UInt8] = []
            for try await chunk in inbound { received += chunk.readableBytesView }
            return String(decoding: received, as: UTF8.self)
        }
        guard let split = text.range(of: "\r\n\r\n") else { return text }
        return String(text[split.upperBound...])
    }

    struct NotYet: Error { var what: String }

    /// One replica silently applies a different value (failpoint `corrupt-apply`, the broken
    /// variant the check exists for): the check notices, the CORRUPT alarm for that member is
    /// raised through the log, and every member reports it in Maintenance.Alarm, /health and
    /// /metrics. The healthy replicas raise nothing.
    func testCorruptedReplicaRaisesTheCorruptAlarmEverywhere() async throws {
        let cluster = try InProcessCluster(nodes: 3)
        cluster.integrityCheckMilliseconds = 300
        var failpoints = Failpoints()
        failpoints.corruptApplyAfter = 5
        cluster.failpoints[2] = failpoints
        for i in 0..<3 { try cluster.start(i) }
        do {
            let corruptMember = try await withClient(try cluster.client()) { client -> UInt64 in
                // Distinct keys: the corrupted value is never overwritten, so the divergence lasts.
                for i in 0..<20 {
                    _ = try await client.put("key\(i)", "value\(i)")
                }
                let status = try await eventually(20) { try await client.status(endpoint: cluster.endpoints[2]) }
                let member = status.header.memberID
                let alarms = try await eventually(20) { () throws -> [Etcdserverpb_AlarmMember] in
                    _ = try await client.put("tick", "\(Date().timeIntervalSince1970)")
                    let alarms = try await client.alarmList().alarms
                    guard !alarms.isEmpty else { throw NotYet(what: "no alarm yet") }
                    return alarms
                }
                XCTAssertEqual(alarms.map(\.memberID), [member], "only the corrupted member")
                XCTAssertEqual(alarms.map(\.alarm), [.corrupt])
                return member
            }
            // Every member reports it (it is replicated), linearizably.
            for i in 0..<3 {
                let alarms = try await withClient(try cluster.client([i])) { try await $0.alarmList().alarms }
                XCTAssertEqual(alarms.map(\.memberID), [corruptMember], "node \(i + 1)")
            }
            let metricsURL = (cluster.configurations[0].listenMetricsURLs ?? "")
            let health = try await eventually(20) { () throws -> String in
                let body = try await httpGet(metricsURL, path: "/health", group: cluster.group)
                guard body.contains("CORRUPT") else { throw NotYet(what: body) }
                return body
            }
            XCTAssertTrue(health.contains("\"health\":\"false\""), health)
            let metrics = try await httpGet(metricsURL, path: "/metrics", group: cluster.group)
            XCTAssertTrue(metrics.contains("synod_alarm_corrupt 1"), "gauge missing")
            let corruptMetrics = try await httpGet((cluster.configurations[2].listenMetricsURLs ?? ""), path: "/metrics", group: cluster.group)
            XCTAssertFalse(corruptMetrics.contains("synod_integrity_mismatches_total 0"), "the corrupt node counted its mismatch")
            XCTAssertTrue(metrics.contains("synod_integrity_mismatches_total 0"), "a healthy node found no mismatch")

            // An operator clears the alarm (etcdctl alarm disarm does the same).
            try await withClient(try cluster.client()) { client in
                var request = Etcdserverpb_AlarmRequest()
                request.action = .deactivate
                request.memberID = corruptMember
                request.alarm = .corrupt
                _ = try await client.withFailover { [request] connection, options in
                    try await Etcdserverpb_Maintenance.Client(wrapping: connection.grpc).alarm(request, options: options)
                }
            }
        } catch {
            await cluster.stopAll()
            throw error
        }
        await cluster.stopAll()
    }

    /// Without corruption the checks run and find nothing.
    func testHealthyClusterChecksAndRaisesNothing() async throws {
        let cluster = try InProcessCluster(nodes: 3)
        cluster.integrityCheckMilliseconds = 200
        for i in 0..<3 { try cluster.start(i) }
        do {
            try await withClient(try cluster.client()) { client in
                for i in 0..<30 {
                    _ = try await client.put("key\(i % 5)", "value\(i)")
                    if i % 10 == 0 { _ = try await client.delete("key\(i % 5)") }
                    try await Task.sleep(for: .milliseconds(30))
                }
                let alarms = try await client.alarmList().alarms
                XCTAssertEqual(alarms.count, 0)
            }
            for i in 0..<3 {
                let metrics = try await httpGet((cluster.configurations[i].listenMetricsURLs ?? ""), path: "/metrics", group: cluster.group)
                XCTAssertTrue(metrics.contains("synod_integrity_mismatches_total 0"), "node \(i + 1)")
                XCTAssertFalse(metrics.contains("synod_integrity_checks_total 0\n"), "node \(i + 1) applied checks")
            }
        } catch {
            await cluster.stopAll()
            throw error
        }
        await cluster.stopAll()
    }

    /// Two attempts of one write with the same `synod-request-id`, sent to different members,
    /// are applied once: the second answers with the first's revision. Without the header
    /// (etcdctl), two sends are two writes.
    func testRetriedWriteWithTheSameRequestIDIsAppliedOnce() async throws {
        let cluster = try InProcessCluster(nodes: 3)
        for i in 0..<3 { try cluster.start(i) }
        do {
            var request = Etcdserverpb_PutRequest()
            request.key = Data("dedup".utf8)
            request.value = Data("v".utf8)
            let metadata = SynodClient.requestMetadata()
            func send(_ node: Int, withID: Bool) async throws -> Int64 {
                try await withClient(try cluster.client([node])) { client in
                    try await eventually {
                        try await client.withFailover { [request] connection, options in
                            try await Etcdserverpb_KV.Client(wrapping: connection.grpc)
                                .put(request, metadata: withID ? metadata : [:], options: options).header.revision
                        }
                    }
                }
            }
            let first = try await send(0, withID: true)
            let second = try await send(1, withID: true)
            let third = try await send(2, withID: true)
            XCTAssertEqual(second, first, "the retry got the first attempt's result")
            XCTAssertEqual(third, first)
            let plain1 = try await send(1, withID: false)
            let plain2 = try await send(2, withID: false)
            XCTAssertEqual(plain1, first + 1, "applied once so far")
            XCTAssertEqual(plain2, plain1 + 1, "without the header every send is a write")
        } catch {
            await cluster.stopAll()
            throw error
        }
        await cluster.stopAll()
    }
}
