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
        if sessions.count > capacity, let oldest = sessions.min(by: { ($0.value.slot, $0.key) < ($1.value.slot, $1.key) }) {
            sessions.removeValue(forKey: oldest.key)
        }
    }

    /// Restores a session, e.g. when decoding a snapshot.
    public mutating func restore(clientID: UInt64, session: Session) {
        sessions[clientID] = session
    }

    /// Sessions in client-id order (deterministic, for snapshots).
    public var sortedSessions: [(clientID: UInt64, session: Session)] {
        sessions.keys.sorted().compactMap { key in sessions[key].map { (key, $0) } }
    }
}
