import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SynodCore

/// What one `setPeers(_:)` call changes.
private struct PeerSetChange {
    var added: [NodeID] = []
    var removed: [NodeID] = []
    var moved: [NodeID] = []
    /// New links to start (empty unless the transport is running).
    var started: [PeerTransportLink] = []
    /// Links of removed and moved peers.
    var retired: [PeerTransportLink] = []
    /// Inbound connections of removed peers.
    var closing: [any Channel] = []
}

/// Persistent TCP connections between the members of a cluster, carrying `Envelope`s as
/// `PeerFrameCodec` frames.
///
/// Each node dials every peer and only writes on that outbound connection; it only reads
/// from the connections peers dial to it. So there is exactly one connection per direction
/// and no race over which of two simultaneous connections survives. A dialer first sends a
/// `PeerHello`; the acceptor closes connections from other clusters, unknown nodes or other
/// protocol versions, and any connection carrying a malformed or oversized frame, logging the
/// reason. Dropped connections are redialed with exponential backoff and jitter.
///
/// The members may change while it runs (`setPeers(_:)`). The same port also answers join
/// discovery requests (`onDiscovery`, `PeerTransport.discover`) from nodes that do not know
/// the cluster id or their NodeID yet.
///
/// Sending never blocks: envelopes for a peer that is down, or whose send queue is full
/// (`sendQueueBytesMax`), are dropped and counted. Paxos tolerates lost messages (the replica
/// retransmits), but not a caller blocked on one slow peer or an unbounded queue.
///
/// - Important: `onReceive`, `onPeerStateChange` and `onDiscovery` run on NIO event loop
///   threads: they must return quickly (hand the envelopes to the driver's own queue, read a
///   snapshot) and must not block.
public final class PeerTransport: Sendable {
    /// First redial delay after a failure; doubles per consecutive failure up to `reconnectDelayMax`.
    public static let reconnectDelayInitial = TimeAmount.milliseconds(50)
    public static let reconnectDelayMax = TimeAmount.seconds(2)
    /// A connection that lasted this long resets the backoff when it drops; one dropped
    /// sooner (e.g. the peer refuses our hello) counts as a failure.
    public static let connectionStableAfter = TimeAmount.seconds(2)
    /// How long a TCP connect may take before it counts as failed.
    public static let connectTimeout = TimeAmount.seconds(2)
    /// A peer that cannot be dialed for this long is reported once, at warning level, with
    /// the reason (shorter outages, such as members starting together, only at debug level).
    public static let connectFailureWarningDelay = TimeAmount.seconds(2)
    /// How long an inbound connection may stay open without a complete hello.
    public static let helloTimeout = TimeAmount.seconds(5)
    /// How long written data may stay unacknowledged before the kernel drops the outbound
    /// connection (TCP_USER_TIMEOUT, Linux only): a peer whose machine vanished without a FIN
    /// is then seen down in seconds instead of after the default retransmission timeout
    /// (about 15 minutes), since Paxos heartbeats keep data outstanding.
    public static let unacknowledgedDataTimeout = TimeAmount.seconds(10)

    /// The delay before redialing after `failures` consecutive failures: exponential with
    /// "equal jitter" (uniform in the upper half), so restarted nodes do not redial in step.
    public static func reconnectDelay(afterFailures failures: Int) -> TimeAmount {
        let initial = reconnectDelayInitial.nanoseconds
        let maximum = reconnectDelayMax.nanoseconds
        let shift = min(max(failures - 1, 0), 30)
        let ceiling = min(maximum, initial << Int64(shift))
        return .nanoseconds(Int64.random(in: (ceiling / 2)...ceiling))
    }

    public let localID: NodeID
    public let clusterID: UInt64
    public let listenAddress: PeerAddress
    public let limits: PeerCodecLimits
    public let sendQueueBytesMax: Int

    private let group: any EventLoopGroup
    private let logger: Logger
    private let hello: PeerHello
    private let security: PeerSecurity?
    private let inbound: PeerTransportInboundContext
    private let onPeerStateChange: @Sendable (NodeID, Bool) -> Void

    private enum Lifecycle { case idle, starting, running, stopped }

    private struct State {
        var lifecycle = Lifecycle.idle
        var serverChannel: (any Channel)?
        var inboundChannels: [ObjectIdentifier: any Channel] = [:]
        /// Envelopes `send` dropped before reaching a link: unknown or own `to`, or unencodable.
        var unroutableEnvelopes: UInt64 = 0
        /// The outbound link of each current peer (never `localID`).
        var links: [NodeID: PeerTransportLink] = [:]
        /// Links of removed or moved peers whose connection is still closing: `shutdown()`
        /// waits for them too.
        var retiringLinks: [ObjectIdentifier: PeerTransportLink] = [:]
    }

    private let state: NIOLockedValueBox<State>

    /// - Parameters:
    ///   - peers: the other members and where they listen; an entry for `localID` is ignored.
    ///     `setPeers(_:)` changes them later.
    ///   - sendQueueBytesMax: bytes queued per peer (handed to its connection, not yet written
    ///     to the socket) that a send may not push the queue past; such a send is dropped. An
    ///     empty queue takes any batch, so one message larger than this still goes out.
    ///   - onDiscovery: answers a join discovery request (see `PeerDiscovery`): given the
    ///     requester's advertised peer URL, the reply payload (at most `limits.frameBytesMax`
    ///     bytes), or nil when no member has that peer URL. Without it, every discovery
    ///     request is refused.
    /// - Precondition: `sendQueueBytesMax > 0`.
    public init(
        group: any EventLoopGroup, localID: NodeID, clusterID: UInt64, listen: PeerAddress,
        peers: [NodeID: PeerAddress], limits: PeerCodecLimits = .standard,
        sendQueueBytesMax: Int = 64 << 20, logger: Logger,
        onReceive: @escaping @Sendable ([Envelope]) -> Void,
        onPeerStateChange: @escaping @Sendable (NodeID, Bool) -> Void = { _, _ in },
        onDiscovery: (@Sendable (String) -> [UInt8]?)? = nil,
        security: PeerSecurity? = nil
    ) {
        self.security = security
        precondition(sendQueueBytesMax > 0, "sendQueueBytesMax \(sendQueueBytesMax) must be positive")
        self.group = group
        self.localID = localID
        self.clusterID = clusterID
        self.listenAddress = listen
        self.limits = limits
        self.sendQueueBytesMax = sendQueueBytesMax
        var logger = logger
        logger[metadataKey: "node"] = "\(localID)"
        self.logger = logger
        self.onPeerStateChange = onPeerStateChange
        let hello = PeerHello(clusterID: clusterID, sender: localID)
        self.hello = hello
        var initial = State()
        for (peer, address) in peers where peer != localID {
            initial.links[peer] = PeerTransportLink(
                peer: peer, address: address, eventLoop: group.next(), hello: hello,
                sendQueueBytesMax: sendQueueBytesMax, logger: logger, onStateChange: onPeerStateChange,
                security: security)
        }
        self.state = NIOLockedValueBox(initial)
        self.inbound = PeerTransportInboundContext(
            localID: localID, clusterID: clusterID, limits: limits, logger: logger, onReceive: onReceive,
            onDiscovery: onDiscovery, counters: NIOLockedValueBox(PeerInboundStatistics()),
            membership: NIOLockedValueBox(PeerInboundMembership(knownPeers: Set(initial.links.keys))))
    }

    /// Binds the peer listener, then starts dialing every peer.
    /// - Throws: `PeerTransportError.cannotListen` when the listener cannot be bound.
    public func start() async throws {
        try state.withLockedValue { state in
            guard state.lifecycle == .idle else {
                throw PeerTransportError.notStartable(reason: state.lifecycle == .stopped ? "it was shut down" : "it was already started")
            }
            state.lifecycle = .starting
        }
        let inbound = self.inbound
        let security = self.security
        let serverChannel: any Channel
        do {
            serverChannel = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 256)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { [weak self] channel in
                    self?.track(inbound: channel)
                    return channel.eventLoop.makeCompletedFuture {
                        try security?.accept(channel)
                        let remote = channel.remoteAddress.map { "\($0)" } ?? "unknown"
                        try channel.pipeline.syncOperations.addHandler(
                            PeerTransportInboundHandler(shared: inbound, remoteAddress: remote))
                    }
                }
                .bind(host: listenAddress.host, port: listenAddress.port)
                .get()
        } catch {
            state.withLockedValue { $0.lifecycle = .idle }
            throw PeerTransportError.cannotListen(listenAddress, reason: Self.describe(error))
        }
        // Links `setPeers` adds from here on are started by `setPeers`, these by this call.
        let links = state.withLockedValue { state -> [NodeID: PeerTransportLink]? in
            guard state.lifecycle == .starting else { return nil }
            state.lifecycle = .running
            state.serverChannel = serverChannel
            return state.links
        }
        guard let links else {
            try? await serverChannel.close()
            throw PeerTransportError.notStartable(reason: "it was shut down while starting")
        }
        logger.info(
            "listening for peers",
            metadata: ["address": "\(listeningAddress() ?? listenAddress)", "peers": "\(links.keys.sorted())"])
        for link in links.values { link.start() }
    }

    /// Makes `peers` the members this node talks to: the full desired set (an entry for
    /// `localID` is ignored). Idempotent; never blocks; callable from any thread.
    ///
    /// - A new peer gets a link, dialing at once if the transport is running, and may dial in.
    /// - A removed peer's outbound connection is closed (reported down if it was up) and no
    ///   longer redialed; its inbound connection is closed and its hellos are refused.
    /// - A peer whose address changed is redialed at the new address (reported down, then up
    ///   once connected); its link counters carry over.
    ///
    /// Sends to a removed peer count as unroutable, like sends to any unknown node.
    public func setPeers(_ peers: [NodeID: PeerAddress]) {
        var desired = peers
        desired[localID] = nil
        let inbound = self.inbound
        let (hello, sendQueueBytesMax, logger, onPeerStateChange) = (hello, sendQueueBytesMax, logger, onPeerStateChange)
        let change = state.withLockedValue { state -> PeerSetChange? in
            guard state.lifecycle != .stopped else { return nil }
            var change = PeerSetChange()
            for (peer, link) in state.links where desired[peer] == nil {
                state.links[peer] = nil
                change.retired.append(link)
                change.removed.append(peer)
            }
            for (peer, address) in desired {
                let previous = state.links[peer]
                if let previous, previous.address == address { continue }
                // A moved peer keeps its event loop: the old link's down report then precedes
                // the new link's up report.
                let link = PeerTransportLink(
                    peer: peer, address: address, eventLoop: previous?.eventLoop ?? group.next(), hello: hello,
                    sendQueueBytesMax: sendQueueBytesMax, logger: logger, onStateChange: onPeerStateChange,
                    statistics: previous?.statistics ?? PeerLinkStatistics(), security: security)
                state.links[peer] = link
                change.started.append(link)
                if let previous {
                    change.retired.append(previous)
                    change.moved.append(peer)
                } else {
                    change.added.append(peer)
                }
            }
            for link in change.retired { state.retiringLinks[ObjectIdentifier(link)] = link }
            if state.lifecycle != .running { change.started = [] }  // `start()` starts them
            // Under the state lock, so concurrent calls leave the links and the hello check agreeing.
            change.closing = inbound.membership.withLockedValue { membership in
                membership.knownPeers = Set(desired.keys)
                return change.removed.compactMap { membership.connectionByPeer.removeValue(forKey: $0) }
            }
            return change
        }
        guard let change, !change.retired.isEmpty || !change.added.isEmpty else { return }
        logger.info(
            "peers changed",
            metadata: [
                "added": "\(change.added.sorted())", "removed": "\(change.removed.sorted())",
                "moved": "\(change.moved.sorted())", "peers": "\(desired.keys.sorted())",
            ])
        for channel in change.closing { channel.close(promise: nil) }
        for link in change.retired {
            let key = ObjectIdentifier(link)
            link.retire().whenComplete { [weak self] _ in
                self?.state.withLockedValue { _ = $0.retiringLinks.removeValue(forKey: key) }
            }
        }
        // After `retire()`: a moved peer's new link shares the old one's loop, so it dials after
        // the old connection is closed.
        for link in change.started { link.start() }
    }

    /// Where the listener is bound (the actual port when `listen.port` was 0), once started.
    public func listeningAddress() -> PeerAddress? {
        guard let address = state.withLockedValue({ $0.serverChannel })?.localAddress, let port = address.port else {
            return nil
        }
        return PeerAddress(host: address.ipAddress ?? listenAddress.host, port: port)
    }

    /// Sends `envelopes`, grouped by `to`: one coalesced write and flush per peer, in the
    /// given order within each peer. Never blocks.
    ///
    /// Dropped (and counted in `statistics()`) instead: envelopes to an unknown node or to
    /// this node, envelopes over `limits`, and all of a peer's envelopes in this call when it
    /// is down or they do not fit its send queue.
    public func send(_ envelopes: [Envelope]) {
        let links = state.withLockedValue { $0.links }
        var byPeer: [NodeID: [Envelope]] = [:]
        var unroutable = 0
        for envelope in envelopes {
            if links[envelope.to] != nil {
                byPeer[envelope.to, default: []].append(envelope)
            } else {
                unroutable += 1
                logger.debug("dropping message to a node that is not a peer", metadata: ["to": "\(envelope.to)"])
            }
        }
        for (peer, batch) in byPeer {
            guard let link = links[peer] else { continue }
            var frames: [UInt8] = []
            let skipped = PeerFrameCodec.encode(batch, into: &frames, limits: limits)
            for (index, error) in skipped {
                logger.warning(
                    "dropping message over the peer codec limits",
                    metadata: ["to": "\(peer)", "kind": "\(batch[index].message.kind)", "reason": "\(error.reason)"])
            }
            unroutable += skipped.count
            let encodedCount = batch.count - skipped.count
            if encodedCount > 0 { link.send(frames: frames, envelopeCount: encodedCount) }
        }
        if unroutable > 0 {
            state.withLockedValue { $0.unroutableEnvelopes += UInt64(unroutable) }
        }
    }

    /// The outbound connection to `peer`, if it is up (tests inspect its socket options).
    func linkChannel(to peer: NodeID) -> (any Channel)? {
        state.withLockedValue { $0.links[peer] }?.channel
    }

    /// The peers whose outbound connection is up now.
    public func connectedPeers() -> Set<NodeID> {
        let links = state.withLockedValue { $0.links }
        return Set(links.values.filter(\.isConnected).map(\.peer))
    }

    /// Counters for logs and metrics.
    public func statistics() -> PeerTransportStatistics {
        let links = state.withLockedValue { $0.links }
        return PeerTransportStatistics(
            peers: links.mapValues(\.statistics),
            inbound: inbound.counters.withLockedValue { $0 },
            unroutableEnvelopes: state.withLockedValue { $0.unroutableEnvelopes })
    }

    /// Stops listening and dialing, closes every connection, and returns when they are closed.
    /// Idempotent; the transport cannot be started again.
    public func shutdown() async {
        let (serverChannel, wasRunning) = state.withLockedValue { state in
            let wasRunning = state.lifecycle != .stopped
            state.lifecycle = .stopped
            let channel = state.serverChannel
            state.serverChannel = nil
            return (channel, wasRunning)
        }
        guard wasRunning else { return }
        if let serverChannel {
            try? await serverChannel.close()
        }
        let inboundChannels = state.withLockedValue { Array($0.inboundChannels.values) }
        for channel in inboundChannels {
            channel.close(promise: nil)
        }
        for channel in inboundChannels {
            try? await channel.closeFuture.get()
        }
        let links = state.withLockedValue { Array($0.links.values) + Array($0.retiringLinks.values) }
        for link in links {
            await link.stop()
        }
        logger.info("peer transport stopped")
    }

    // MARK: - Helpers

    private func track(inbound channel: any Channel) {
        let key = ObjectIdentifier(channel)
        let accepted = state.withLockedValue { state in
            guard state.lifecycle != .stopped else { return false }
            state.inboundChannels[key] = channel
            return true
        }
        guard accepted else {
            channel.close(promise: nil)
            return
        }
        channel.closeFuture.whenComplete { [weak self] _ in
            self?.state.withLockedValue { _ = $0.inboundChannels.removeValue(forKey: key) }
        }
    }
}
