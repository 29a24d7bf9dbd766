import NIOCore

/// The proxy's shared state: which links are cut or degraded, which connections are open.
/// Every method is thread-safe; channels are closed outside the lock.
final class ProxyNetworkRegistry: Sendable {
    struct Connection {
        var link: ProxyNetworkLink
        var inbound: Channel
        var outbound: Channel?
    }

    /// What the forwarding handler must do with a chunk on a link right now.
    struct Policy {
        var cut: Bool
        var degradation: ProxyNetworkDegradation?
    }

    private struct State {
        var nodeCount = 0
        var cuts: Set<ProxyNetworkLink> = []
        var degradations: [Int: ProxyNetworkDegradation] = [:]
        var connections: [Int: Connection] = [:]
        var nextConnectionID = 0
        var statistics: [ProxyNetworkLink: ProxyLinkStatistics] = [:]
        var invalidHellos = 0
        var closed = false
        /// Peer ids (hello senders) of nodes added at run time -> node index.
        var joinedSenders: [UInt32: Int] = [:]
        /// The node about to join whose peer id is not known yet.
        var pendingJoin: Int?
        /// The lowest index of a node added at run time: senders with ids up to it are the
        /// original nodes (id = index + 1).
        var firstJoinIndex: Int?
        /// Hellos from a sender no node index is known for (forwarded, never cut).
        var unmappedSenders = 0
    }

    private let state = ProxyNetworkLockedBox(State())

    var nodeCount: Int {
        state.withLockedValue { $0.nodeCount }
    }

    func setNodeCount(_ count: Int) {
        state.withLockedValue { $0.nodeCount = count }
    }

    /// Node `index` is about to join with a peer id nobody knows yet: the first hello from an
    /// unknown sender id above every known one is taken to be its (peer ids are handed out in
    /// increasing order and never reused, and the harness adds one member at a time).
    func expectJoin(node index: Int) {
        state.withLockedValue { state in
            state.pendingJoin = index
            state.firstJoinIndex = min(state.firstJoinIndex ?? index, index)
        }
    }

    /// The node index that sends hellos as peer `sender`. Once nodes join at run time, a sender
    /// it cannot place gets -1 (forwarded, never cut: a joining node may use an id before the
    /// proxy learns it); before that an unknown sender is nil (refused as an invalid hello).
    func senderIndex(_ sender: UInt32) -> Int? {
        state.withLockedValue { state in
            if let index = state.joinedSenders[sender] { return index }
            let originals = state.firstJoinIndex ?? state.nodeCount
            if sender >= 1, Int(sender) <= originals { return Int(sender) - 1 }
            let highestKnown = max(UInt32(originals), state.joinedSenders.keys.max() ?? 0)
            if let pending = state.pendingJoin, sender > highestKnown {
                state.joinedSenders[sender] = pending
                state.pendingJoin = nil
                return pending
            }
            guard state.firstJoinIndex != nil else { return nil }
            state.unmappedSenders += 1
            return -1
        }
    }

    var unmappedSenders: Int {
        state.withLockedValue { $0.unmappedSenders }
    }

    /// Registers a connection on `link` unless the link is cut (or the proxy torn down);
    /// returns its id, or nil when the connection must be closed.
    func register(link: ProxyNetworkLink, inbound: Channel) -> Int? {
        state.withLockedValue { state in
            if state.closed || state.cuts.contains(link) {
                state.statistics[link, default: ProxyLinkStatistics()].connectionsRefused += 1
                return nil
            }
            let id = state.nextConnectionID
            state.nextConnectionID += 1
            state.connections[id] = Connection(link: link, inbound: inbound, outbound: nil)
            state.statistics[link, default: ProxyLinkStatistics()].connectionsForwarded += 1
            return id
        }
    }

    /// Records the connection to the destination node; false when the connection was closed
    /// meanwhile (the caller closes `outbound`).
    func attach(id: Int, outbound: Channel) -> Bool {
        state.withLockedValue { state in
            guard state.connections[id] != nil else { return false }
            state.connections[id]?.outbound = outbound
            return true
        }
    }

    func unregister(id: Int) {
        _ = state.withLockedValue { $0.connections.removeValue(forKey: id) }
    }

    func policy(for link: ProxyNetworkLink) -> Policy {
        state.withLockedValue { state in
            Policy(cut: state.closed || state.cuts.contains(link), degradation: state.degradations[link.from])
        }
    }

    func noteForwarded(bytes: Int, on link: ProxyNetworkLink) {
        state.withLockedValue { $0.statistics[link, default: ProxyLinkStatistics()].bytesForwarded += bytes }
    }

    func noteLost(on link: ProxyNetworkLink) {
        state.withLockedValue { $0.statistics[link, default: ProxyLinkStatistics()].connectionsLost += 1 }
    }

    func noteInvalidHello() {
        state.withLockedValue { $0.invalidHellos += 1 }
    }

    /// Cuts `link` and returns the channels of its open connections (to be closed).
    func cut(_ link: ProxyNetworkLink) -> [Channel] {
        state.withLockedValue { state in
            state.cuts.insert(link)
            var channels: [Channel] = []
            for (id, connection) in state.connections where connection.link == link {
                channels.append(connection.inbound)
                if let outbound = connection.outbound { channels.append(outbound) }
                state.connections.removeValue(forKey: id)
                state.statistics[link, default: ProxyLinkStatistics()].connectionsCut += 1
            }
            return channels
        }
    }

    func degrade(node: Int, _ degradation: ProxyNetworkDegradation) {
        state.withLockedValue { $0.degradations[node] = degradation }
    }

    func heal() {
        state.withLockedValue { state in
            state.cuts.removeAll()
            state.degradations.removeAll()
        }
    }

    /// Marks the proxy closed and returns every open connection's channels; nil when it was
    /// already closed.
    func close() -> [Channel]? {
        state.withLockedValue { state in
            if state.closed { return nil }
            state.closed = true
            var channels: [Channel] = []
            for connection in state.connections.values {
                channels.append(connection.inbound)
                if let outbound = connection.outbound { channels.append(outbound) }
            }
            state.connections.removeAll()
            return channels
        }
    }

    var isClosed: Bool {
        state.withLockedValue { $0.closed }
    }

    func linkStatistics() -> [ProxyNetworkLink: ProxyLinkStatistics] {
        state.withLockedValue { $0.statistics }
    }

    var invalidHellos: Int {
        state.withLockedValue { $0.invalidHellos }
    }

    var openConnections: Int {
        state.withLockedValue { $0.connections.count }
    }
}
