import Crypto
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
        try request(port, "POST", path, body, authorization: authorization)
    }

    static func request(_ port: Int, _ method: String, _ path: String, _ body: String,
                        authorization: String? = nil) throws -> (status: Int, body: String) {
        let connection = try RawHTTPConnection(port: port, timeoutSeconds: 5)
        defer { connection.close() }
        let auth = authorization.map { "Authorization: \($0)\r\n" } ?? ""
        try connection.send("\(method) \(path) HTTP/1.0\r\nHost: 127.0.0.1\r\n\(auth)Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
        let response = connection.readToEnd()
        let text = String(decoding: response, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n"), let status = Int(text.split(separator: " ").dropFirst().first ?? "") else {
            throw NodeError.timedOut
        }
        return (status, String(text[split.upperBound...]))
    }

    /// The gateway's streams: a watch whose request body is itself a stream (chunked, requests
    /// sent while events arrive) stays open after the body ends and is cancelled on the node
    /// when the client goes away; keep-alive answers each request and ends with the body;
    /// snapshot streams the blob with etcd's SHA-256 trailer; a bad request object in a stream
    /// ends it with grpc-gateway's error object, after the answers to the objects before it.
    func testJSONGatewayStreams() async throws {
        let cluster = try InProcessCluster(nodes: 1)
        try cluster.start(0)
        defer { Task { await cluster.stopAll() } }
        let port = try cluster.configurations[0].validate().clientListen.port
        let node = try XCTUnwrap(cluster.servers[0]?.node)
        let foo = Data("foo".utf8).base64EncodedString(), bar = Data("bar".utf8).base64EncodedString()
        _ = try await eventually {
            guard try Self.post(port, "/v3/kv/put", #"{"key":"\#(foo)","value":"\#(bar)"}"#).status == 200 else { throw NodeError.timedOut }
        }

        let watch = try RawHTTPConnection(port: port)
        try watch.send("POST /v3/watch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n")
        try watch.sendChunk(#"{"create_request":{"key":"\#(foo)"}}"#)
        let created = try watch.readLines(1)
        XCTAssertTrue(watch.head.hasPrefix("HTTP/1.1 200"), watch.head)
        XCTAssertTrue(created[0].hasPrefix(#"{"result":{"header":"#) && created[0].hasSuffix(#""created":true}}"#), created[0])
        _ = try Self.post(port, "/v3/kv/put", #"{"key":"\#(foo)","value":"YmF6"}"#)
        let event = try watch.readLines(1)[0]
        XCTAssertTrue(event.contains(#""events":[{"kv":{"key":"Zm9v","create_revision":"2","mod_revision":"3","version":"2","value":"YmF6"}}]"#), event)
        // A second watch on the same stream, with prev_kv, while the first is open.
        try watch.sendChunk(#"{"create_request":{"key":"\#(foo)","prev_kv":true,"watch_id":"7"}}"#)
        XCTAssertTrue(try watch.readLines(1)[0].contains(#""watch_id":"7","created":true"#))
        try watch.sendChunk("")  // the request body ends; etcd's watch stays open
        _ = try Self.post(port, "/v3/kv/put", #"{"key":"\#(foo)","value":"YmF4"}"#)
        let after = try watch.readLines(2).joined(separator: "\n")
        XCTAssertTrue(after.contains(#""watch_id":"7""#) && after.contains(#""prev_kv":{"key":"Zm9v""#), after)
        let watchesWhileOpen = await node.watchCount()
        XCTAssertEqual(watchesWhileOpen, 2)
        watch.close()
        let gone = try await eventually {
            let count = await node.watchCount()
            guard count == 0 else { throw NodeError.timedOut }
            return count
        }
        XCTAssertEqual(gone, 0, "the client's watches are cancelled when it goes away")

        // Keep-alive: one answer per request object, then the response ends with the body.
        let grant = try Self.post(port, "/v3/lease/grant", #"{"TTL":"30"}"#)
        let lease = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(grant.body.utf8)) as? [String: Any])?["ID"] as? String)
        let keepAlive = try Self.post(port, "/v3/lease/keepalive", #"{"ID":"\#(lease)"} {"ID":"12345"}"#)
        XCTAssertEqual(keepAlive.status, 200)
        let answers = keepAlive.body.split(separator: "\n").map(String.init)
        XCTAssertEqual(answers.count, 2, keepAlive.body)
        XCTAssertTrue(answers[0].hasSuffix(#""ID":"\#(lease)","TTL":"30"}}"#), answers[0])
        XCTAssertTrue(answers[1].hasSuffix(#""ID":"12345"}}"#), "unknown lease: TTL 0, omitted: \(answers[1])")

        // A bad object after a good one: the good one is answered, then the error object.
        let bad = try Self.post(port, "/v3/lease/keepalive", #"{"ID":"\#(lease)"} nonsense"#)
        let badLines = bad.body.split(separator: "\n").map(String.init)
        XCTAssertEqual(badLines.count, 2, bad.body)
        XCTAssertTrue(badLines[1].hasPrefix(#"{"error":{"grpc_code":3,"http_code":400,"message":"synod: unexpected byte 0x6e"#), badLines[1])
        XCTAssertTrue(badLines[1].hasSuffix(#""http_status":"Bad Request"}}"#), badLines[1])
        // A bad first object fails the call as a whole, as etcd's gateway does (500, code 2, a
        // unary error body), with a message that says what is wrong.
        let badFirst = try Self.post(port, "/v3/lease/keepalive", #"{"ID":"abc"}"#)
        XCTAssertEqual(badFirst.status, 500)
        XCTAssertTrue(badFirst.body.hasPrefix(#"{"error":"synod: the request body is not a etcdserverpb.LeaseKeepAliveRequest in JSON"#), badFirst.body)
        XCTAssertTrue(badFirst.body.hasSuffix(#""code":2}"#), badFirst.body)
        // Other methods on a gateway path: 405; an unknown enum name: 400.
        XCTAssertEqual(try Self.request(port, "GET", "/v3/kv/range", "").status, 405)
        let badEnum = try Self.post(port, "/v3/kv/range", #"{"key":"Zm9v","sort_order":"BOGUS"}"#)
        XCTAssertEqual(badEnum.status, 400, badEnum.body)
        XCTAssertEqual(try Self.post(port, "/v3/kv/range", #"{"key":"Zm9v","no_such_field":1}"#).status, 200, "unknown fields are ignored")

        // Snapshot: chunks of the blob; together they end with the SHA-256 of the rest.
        let snapshot = try Self.post(port, "/v3/maintenance/snapshot", "")
        XCTAssertEqual(snapshot.status, 200)
        var blob = Data()
        for line in snapshot.body.split(separator: "\n") {
            let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let result = try XCTUnwrap(object["result"] as? [String: Any])
            blob += try XCTUnwrap(Data(base64Encoded: try XCTUnwrap(result["blob"] as? String)))
        }
        XCTAssertGreaterThan(blob.count, 32)
        XCTAssertEqual(blob.count % 512, 32)
        XCTAssertEqual(Data(SHA256.hash(data: blob.prefix(blob.count - 32))), blob.suffix(32))
    }

    /// Lock and Election through the gateway: a second locker waits; when its HTTP client goes
    /// away, its key is deleted (the call was cancelled); Observe streams the leader's values.
    func testJSONGatewayLockAndElection() async throws {
        let cluster = try InProcessCluster(nodes: 1)
        try cluster.start(0)
        defer { Task { await cluster.stopAll() } }
        let port = try cluster.configurations[0].validate().clientListen.port
        func json(_ body: String) throws -> [String: Any] {
            try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
        }
        let grant = try await eventually {
            let answer = try Self.post(port, "/v3/lease/grant", #"{"TTL":"30"}"#)
            guard answer.status == 200 else { throw NodeError.timedOut }
            return answer
        }
        let lease = try XCTUnwrap(try json(grant.body)["ID"] as? String)
        let name = Data("gwlock".utf8).base64EncodedString()
        let prefixRange = #"{"key":"\#(Data("gwlock/".utf8).base64EncodedString())","range_end":"\#(Data("gwlock0".utf8).base64EncodedString())","count_only":true}"#
        let locked = try Self.post(port, "/v3/lock/lock", #"{"name":"\#(name)","lease":"\#(lease)"}"#)
        XCTAssertEqual(locked.status, 200, locked.body)
        let key = try XCTUnwrap(try json(locked.body)["key"] as? String)

        let waiter = try RawHTTPConnection(port: port)
        let body = #"{"name":"\#(name)"}"#
        try waiter.send("POST /v3/lock/lock HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
        let queued = try await eventually {
            let count = try json(try Self.post(port, "/v3/kv/range", prefixRange).body)["count"] as? String
            guard count == "2" else { throw NodeError.timedOut }
            return count
        }
        XCTAssertEqual(queued, "2", "the waiter's key is in the queue")
        waiter.close()
        let left = try await eventually {
            let count = try json(try Self.post(port, "/v3/kv/range", prefixRange).body)["count"] as? String
            guard count == "1" else { throw NodeError.timedOut }
            return count
        }
        XCTAssertEqual(left, "1", "a waiter whose client went away deletes its key")
        XCTAssertEqual(try Self.post(port, "/v3/lock/unlock", #"{"key":"\#(key)"}"#).status, 200)

        let election = Data("gwelect".utf8).base64EncodedString()
        let observer = try RawHTTPConnection(port: port)
        let observe = #"{"name":"\#(election)"}"#
        try observer.send("POST /v3/election/observe HTTP/1.1\r\nHost: x\r\nContent-Length: \(observe.utf8.count)\r\n\r\n\(observe)")
        let campaign = try Self.post(port, "/v3/election/campaign", #"{"name":"\#(election)","lease":"\#(lease)","value":"djE="}"#)
        let leader = try XCTUnwrap(try json(campaign.body)["leader"] as? [String: Any])
        let leaderJSON = String(decoding: try JSONSerialization.data(withJSONObject: leader), as: UTF8.self)
        XCTAssertEqual(try Self.post(port, "/v3/election/proclaim", #"{"leader":\#(leaderJSON),"value":"djI="}"#).status, 200)
        let seen = try observer.readLines(2)
        XCTAssertTrue(seen[0].hasPrefix(#"{"result":{"header":"#) && seen[0].contains(#""value":"djE=""#), seen[0])
        XCTAssertTrue(seen[1].contains(#""value":"djI=""#), seen[1])
        observer.close()
        XCTAssertEqual(try Self.post(port, "/v3/election/resign", #"{"leader":\#(leaderJSON)}"#).status, 200)
        let none = try Self.post(port, "/v3/election/leader", #"{"name":"\#(election)"}"#)
        XCTAssertEqual(none.body, #"{"error":"election: no leader","message":"election: no leader","code":2}"#)
    }

    func testJSONStreamSplitterCutsConcatenatedObjects() {
        var splitter = JSONStreamSplitter(limit: 64)
        var (values, failure) = splitter.append(Array(#" {"a":"}{\"["} [1,{"b":[]}]"#.utf8))
        XCTAssertNil(failure)
        XCTAssertEqual(values.map { String(decoding: $0, as: UTF8.self) }, [#"{"a":"}{\"["}"#, #"[1,{"b":[]}]"#])
        (values, failure) = splitter.append(Array(#"{"c""#.utf8))
        XCTAssertEqual(values.count, 0)
        (values, failure) = splitter.append(Array(#":1}"#.utf8))
        XCTAssertEqual(values.map { String(decoding: $0, as: UTF8.self) }, [#"{"c":1}"#])
        XCTAssertNoThrow(try splitter.finish())
        _ = splitter.append(Array("{".utf8))
        XCTAssertThrowsError(try splitter.finish()) { XCTAssertEqual($0 as? JSONStreamSplitter.SplitError, .truncated) }

        var broken = JSONStreamSplitter(limit: 64)
        (values, failure) = broken.append(Array(#"{"x":1}]"#.utf8))
        XCTAssertEqual(values.count, 1, "the object before the error is kept")
        XCTAssertEqual(failure, .unexpected(byte: UInt8(ascii: "]"), offset: 7))
        XCTAssertEqual(broken.append(Array("{}".utf8)).failure, failure, "once broken, always broken")
        var mismatched = JSONStreamSplitter(limit: 64)
        XCTAssertEqual(mismatched.append(Array("{]".utf8)).failure, .unbalanced(offset: 1))
        var small = JSONStreamSplitter(limit: 8)
        XCTAssertEqual(small.append(Array(#"{"long":"value"}"#.utf8)).failure, .tooLarge(limit: 8))
        var scalar = JSONStreamSplitter(limit: 8)
        XCTAssertEqual(scalar.append(Array("42".utf8)).failure, .unexpected(byte: UInt8(ascii: "4"), offset: 0))
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

/// A raw HTTP/1.1 connection for streamed requests and responses: sends a request head and
/// chunks as the test goes, reads a chunked response line by line.
final class RawHTTPConnection {
    private let fd: Int32
    private var received: [UInt8] = []
    private(set) var head = ""
    private var pendingText = ""

    init(port: Int, timeoutSeconds: Int = 10) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { Glibc.close(fd); throw NodeError.timedOut }
    }

    deinit { close() }

    private var closed = false
    func close() {
        if !closed { closed = true; Glibc.close(fd) }
    }

    func send(_ text: String) throws {
        let bytes = Array(text.utf8)
        let sent = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) }
        guard sent == bytes.count else { throw NodeError.timedOut }
    }

    /// One chunk of a chunked request body (an empty one ends the body).
    func sendChunk(_ text: String) throws {
        try send(String(text.utf8.count, radix: 16) + "\r\n" + text + "\r\n")
    }

    /// The next `count` lines of the response body (chunk framing removed).
    func readLines(_ count: Int) throws -> [String] {
        var lines: [String] = []
        while lines.count < count {
            if let newline = pendingText.firstIndex(of: "\n") {
                lines.append(String(pendingText[..<newline]))
                pendingText = String(pendingText[pendingText.index(after: newline)...])
                continue
            }
            try readChunk()
        }
        return lines
    }

    private func readChunk() throws {
        if head.isEmpty {
            let end = try readUntil(Array("\r\n\r\n".utf8))
            head = String(decoding: end, as: UTF8.self)
        }
        let sizeLine = String(decoding: try readUntil(Array("\r\n".utf8)), as: UTF8.self)
        guard let size = Int(sizeLine.trimmingCharacters(in: .whitespacesAndNewlines), radix: 16) else { throw NodeError.timedOut }
        let data = try readExactly(size + 2)
        pendingText += String(decoding: data.prefix(size), as: UTF8.self)
    }

    private func readUntil(_ delimiter: [UInt8]) throws -> [UInt8] {
        while true {
            if let range = received.firstRange(of: delimiter) {
                let out = Array(received[..<range.upperBound])
                received.removeFirst(range.upperBound)
                return out
            }
            try fill()
        }
    }

    private func readExactly(_ count: Int) throws -> [UInt8] {
        while received.count < count { try fill() }
        let out = Array(received.prefix(count))
        received.removeFirst(count)
        return out
    }

    /// Everything until the server closes the connection (an HTTP/1.0 answer), raw.
    func readToEnd() -> [UInt8] {
        while (try? fill()) != nil {}
        defer { received = [] }
        return received
    }

    private func fill() throws {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { throw NodeError.timedOut }
        received += buffer[0..<count]
    }
}
