/// Exactly-once application of client commands: remembers, per client, the last applied
/// sequence number and its result, so a retried command is answered from here instead of
/// being applied twice.
///
/// It is part of the replicated state: the state machine keeps it next to its data, applies
/// it in slot order on every replica, and includes it in snapshots. Eviction is by the oldest
/// last-applied slot (ties by client id), so every replica evicts the same sessions.
public struct SessionTable<Result: Hashable & Sendable>: Hashable, Sendable {
    /// One client's last applied command.
    public struct Session: Hashable, Sendable {
        public var sequence: UInt64
        public var result: Result
        /// The slot that applied it (for deterministic eviction).
        public var slot: Slot
        public init(sequence: UInt64, result: Result, slot: Slot) {
            self.sequence = sequence
            self.result = result
            self.slot = slot
        }
    }

    /// What to do with an incoming command.
    public enum Decision: Hashable, Sendable {
        /// New: apply it and `record` the result.
        case apply
        /// Already applied: answer with the recorded result, do not apply again.
        case duplicate(Result)
        /// Older than the client's last applied command: the client has moved on; ignore it.
        case stale
    }

    /// Sessions kept at most; the least recently used is forgotten beyond this.
    public let capacity: Int
    public private(set) var sessions: [UInt64: Session] = [:]
    /// Eviction order: a min-heap of (slot, client id) with lazy deletion: an entry whose slot
    /// no longer matches its client's session is skipped. O(log n) per record instead of a scan.
    private var evictionHeap: [EvictionKey] = []

    private struct EvictionKey: Hashable, Sendable, Comparable {
        var slot: Slot
        var clientID: UInt64
        static func < (lhs: Self, rhs: Self) -> Bool { (lhs.slot, lhs.clientID) < (rhs.slot, rhs.clientID) }
    }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.capacity == rhs.capacity && lhs.sessions == rhs.sessions
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(capacity)
        hasher.combine(sessions)
    }

    public init(capacity: Int = 100_000) {
        precondition(capacity >= 1, "session capacity must be positive")
        self.capacity = capacity
    }

    public func decide(_ command: Command) -> Decision {
        guard let session = sessions[command.clientID] else { return .apply }
        if command.sequence == session.sequence { return .duplicate(session.result) }
        return command.sequence < session.sequence ? .stale : .apply
    }

    public mutating func record(_ command: Command, result: Result, slot: Slot) {
        sessions[command.clientID] = Session(sequence: command.sequence, result: result, slot: slot)
        push(EvictionKey(slot: slot, clientID: command.clientID))
        while sessions.count > capacity, let oldest = popLive() {
            sessions.removeValue(forKey: oldest.clientID)
        }
        // Stale heap entries are dropped by a rebuild once they outnumber the live ones.
        if evictionHeap.count > 2 * max(sessions.count, 16) { rebuildHeap() }
    }

    private mutating func push(_ key: EvictionKey) {
        evictionHeap.append(key)
        var child = evictionHeap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard evictionHeap[child] < evictionHeap[parent] else { break }
            evictionHeap.swapAt(child, parent)
            child = parent
        }
    }

    /// Removes and returns the smallest heap entry that is still some client's current session.
    private mutating func popLive() -> EvictionKey? {
        while let top = evictionHeap.first {
            let last = evictionHeap.removeLast()
            if !evictionHeap.isEmpty {
                evictionHeap[0] = last
                var parent = 0
                while true {
                    let left = 2 * parent + 1, right = left + 1
                    var smallest = parent
                    if left < evictionHeap.count && evictionHeap[left] < evictionHeap[smallest] { smallest = left }
                    if right < evictionHeap.count && evictionHeap[right] < evictionHeap[smallest] { smallest = right }
                    if smallest == parent { break }
                    evictionHeap.swapAt(parent, smallest)
                    parent = smallest
                }
            }
            if sessions[top.clientID]?.slot == top.slot { return top }
        }
        return nil
    }

    private mutating func rebuildHeap() {
        evictionHeap = sessions.map { EvictionKey(slot: $0.value.slot, clientID: $0.key) }.sorted()
    }

    /// Restores a session, e.g. when decoding a snapshot.
    public mutating func restore(clientID: UInt64, session: Session) {
        sessions[clientID] = session
        push(EvictionKey(slot: session.slot, clientID: clientID))
    }

    /// Sessions in client-id order (deterministic, for snapshots).
    public var sortedSessions: [(clientID: UInt64, session: Session)] {
        sessions.keys.sorted().compactMap { key in sessions[key].map { (key, $0) } }
    }
}
