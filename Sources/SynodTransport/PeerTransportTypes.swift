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
