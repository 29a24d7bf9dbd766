import Logging
import NIOCore
import NIOPosix
import SynodCore
import SynodTransport
import XCTest

/// Join discovery over real loopback sockets: `PeerTransport.discover` against a running
/// transport's peer port, and against listeners that misbehave.
final class PeerTransportDiscoveryTests: XCTestCase {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    let cleanup = PeerTransportTestSupport.Locked<[PeerTransport]>([])
    let servers = PeerTransportTestSupport.Locked<[any Channel]>([])

    override func tearDown() async throws {
        for transport in cleanup.value { await transport.shutdown() }
        for server in servers.value { try? await server.close() }
        try await group.shutdownGracefully()
    }

    static let joinerURL = "http://10.0.0.4:2380"
    static let payload: [UInt8] = [7, 0, 0, 0, 4, 0, 0, 0, 0xAB]

    /// Nodes 1 and 2 of cluster 7, connected; node 1 answers discovery with `onDiscovery`.
    private func startPair(
        onDiscovery: (@Sendable (String) -> [UInt8]?)?
    ) async throws -> (PeerTransportTestSupport.Node, PeerTransportTestSupport.Node) {
        let ports = try await PeerTransportTestSupport.freePorts(2, group: group)
        let a = PeerTransportTestSupport.Node(
            group: group, id: NodeID(1), ports: ports, clusterID: 7, sendQueueBytesMax: 1 << 20, onDiscovery: onDiscovery)
        let b = PeerTransportTestSupport.Node(group: group, id: NodeID(2), ports: ports, clusterID: 7, sendQueueBytesMax: 1 << 20)
        cleanup.mutate { $0.append(contentsOf: [a.transport, b.transport]) }
        try await a.transport.start()
        try await b.transport.start()
        try await eventually("pair connected") {
            a.transport.connectedPeers() == [b.id] && b.transport.connectedPeers() == [a.id]
        }
        return (a, b)
    }

    private func address(of node: PeerTransportTestSupport.Node) throws -> PeerAddress {
        PeerAddress(host: "127.0.0.1", port: try XCTUnwrap(node.transport.listeningAddress()?.port))
    }

    /// A listener that answers every connection with `reply` (or nothing), then optionally closes.
    private func fakeMember(reply: [UInt8]?, close: Bool) async throws -> PeerAddress {
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                if let reply {
                    channel.writeAndFlush(channel.allocator.buffer(bytes: reply), promise: nil)
                }
                if close { channel.close(promise: nil) }
                return channel.eventLoop.makeSucceededVoidFuture()
            }
            .bind(host: "127.0.0.1", port: 0).get()
        servers.mutate { $0.append(server) }
        return PeerAddress(host: "127.0.0.1", port: try XCTUnwrap(server.localAddress?.port))
    }

    private func discover(_ address: PeerAddress, url: String = joinerURL, timeout: TimeAmount = .seconds(5))
        async throws -> [UInt8]
    {
        try await PeerTransport.discover(group: group, address: address, ownPeerURL: url, timeout: timeout)
    }

    /// The discovery error `body` throws; fails the test when it throws something else or nothing.
    private func discoveryError(
        file: StaticString = #filePath, line: UInt = #line, _ body: () async throws -> [UInt8]
    ) async -> PeerDiscoveryError? {
        do {
            let payload = try await body()
            XCTFail("discovery succeeded with \(payload)", file: file, line: line)
        } catch let error as PeerDiscoveryError {
            return error
        } catch {
            XCTFail("unexpected error \(error)", file: file, line: line)
        }
        return nil
    }

    func testDiscoveryReturnsTheHandlersPayload() async throws {
        let asked = PeerTransportTestSupport.Locked<[String]>([])
        let (a, b) = try await startPair(onDiscovery: { url in
            asked.mutate { $0.append(url) }
            return url == Self.joinerURL ? Self.payload : nil
        })
        let payload = try await discover(try address(of: a))
        XCTAssertEqual(payload, Self.payload)
        XCTAssertEqual(asked.value, [Self.joinerURL])
        let inbound = a.transport.statistics().inbound
        XCTAssertEqual(inbound.discoveryRequests, 1)
        XCTAssertEqual(inbound.rejectedConnections, 0)
        try await assertPairWorks(a, b)

        // An empty payload is a payload, not a refusal.
        let (c, _) = try await startPair(onDiscovery: { _ in [] })
        let empty = try await discover(try address(of: c))
        XCTAssertEqual(empty, [])
    }

    func testAnUnknownPeerURLIsRefusedWithTheReason() async throws {
        let (a, b) = try await startPair(onDiscovery: { _ in nil })
        let address = try address(of: a)
        let error = await discoveryError { try await self.discover(address, url: "http://10.0.0.9:2380") }
        XCTAssertEqual(error, .refused(address, reason: "peer does not know http://10.0.0.9:2380"))
        XCTAssertEqual("\(error.map { "\($0)" } ?? "")", "discovery via \(address) refused: peer does not know http://10.0.0.9:2380")
        XCTAssertEqual(a.transport.statistics().inbound.discoveryRequests, 1)
        try await assertPairWorks(a, b)
    }

    func testAMemberWithoutAHandlerRefuses() async throws {
        let (a, _) = try await startPair(onDiscovery: nil)
        let address = try address(of: a)
        let error = await discoveryError { try await self.discover(address) }
        XCTAssertEqual(error, .refused(address, reason: "this member does not answer discovery requests"))
    }

    func testAClosedPortFailsWithAClearError() async throws {
        let ports = try await PeerTransportTestSupport.freePorts(1, group: group)
        let address = PeerAddress(host: "127.0.0.1", port: ports[1] ?? 0)
        let error = await discoveryError { try await self.discover(address, timeout: .seconds(10)) }
        // Refused, not timed out: the refusal is reported as such (no timing assertion).
        XCTAssertEqual(error, .cannotConnect(address, reason: "connection refused"))
        XCTAssertEqual(error.map { "\($0)" }, "discovery via \(address) failed: cannot connect: connection refused")
    }

    func testAListenerThatNeverAnswersTimesOut() async throws {
        let address = try await fakeMember(reply: nil, close: false)
        let error = await discoveryError { try await self.discover(address, timeout: .milliseconds(300)) }
        XCTAssertEqual(error, .timedOut(address, after: .milliseconds(300)))
    }

    func testAListenerThatClosesOrAnswersGarbageIsReported() async throws {
        let closing = try await fakeMember(reply: nil, close: true)
        // Closed or reset, depending on whether the request reached the socket before the close.
        guard case .noReply = await discoveryError({ try await self.discover(closing) }) else {
            return XCTFail("a listener that closes at once gives no reply")
        }

        let http = try await fakeMember(reply: Array("HTTP/1.1 400 Bad Request\r\n\r\n".utf8), close: false)
        guard case .malformedReply(_, let reason) = await discoveryError({ try await self.discover(http) }) else {
            return XCTFail("garbage must be a malformed reply")
        }
        XCTAssertTrue(reason.contains("bad magic"), reason)

        // A length over the limit is refused on the header, without waiting for the body.
        let huge = try await fakeMember(reply: PeerDiscovery.magic + [1, 0, 0xFF, 0xFF, 0xFF, 0xFF], close: false)
        guard case .malformedReply(_, let hugeReason) = await discoveryError({ try await self.discover(huge) }) else {
            return XCTFail("an oversized reply must be malformed")
        }
        XCTAssertTrue(hugeReason.contains("exceeds the limit"), hugeReason)

        // A reply cut short by the close is no reply.
        let cut = try await fakeMember(reply: Array(PeerDiscovery.encodeReply(.known(payload: [1, 2, 3])).dropLast()), close: true)
        guard case .noReply(let address, _) = await discoveryError({ try await self.discover(cut) }) else {
            return XCTFail("a reply cut short gives no reply")
        }
        XCTAssertEqual(address, cut)
    }

    func testAPeerURLThatCannotBeSentIsRefusedBeforeConnecting() async throws {
        let address = PeerAddress(host: "127.0.0.1", port: 1)
        for url in ["", String(repeating: "x", count: PeerDiscovery.peerURLBytesMax + 1)] {
            guard case .invalidPeerURL = await discoveryError({ try await self.discover(address, url: url) }) else {
                return XCTFail("URL of \(url.utf8.count) bytes must be refused")
            }
        }
    }

    func testMalformedDiscoveryRequestsCloseOnlyTheirConnection() async throws {
        let (a, b) = try await startPair(onDiscovery: { _ in Self.payload })
        let magic = PeerDiscovery.magic
        let requests: [(String, [UInt8])] = [
            ("oversized URL length", magic + [1, 0xFF, 0xFF, 0xFF, 0xFF]),
            ("URL one byte over the limit", magic + [1, 0x01, 0x04, 0, 0]),
            ("empty URL", magic + [1, 0, 0, 0, 0]),
            ("unsupported version", magic + [9, 1, 0, 0, 0, 0x61]),
            ("invalid UTF-8", magic + [1, 2, 0, 0, 0, 0xC3, 0x28]),
        ]
        let port = try XCTUnwrap(a.transport.listeningAddress()?.port)
        for (what, bytes) in requests {
            let client = try await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: port).get()
            try await client.writeAndFlush(client.allocator.buffer(bytes: bytes))
            try await eventually("\(what): connection closed") { !client.isActive }
        }
        XCTAssertEqual(a.transport.statistics().inbound.rejectedConnections, UInt64(requests.count))
        XCTAssertEqual(a.transport.statistics().inbound.discoveryRequests, 0)
        try await assertPairWorks(a, b)
        // Discovery still works afterwards.
        let payload = try await discover(try address(of: a))
        XCTAssertEqual(payload, Self.payload)
    }

    func testARequestSplitIntoSingleBytesIsAnswered() async throws {
        let (a, _) = try await startPair(onDiscovery: { url in Array(url.utf8) })
        let port = try XCTUnwrap(a.transport.listeningAddress()?.port)
        let reply = PeerTransportTestSupport.Locked<[UInt8]>([])
        let client = try await ClientBootstrap(group: group)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteCollector(into: reply))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        for byte in try XCTUnwrap(PeerDiscovery.encodeRequest(peerURL: "http://n4")) {
            try await client.writeAndFlush(client.allocator.buffer(bytes: [byte]))
        }
        try await eventually("answered and closed") { !client.isActive }
        XCTAssertEqual(reply.value, PeerDiscovery.encodeReply(.known(payload: Array("http://n4".utf8))))
    }

    /// The pair still exchanges messages both ways.
    private func assertPairWorks(_ a: PeerTransportTestSupport.Node, _ b: PeerTransportTestSupport.Node) async throws {
        let before = (a.received.value.count, b.received.value.count)
        a.transport.send([Envelope(from: a.id, to: b.id, message: .readIndexRequest(readID: 10))])
        b.transport.send([Envelope(from: b.id, to: a.id, message: .readIndexRequest(readID: 11))])
        try await eventually("pair still exchanges messages") {
            a.received.value.count == before.0 + 1 && b.received.value.count == before.1 + 1
        }
    }

    private func eventually(
        _ what: String, timeout: Duration = .seconds(5), file: StaticString = #filePath, line: UInt = #line,
        _ condition: () -> Bool
    ) async throws {
        try await PeerTransportTestSupport.eventually(what, timeout: timeout, file: file, line: line, condition)
    }
}

/// Appends every byte read to a locked array.
private final class ByteCollector: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let bytes: PeerTransportTestSupport.Locked<[UInt8]>

    init(into bytes: PeerTransportTestSupport.Locked<[UInt8]>) { self.bytes = bytes }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        bytes.mutate { $0.append(contentsOf: buffer.readableBytesView) }
    }
}
