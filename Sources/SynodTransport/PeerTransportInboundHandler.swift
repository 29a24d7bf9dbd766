import Logging
import NIOConcurrencyHelpers
import NIOCore
import SynodCore

/// What every inbound connection of a transport shares: its identity, the limits, the
/// callbacks, the members and the counters.
struct PeerTransportInboundContext: Sendable {
    let localID: NodeID
    let clusterID: UInt64
    let limits: PeerCodecLimits
    let logger: Logger
    let onReceive: @Sendable ([Envelope]) -> Void
    let onDiscovery: (@Sendable (String) -> [UInt8]?)?
    let counters: NIOLockedValueBox<PeerInboundStatistics>
    let membership: NIOLockedValueBox<PeerInboundMembership>
}

/// Who may dial this node, and their connections. One lock for both, so a hello accepted
/// concurrently with `PeerTransport.setPeers` removing its sender is either refused or
/// registered before the removal closes it: never left open.
struct PeerInboundMembership: Sendable {
    /// The NodeIDs allowed to dial (the other members; never `localID`).
    var knownPeers: Set<NodeID> = []
    /// The current inbound connection of each peer. A peer dials one connection at a time,
    /// so a newer one replaces (closes) the older: this reclaims connections whose dialer
    /// died without closing them (a crashed machine sends no FIN).
    var connectionByPeer: [NodeID: any Channel] = [:]
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
    /// Discovery requests answered, with a payload or a refusal.
    public var discoveryRequests: UInt64 = 0

    public init() {}
}

/// Reads one inbound peer connection: the hello, then frames, delivered to `onReceive` once
/// per read batch. Any protocol violation closes this connection (and only it) with a
/// warning giving the reason. A connection opened by a discovery request instead gets one
/// reply (see `PeerDiscovery`) and is closed.
///
/// - Important: Lives on its channel's event loop, like every NIO handler; it is not Sendable
///   and is only touched from `channelRead` & co. `onReceive` runs on that event loop too.
final class PeerTransportInboundHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private enum Phase {
        case awaitingHello
        case established(peer: NodeID)
        /// The discovery reply is written; the connection closes after it.
        case answeredDiscovery
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
        switch phase {
        case .closed, .answeredDiscovery: return
        case .awaitingHello, .established: break
        }
        if cumulation.readableBytes == 0 {
            cumulation = incoming
        } else {
            cumulation.writeBuffer(&incoming)
        }
        if case .awaitingHello = phase {
            if cumulation.withUnsafeReadableBytes({ PeerDiscovery.isRequestPrefix($0) }) {
                answerDiscovery(context: context)
                return
            }
            let result = cumulation.withUnsafeReadableBytes { PeerHello.decode(from: $0) }
            switch result {
            case .needMoreBytes:
                return
            case .invalid(let reason):
                reject(context: context, reason: reason)
                return
            case .hello(let hello):
                let channel = context.channel
                let (clusterID, localID) = (shared.clusterID, shared.localID)
                let checked = shared.membership.withLockedValue { membership -> Result<(any Channel)?, HelloRefused> in
                    if let reason = hello.rejectionReason(
                        clusterID: clusterID, localID: localID, knownPeers: membership.knownPeers)
                    {
                        return .failure(HelloRefused(reason: reason))
                    }
                    return .success(membership.connectionByPeer.updateValue(channel, forKey: hello.sender))
                }
                let previous: (any Channel)?
                switch checked {
                case .failure(let refused):
                    reject(context: context, reason: "hello from \(hello.sender) refused: \(refused.reason)")
                    return
                case .success(let older):
                    previous = older
                }
                cumulation.moveReaderIndex(forwardBy: PeerHello.encodedLength)
                phase = .established(peer: hello.sender)
                logger[metadataKey: "peer"] = "\(hello.sender)"
                shared.counters.withLockedValue { $0.acceptedConnections += 1 }
                logger.debug("inbound peer connection accepted")
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
            shared.membership.withLockedValue { membership in
                if let current = membership.connectionByPeer[peer], current === channel {
                    membership.connectionByPeer[peer] = nil
                }
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

    /// Answers the discovery request in `cumulation` once it is complete, then closes.
    private func answerDiscovery(context: ChannelHandlerContext) {
        let result = cumulation.withUnsafeReadableBytes { PeerDiscovery.decodeRequest(from: $0) }
        let peerURL: String
        switch result {
        case .needMoreBytes: return
        case .invalid(let reason):
            reject(context: context, reason: reason)
            return
        case .request(let url, _):
            peerURL = url
        }
        phase = .answeredDiscovery
        cumulation = ByteBuffer()
        let reply: PeerDiscoveryReply
        if let onDiscovery = shared.onDiscovery {
            if let payload = onDiscovery(peerURL) {
                if payload.count <= shared.limits.frameBytesMax {
                    reply = .known(payload: payload)
                } else {
                    // A server bug, not the requester's: say so on both ends.
                    logger.error(
                        "discovery reply over the peer codec limits",
                        metadata: ["bytes": "\(payload.count)", "frame-bytes-max": "\(shared.limits.frameBytesMax)"])
                    reply = .refused(reason: "the discovery reply of \(payload.count) bytes exceeds the limit \(shared.limits.frameBytesMax)")
                }
            } else {
                reply = .refused(reason: "peer does not know \(peerURL)")
            }
        } else {
            reply = .refused(reason: "this member does not answer discovery requests")
        }
        shared.counters.withLockedValue { $0.discoveryRequests += 1 }
        switch reply {
        case .known: logger.info("answering a discovery request", metadata: ["peer-url": "\(peerURL)"])
        case .refused(let reason):
            logger.warning("refusing a discovery request", metadata: ["peer-url": "\(peerURL)", "reason": "\(reason)"])
        }
        let channel = context.channel
        channel.writeAndFlush(channel.allocator.buffer(bytes: PeerDiscovery.encodeReply(reply))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }

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
        switch phase {
        case .closed, .answeredDiscovery: return
        case .awaitingHello, .established: break
        }
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

/// Why `PeerHello.rejectionReason` refused a hello, carried out of the membership lock.
private struct HelloRefused: Error {
    let reason: String
}
