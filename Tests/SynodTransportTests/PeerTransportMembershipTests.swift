import Logging
import NIOCore
import NIOPosix
import SynodCore
import SynodTransport
import XCTest

/// `PeerTransport.setPeers(_:)` on running transports: members added, removed and moved.
final class PeerTransportMembershipTests: XCTestCase {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    let cleanup = PeerTransportTestSupport.Locked<[PeerTransport]>([])

    override func tearDown() async throws {
        for transport in cleanup.value { await transport.shutdown() }
        try await group.shutdownGracefully()
    }

    /// Node `id` of cluster 7 listening on `ports[id]`, with the other entries as its peers.
    private func makeNode(_ id: UInt32, ports: [UInt32: Int]) -> PeerTransportTestSupport.Node {
        let node = PeerTransportTestSupport.Node(
            group: group, id: NodeID(id), ports: ports, clusterID: 7, sendQueueBytesMax: 1 << 20)
        cleanup.mutate { $0.append(node.transport) }
        return node
    }

    private func readIndex(_ from: NodeID, _ to: NodeID, _ readID: UInt64) -> Envelope {
        Envelope(from: from, to: to, message: .readIndexRequest(readID: readID))
    }

    func testAddingAPeerToRunningTransportsMakesEnvelopesFlow() async throws {
        let ports = try await PeerTransportTestSupport.freePorts(2, group: group)
        let a = makeNode(1, ports: [1: ports[1] ?? 0])  // alone
        let b = makeNode(2, ports: [2: ports[2] ?? 0])
        try await a.transport.start()
        a.transport.send([readIndex(a.id, b.id, 1)])
        XCTAssertEqual(a.transport.statistics().unroutableEnvelopes, 1, "not a peer yet")

        let peers = PeerTransportTestSupport.addresses(ports)
        a.transport.setPeers(peers)
        b.transport.setPeers(peers)  // before start: start() dials it
        try await b.transport.start()
        try await eventually("connected both ways") {
            a.transport.connectedPeers() == [b.id] && b.transport.connectedPeers() == [a.id]
        }
        a.transport.setPeers(peers)  // idempotent: the connection stays
        a.transport.send([readIndex(a.id, b.id, 2)])
        b.transport.send([readIndex(b.id, a.id, 3)])
        try await eventually("delivered both ways") {
            b.received.value == [readIndex(a.id, b.id, 2)] && a.received.value == [readIndex(b.id, a.id, 3)]
        }
        XCTAssertEqual(a.stateChanges.value.map(\.up), [true])
        XCTAssertEqual(a.transport.statistics().peers[b.id]?.connects, 1)
        XCTAssertEqual(a.transport.statistics().peers[b.id]?.sentEnvelopes, 1)
        XCTAssertEqual(b.transport.statistics().inbound.rejectedConnections, 0)
    }

    func testRemovingAPeerStopsDeliveryAndRefusesItsHello() async throws {
        let ports = try await PeerTransportTestSupport.freePorts(3, group: group)
        let nodes = (1...3).map { makeNode(UInt32($0), ports: ports) }
        let (a, b, removed) = (nodes[0], nodes[1], nodes[2])
        for node in nodes { try await node.transport.start() }
        try await eventually("full mesh") { nodes.allSatisfy { $0.transport.connectedPeers().count == 2 } }
        removed.transport.send([readIndex(removed.id, a.id, 1)])
        try await eventually("delivered while a member") { a.received.value.count == 1 }

        var remaining = PeerTransportTestSupport.addresses(ports)
        remaining[removed.id] = nil
        a.transport.setPeers(remaining)
        a.transport.setPeers(remaining)
        XCTAssertEqual(a.transport.connectedPeers(), [b.id])
        XCTAssertNil(a.transport.statistics().peers[removed.id])
        try await eventually("the removed peer's link reported down once") {
            a.stateChanges.value.filter { $0.peer == removed.id }.map(\.up) == [true, false]
        }
        // The removed node still dials (it was not told): its hellos are refused now.
        try await eventually("hello of the removed node refused") {
            a.transport.statistics().inbound.rejectedConnections >= 1
        }
        for readID in 2...11 {
            removed.transport.send([readIndex(removed.id, a.id, UInt64(readID))])
            try await Task.sleep(for: .milliseconds(20))
        }
        a.transport.send([readIndex(a.id, removed.id, 12)])
        XCTAssertEqual(a.transport.statistics().unroutableEnvelopes, 1, "a removed peer is unknown")
        try await Task.sleep(for: .milliseconds(200))
        XCTAssertEqual(a.received.value.filter { $0.from == removed.id }.count, 1, "nothing after the removal")
        XCTAssertTrue(removed.received.value.isEmpty)
        XCTAssertEqual(
            a.stateChanges.value.filter { $0.peer == removed.id }.map(\.up), [true, false], "no redial, no up report")

        // The other peer is unaffected.
        a.transport.send([readIndex(a.id, b.id, 13)])
        b.transport.send([readIndex(b.id, a.id, 14)])
        try await eventually("the remaining pair still exchanges messages") {
            b.received.value.contains(readIndex(a.id, b.id, 13)) && a.received.value.contains(readIndex(b.id, a.id, 14))
        }

        // Added back, it is accepted again.
        a.transport.setPeers(PeerTransportTestSupport.addresses(ports))
        try await eventually("re-added peer connected both ways") {
            a.transport.connectedPeers().contains(removed.id) && removed.transport.connectedPeers().contains(a.id)
        }
        a.transport.send([readIndex(a.id, removed.id, 15)])
        try await eventually("delivered to the re-added peer") { removed.received.value == [readIndex(a.id, removed.id, 15)] }
    }

    func testChangingAPeersAddressRedialsTheNewAddress() async throws {
        let ports = try await PeerTransportTestSupport.freePorts(4, group: group)
        let a = makeNode(1, ports: [1: ports[1] ?? 0, 2: ports[2] ?? 0])
        let oldB = makeNode(2, ports: [1: ports[1] ?? 0, 2: ports[2] ?? 0])
        // Node 2 at its new address. It knows node 1 (or would refuse its hello) but dials it
        // at a closed port, so only `a`'s link to node 2 is in play.
        let newB = makeNode(2, ports: [2: ports[3] ?? 0, 1: ports[4] ?? 0])
        for node in [a, oldB, newB] { try await node.transport.start() }
        try await eventually("connected to the old address") { a.transport.connectedPeers() == [oldB.id] }
        a.transport.send([readIndex(a.id, oldB.id, 1)])
        try await eventually("old address receives") { oldB.received.value.count == 1 }

        a.transport.setPeers([
            a.id: PeerAddress(host: "127.0.0.1", port: ports[1] ?? 0),
            oldB.id: PeerAddress(host: "127.0.0.1", port: ports[3] ?? 0),
        ])
        try await eventually("redialed at the new address") {
            a.stateChanges.value.map(\.up) == [true, false, true] && a.transport.connectedPeers() == [newB.id]
        }
        try await eventually("the new address accepted") { newB.transport.statistics().inbound.acceptedConnections == 1 }
        a.transport.send([readIndex(a.id, newB.id, 2)])
        try await eventually("new address receives") { newB.received.value == [readIndex(a.id, newB.id, 2)] }
        XCTAssertEqual(oldB.received.value.count, 1, "the old address gets nothing more")
        let statistics = try XCTUnwrap(a.transport.statistics().peers[newB.id])
        XCTAssertEqual(statistics.connects, 2, "counters carry over a move")
        XCTAssertEqual(statistics.sentEnvelopes, 2)
    }

    func testSetPeersAfterShutdownIsIgnored() async throws {
        let ports = try await PeerTransportTestSupport.freePorts(2, group: group)
        let a = makeNode(1, ports: [1: ports[1] ?? 0])
        try await a.transport.start()
        await a.transport.shutdown()
        a.transport.setPeers(PeerTransportTestSupport.addresses(ports))
        XCTAssertEqual(a.transport.statistics().peers, [:])
        XCTAssertEqual(a.transport.connectedPeers(), [])
    }

    private func eventually(
        _ what: String, timeout: Duration = .seconds(5), file: StaticString = #filePath, line: UInt = #line,
        _ condition: () -> Bool
    ) async throws {
        try await PeerTransportTestSupport.eventually(what, timeout: timeout, file: file, line: line, condition)
    }
}

extension PeerTransportTestSupport {
    /// `ports` as peer addresses on 127.0.0.1, keyed by node id.
    static func addresses(_ ports: [UInt32: Int]) -> [NodeID: PeerAddress] {
        var addresses: [NodeID: PeerAddress] = [:]
        for (id, port) in ports { addresses[NodeID(id)] = PeerAddress(host: "127.0.0.1", port: port) }
        return addresses
    }
}
