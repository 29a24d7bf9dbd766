import Logging
import NIOCore
import NIOPosix
import SynodCore
import SynodTransport
import XCTest

/// Hostile or confused raw TCP clients on the peer port: each gets its own connection closed,
/// and the transport keeps serving its real peers.
final class PeerTransportRejectionTests: XCTestCase {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    let cleanup = PeerTransportTestSupport.Locked<[PeerTransport]>([])

    override func tearDown() async throws {
        for transport in cleanup.value { await transport.shutdown() }
        try await group.shutdownGracefully()
    }

    /// Nodes 1 and 2 of cluster 7, connected; node 3 is a known member that never starts, so
    /// raw clients can say hello as node 3.
    private func startPair() async throws -> (PeerTransportTestSupport.Node, PeerTransportTestSupport.Node) {
        let ports = try await PeerTransportTestSupport.freePorts(3, group: group)
        let nodes = [1, 2].map { id in
            PeerTransportTestSupport.Node(
                group: group, id: NodeID(UInt32(id)), ports: ports, clusterID: 7, sendQueueBytesMax: 1 << 20)
        }
        cleanup.mutate { $0.append(contentsOf: nodes.map(\.transport)) }
        for node in nodes { try await node.transport.start() }
        try await eventually("pair connected") {
            nodes[0].transport.connectedPeers() == [NodeID(2)] && nodes[1].transport.connectedPeers() == [NodeID(1)]
        }
        return (nodes[0], nodes[1])
    }

    /// Connects to `node`'s listener and writes `bytes`.
    private func rawClient(to node: PeerTransportTestSupport.Node, sending bytes: [UInt8]) async throws -> any Channel {
        let port = try XCTUnwrap(node.transport.listeningAddress()?.port)
        let channel = try await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: port).get()
        try await channel.writeAndFlush(channel.allocator.buffer(bytes: bytes))
        return channel
    }

    private func assertClosed(_ channel: any Channel, _ what: String, line: UInt = #line) async throws {
        try await eventually("\(what): connection closed by the transport", line: line) { !channel.isActive }
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

    private func frame(_ envelope: Envelope) -> [UInt8] {
        var bytes: [UInt8] = []
        PeerFrameCodec.encode([envelope], into: &bytes).forEach { XCTFail("encode: \($0.error)") }
        return bytes
    }

    func testGarbageIsClosed() async throws {
        let (a, b) = try await startPair()
        let client = try await rawClient(to: a, sending: Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        try await assertClosed(client, "HTTP request")
        XCTAssertEqual(a.transport.statistics().inbound.rejectedConnections, 1)
        try await assertPairWorks(a, b)
    }

    func testWrongClusterUnknownNodeAndWrongVersionAreClosed() async throws {
        let (a, b) = try await startPair()
        let wrongCluster = try await rawClient(to: a, sending: PeerHello(clusterID: 8, sender: NodeID(3)).encoded())
        try await assertClosed(wrongCluster, "wrong cluster id")
        let unknownNode = try await rawClient(to: a, sending: PeerHello(clusterID: 7, sender: NodeID(42)).encoded())
        try await assertClosed(unknownNode, "unknown node id")
        let ownID = try await rawClient(to: a, sending: PeerHello(clusterID: 7, sender: a.id).encoded())
        try await assertClosed(ownID, "the acceptor's own id")
        let wrongVersion = try await rawClient(to: a, sending: PeerHello(version: 9, clusterID: 7, sender: NodeID(3)).encoded())
        try await assertClosed(wrongVersion, "unsupported version")
        XCTAssertEqual(a.transport.statistics().inbound.rejectedConnections, 4)
        try await assertPairWorks(a, b)
    }

    func testOversizedLengthPrefixIsClosed() async throws {
        let (a, b) = try await startPair()
        // A valid hello, then a frame announcing 4 GiB: refused on its first 4 bytes.
        let client = try await rawClient(
            to: a, sending: PeerHello(clusterID: 7, sender: NodeID(3)).encoded() + [0xFF, 0xFF, 0xFF, 0xFF])
        try await assertClosed(client, "oversized frame length")
        XCTAssertEqual(a.transport.statistics().inbound.rejectedConnections, 1)
        try await assertPairWorks(a, b)
    }

    func testMalformedFrameAfterGoodOnesDeliversTheGoodOnesThenCloses() async throws {
        let (a, b) = try await startPair()
        let good = Envelope(from: NodeID(3), to: a.id, message: .readIndexRequest(readID: 5))
        var bytes = PeerHello(clusterID: 7, sender: NodeID(3)).encoded() + frame(good)
        bytes += [10, 0, 0, 0, PeerFrameCodec.protocolVersion, 0xEE] + Array(repeating: 0, count: 8)  // unknown message type 0xEE
        let client = try await rawClient(to: a, sending: bytes)
        try await assertClosed(client, "unknown message type")
        XCTAssertEqual(a.received.value.filter { $0.from == NodeID(3) }, [good])
        try await assertPairWorks(a, b)
    }

    func testMisaddressedEnvelopesAreDroppedAndTheConnectionKept() async throws {
        let (a, b) = try await startPair()
        let good = Envelope(from: NodeID(3), to: a.id, message: .readIndexRequest(readID: 1))
        let spoofed = Envelope(from: NodeID(2), to: a.id, message: .readIndexRequest(readID: 2))
        let elsewhere = Envelope(from: NodeID(3), to: NodeID(2), message: .readIndexRequest(readID: 3))
        let client = try await rawClient(
            to: a,
            sending: PeerHello(clusterID: 7, sender: NodeID(3)).encoded() + frame(spoofed) + frame(good) + frame(elsewhere))
        try await eventually("good envelope delivered") { a.received.value.contains(good) }
        XCTAssertFalse(a.received.value.contains(spoofed))
        XCTAssertEqual(a.transport.statistics().inbound.misaddressedEnvelopes, 2)
        XCTAssertTrue(client.isActive, "misaddressed envelopes are dropped, not a protocol violation")
        try await client.close()
        try await assertPairWorks(a, b)
    }

    func testANewerConnectionFromTheSamePeerClosesTheOlderOne() async throws {
        let (a, _) = try await startPair()
        let hello = PeerHello(clusterID: 7, sender: NodeID(3)).encoded()
        let older = try await rawClient(to: a, sending: hello)
        try await eventually("older accepted") { a.transport.statistics().inbound.acceptedConnections == 2 }
        let newer = try await rawClient(to: a, sending: hello)
        try await assertClosed(older, "older connection of n3")
        let good = Envelope(from: NodeID(3), to: a.id, message: .readIndexRequest(readID: 1))
        try await newer.writeAndFlush(newer.allocator.buffer(bytes: frame(good)))
        try await eventually("newer connection delivers") { a.received.value.contains(good) }
        XCTAssertTrue(newer.isActive)
        XCTAssertEqual(a.transport.statistics().inbound.rejectedConnections, 0)
        try await newer.close()
    }

    func testHelloAndFramesSplitIntoSingleBytesAreReassembled() async throws {
        let (a, _) = try await startPair()
        let envelopes = (0..<3).map { Envelope(from: NodeID(3), to: a.id, message: .readIndexRequest(readID: UInt64($0))) }
        let bytes = PeerHello(clusterID: 7, sender: NodeID(3)).encoded() + envelopes.flatMap(frame)
        let port = try XCTUnwrap(a.transport.listeningAddress()?.port)
        let client = try await ClientBootstrap(group: group)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connect(host: "127.0.0.1", port: port).get()
        for byte in bytes {
            try await client.writeAndFlush(client.allocator.buffer(bytes: [byte]))
        }
        try await eventually("all frames delivered") {
            a.received.value.filter { $0.from == NodeID(3) } == envelopes
        }
        try await client.close()
    }

    private func eventually(
        _ what: String, timeout: Duration = .seconds(5), file: StaticString = #filePath, line: UInt = #line,
        _ condition: () -> Bool
    ) async throws {
        try await PeerTransportTestSupport.eventually(what, timeout: timeout, file: file, line: line, condition)
    }
}
