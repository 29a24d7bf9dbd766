#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SynodCore

/// The outbound side of the connection to one peer: dials it, sends the hello, writes the
/// frames `PeerTransport.send` hands it, and redials with backoff after the connection drops.
///
/// Only this node writes on the connection. The peer sends nothing back on it (it sends on
/// its own outbound connection, which this node reads as an inbound one); anything read is
/// discarded, and reading only serves to notice when the peer closes the connection.
///
/// - Important: All connect, close and reconnect callbacks run on `eventLoop` (the connection
///   is bound to it), so up/down transitions of one peer are reported in order.
final class PeerTransportLink: Sendable {
    let peer: NodeID
    let address: PeerAddress
    let eventLoop: any EventLoop
    private let hello: [UInt8]
    private let sendQueueBytesMax: Int
    private let logger: Logger
    private let onStateChange: @Sendable (NodeID, Bool) -> Void
    private let security: PeerSecurity?

    private struct State {
        /// The connection, set once the hello is written; nil while down.
        var channel: (any Channel)?
        var isConnecting = false
        /// The latest connect attempt, for `stop()` to wait on.
        var lastConnect: EventLoopFuture<any Channel>?
        var reconnectTask: Scheduled<Void>?
        var stopped = false
        /// Connect attempts that failed, or connections that did not stay up for
        /// `PeerTransport.connectionStableAfter`, since the last stable connection.
        var failedAttempts = 0
        var connectedAt = NIODeadline.uptimeNanoseconds(0)
        /// When the current streak of failed connects began, and whether it was reported.
        var failingSince: NIODeadline?
        var warnedThisStreak = false
        /// Bytes handed to the channel whose write has not completed yet.
        var queuedBytes = 0
        /// Sends are being dropped because the queue is full.
        var queueFull = false
        var droppedWhileQueueFull: UInt64 = 0
        /// When the last queue-full warning was logged: at most one per `queueFullWarningInterval`.
        var queueFullWarnedAt: NIODeadline?
        var statistics = PeerLinkStatistics()
    }

    private let state = NIOLockedValueBox(State())

    /// Least time between two "send queue full" warnings for one peer.
    static let queueFullWarningInterval = TimeAmount.seconds(10)

    /// - Parameter statistics: counters to continue from (those of the link this one replaces
    ///   when the peer moved).
    init(
        peer: NodeID, address: PeerAddress, eventLoop: any EventLoop, hello: PeerHello, sendQueueBytesMax: Int,
        logger: Logger, onStateChange: @escaping @Sendable (NodeID, Bool) -> Void,
        statistics: PeerLinkStatistics = PeerLinkStatistics(), security: PeerSecurity? = nil
    ) {
        self.security = security
        self.peer = peer
        self.address = address
        self.eventLoop = eventLoop
        self.hello = hello.encoded()
        self.sendQueueBytesMax = sendQueueBytesMax
        var logger = logger
        logger[metadataKey: "peer"] = "\(peer)"
        logger[metadataKey: "peer-address"] = "\(address)"
        self.logger = logger
        self.onStateChange = onStateChange
        state.withLockedValue { $0.statistics = statistics }
    }

    var isConnected: Bool { state.withLockedValue { $0.channel != nil } }

    /// The connection, while it is up.
    var channel: (any Channel)? { state.withLockedValue { $0.channel } }

    var statistics: PeerLinkStatistics {
        state.withLockedValue { state in
            var statistics = state.statistics
            statistics.isConnected = state.channel != nil
            statistics.queuedBytes = state.queuedBytes
            return statistics
        }
    }

    /// Starts dialing (on `eventLoop`).
    func start() {
        eventLoop.execute { self.connect() }
    }

    /// Writes `frames` (the encoding of `envelopeCount` envelopes) as one write and flush, or
    /// drops them all when the peer is down or they would take the queue over
    /// `sendQueueBytesMax` (an empty queue takes any batch). Never blocks.
    func send(frames: [UInt8], envelopeCount: Int) {
        let byteCount = frames.count
        let count = UInt64(envelopeCount)
        let outcome: SendOutcome = state.withLockedValue { state in
            guard let channel = state.channel else {
                state.statistics.droppedEnvelopes += count
                return .droppedDown
            }
            // An empty queue takes any batch, so a message larger than the queue (a big
            // catch-up reply) can still go out: the queue never exceeds the larger of
            // `sendQueueBytesMax` and one batch.
            guard state.queuedBytes == 0 || state.queuedBytes <= sendQueueBytesMax - byteCount else {
                state.statistics.droppedEnvelopes += count
                state.droppedWhileQueueFull += count
                var warn = false
                if !state.queueFull {
                    state.queueFull = true
                    let now = NIODeadline.now()
                    if let warnedAt = state.queueFullWarnedAt, now < warnedAt + Self.queueFullWarningInterval {
                        warn = false
                    } else {
                        warn = true
                        state.queueFullWarnedAt = now
                    }
                }
                return .droppedQueueFull(warn: warn, queuedBytes: state.queuedBytes)
            }
            // An episode of drops ends once the queue is down to half, so a queue hovering at
            // the limit is one episode.
            var droppedWhileFull: UInt64?
            if state.queueFull && state.queuedBytes <= sendQueueBytesMax / 2 {
                droppedWhileFull = state.droppedWhileQueueFull
                state.queueFull = false
                state.droppedWhileQueueFull = 0
            }
            state.queuedBytes += byteCount
            state.statistics.sentEnvelopes += count
            return .write(channel, droppedWhileFull: droppedWhileFull)
        }
        let channel: any Channel
        switch outcome {
        case .droppedDown:
            logger.trace("dropping messages for a peer that is down", metadata: ["count": "\(envelopeCount)"])
            return
        case .droppedQueueFull(let warn, let queuedBytes):
            if warn {
                logger.warning(
                    "send queue to peer full: dropping messages until it drains",
                    metadata: ["queued-bytes": "\(queuedBytes)", "send-queue-bytes-max": "\(sendQueueBytesMax)"])
            }
            return
        case .write(let writeChannel, let droppedWhileFull):
            if let droppedWhileFull {
                logger.debug("send queue to peer drained", metadata: ["dropped-meanwhile": "\(droppedWhileFull)"])
            }
            channel = writeChannel
        }
        let promise = channel.eventLoop.makePromise(of: Void.self)
        promise.futureResult.whenComplete { _ in
            self.state.withLockedValue { $0.queuedBytes -= byteCount }
        }
        channel.writeAndFlush(channel.allocator.buffer(bytes: frames), promise: promise)
    }

    /// Stops dialing, closes the connection, and completes when it and any connect attempt
    /// in flight are closed. No state change is reported after this.
    func stop() async {
        let stopOnState: @Sendable () -> ((any Channel)?, Scheduled<Void>?, EventLoopFuture<any Channel>?) = {
            self.state.withLockedValue { state in
                state.stopped = true
                return (state.channel, state.reconnectTask, state.lastConnect)
            }
        }
        // On `eventLoop`, where `connect()` runs: an attempt is then either recorded in
        // `lastConnect` or will see `stopped`. Directly if the loop is already shut down.
        let (channel, task, lastConnect) = (try? await eventLoop.submit(stopOnState).get()) ?? stopOnState()
        task?.cancel()
        if let channel {
            channel.close(promise: nil)
            try? await channel.closeFuture.get()
        }
        // A connect that succeeds after `stopped` closes its channel in `connected(_:)`.
        if let pending = try? await lastConnect?.get() {
            try? await pending.closeFuture.get()
        }
    }

    /// Stops dialing and closes the connection without waiting, for a peer that was removed or
    /// moved: reports the peer down (on `eventLoop`, so after any up report) if it was up. The
    /// future completes once the connection and any connect attempt in flight are closed.
    /// `stop()` may still be called after it.
    func retire() -> EventLoopFuture<Void> {
        eventLoop.flatSubmit {
            let (channel, task, lastConnect) = self.state.withLockedValue { state in
                guard !state.stopped else { return ((any Channel)?.none, Scheduled<Void>?.none, state.lastConnect) }
                state.stopped = true
                let channel = state.channel
                // `closed(_:)` then finds no channel to report: the down report is this one.
                state.channel = nil
                return (channel, state.reconnectTask, state.lastConnect)
            }
            task?.cancel()
            var closing: [EventLoopFuture<Void>] = []
            if let channel {
                self.logger.info("peer down: removed or moved")
                self.onStateChange(self.peer, false)
                channel.close(promise: nil)
                closing.append(channel.closeFuture)
            }
            // A connect that succeeds after `stopped` closes its channel in `connected(_:)`.
            if let lastConnect {
                closing.append(lastConnect.flatMap(\.closeFuture).recover { _ in })
            }
            return EventLoopFuture.andAllComplete(closing, on: self.eventLoop)
        }
    }

    // MARK: - Connection lifecycle (on `eventLoop`)

    private func connect() {
        let proceed = state.withLockedValue { state in
            guard !state.stopped, state.channel == nil, !state.isConnecting else { return false }
            state.isConnecting = true
            state.reconnectTask = nil
            return true
        }
        guard proceed else { return }
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(PeerTransport.connectTimeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
        let connecting = Self.withUnacknowledgedDataTimeout(bootstrap)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(PeerTransportOutboundHandler())
                }
            }
            .connect(host: address.host, port: address.port)
        // With TLS the link is up once the handshake completed: a peer that refuses this
        // member's certificate (or presents one this member refuses) is a failed connect.
        let future: EventLoopFuture<any Channel>
        if let security {
            future = connecting.flatMap { channel in
                security.dial(channel).map { channel }.flatMapErrorThrowing { error in
                    channel.close(promise: nil)
                    throw error
                }
            }
        } else {
            future = connecting
        }
        state.withLockedValue { $0.lastConnect = future }
        future.whenComplete { result in
            switch result {
            case .success(let channel): self.connected(channel)
            case .failure(let error): self.connectFailed(error)
            }
        }
    }

    /// Sets TCP_USER_TIMEOUT where the platform has it (see `PeerTransport.unacknowledgedDataTimeout`).
    private static func withUnacknowledgedDataTimeout(_ bootstrap: ClientBootstrap) -> ClientBootstrap {
        #if os(Linux) && canImport(Glibc)
        bootstrap.channelOption(
            ChannelOptions.Types.SocketOption(level: .tcp, name: NIOBSDSocket.Option(rawValue: CInt(TCP_USER_TIMEOUT))),
            value: Int(PeerTransport.unacknowledgedDataTimeout.nanoseconds / 1_000_000))
        #else
        bootstrap
        #endif
    }

    private func connected(_ channel: any Channel) {
        let stopped = state.withLockedValue { $0.stopped }
        if stopped {
            state.withLockedValue { $0.isConnecting = false }
            channel.close(promise: nil)
            return
        }
        // The hello goes out before the channel is published to `send`: this runs on the
        // channel's event loop, so no frame can be written ahead of it.
        channel.writeAndFlush(channel.allocator.buffer(bytes: hello), promise: nil)
        state.withLockedValue { state in
            state.isConnecting = false
            state.channel = channel
            state.connectedAt = .now()
            state.statistics.connects += 1
            state.statistics.lastError = nil
        }
        logger.info("peer up")
        onStateChange(peer, true)
        channel.closeFuture.whenComplete { _ in self.closed(channel) }
    }

    private func connectFailed(_ error: any Error) {
        let reason = "\(error)"
        let now = NIODeadline.now()
        let (attempts, warn) = state.withLockedValue { state in
            state.isConnecting = false
            state.failedAttempts += 1
            if state.statistics.lastError == nil {
                state.failingSince = now
                state.warnedThisStreak = false
            }
            state.statistics.lastError = reason
            // Once per streak of failures, and only when it lasted a while: members of a
            // cluster that starts together refuse each other for a moment, which is no news.
            let warn = !state.warnedThisStreak && now >= (state.failingSince ?? now) + PeerTransport.connectFailureWarningDelay
            if warn { state.warnedThisStreak = true }
            return (state.failedAttempts, warn)
        }
        // An operator must see why a peer cannot be reached (a refused socket option, a wrong
        // address, a firewall): said once at warning level with the reason; every other
        // failed redial only at debug level.
        if warn {
            logger.warning("cannot connect to peer", metadata: ["error": "\(reason)", "attempt": "\(attempts)"])
        } else {
            logger.debug("cannot connect to peer", metadata: ["error": "\(reason)", "attempt": "\(attempts)"])
        }
        scheduleReconnect()
    }

    private func closed(_ channel: any Channel) {
        let report = state.withLockedValue { state -> Bool in
            guard let current = state.channel, current === channel else { return false }
            state.channel = nil
            if state.connectedAt + PeerTransport.connectionStableAfter <= .now() {
                state.failedAttempts = 0
            } else {
                // A peer that closes at once (e.g. it refuses our hello) is redialed with
                // growing delays, not in a tight loop.
                state.failedAttempts += 1
            }
            return !state.stopped
        }
        guard report else { return }
        logger.info("peer down")
        onStateChange(peer, false)
        scheduleReconnect()
    }

    private func scheduleReconnect() {
        state.withLockedValue { state in
            guard !state.stopped, state.reconnectTask == nil else { return }
            let delay = PeerTransport.reconnectDelay(afterFailures: state.failedAttempts)
            state.reconnectTask = eventLoop.scheduleTask(in: delay) { self.connect() }
        }
    }
}

private enum SendOutcome {
    case write(any Channel, droppedWhileFull: UInt64?)
    case droppedDown
    case droppedQueueFull(warn: Bool, queuedBytes: Int)
}

/// Counters of one outbound link, for logs and metrics.
public struct PeerLinkStatistics: Hashable, Sendable {
    /// The connection is up (hello sent) now.
    public var isConnected = false
    /// Bytes handed to the connection and not yet written to the socket.
    public var queuedBytes = 0
    /// Envelopes handed to the connection.
    public var sentEnvelopes: UInt64 = 0
    /// Envelopes dropped because the peer was down or its send queue full.
    public var droppedEnvelopes: UInt64 = 0
    /// Connections established so far.
    public var connects: UInt64 = 0
    /// Why the last connect attempt failed; nil once a connection is up.
    public var lastError: String?

    public init() {}
}

/// The only handler of an outbound connection: discards what the peer sends (nothing, in
/// this protocol) and closes the connection on an error, which makes the link redial.
final class PeerTransportOutboundHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
