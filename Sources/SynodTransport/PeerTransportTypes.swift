import NIOCore
import SynodCore

/// Where a peer listens.
public struct PeerAddress: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// How peer connections are secured (TLS between members), supplied by the server: the
/// transport itself knows nothing of certificates.
public struct PeerSecurity: Sendable {
    /// Adds the accepting side's handlers (TLS) to an accepted connection, on its event loop,
    /// before the peer protocol's handlers.
    public var accept: @Sendable (any Channel) throws -> Void
    /// Adds the dialing side's handlers to a connection just made, on its event loop; the
    /// future succeeds once the connection is secured (the TLS handshake completed) and fails
    /// when it cannot be (a certificate the other side refused, or one this side refuses).
    public var dial: @Sendable (any Channel) -> EventLoopFuture<Void>

    public init(accept: @escaping @Sendable (any Channel) throws -> Void,
                dial: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>) {
        self.accept = accept
        self.dial = dial
    }
}

/// Why the peer transport cannot run.
public enum PeerTransportError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The peer listener could not be bound, e.g. "address already in use".
    case cannotListen(PeerAddress, reason: String)
    /// `start()` was called twice, or after `shutdown()`.
    case notStartable(reason: String)

    public var description: String {
        switch self {
        case .cannotListen(let address, let reason): "cannot listen for peers on \(address): \(reason)"
        case .notStartable(let reason): "cannot start the peer transport: \(reason)"
        }
    }
}

/// Counters of a `PeerTransport`.
public struct PeerTransportStatistics: Hashable, Sendable {
    /// Per current peer: its outbound link (the counters of a moved peer carry over; those of a
    /// removed peer are gone).
    public var peers: [NodeID: PeerLinkStatistics]
    /// All inbound connections together.
    public var inbound: PeerInboundStatistics
    /// Envelopes `send` dropped before reaching a peer: unknown or own `to`, or over the limits.
    public var unroutableEnvelopes: UInt64

    /// Envelopes dropped on the send side, for every reason.
    public var droppedEnvelopes: UInt64 {
        peers.values.reduce(unroutableEnvelopes) { $0 + $1.droppedEnvelopes }
    }
}
