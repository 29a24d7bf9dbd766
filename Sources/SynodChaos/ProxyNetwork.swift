import NIOCore
import NIOPosix

/// A fault-injecting network that needs no privileges: every node advertises a proxy port
/// instead of its real peer port, and the proxy forwards each peer connection after reading
/// its hello (which names the sender).
///
/// - `cut(from: i, to: j)` closes i's connections to j and closes new ones right after their
///   hello, until `heal()`. TCP cannot silently lose bytes in the middle of a stream, so a cut
///   link behaves like a peer that keeps resetting (the transport redials with backoff).
/// - `degrade(node: i, ...)` delays each chunk i sends by delay ± jitter (in order), and with
///   the loss probability per chunk closes the connection instead of forwarding it.
///
/// Client traffic is not proxied: `clientURL == listenClientURL`.
public final class ProxyNetwork: ChaosNetwork {
    public var name: String { "proxy" }

    private struct Node {
        var addresses: ChaosNodeAddresses
        var realPeerPort: Int
        var proxyPort: Int
    }

    private struct State {
        var prepared = false
        var nodes: [Node] = []
        var listeners: [Channel] = []
        var tornDown = false
    }

    private let host: String
    private let group: EventLoopGroup
    private let ownsGroup: Bool
    private let registry = ProxyNetworkRegistry()
    private let state = ProxyNetworkLockedBox(State())

    /// - Parameters:
    ///   - host: the loopback address every port is bound on.
    ///   - group: the event loops to run the proxy on; when nil the proxy creates (and shuts
    ///     down in `teardown`) a one-thread group.
    public init(host: String = "127.0.0.1", group: EventLoopGroup? = nil) {
        self.host = host
        if let group {
            self.group = group
            self.ownsGroup = false
        } else {
            self.group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            self.ownsGroup = true
        }
    }

    public func prepare(nodeCount: Int) async throws -> [ChaosNodeAddresses] {
        guard nodeCount >= 1, nodeCount <= MembershipPlanner.nodesMax else {
            throw ChaosNetworkError("proxy network: node count \(nodeCount) out of range 1...\(MembershipPlanner.nodesMax)")
        }
        let alreadyPrepared = state.withLockedValue { state in
            defer { state.prepared = true }
            return state.prepared || state.tornDown
        }
        guard !alreadyPrepared else {
            throw ChaosNetworkError("proxy network: prepare called twice (or after teardown)")
        }
        registry.setNodeCount(nodeCount)

        // The three ports each node binds itself stay held (so they are distinct from each
        // other and from the proxy ports bound meanwhile), then are released for the nodes.
        let reserved = try await Self.reserveFreePorts(count: 3 * nodeCount, host: host, group: group)
        var nodes: [Node] = []
        var listeners: [Channel] = []
        do {
            for index in 0..<nodeCount {
                let clientPort = reserved.ports[3 * index]
                let realPeerPort = reserved.ports[3 * index + 1]
                let metricsPort = reserved.ports[3 * index + 2]
                let realPeerAddress = try SocketAddress(ipAddress: host, port: realPeerPort)
                let listener = try await startListener(target: index, targetAddress: realPeerAddress)
                listeners.append(listener)
                guard let proxyPort = listener.localAddress?.port else {
                    throw ChaosNetworkError("proxy network: the listener for n\(index + 1) has no local port")
                }
                let addresses = ChaosNodeAddresses(
                    index: index,
                    listenClientURL: "http://\(host):\(clientPort)",
                    clientURL: "http://\(host):\(clientPort)",
                    listenPeerURL: "http://\(host):\(realPeerPort)",
                    advertisePeerURL: "http://\(host):\(proxyPort)",
                    metricsURL: "http://\(host):\(metricsPort)")
                nodes.append(Node(addresses: addresses, realPeerPort: realPeerPort, proxyPort: proxyPort))
            }
        } catch {
            for listener in listeners {
                try? await listener.close()
            }
            await Self.release(reserved.channels)
            throw error
        }
        await Self.release(reserved.channels)
        state.withLockedValue { state in
            state.nodes = nodes
            state.listeners = listeners
        }
        return nodes.map(\.addresses)
    }

    public func launchPrefix(node index: Int) -> [String] {
        []
    }

    public func expectJoin(node index: Int) {
        registry.expectJoin(node: index)
    }

    public func cut(from: Int, to: Int) async throws {
        try checkLink(from: from, to: to)
        let channels = registry.cut(ProxyNetworkLink(from: from, to: to))
        for channel in channels {
            channel.close(promise: nil)
        }
    }

    public func degrade(node index: Int, delayMilliseconds: Int, jitterMilliseconds: Int, lossPercent: Double) async throws {
        try checkNode(index)
        guard delayMilliseconds >= 0, jitterMilliseconds >= 0, lossPercent >= 0, lossPercent <= 100 else {
            throw ChaosNetworkError(
                "proxy network: invalid degradation delay=\(delayMilliseconds)ms jitter=\(jitterMilliseconds)ms loss=\(lossPercent)%")
        }
        registry.degrade(
            node: index,
            ProxyNetworkDegradation(
                delayMilliseconds: delayMilliseconds, jitterMilliseconds: jitterMilliseconds, lossPercent: lossPercent))
    }

    public func heal() async throws {
        registry.heal()
    }

    public func teardown() async {
        let listeners = state.withLockedValue { state -> [Channel] in
            state.tornDown = true
            defer { state.listeners = [] }
            return state.listeners
        }
        let connections = registry.close()
        for listener in listeners {
            try? await listener.close()
        }
        for channel in connections ?? [] {
            try? await channel.close()
        }
        if connections != nil, ownsGroup {
            try? await group.shutdownGracefully()
        }
    }

    /// Counters per directed link, keyed `"n1->n2.bytes"`, `.connections` (forwarded),
    /// `.refused` (closed at hello while cut), `.cut` (closed by `cut`), `.lost` (closed by
    /// degrade's loss); plus `"invalidHellos"` and `"openConnections"`.
    public func statistics() -> [String: Int] {
        var result: [String: Int] = [
            "invalidHellos": registry.invalidHellos,
            "unmappedSenders": registry.unmappedSenders,
            "openConnections": registry.openConnections,
        ]
        for (link, counters) in registry.linkStatistics() {
            let key = link.description
            result["\(key).bytes"] = counters.bytesForwarded
            result["\(key).connections"] = counters.connectionsForwarded
            result["\(key).refused"] = counters.connectionsRefused
            result["\(key).cut"] = counters.connectionsCut
            result["\(key).lost"] = counters.connectionsLost
        }
        return result
    }

    /// The counters of one directed link.
    public func statistics(from: Int, to: Int) -> ProxyLinkStatistics {
        registry.linkStatistics()[ProxyNetworkLink(from: from, to: to)] ?? ProxyLinkStatistics()
    }

    // MARK: - Internals

    private func checkNode(_ index: Int) throws {
        let count = registry.nodeCount
        guard index >= 0, index < count else {
            throw ChaosNetworkError("proxy network: node index \(index) out of range (\(count) nodes prepared)")
        }
    }

    private func checkLink(from: Int, to: Int) throws {
        try checkNode(from)
        try checkNode(to)
        guard from != to else {
            throw ChaosNetworkError("proxy network: cannot cut a node's link to itself (n\(from + 1))")
        }
    }

    private func startListener(target: Int, targetAddress: SocketAddress) async throws -> Channel {
        let registry = self.registry
        do {
            return try await ServerBootstrap(group: group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .serverChannelOption(.backlog, value: 64)
                .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            ProxyNetworkInboundHandler(
                                registry: registry, target: target, targetAddress: targetAddress,
                                allocator: channel.allocator))
                    }
                }
                .bind(host: host, port: 0)
                .get()
        } catch {
            throw ChaosNetworkError("proxy network: cannot bind the proxy port for n\(target + 1) on \(host): \(error)")
        }
    }

    /// `count` distinct free TCP ports on `host`, each held by a listening socket bound to port 0
    /// until `release`.
    static func reserveFreePorts(count: Int, host: String, group: EventLoopGroup) async throws
        -> (ports: [Int], channels: [Channel])
    {
        var channels: [Channel] = []
        var ports: [Int] = []
        for _ in 0..<count {
            do {
                let channel = try await ServerBootstrap(group: group)
                    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                    .bind(host: host, port: 0)
                    .get()
                channels.append(channel)
                guard let port = channel.localAddress?.port else {
                    throw ChaosNetworkError("proxy network: a port-0 socket on \(host) has no local port")
                }
                ports.append(port)
            } catch {
                await release(channels)
                if error is ChaosNetworkError { throw error }
                throw ChaosNetworkError("proxy network: cannot bind a free port on \(host): \(error)")
            }
        }
        return (ports, channels)
    }

    static func release(_ channels: [Channel]) async {
        for channel in channels {
            try? await channel.close()
        }
    }
}
