import NIOCore
import NIOPosix
import SynodTransport

/// The handler of a connection accepted on node `target`'s proxy port: reads the peer hello to
/// learn the sender, dials the node's real peer port, and forwards every byte (the hello
/// included) in order, applying the link's cut and degradation.
///
/// Everything runs on the accepted channel's event loop; the outbound connection uses the same
/// loop so no state crosses threads.
final class ProxyNetworkInboundHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum State {
        /// Accumulating the hello.
        case awaitingHello(ByteBuffer)
        /// Dialing the node; chunks due for delivery wait here, in order.
        case connecting([ByteBuffer])
        case forwarding(Channel)
        case closed
    }

    private let registry: ProxyNetworkRegistry
    private let target: Int
    private let targetAddress: SocketAddress
    private var state: State
    private var link: ProxyNetworkLink?
    private var connectionID: Int?
    /// When the last scheduled chunk is due: later chunks are never delivered before it.
    private var lastDue = NIODeadline.uptimeNanoseconds(0)

    init(registry: ProxyNetworkRegistry, target: Int, targetAddress: SocketAddress, allocator: ByteBufferAllocator) {
        self.registry = registry
        self.target = target
        self.targetAddress = targetAddress
        self.state = .awaitingHello(allocator.buffer(capacity: PeerHello.encodedLength))
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var chunk = unwrapInboundIn(data)
        switch state {
        case .awaitingHello(var accumulated):
            accumulated.writeBuffer(&chunk)
            // A joining node's discovery request ("SYND", see `PeerDiscovery`) names no
            // sender: forwarded as is (link from -1, never cut); the node answers on the
            // same connection.
            if accumulated.readableBytes >= PeerDiscovery.magic.count,
               accumulated.getBytes(at: accumulated.readerIndex, length: PeerDiscovery.magic.count) == PeerDiscovery.magic {
                open(ProxyNetworkLink(from: -1, to: target), context: context, first: accumulated)
                return
            }
            let decoded = accumulated.withUnsafeReadableBytes { PeerHello.decode(from: $0) }
            switch decoded {
            case .needMoreBytes:
                state = .awaitingHello(accumulated)
            case .invalid:
                registry.noteInvalidHello()
                close(context: context)
            case .hello(let hello):
                // -1: a sender the proxy cannot place (a joining node whose id it has not
                // learned): forwarded, never cut.
                guard let sender = registry.senderIndex(hello.sender.rawValue), sender < registry.nodeCount,
                      sender != target else {
                    registry.noteInvalidHello()
                    close(context: context)
                    return
                }
                open(ProxyNetworkLink(from: sender, to: target), context: context, first: accumulated)
            }
        case .connecting, .forwarding:
            forward(context: context, chunk: chunk)
        case .closed:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        close(context: context)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        close(context: context)
    }

    // MARK: - Forwarding

    private func forward(context: ChannelHandlerContext, chunk: ByteBuffer) {
        guard let link else { return }
        let policy = registry.policy(for: link)
        if policy.cut {
            close(context: context)
            return
        }
        let now = NIODeadline.now()
        var due = now
        if let degradation = policy.degradation {
            if degradation.lossPercent > 0, Double.random(in: 0..<100) < degradation.lossPercent {
                registry.noteLost(on: link)
                close(context: context)
                return
            }
            let jitter = max(0, degradation.jitterMilliseconds)
            var delay = max(0, degradation.delayMilliseconds)
            if jitter > 0 {
                delay = max(0, delay + Int.random(in: -jitter...jitter))
            }
            due = now + .milliseconds(Int64(delay))
        }
        // Keep order: a chunk is never delivered before one read earlier.
        if due < lastDue { due = lastDue }
        lastDue = due
        if due <= now {
            deliver(chunk)
        } else {
            context.eventLoop.assumeIsolated().scheduleTask(deadline: due) { [self] in
                self.deliver(chunk)
            }
        }
    }

    private func deliver(_ chunk: ByteBuffer) {
        switch state {
        case .connecting(var pending):
            pending.append(chunk)
            state = .connecting(pending)
        case .forwarding(let outbound):
            if let link { registry.noteForwarded(bytes: chunk.readableBytes, on: link) }
            outbound.writeAndFlush(chunk, promise: nil)
        case .awaitingHello, .closed:
            break
        }
    }

    /// Registers the link this connection carries, dials the target and forwards the bytes
    /// read so far (the hello or discovery request); closes if the registry refuses the link.
    private func open(_ link: ProxyNetworkLink, context: ChannelHandlerContext, first: ByteBuffer) {
        self.link = link
        guard let id = registry.register(link: link, inbound: context.channel) else {
            close(context: context)
            return
        }
        connectionID = id
        state = .connecting([])
        connect(context: context)
        forward(context: context, chunk: first)
    }

    private func connect(context: ChannelHandlerContext) {
        let inbound = context.channel
        let bootstrap = ClientBootstrap(group: context.eventLoop)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ProxyNetworkOutboundHandler(inbound: inbound))
                }
            }
        bootstrap.connect(to: targetAddress).assumeIsolated().whenComplete { [self] result in
            switch result {
            case .success(let outbound):
                self.connected(context: context, outbound: outbound)
            case .failure:
                self.close(context: context)
            }
        }
    }

    private func connected(context: ChannelHandlerContext, outbound: Channel) {
        guard case .connecting(let pending) = state, let connectionID,
              registry.attach(id: connectionID, outbound: outbound)
        else {
            outbound.close(promise: nil)
            close(context: context)
            return
        }
        state = .forwarding(outbound)
        for chunk in pending {
            deliver(chunk)
        }
    }

    private func close(context: ChannelHandlerContext) {
        let previous = state
        state = .closed
        if let connectionID {
            registry.unregister(id: connectionID)
            self.connectionID = nil
        }
        if case .forwarding(let outbound) = previous {
            outbound.close(promise: nil)
        }
        if case .closed = previous { return }
        context.close(promise: nil)
    }
}

/// The handler of the proxy's connection to a node's real peer port: passes anything the node
/// sends back to the dialer (the transport sends nothing that way) and closes the dialer's
/// connection when the node closes.
final class ProxyNetworkOutboundHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let inbound: Channel

    init(inbound: Channel) {
        self.inbound = inbound
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let chunk = unwrapInboundIn(data)
        inbound.writeAndFlush(chunk, promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        inbound.close(promise: nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
