import Foundation
import NIOCore
import NIOPosix
@testable import SynodChaos
import SynodCore
import SynodTransport
import XCTest

/// Drives `ProxyNetwork` with stand-in nodes: a sink server on each node's real peer port
/// records what arrives, and test clients dial the proxy ports speaking the peer hello.
final class ProxyNetworkTests: XCTestCase {
    private static let clusterID: UInt64 = 0x5eed_cafe

    // MARK: - Tests

    func testForwardsHelloAndBytesToTheRealPeerPort() async throws {
        try await withCluster(nodes: 3) { harness in
            let connection = try await harness.dial(from: 0, to: 1)
            try await connection.send("first")
            try await harness.waitForPayload("first", at: 1)
            let received = harness.sinks[1].connections()
            let bytes = try XCTUnwrap(received.first { Self.contains($0, "first") })
            XCTAssertEqual(Array(bytes.prefix(PeerHello.encodedLength)), Self.hello(sender: 0))
            XCTAssertEqual(harness.network.statistics(from: 0, to: 1).connectionsForwarded, 1)
            XCTAssertGreaterThanOrEqual(harness.network.statistics()["n1->n2.bytes"] ?? 0, PeerHello.encodedLength + 5)
            XCTAssertTrue(harness.network.launchPrefix(node: 0).isEmpty)
            XCTAssertEqual(harness.network.name, "proxy")
        }
    }

    func testCutClosesTheLinkOneWayOnlyUntilHeal() async throws {
        try await withCluster(nodes: 3) { harness in
            let oneToTwo = try await harness.dial(from: 0, to: 1)
            try await oneToTwo.send("before-cut")
            try await harness.waitForPayload("before-cut", at: 1)

            try await harness.network.cut(from: 0, to: 1)
            try await oneToTwo.waitClosed()

            // A new connection on the cut link is accepted, then closed right after its hello.
            let refused = try await harness.dial(from: 0, to: 1)
            try? await refused.send("refused-payload")
            try await refused.waitClosed()

            // The reverse direction and other senders to the same node still pass.
            let twoToOne = try await harness.dial(from: 1, to: 0)
            try await twoToOne.send("reverse-during-cut")
            try await harness.waitForPayload("reverse-during-cut", at: 0)
            let threeToTwo = try await harness.dial(from: 2, to: 1)
            try await threeToTwo.send("other-sender-during-cut")
            try await harness.waitForPayload("other-sender-during-cut", at: 1)

            XCTAssertFalse(harness.sinks[1].connections().contains { Self.contains($0, "refused-payload") })
            XCTAssertGreaterThanOrEqual(harness.network.statistics(from: 0, to: 1).connectionsRefused, 1)
            XCTAssertEqual(harness.network.statistics(from: 0, to: 1).connectionsCut, 1)

            try await harness.network.heal()
            let healed = try await harness.dial(from: 0, to: 1)
            try await healed.send("after-heal")
            try await harness.waitForPayload("after-heal", at: 1)
            // Heal leaves existing connections alone.
            XCTAssertTrue(twoToOne.isOpen)
        }
    }

    func testInvalidHelloIsClosed() async throws {
        try await withCluster(nodes: 2) { harness in
            let http = try await harness.dialRaw(to: 0)
            try? await http.sendRaw(Array("GET / HTTP/1.1\r\n\r\n".utf8))
            try await http.waitClosed()

            // A well-formed hello naming a sender that is not a member (or the node itself).
            let stranger = try await harness.dialRaw(to: 0)
            try? await stranger.sendRaw(PeerHello(clusterID: Self.clusterID, sender: NodeID(7)).encoded())
            try await stranger.waitClosed()
            let selfDial = try await harness.dialRaw(to: 0)
            try? await selfDial.sendRaw(Self.hello(sender: 0))
            try await selfDial.waitClosed()

            XCTAssertGreaterThanOrEqual(harness.network.statistics()["invalidHellos"] ?? 0, 3)
            XCTAssertTrue(harness.sinks[0].connections().isEmpty)
        }
    }

    func testHelloSplitAcrossWritesIsReassembled() async throws {
        try await withCluster(nodes: 2) { harness in
            let connection = try await harness.dialRaw(to: 1)
            let hello = Self.hello(sender: 0)
            try await connection.sendRaw(Array(hello.prefix(3)))
            try await Task.sleep(nanoseconds: 50_000_000)
            try await connection.sendRaw(Array(hello.dropFirst(3)) + Array("split".utf8))
            try await harness.waitForPayload("split", at: 1)
        }
    }

    func testDegradeDelaysInOrderAndHealRemovesIt() async throws {
        try await withCluster(nodes: 2) { harness in
            try await harness.network.degrade(node: 0, delayMilliseconds: 300, jitterMilliseconds: 100, lossPercent: 0)
            let connection = try await harness.dial(from: 0, to: 1)
            let start = DispatchTime.now().uptimeNanoseconds
            for index in 0..<20 {
                try await connection.send("<\(index)>")
            }
            try await harness.waitForPayload("<19>", at: 1)
            let elapsedMilliseconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
            // The delay is a lower bound on any machine (no upper bound: busy machines).
            XCTAssertGreaterThanOrEqual(elapsedMilliseconds, 195, "degraded delivery came too early")
            let text = String(decoding: harness.sinks[1].connections().first?.dropFirst(PeerHello.encodedLength) ?? [], as: UTF8.self)
            XCTAssertEqual(text, (0..<20).map { "<\($0)>" }.joined(), "chunks reordered")

            // The reverse direction is not degraded.
            let reverse = try await harness.dial(from: 1, to: 0)
            let reverseStart = DispatchTime.now().uptimeNanoseconds
            try await reverse.send("fast")
            try await harness.waitForPayload("fast", at: 0)
            XCTAssertLessThan(Double(DispatchTime.now().uptimeNanoseconds - reverseStart) / 1e6, 15_000)

            try await harness.network.heal()
            let healed = try await harness.dial(from: 0, to: 1)
            try await healed.send("healed")
            try await harness.waitForPayload("healed", at: 1)
        }
    }

    func testTotalLossClosesConnections() async throws {
        try await withCluster(nodes: 2) { harness in
            try await harness.network.degrade(node: 1, delayMilliseconds: 0, jitterMilliseconds: 0, lossPercent: 100)
            let connection = try await harness.dial(from: 1, to: 0)
            try? await connection.send("lost")
            try await connection.waitClosed()
            XCTAssertGreaterThanOrEqual(harness.network.statistics(from: 1, to: 0).connectionsLost, 1)
            XCTAssertFalse(harness.sinks[0].connections().contains { Self.contains($0, "lost") })
        }
    }

    func testTheRealNodeClosingClosesTheDialer() async throws {
        try await withCluster(nodes: 2) { harness in
            let connection = try await harness.dial(from: 0, to: 1)
            try await connection.send("hello")
            try await harness.waitForPayload("hello", at: 1)
            harness.sinks[1].closeAll()
            try await connection.waitClosed()
        }
    }

    func testTeardownClosesEverythingAndIsIdempotent() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let network = ProxyNetwork()
        let addresses = try await network.prepare(nodeCount: 2)
        XCTAssertEqual(addresses.count, 2)
        var ports = Set<Int>()
        for address in addresses {
            XCTAssertEqual(address.clientURL, address.listenClientURL)
            XCTAssertNotEqual(address.listenPeerURL, address.advertisePeerURL)
            for url in [address.clientURL, address.listenPeerURL, address.advertisePeerURL, address.metricsURL] {
                ports.insert(try XCTUnwrap(Self.port(of: url)))
            }
        }
        XCTAssertEqual(ports.count, 8, "ports must be distinct")
        let sink = try await ProxyTestSink.start(group: group, port: try XCTUnwrap(Self.port(of: addresses[1].listenPeerURL)))
        let connection = try await ProxyTestConnection.connect(
            group: group, port: try XCTUnwrap(Self.port(of: addresses[1].advertisePeerURL)))
        try await connection.sendRaw(Self.hello(sender: 0))
        try await Self.waitUntil { sink.connections().count == 1 }
        await network.teardown()
        try await connection.waitClosed()
        await network.teardown()
        try await sink.stop()
        try await group.shutdownGracefully()
    }

    func testRejectsBadArguments() async throws {
        try await withCluster(nodes: 2) { harness in
            do {
                try await harness.network.cut(from: 0, to: 5)
                XCTFail("cut to an unknown node must throw")
            } catch is ChaosNetworkError {}
            do {
                try await harness.network.degrade(node: 0, delayMilliseconds: -1, jitterMilliseconds: 0, lossPercent: 0)
                XCTFail("negative delay must throw")
            } catch is ChaosNetworkError {}
            do {
                _ = try await harness.network.prepare(nodeCount: 2)
                XCTFail("second prepare must throw")
            } catch is ChaosNetworkError {}
        }
    }

    // MARK: - ProxyTestHarness

    final class ProxyTestHarness: Sendable {
        let network: ProxyNetwork
        let addresses: [ChaosNodeAddresses]
        let sinks: [ProxyTestSink]
        let group: EventLoopGroup

        init(network: ProxyNetwork, addresses: [ChaosNodeAddresses], sinks: [ProxyTestSink], group: EventLoopGroup) {
            self.network = network
            self.addresses = addresses
            self.sinks = sinks
            self.group = group
        }

        /// A connection to node `to`'s proxy port that has sent the hello of node `from`.
        func dial(from: Int, to: Int) async throws -> ProxyTestConnection {
            let connection = try await dialRaw(to: to)
            try await connection.sendRaw(ProxyNetworkTests.hello(sender: from))
            return connection
        }

        func dialRaw(to: Int) async throws -> ProxyTestConnection {
            let port = try XCTUnwrap(ProxyNetworkTests.port(of: addresses[to].advertisePeerURL))
            return try await ProxyTestConnection.connect(group: group, port: port)
        }

        func waitForPayload(_ payload: String, at node: Int) async throws {
            let sink = sinks[node]
            try await ProxyNetworkTests.waitUntil("\(payload) never reached n\(node + 1)") {
                sink.connections().contains { ProxyNetworkTests.contains($0, payload) }
            }
        }
    }

    private func withCluster(nodes: Int, _ body: (ProxyTestHarness) async throws -> Void) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let network = ProxyNetwork()
        var sinks: [ProxyTestSink] = []
        do {
            let addresses = try await network.prepare(nodeCount: nodes)
            for address in addresses {
                sinks.append(try await ProxyTestSink.start(group: group, port: try XCTUnwrap(Self.port(of: address.listenPeerURL))))
            }
            try await body(ProxyTestHarness(network: network, addresses: addresses, sinks: sinks, group: group))
        } catch {
            await network.teardown()
            for sink in sinks { try? await sink.stop() }
            try? await group.shutdownGracefully()
            throw error
        }
        await network.teardown()
        for sink in sinks { try? await sink.stop() }
        try await group.shutdownGracefully()
    }

    static func hello(sender index: Int) -> [UInt8] {
        PeerHello(clusterID: clusterID, sender: NodeID(UInt32(index + 1))).encoded()
    }

    static func port(of url: String) -> Int? {
        guard let colon = url.lastIndex(of: ":") else { return nil }
        return Int(url[url.index(after: colon)...])
    }

    static func contains(_ bytes: [UInt8], _ text: String) -> Bool {
        let needle = Array(text.utf8)
        guard !needle.isEmpty, bytes.count >= needle.count else { return false }
        for start in 0...(bytes.count - needle.count) where bytes[start..<(start + needle.count)].elementsEqual(needle) {
            return true
        }
        return false
    }

    static func waitUntil(_ message: String = "condition not met", timeoutSeconds: Double = 15,
                          _ condition: () -> Bool) async throws {
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(timeoutSeconds * 1e9)
        while !condition() {
            if DispatchTime.now().uptimeNanoseconds > deadline {
                throw ChaosNetworkError("timed out: \(message)")
            }
            try await Task.sleep(nanoseconds: 10_000_000)
        }
    }
}

// MARK: - Stand-in nodes and dialers

/// A server recording the bytes of every connection it accepts, in order.
final class ProxyTestSink: Sendable {
    private let server: Channel
    private let state: ProxyNetworkLockedBox<SinkState>

    struct SinkState {
        var received: [Int: [UInt8]] = [:]
        var channels: [Int: Channel] = [:]
        var nextID = 0
    }

    private init(server: Channel, state: ProxyNetworkLockedBox<SinkState>) {
        self.server = server
        self.state = state
    }

    static func start(group: EventLoopGroup, port: Int) async throws -> ProxyTestSink {
        let state = ProxyNetworkLockedBox(SinkState())
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let id = state.withLockedValue { state -> Int in
                        let id = state.nextID
                        state.nextID += 1
                        state.received[id] = []
                        state.channels[id] = channel
                        return id
                    }
                    try channel.pipeline.syncOperations.addHandler(ProxyTestSinkHandler(id: id, state: state))
                }
            }
            .bind(host: "127.0.0.1", port: port)
            .get()
        return ProxyTestSink(server: server, state: state)
    }

    /// The bytes of each connection so far, in accept order.
    func connections() -> [[UInt8]] {
        state.withLockedValue { state in
            state.received.keys.sorted().compactMap { state.received[$0] }.filter { !$0.isEmpty }
        }
    }

    func closeAll() {
        let channels = state.withLockedValue { Array($0.channels.values) }
        for channel in channels { channel.close(promise: nil) }
    }

    func stop() async throws {
        closeAll()
        try await server.close()
    }
}

private final class ProxyTestSinkHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let id: Int
    let state: ProxyNetworkLockedBox<ProxyTestSink.SinkState>

    init(id: Int, state: ProxyNetworkLockedBox<ProxyTestSink.SinkState>) {
        self.id = id
        self.state = state
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        let bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
        state.withLockedValue { $0.received[id, default: []].append(contentsOf: bytes) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        _ = state.withLockedValue { $0.channels.removeValue(forKey: id) }
        context.fireChannelInactive()
    }
}

/// A client connection to a proxy port.
final class ProxyTestConnection: Sendable {
    let channel: Channel

    private init(channel: Channel) {
        self.channel = channel
    }

    static func connect(group: EventLoopGroup, port: Int) async throws -> ProxyTestConnection {
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(.seconds(10))
            .connect(host: "127.0.0.1", port: port)
            .get()
        return ProxyTestConnection(channel: channel)
    }

    var isOpen: Bool { channel.isActive }

    func send(_ text: String) async throws {
        try await sendRaw(Array(text.utf8))
    }

    func sendRaw(_ bytes: [UInt8]) async throws {
        try await channel.writeAndFlush(ByteBuffer(bytes: bytes))
    }

    /// Waits (generously) until the proxy closes this connection.
    func waitClosed(timeoutSeconds: Double = 15) async throws {
        let channel = self.channel
        try await ProxyNetworkTests.waitUntil("connection not closed", timeoutSeconds: timeoutSeconds) {
            !channel.isActive
        }
    }
}
