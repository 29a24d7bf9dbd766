import Foundation
import NIOCore
@testable import SynodBench
import SynodClient
import XCTest
@testable import SynodServer

/// The client port serves etcd's `/health`, `/metrics` and `/version` over HTTP/1.1 next to
/// gRPC, and a member opens no other port unless `--listen-metrics-urls` asks for one.
final class ClientPortHTTPTests: XCTestCase {
    func testStatusEndpointsOnTheClientPortAndNoImplicitMetricsPort() async throws {
        let cluster = try InProcessCluster(nodes: 1)
        cluster.configurations[0].listenMetricsURLs = nil
        try cluster.start(0)
        defer { Task { await cluster.stopAll() } }
        let port = try cluster.configurations[0].validate().clientListen.port
        try await withClient(try cluster.client()) { client in
            _ = try await eventually { try await client.put("k", "v") }  // gRPC on the same port
        }
        let health = try await eventually {
            guard let body = CompareHTTP.get(host: "127.0.0.1", port: port, path: "/health") else { throw NodeError.timedOut }
            return body
        }
        XCTAssertEqual(health, #"{"health":"true","reason":""}"#)
        XCTAssertEqual(CompareHTTP.get(host: "127.0.0.1", port: port, path: "/version"), HTTPStatusServer.versionJSON)
        let metrics = try XCTUnwrap(CompareHTTP.get(host: "127.0.0.1", port: port, path: "/metrics"))
        XCTAssertTrue(metrics.contains("synod_"), "Prometheus text")
        XCTAssertNil(CompareHTTP.get(host: "127.0.0.1", port: port, path: "/nope"), "404")
        // Nothing listens on client port + 2 (Synod's old default, a neighbour's client port).
        XCTAssertNil(CompareHTTP.get(host: "127.0.0.1", port: port + 2, path: "/metrics", timeoutMilliseconds: 300))
        // gRPC still works after HTTP/1.1 connections came and went.
        try await withClient(try cluster.client()) { client in
            let count = try await client.get("k").kvs.count
            XCTAssertEqual(count, 1)
        }
    }

    func testTheSnifferTellsHTTP2FromHTTP1ByTheFirstBytes() {
        let allocator = ByteBufferAllocator()
        let preface = ClientProtocolSniffer.http2Preface
        XCTAssertEqual(ClientProtocolSniffer.classify(allocator.buffer(bytes: preface)), true)
        XCTAssertNil(ClientProtocolSniffer.classify(allocator.buffer(bytes: Array(preface.prefix(5)))), "too few bytes yet")
        XCTAssertEqual(ClientProtocolSniffer.classify(allocator.buffer(string: "GET /health HTTP/1.1\r\n")), false)
        XCTAssertEqual(ClientProtocolSniffer.classify(allocator.buffer(string: "P")), nil)
        XCTAssertEqual(ClientProtocolSniffer.classify(allocator.buffer(string: "POST /v3/kv/range HTTP/1.1\r\n")), false)
    }
}
