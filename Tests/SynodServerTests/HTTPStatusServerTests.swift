import Foundation
import NIOCore
import NIOPosix
import XCTest

@testable import SynodServer

final class HTTPStatusServerTests: XCTestCase {
    private struct RawResponse {
        var status: Int
        var headers: [String: String]
        var body: String
    }

    private var group: any EventLoopGroup { MultiThreadedEventLoopGroup.singleton }

    private func makeServer(
        health: @escaping @Sendable () async -> HealthReport = { .healthy },
        metrics: @escaping @Sendable () -> String = { "" }
    ) async throws -> (HTTPStatusServer, Int) {
        let server = HTTPStatusServer(
            group: group,
            host: "127.0.0.1",
            port: 0,
            health: health,
            metrics: metrics
        )
        try await server.start()
        let port = try XCTUnwrap(server.localPort)
        XCTAssertGreaterThan(port, 0)
        return (server, port)
    }

    /// Sends raw bytes, reads until the server closes, returns everything received.
    private func exchange(_ raw: String, port: Int) async throws -> String {
        let channel = try await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: port) { channel in
            channel.eventLoop.makeCompletedFuture {
                try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
            }
        }
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: raw))
            var received: [UInt8] = []
            for try await chunk in inbound {
                received += chunk.readableBytesView
            }
            return String(decoding: received, as: UTF8.self)
        }
    }

    private func get(_ path: String, port: Int, method: String = "GET") async throws -> RawResponse {
        let text = try await exchange(
            "\(method) \(path) HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            port: port
        )
        let responses = try parseResponses(text)
        XCTAssertEqual(responses.count, 1)
        return try XCTUnwrap(responses.first)
    }

    /// Splits a byte stream of HTTP/1.1 responses (each with Content-Length).
    private func parseResponses(_ text: String) throws -> [RawResponse] {
        var rest = Substring(text)
        var responses: [RawResponse] = []
        while !rest.isEmpty {
            let headEnd = try XCTUnwrap(rest.range(of: "\r\n\r\n"), "no end of headers in \(rest)")
            let headLines = rest[..<headEnd.lowerBound].components(separatedBy: "\r\n")
            let statusParts = try XCTUnwrap(headLines.first).split(separator: " ")
            XCTAssertEqual(statusParts.first, "HTTP/1.1")
            let status = try XCTUnwrap(statusParts.count > 1 ? Int(statusParts[1]) : nil)
            var headers: [String: String] = [:]
            for line in headLines.dropFirst() {
                let colon = try XCTUnwrap(line.firstIndex(of: ":"))
                headers[line[..<colon].lowercased()] = line[line.index(after: colon)...]
                    .trimmingCharacters(in: .whitespaces)
            }
            let length = try XCTUnwrap(headers["content-length"].flatMap { Int($0) })
            let bodyStart = headEnd.upperBound
            let bodyBytes = Array(rest[bodyStart...].utf8.prefix(length))
            XCTAssertEqual(bodyBytes.count, length)
            responses.append(RawResponse(status: status, headers: headers, body: String(decoding: bodyBytes, as: UTF8.self)))
            rest = Substring(String(decoding: rest[bodyStart...].utf8.dropFirst(length), as: UTF8.self))
        }
        return responses
    }

    func testHealthyReportsEtcdShape() async throws {
        let (server, port) = try await makeServer()
        let response = try await get("/health", port: port)
        await server.shutdown()
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.body, #"{"health":"true","reason":""}"#)
        XCTAssertEqual(response.headers["content-type"], "application/json")
    }

    func testUnhealthyIs503WithReason() async throws {
        let (server, port) = try await makeServer(health: {
            // Really suspend, so the answer is written from outside the event loop's turn.
            try? await Task.sleep(for: .milliseconds(20))
            return HealthReport(healthy: false, reason: "no \"leader\"")
        })
        let response = try await get("/health?serializable=true", port: port)
        await server.shutdown()
        XCTAssertEqual(response.status, 503)
        XCTAssertEqual(response.body, #"{"health":"false","reason":"no \"leader\""}"#)
    }

    func testMetricsExposeIncrementedCounter() async throws {
        let metrics = SynodMetrics()
        metrics.proposals.increment(by: Int64(3))
        metrics.appliedIndex.set(to: 42)
        metrics.peerConnected("n2").set(to: 1)
        metrics.grpcRequests(method: "Range", code: "OK").increment()
        metrics.fsyncDuration.record(.microseconds(300))
        let (server, port) = try await makeServer(metrics: { metrics.exposition() })
        let response = try await get("/metrics", port: port)
        await server.shutdown()
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8")
        let lines = response.body.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains("synod_proposals_total 3"), response.body)
        XCTAssertTrue(lines.contains("synod_applied_index 42.0"), response.body)
        XCTAssertTrue(lines.contains(#"synod_peer_connected{peer="n2"} 1.0"#), response.body)
        XCTAssertTrue(lines.contains(#"synod_grpc_requests_total{method="Range",code="OK"} 1"#), response.body)
        XCTAssertTrue(lines.contains("# TYPE synod_fsync_duration_seconds histogram"), response.body)
        XCTAssertTrue(lines.contains(#"synod_fsync_duration_seconds_bucket{le="0.0005"} 1"#), response.body)
        XCTAssertTrue(lines.contains(#"synod_fsync_duration_seconds_bucket{le="0.0001"} 0"#), response.body)
    }

    func testVersion() async throws {
        let (server, port) = try await makeServer()
        let response = try await get("/version", port: port)
        await server.shutdown()
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.body, #"{"etcdserver":"3.4.0","etcdcluster":"3.4.0","synod":"0.1.0"}"#)
    }

    func testUnknownPathIs404AndOtherMethodsAre405() async throws {
        let (server, port) = try await makeServer()
        let missing = try await get("/nope", port: port)
        let post = try await get("/health", port: port, method: "POST")
        let delete = try await get("/metrics", port: port, method: "DELETE")
        await server.shutdown()
        XCTAssertEqual(missing.status, 404)
        XCTAssertEqual(post.status, 405)
        XCTAssertEqual(post.headers["allow"], "GET")
        XCTAssertEqual(delete.status, 405)
    }

    func testKeepAliveServesPipelinedRequests() async throws {
        let (server, port) = try await makeServer(health: {
            try? await Task.sleep(for: .milliseconds(10))
            return .healthy
        })
        let text = try await exchange(
            "GET /health HTTP/1.1\r\nHost: a\r\n\r\n"
                + "GET /version HTTP/1.1\r\nHost: a\r\n\r\n"
                + "GET /missing HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            port: port
        )
        await server.shutdown()
        let responses = try parseResponses(text)
        XCTAssertEqual(responses.map(\.status), [200, 200, 404])
        XCTAssertEqual(responses.first?.body, #"{"health":"true","reason":""}"#)
        XCTAssertEqual(responses.last?.headers["connection"], "close")
    }

    func testOversizedBodyIsRejectedAndClosed() async throws {
        let (server, port) = try await makeServer()
        // The server answers from the headers alone and closes; the body is never sent.
        let text = try await exchange(
            "POST /health HTTP/1.1\r\nHost: a\r\nContent-Length: \(HTTPStatusServer.maxRequestBodyBytes + 1)\r\n\r\n",
            port: port
        )
        await server.shutdown()
        let responses = try parseResponses(text)
        XCTAssertEqual(responses.map(\.status), [413])
        XCTAssertEqual(responses.first?.headers["connection"], "close")
    }

    func testSmallBodyIsReadAndIgnored() async throws {
        let (server, port) = try await makeServer()
        let body = String(repeating: "x", count: 1000)
        let text = try await exchange(
            "GET /version HTTP/1.1\r\nHost: a\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)",
            port: port
        )
        await server.shutdown()
        XCTAssertEqual(try parseResponses(text).map(\.status), [200])
    }

    func testPortInUseGivesClearError() async throws {
        let (first, port) = try await makeServer()
        let second = HTTPStatusServer(
            group: group,
            host: "127.0.0.1",
            port: port,
            health: { .healthy },
            metrics: { "" }
        )
        do {
            try await second.start()
            XCTFail("second server bound a taken port")
            await second.shutdown()
        } catch let error as HTTPStatusServerError {
            XCTAssertEqual(error, .addressInUse(host: "127.0.0.1", port: port))
            XCTAssertEqual(
                "\(error)",
                "cannot listen for metrics on 127.0.0.1:\(port): address already in use"
            )
        }
        XCTAssertNil(second.localPort)
        await first.shutdown()
    }

    func testShutdownStopsListeningAndIsIdempotent() async throws {
        let (server, port) = try await makeServer()
        await server.shutdown()
        await server.shutdown()
        XCTAssertNil(server.localPort)
        do {
            _ = try await get("/health", port: port)
            XCTFail("server still answered after shutdown")
        } catch {
            // Connection refused: expected.
        }
        do {
            try await server.start()
            XCTFail("restarted a stopped server")
        } catch let error as HTTPStatusServerError {
            XCTAssertEqual(error, .alreadyStarted)
        }
    }

    func testShutdownClosesIdleKeepAliveConnections() async throws {
        let (server, port) = try await makeServer()
        let channel = try await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: port) { channel in
            channel.eventLoop.makeCompletedFuture {
                try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
            }
        }
        let received = try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: "GET /version HTTP/1.1\r\nHost: a\r\n\r\n"))
            var received: [UInt8] = []
            var shutDown = false
            for try await chunk in inbound {
                received += chunk.readableBytesView
                if !shutDown, String(decoding: received, as: UTF8.self).hasSuffix("}") {
                    // The response is complete and the connection idle: shutdown must close it,
                    // which ends this loop.
                    shutDown = true
                    await server.shutdown()
                }
            }
            return String(decoding: received, as: UTF8.self)
        }
        XCTAssertEqual(try parseResponses(received).map(\.status), [200])
    }

    func testHealthReportJSONEscaping() {
        XCTAssertEqual(
            HealthReport(healthy: false, reason: "a\\b\n\u{01}").json,
            #"{"health":"false","reason":"a\\b\n\u0001"}"#
        )
    }
}
