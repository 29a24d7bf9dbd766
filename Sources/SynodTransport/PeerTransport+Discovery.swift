#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// Why a join discovery (`PeerTransport.discover`) failed.
public enum PeerDiscoveryError: Error, Hashable, Sendable, CustomStringConvertible {
    /// This node's own peer URL cannot be sent: empty, or over `PeerDiscovery.peerURLBytesMax`.
    case invalidPeerURL(String, reason: String)
    /// The TCP connection could not be made, e.g. "connection refused".
    case cannotConnect(PeerAddress, reason: String)
    /// No complete reply within the timeout (connecting included).
    case timedOut(PeerAddress, after: TimeAmount)
    /// The member answered with a refusal, e.g. "peer does not know http://10.0.0.4:2380".
    case refused(PeerAddress, reason: String)
    /// The connection ended before a complete reply: the member closed it (a build without
    /// discovery refuses the request that way) or it failed.
    case noReply(PeerAddress, reason: String)
    /// The bytes received are not a discovery reply.
    case malformedReply(PeerAddress, reason: String)

    public var description: String {
        switch self {
        case .invalidPeerURL(let url, let reason): "cannot ask for discovery with peer URL \"\(url)\": \(reason)"
        case .cannotConnect(let address, let reason): "discovery via \(address) failed: cannot connect: \(reason)"
        case .timedOut(let address, let timeout): "discovery via \(address) failed: no reply within \(timeout)"
        case .refused(let address, let reason): "discovery via \(address) refused: \(reason)"
        case .noReply(let address, let reason):
            "discovery via \(address) failed: \(reason) before a reply (is it a Synod member with discovery support?)"
        case .malformedReply(let address, let reason): "discovery via \(address) failed: malformed reply: \(reason)"
        }
    }
}

extension PeerTransport {
    /// Asks the member listening for peers at `address` who this node is, for a node joining a
    /// running cluster that knows neither the cluster id nor its NodeID: sends a discovery
    /// request carrying `ownPeerURL` (see `PeerDiscovery`) on a connection of its own and
    /// returns the member's reply payload, which the server that made it decodes.
    ///
    /// - Parameters:
    ///   - timeout: for the whole exchange, connecting included.
    ///   - limits: the largest reply payload accepted is `limits.frameBytesMax`.
    /// - Throws: `PeerDiscoveryError` (connection refused, timeout, refusal such as "peer does
    ///   not know <url>", no or malformed reply); `CancellationError` when the task is cancelled.
    public static func discover(
        group: any EventLoopGroup, address: PeerAddress, ownPeerURL: String, timeout: TimeAmount,
        limits: PeerCodecLimits = .standard, security: PeerSecurity? = nil
    ) async throws -> [UInt8] {
        guard let request = PeerDiscovery.encodeRequest(peerURL: ownPeerURL) else {
            throw PeerDiscoveryError.invalidPeerURL(
                ownPeerURL, reason: "it must be 1...\(PeerDiscovery.peerURLBytesMax) bytes of UTF-8")
        }
        let eventLoop = group.next()
        let outcome = PeerDiscoveryOutcome(promise: eventLoop.makePromise())
        let connect = ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                // With TLS the request waits in the TLS handler until the handshake completed.
                security?.dial(channel).whenFailure { error in
                    outcome.complete(.failure(PeerDiscoveryError.cannotConnect(address, reason: "TLS: \(error)")))
                }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        PeerDiscoveryClientHandler(request: request, address: address, limits: limits, outcome: outcome))
                }
            }
            .connect(host: address.host, port: address.port)
        connect.whenFailure { error in
            if let channelError = error as? ChannelError, case .connectTimeout = channelError {
                outcome.complete(.failure(PeerDiscoveryError.timedOut(address, after: timeout)))
            } else {
                outcome.complete(.failure(PeerDiscoveryError.cannotConnect(address, reason: describe(error))))
            }
        }
        let timer = eventLoop.scheduleTask(in: timeout) {
            outcome.complete(.failure(PeerDiscoveryError.timedOut(address, after: timeout)))
        }
        outcome.promise.futureResult.whenComplete { _ in
            timer.cancel()
            connect.whenSuccess { $0.close(promise: nil) }
        }
        return try await withTaskCancellationHandler {
            try await outcome.promise.futureResult.get()
        } onCancel: {
            outcome.complete(.failure(CancellationError()))
        }
    }

    /// "connection refused" or "address already in use" rather than NIO's
    /// "connect(descriptor:addr:size:): Connection refused (errno: 111)".
    static func describe(_ error: any Error) -> String {
        var ioError = error as? IOError
        if ioError == nil, let connectError = error as? NIOConnectionError {
            ioError = connectError.connectionErrors.lazy.compactMap { $0.error as? IOError }.first
            if ioError == nil, let dnsError = connectError.dnsAAAAError ?? connectError.dnsAError {
                return "cannot resolve \(connectError.host): \(dnsError)"
            }
        }
        if let ioError, let text = strerror(ioError.errnoCode) {
            let message = String(cString: text)
            return message.prefix(1).lowercased() + message.dropFirst()
        }
        return "\(error)"
    }
}

/// The one result of a discovery, whichever of the reply, the connection, the timer or a
/// cancellation comes first; later completions are ignored.
private final class PeerDiscoveryOutcome: Sendable {
    let promise: EventLoopPromise<[UInt8]>
    private let completed = NIOLockedValueBox(false)

    init(promise: EventLoopPromise<[UInt8]>) { self.promise = promise }

    func complete(_ result: Result<[UInt8], any Error>) {
        let first = completed.withLockedValue { completed in
            defer { completed = true }
            return !completed
        }
        if first { promise.completeWith(result) }
    }
}

/// The dialer's side of a discovery connection: writes the request, reads the one reply.
private final class PeerDiscoveryClientHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let request: [UInt8]
    private let address: PeerAddress
    private let limits: PeerCodecLimits
    private let outcome: PeerDiscoveryOutcome
    /// Bytes of the reply so far; bounded by the reply header plus `limits.frameBytesMax` (the
    /// length is checked as soon as it arrives) plus one read.
    private var received = ByteBuffer()

    init(request: [UInt8], address: PeerAddress, limits: PeerCodecLimits, outcome: PeerDiscoveryOutcome) {
        self.request = request
        self.address = address
        self.limits = limits
        self.outcome = outcome
    }

    func channelActive(context: ChannelHandlerContext) {
        context.writeAndFlush(NIOAny(context.channel.allocator.buffer(bytes: request)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        received.writeBuffer(&incoming)
        let limits = self.limits
        let result = received.withUnsafeReadableBytes { PeerDiscovery.decodeReply(from: $0, limits: limits) }
        switch result {
        case .needMoreBytes:
            return
        case .reply(.known(let payload)):
            outcome.complete(.success(payload))
        case .reply(.refused(let reason)):
            outcome.complete(.failure(PeerDiscoveryError.refused(address, reason: reason)))
        case .invalid(let reason):
            outcome.complete(.failure(PeerDiscoveryError.malformedReply(address, reason: reason)))
        }
        received = ByteBuffer()
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        outcome.complete(.failure(PeerDiscoveryError.noReply(address, reason: "the connection was closed")))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        outcome.complete(
            .failure(PeerDiscoveryError.noReply(address, reason: "the connection failed (\(PeerTransport.describe(error)))")))
        context.close(promise: nil)
    }
}
