import Foundation
import Logging
import NIOCore
import NIOPosix
import SynodCore
import SynodTransport
import XCTest

/// `PeerTransport` over real loopback sockets: exchange, reconnect, restart, bounded sends.
final class PeerTransportTests: XCTestCase {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    let cleanup = PeerTransportTestSupport.Locked<[PeerTransport]>([])

    override func tearDown() async throws {
        for transport in cleanup.value { await transport.shutdown() }
        try await group.shutdownGracefully()
    }

    private func makeNode(
        _ id: UInt32, ports: [UInt32: Int], clusterID: UInt64 = 7, sendQueueBytesMax: Int = 64 << 20
    ) -> PeerTransportTestSupport.Node {
        let node = PeerTransportTestSupport.Node(
            group: group, id: NodeID(id), ports: ports, clusterID: clusterID, sendQueueBytesMax: sendQueueBytesMax)
        cleanup.mutate { $0.append(node.transport) }
        return node
    }

    func testThreeTransportsExchangeMessagesBothWays() async throws {
        let ports = try await PeerTransportTestSupport.freePorts(3, group: group)
        let nodes = (1...3).map { makeNode(UInt32($0), ports: ports) }
        for node in nodes { try await node.transport.start() }
        try await eventually("full mesh") {
            nodes.allSatisfy { $0.transport.connectedPeers().count == 2 }
        }

        // Every node sends 50 messages to each other node, in two calls, mixed destinations.
        for node in nodes {
            for call in 0..<2 {
                var batch: [Envelope] = []
                for index in 0..<25 {
                    for other in nodes where other.id != node.id {
                        let readID = UInt64(node.id.rawValue) << 32 | UInt64(call * 25 + index)
                        batch.append(Envelope(from: node.id, to: other.id, message: .readIndexRequest(readID: readID)))
                    }
                }
                node.transport.send(batch)
            }
        }
        try await eventually("all messages delivered") {
            nodes.allSatisfy { $0.received.value.count == 100 }
        }
        for node in nodes {
            let received = node.received.value
            for sender in nodes where sender.id != node.id {
                let fromSender = received.filter { $0.from == sender.id }
                let expected = (0..<50).map {
                    Envelope(
                        from: sender.id, to: node.id,
                        message: .readIndexRequest(readID: UInt64(sender.id.rawValue) << 32 | UInt64($0)))
                }
                XCTAssertEqual(fromSender, expected, "\(node.id) from \(sender.id): all, in order")
            }
            XCTAssertEqual(node.transport.statistics().droppedEnvelopes, 0)
            XCTAssertEqual(node.transport.statistics().inbound.rejectedConnections, 0)
        }
        for node in nodes { await node.transport.shutdown() }
        for node in nodes { XCTAssertEqual(node.transport.connectedPeers(), []) }
    }

    func testPeerStartingLateIsConnectedByReconnect() async throws {
        let ports = try await PeerTransportTestSupport.freePorts(2, group: group)
        let early = makeNode(1, ports: ports)
        let late = makeNode(2, ports: ports)
        try await early.transport.start()

        // Down peer: dropped without blocking, counted, and no state change reported.
        early.transport.send([Envelope(from: early.id, to: late.id, message: .readIndexRequest(readID: 1))])
        try await Task.sleep(for: .milliseconds(400))  // several failed redials
        XCTAssertEqual(early.transport.statistics().peers[late.id]?.droppedEnvelopes, 1)
        XCTAssertEqual(early.stateChanges.value.count, 0, "failed redials of a down peer are not transitions")

        try await late.transport.start()
        try await eventually("early dials late") { early.transport.connectedPeers() == [late.id] }
        try await eventually("late dials early") { late.transport.connectedPeers() == [early.id] }
        early.transport.send([Envelope(from: early.id, to: late.id, message: .readIndexRequest(readID: 2))])
        late.transport.send([Envelope(from: late.id, to: early.id, message: .readIndexRequest(readID: 3))])
        try await eventually("delivered both ways") {
            late.received.value.count == 1 && early.received.value.count == 1
        }
        XCTAssertEqual(late.received.value.first?.message, .readIndexRequest(readID: 2))
        XCTAssertEqual(early.received.value.first?.message, .readIndexRequest(readID: 3))
        XCTAssertEqual(early.stateChanges.value.map(\.up), [true])
    }

    func testRestartedPeerGetsMessagesAgain() async throws {
        let ports = try await PeerTransportTestSupport.freePorts(2, group: group)
        let sender = makeNode(1, ports: ports)
        let first = makeNode(2, ports: ports)
        try await sender.transport.start()
        try await first.transport.start()
        try await eventually("connected") { sender.transport.connectedPeers() == [first.id] }
        sender.transport.send([Envelope(from: sender.id, to: first.id, message: .readIndexRequest(readID: 1))])
        try await eventually("first incarnation receives") { first.received.value.count == 1 }

        await first.transport.shutdown()
        try await eventually("sender sees the peer down") { sender.transport.connectedPeers().isEmpty }

        let second = makeNode(2, ports: ports)
        try await second.transport.start()
        try await eventually("reconnected") { sender.transport.connectedPeers() == [second.id] }
        sender.transport.send([Envelope(from: sender.id, to: second.id, message: .readIndexRequest(readID: 2))])
        try await eventually("second incarnation receives") { second.received.value.count == 1 }
        XCTAssertEqual(second.received.value.first?.message, .readIndexRequest(readID: 2))
        XCTAssertEqual(first.received.value.count, 1)
        XCTAssertEqual(sender.stateChanges.value.map(\.up), [true, false, true], "one report per transition")
    }

    func testConcurrentSendersAreAllDeliveredInOrderPerSender() async throws {
        let ports = try await PeerTransportTestSupport.freePorts(2, group: group)
        let a = makeNode(1, ports: ports)
        let b = makeNode(2, ports: ports)
        try await a.transport.start()
        try await b.transport.start()
        try await eventually("connected") { a.transport.connectedPeers() == [b.id] }
        await withTaskGroup(of: Void.self) { tasks in
            for sender in 0..<4 {
                tasks.addTask {
                    for index in 0..<250 {
                        let readID = UInt64(sender) << 32 | UInt64(index)
                        a.transport.send([Envelope(from: a.id, to: b.id, message: .readIndexRequest(readID: readID))])
                    }
                }
            }
        }
        try await eventually("all delivered") { b.received.value.count == 1_000 }
        let readIDs = b.received.value.compactMap { envelope -> UInt64? in
            guard case .readIndexRequest(let readID) = envelope.message else { return nil }
            return readID
        }
        for sender in 0..<4 {
            let ofSender = readIDs.filter { $0 >> 32 == UInt64(sender) }.map { $0 & 0xFFFF_FFFF }
            XCTAssertEqual(ofSender, (0..<250).map(UInt64.init), "sender \(sender): every message, in its order")
        }
    }

    func testSendToDownPeerDoesNotBlockAndIsCounted() async throws {
        let ports = try await PeerTransportTestSupport.freePorts(2, group: group)
        let node = makeNode(1, ports: ports)  // node 2 never starts
        try await node.transport.start()
        let message = Message.forward(commands: [Command(clientID: 1, sequence: 1, payload: Array(repeating: 7, count: 4096))])
        // No timing assertion (busy machines): the sends return (the test would hang if one
        // waited for the peer), and every one is counted as dropped.
        for _ in 0..<2_000 {
            node.transport.send([Envelope(from: node.id, to: NodeID(2), message: message)])
        }
        let statistics = node.transport.statistics()
        XCTAssertEqual(statistics.peers[NodeID(2)]?.droppedEnvelopes, 2_000)
        XCTAssertEqual(statistics.peers[NodeID(2)]?.queuedBytes, 0)

        // Unknown destinations and this node itself are dropped too.
        node.transport.send([
            Envelope(from: node.id, to: NodeID(9), message: .readIndexRequest(readID: 1)),
            Envelope(from: node.id, to: node.id, message: .readIndexRequest(readID: 2)),
        ])
        XCTAssertEqual(node.transport.statistics().unroutableEnvelopes, 2)
    }

    func testSendQueueToAPeerThatDoesNotReadIsBounded() async throws {
        // A "peer" that accepts the connection but never reads: the socket buffers fill up,
        // then the send queue, then sends are dropped.
        let stuck = try await ServerBootstrap(group: group)
            .childChannelOption(.autoRead, value: false)
            .bind(host: "127.0.0.1", port: 0).get()
        let stuckPort = try XCTUnwrap(stuck.localAddress?.port)
        let ports = try await PeerTransportTestSupport.freePorts(1, group: group)
        let queueMax = 1 << 20
        let node = PeerTransportTestSupport.Node(
            group: group, id: NodeID(1), ports: [1: ports[1] ?? 0, 2: stuckPort], clusterID: 7, sendQueueBytesMax: queueMax)
        cleanup.mutate { $0.append(node.transport) }
        try await node.transport.start()
        try await eventually("connected to the stuck peer") { node.transport.connectedPeers() == [NodeID(2)] }

        let payload = Array(repeating: UInt8(0xAB), count: 256 << 10)
        let message = Message.forward(commands: [Command(clientID: 1, sequence: 1, payload: payload)])
        var maxQueued = 0
        for _ in 0..<400 {  // 100 MiB offered: far more than the socket buffers hold
            node.transport.send([Envelope(from: node.id, to: NodeID(2), message: message)])
            maxQueued = max(maxQueued, node.transport.statistics().peers[NodeID(2)]?.queuedBytes ?? 0)
        }
        let statistics = try XCTUnwrap(node.transport.statistics().peers[NodeID(2)])
        XCTAssertLessThanOrEqual(maxQueued, queueMax)
        XCTAssertGreaterThan(statistics.droppedEnvelopes, 0)
        XCTAssertGreaterThan(statistics.sentEnvelopes, 0)
        XCTAssertEqual(statistics.sentEnvelopes + statistics.droppedEnvelopes, 400)
        await node.transport.shutdown()
        try await stuck.close()
    }

    func testAMessageLargerThanTheSendQueueStillGoesOutWhenTheQueueIsEmpty() async throws {
        let ports = try await PeerTransportTestSupport.freePorts(2, group: group)
        let a = makeNode(1, ports: ports, sendQueueBytesMax: 4096)
        let b = makeNode(2, ports: ports)
        try await a.transport.start()
        try await b.transport.start()
        try await eventually("connected") { a.transport.connectedPeers() == [b.id] }
        let big = Envelope(
            from: a.id, to: b.id,
            message: .forward(commands: [Command(clientID: 1, sequence: 1, payload: Array(repeating: 1, count: 100_000))]))
        a.transport.send([big])
        try await eventually("delivered") { b.received.value == [big] }
    }

    func testListeningOnABusyPortThrowsAClearError() async throws {
        let busy = try await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get()
        let port = try XCTUnwrap(busy.localAddress?.port)
        let node = makeNode(1, ports: [1: port, 2: 1])
        do {
            try await node.transport.start()
            XCTFail("start() on a busy port succeeded")
        } catch let error as PeerTransportError {
            XCTAssertEqual("\(error)", "cannot listen for peers on 127.0.0.1:\(port): address already in use")
        }
        try await busy.close()
    }

    private func eventually(
        _ what: String, timeout: Duration = .seconds(5), file: StaticString = #filePath, line: UInt = #line,
        _ condition: () -> Bool
    ) async throws {
        try await PeerTransportTestSupport.eventually(what, timeout: timeout, file: file, line: line, condition)
    }
}

/// Helpers shared by the peer transport tests.
enum PeerTransportTestSupport {
    /// A value behind a lock, for callbacks that run on event loop threads.
    /// `@unchecked Sendable`: every access to `storage` holds `lock`.
    final class Locked<Value>: @unchecked Sendable {
        private let lock = NSLock()
        private var storage: Value

        init(_ value: Value) { storage = value }

        var value: Value { lock.withLock { storage } }

        func mutate<T>(_ body: (inout Value) -> T) -> T { lock.withLock { body(&storage) } }
    }

    /// A transport on 127.0.0.1 with every other entry of `ports` as a peer, recording what
    /// it receives and its peer state changes.
    struct Node: Sendable {
        let id: NodeID
        let transport: PeerTransport
        let received = Locked<[Envelope]>([])
        let stateChanges = Locked<[(peer: NodeID, up: Bool)]>([])

        init(
            group: any EventLoopGroup, id: NodeID, ports: [UInt32: Int], clusterID: UInt64, sendQueueBytesMax: Int,
            onDiscovery: (@Sendable (String) -> [UInt8]?)? = nil
        ) {
            self.id = id
            var peers: [NodeID: PeerAddress] = [:]
            for (peer, port) in ports { peers[NodeID(peer)] = PeerAddress(host: "127.0.0.1", port: port) }
            var logger = Logger(label: "test.peer-transport")
            logger.logLevel = .info
            let received = self.received
            let stateChanges = self.stateChanges
            transport = PeerTransport(
                group: group, localID: id, clusterID: clusterID,
                listen: PeerAddress(host: "127.0.0.1", port: ports[id.rawValue] ?? 0),
                peers: peers, sendQueueBytesMax: sendQueueBytesMax, logger: logger,
                onReceive: { batch in received.mutate { $0.append(contentsOf: batch) } },
                onPeerStateChange: { peer, up in stateChanges.mutate { $0.append((peer, up)) } },
                onDiscovery: onDiscovery)
        }
    }

    /// `count` ports that were free a moment ago, keyed 1...count (the node ids).
    static func freePorts(_ count: Int, group: any EventLoopGroup) async throws -> [UInt32: Int] {
        var channels: [any Channel] = []
        var ports: [UInt32: Int] = [:]
        for id in 1...count {
            let channel = try await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get()
            channels.append(channel)
            ports[UInt32(id)] = channel.localAddress?.port ?? 0
        }
        for channel in channels { try await channel.close() }
        return ports
    }

    static func eventually(
        _ what: String, timeout: Duration, file: StaticString, line: UInt, _ condition: () -> Bool
    ) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while !condition() {
            guard clock.now < deadline else {
                XCTFail("timed out waiting for \(what)", file: file, line: line)
                throw CancellationError()
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }
}
