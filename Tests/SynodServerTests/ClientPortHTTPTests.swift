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

    /// etcd's JSON gateway: the KV calls (range also under /v3beta), the unary Lease, Cluster,
    /// Maintenance and Auth calls; etcd's JSON field names and string-typed 64-bit numbers;
    /// etcd's error body and HTTP statuses; 501 for etcd's paths not served yet, 404 for
    /// others; auth tokens in `Authorization`.
    func testJSONGatewayServesTheKVCalls() async throws {
        let cluster = try InProcessCluster(nodes: 1)
        try cluster.start(0)
        defer { Task { await cluster.stopAll() } }
        let port = try cluster.configurations[0].validate().clientListen.port
        let key = Data("foo".utf8).base64EncodedString(), value = Data("bar".utf8).base64EncodedString()
        let put = try await eventually {
            let answer = try Self.post(port, "/v3/kv/put", #"{"key":"\#(key)","value":"\#(value)"}"#)
            guard answer.status == 200 else { throw NodeError.timedOut }
            return answer
        }
        XCTAssertTrue(put.body.hasPrefix(#"{"header":{"cluster_id":""#), put.body)
        XCTAssertTrue(put.body.contains(#""revision":"2""#), put.body)
        let range = try Self.post(port, "/v3beta/kv/range", #"{"key":"\#(key)"}"#)
        XCTAssertEqual(range.status, 200)
        XCTAssertTrue(range.body.contains(#""kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1","value":"YmFy"}],"count":"1""#),
                      range.body)
        let txn = try Self.post(port, "/v3/kv/txn", #"{"compare":[{"key":"\#(key)","result":"EQUAL","target":"VALUE","value":"\#(value)"}],"success":[{"requestPut":{"key":"\#(key)","value":"YmF6"}}]}"#)
        XCTAssertTrue(txn.body.contains(#""succeeded":true"#), txn.body)
        let delete = try Self.post(port, "/v3/kv/deleterange", #"{"key":"\#(key)","prev_kv":true}"#)
        XCTAssertTrue(delete.body.contains(#""deleted":"1","prev_kvs":[{"key":"Zm9v""#), delete.body)
        let future = try Self.post(port, "/v3/kv/compaction", #"{"revision":"100"}"#)
        XCTAssertEqual(future.status, 400)
        XCTAssertEqual(future.body, #"{"error":"etcdserver: mvcc: required revision is a future revision","message":"etcdserver: mvcc: required revision is a future revision","code":11}"#)
        let malformed = try Self.post(port, "/v3/kv/range", #"{"key":"not base64!!"}"#)
        XCTAssertEqual(malformed.status, 400)
        XCTAssertTrue(malformed.body.contains(#""code":3"#))
        XCTAssertEqual(try Self.post(port, "/v3/watch", "{}").status, 501)
        XCTAssertEqual(try Self.post(port, "/v3/kv/nothing", "{}").status, 404)

        // The unary calls of the other services, with etcd's field names (ID, TTL, peerURLs).
        let grant = try Self.post(port, "/v3/lease/grant", #"{"TTL":"30"}"#)
        XCTAssertTrue(grant.body.contains(#""TTL":"30""#) && grant.body.contains(#""ID":""#), grant.body)
        XCTAssertTrue(try Self.post(port, "/v3/kv/lease/leases", "{}").body.contains(#""leases":[{"ID":""#))
        XCTAssertTrue(try Self.post(port, "/v3/cluster/member/list", "{}").body.contains(#""name":"n1","peerURLs":["http://127.0.0.1:"#))
        XCTAssertTrue(try Self.post(port, "/v3/maintenance/status", "{}").body.contains(#""version":"3.4.0""#))

        // Auth through the gateway: the token goes in Authorization.
        _ = try Self.post(port, "/v3/auth/user/add", #"{"name":"root","password":"gw-pw"}"#)
        _ = try Self.post(port, "/v3/auth/user/grant", #"{"user":"root","role":"root"}"#)
        XCTAssertEqual(try Self.post(port, "/v3/auth/enable", "{}").status, 200)
        let anonymous = try Self.post(port, "/v3/kv/put", #"{"key":"YQ==","value":"Yg=="}"#)
        XCTAssertEqual(anonymous.status, 400)
        XCTAssertTrue(anonymous.body.contains("etcdserver: user name is empty"), anonymous.body)
        let wrong = try Self.post(port, "/v3/auth/authenticate", #"{"name":"root","password":"nope"}"#)
        XCTAssertEqual(wrong.status, 400)
        XCTAssertTrue(wrong.body.contains("etcdserver: authentication failed, invalid user ID or password"), wrong.body)
        let login = try Self.post(port, "/v3/auth/authenticate", #"{"name":"root","password":"gw-pw"}"#)
        let token = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(login.body.utf8)) as? [String: Any])?["token"] as? String)
        XCTAssertEqual(try Self.post(port, "/v3/kv/put", #"{"key":"YQ==","value":"Yg=="}"#, authorization: token).status, 200)
        XCTAssertEqual(try Self.post(port, "/v3/kv/put", #"{"key":"YQ==","value":"Yg=="}"#, authorization: token + "x").status, 401)
        XCTAssertEqual(try Self.post(port, "/v3/auth/disable", "{}", authorization: token).status, 200)
    }

    /// One HTTP/1.0 POST (the connection closes after the answer): status and body.
    static func post(_ port: Int, _ path: String, _ body: String, authorization: String? = nil) throws -> (status: Int, body: String) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw NodeError.timedOut }
        let auth = authorization.map { "Authorization: \($0)\r\n" } ?? ""
        let request = Array("POST \(path) HTTP/1.0\r\nHost: 127.0.0.1\r\n\(auth)Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)".utf8)
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count <= 0 { break }
            response += buffer[0..<count]
        }
        let text = String(decoding: response, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n"), let status = Int(text.split(separator: " ").dropFirst().first ?? "") else {
            throw NodeError.timedOut
        }
        return (status, String(text[split.upperBound...]))
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
