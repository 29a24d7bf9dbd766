import Logging
import NIOConcurrencyHelpers
import NIOCore
import SynodCore

/// What every inbound connection of a transport shares: its identity, the limits, the
/// receive callback and the counters.
struct PeerTransportInboundContext: Sendable {
    let localID: NodeID
    let clusterID: UInt64
    let knownPeers: Set<NodeID>
    let limits: PeerCodecLimits
    let logger: Logger
    let onReceive: @Sendable ([Envelope]) -> Void
    let counters: NIOLockedValueBox<PeerInboundStatistics>
    /// The current inbound connection of each peer. A peer dials one connection at a time,
    /// so a newer one replaces (closes) the older: this reclaims connections whose dialer
    /// died without closing them (a crashed machine sends no FIN).
    let connectionByPeer: NIOLockedValueBox<[NodeID: any Channel]>
}

/// Counters of the inbound side, for logs and metrics.
public struct PeerInboundStatistics: Hashable, Sendable {
    /// Envelopes delivered to `onReceive`.
    public var receivedEnvelopes: UInt64 = 0
    /// Envelopes dropped on arrival: `from` is not the connection's peer, or `to` not this node.
    public var misaddressedEnvelopes: UInt64 = 0
    /// Connections whose hello was accepted.
    public var acceptedConnections: UInt64 = 0
    /// Connections closed for a bad hello, a bad frame or a hello timeout.
    public var rejectedConnections: UInt64 = 0

    public init() {}
}

/// Reads one inbound peer connection: the hello, then frames, delivered to `onReceive` once
/// per read batch. Any protocol violation closes this connection (and only it) with a
/// warning giving the reason.
///
/// - Important: Lives on its channel's event loop, like every NIO handler; it is not Sendable
///   and is only touched from `channelRead` & co. `onReceive` runs on that event loop too.
final class PeerTransportInboundHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private enum Phase {
        case awaitingHello
        case established(peer: NodeID)
        case closed
    }

    private let shared: PeerTransportInboundContext
    private var logger: Logger
    private var phase = Phase.awaitingHello
    /// Bytes received and not yet decoded: at most one partial hello or frame, so bounded by
    /// `limits.frameBytesMax` plus one read.
    private var cumulation = ByteBuffer()
    /// Envelopes decoded during the current read batch, delivered in `channelReadComplete`.
    private var received: [Envelope] = []

    init(shared: PeerTransportInboundContext, remoteAddress: String) {
        self.shared = shared
        var logger = shared.logger
        logger[metadataKey: "remote-address"] = "\(remoteAddress)"
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        // A connection that never says hello must not hold a socket forever.
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let contextBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.eventLoop.scheduleTask(in: PeerTransport.helloTimeout) {
            if case .awaitingHello = bound.value.phase {
                bound.value.reject(context: contextBound.value, reason: "no hello within \(PeerTransport.helloTimeout)")
            }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if case .closed = phase { return }
        if cumulation.readableBytes == 0 {
            cumulation = incoming
        } else {
            cumulation.writeBuffer(&incoming)
        }
        if case .awaitingHello = phase {
            let result = cumulation.withUnsafeReadableBytes { PeerHello.decode(from: $0) }
            switch result {
            case .needMoreBytes:
                return
            case .invalid(let reason):
                reject(context: context, reason: reason)
                return
            case .hello(let hello):
                if let reason = hello.rejectionReason(
                    clusterID: shared.clusterID, localID: shared.localID, knownPeers: shared.knownPeers)
                {
                    reject(context: context, reason: "hello from \(hello.sender) refused: \(reason)")
                    return
                }
                cumulation.moveReaderIndex(forwardBy: PeerHello.encodedLength)
                phase = .established(peer: hello.sender)
                logger[metadataKey: "peer"] = "\(hello.sender)"
                shared.counters.withLockedValue { $0.acceptedConnections += 1 }
                logger.debug("inbound peer connection accepted")
                let channel = context.channel
                let previous = shared.connectionByPeer.withLockedValue { $0.updateValue(channel, forKey: hello.sender) }
                if let previous, previous !== channel {
                    logger.info("closing the older inbound connection of a peer that dialed again")
                    previous.close(promise: nil)
                }
            }
        }
        guard case .established(let peer) = phase else { return }
        let limits = shared.limits
        let batch = cumulation.withUnsafeReadableBytes { PeerFrameCodec.decodeFrames(from: $0, limits: limits) }
        cumulation.moveReaderIndex(forwardBy: batch.consumed)
        accept(batch.envelopes, from: peer)
        if let reason = batch.invalidReason {
            deliver()
            reject(context: context, reason: "invalid frame from \(peer): \(reason)")
            return
        }
        compact()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        deliver()
    }

    func channelInactive(context: ChannelHandlerContext) {
        deliver()
        if case .established(let peer) = phase {
            let channel = context.channel
            shared.connectionByPeer.withLockedValue { connections in
                if let current = connections[peer], current === channel { connections[peer] = nil }
            }
        }
        phase = .closed
        cumulation = ByteBuffer()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Usually a peer that went away (connection reset): not a protocol violation.
        logger.debug("inbound peer connection failed", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }

    // MARK: - Helpers

    /// Keeps the envelopes a connection from `peer` may carry; logs and counts the others.
    private func accept(_ envelopes: [Envelope], from peer: NodeID) {
        var misaddressed = 0
        for envelope in envelopes {
            if envelope.from == peer && envelope.to == shared.localID {
                received.append(envelope)
            } else {
                misaddressed += 1
                if misaddressed == 1 {
                    logger.warning(
                        "dropping misaddressed peer message",
                        metadata: ["from": "\(envelope.from)", "to": "\(envelope.to)", "kind": "\(envelope.message.kind)"])
                }
            }
        }
        if misaddressed > 0 {
            shared.counters.withLockedValue { $0.misaddressedEnvelopes += UInt64(misaddressed) }
        }
    }

    private func deliver() {
        guard !received.isEmpty else { return }
        let batch = received
        received = []
        shared.counters.withLockedValue { $0.receivedEnvelopes += UInt64(batch.count) }
        shared.onReceive(batch)
    }

    private func reject(context: ChannelHandlerContext, reason: String) {
        if case .closed = phase { return }
        phase = .closed
        cumulation = ByteBuffer()
        shared.counters.withLockedValue { $0.rejectedConnections += 1 }
        logger.warning("closing inbound peer connection", metadata: ["reason": "\(reason)"])
        context.close(promise: nil)
    }

    /// Drops consumed bytes so a long-lived connection does not keep (or keep growing) a
    /// large buffer: released when empty, compacted when mostly consumed.
    private func compact() {
        if cumulation.readableBytes == 0 {
            cumulation = ByteBuffer()
        } else if cumulation.readerIndex >= 1 << 16 && cumulation.readerIndex >= cumulation.readableBytes {
            cumulation.discardReadBytes()
        }
    }
}
