import Foundation

/// A value guarded by a lock, for the network layers' shared state (usable from any thread).
final class ProxyNetworkLockedBox<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) {
        self.value = value
    }

    func withLockedValue<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}

/// A directed link between two nodes (0-based indices).
struct ProxyNetworkLink: Hashable, Sendable, Comparable {
    var from: Int
    var to: Int

    static func < (lhs: ProxyNetworkLink, rhs: ProxyNetworkLink) -> Bool {
        (lhs.from, lhs.to) < (rhs.from, rhs.to)
    }

    var description: String { "n\(from + 1)->n\(to + 1)" }
}

/// How the traffic a node sends to its peers is degraded.
struct ProxyNetworkDegradation: Sendable, Hashable {
    var delayMilliseconds: Int
    var jitterMilliseconds: Int
    var lossPercent: Double
}

/// Counters for one directed link of the proxy.
public struct ProxyLinkStatistics: Sendable, Hashable {
    /// Connections accepted and forwarded.
    public var connectionsForwarded = 0
    /// Connections closed right after their hello because the link was cut.
    public var connectionsRefused = 0
    /// Existing connections closed by `cut`.
    public var connectionsCut = 0
    /// Connections closed to simulate a lost message (degrade's loss).
    public var connectionsLost = 0
    /// Bytes written towards the destination node (the hello included).
    public var bytesForwarded = 0

    public init() {}
}
