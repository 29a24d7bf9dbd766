import SynodCore

/// The replicated state machine: the key space plus the session table, fed committed
/// commands in slot order. Deterministic: replicas fed the same commands reach the same state.
public struct KVStateMachine: Hashable, Sendable {
    /// The result remembered per client for exactly-once application.
    public typealias CommandResult = Result<KVResponse, KVError>

    /// What became of one command.
    public enum Outcome: Hashable, Sendable {
        /// Applied now (successfully or with an etcd error that left the store unchanged).
        case applied(CommandResult)
        /// Applied before: this is the recorded result; nothing changed.
        case duplicate(CommandResult)
        /// Older than the client's last applied command; the client has moved on. Nothing changed.
        case stale
    }

    /// The outcome plus the watch events the command produced (empty unless newly applied).
    public struct Output: Hashable, Sendable {
        /// What became of the command.
        public var outcome: Outcome
        /// Watch events in (revision, sub-revision) order, for the server to fan out.
        public var events: [WatchEvent]

        public init(outcome: Outcome, events: [WatchEvent]) {
            self.outcome = outcome
            self.events = events
        }
    }

    /// The key space; the server serves reads from it.
    public internal(set) var store: KVStore
    /// Last result per client, for exactly-once application.
    public internal(set) var sessions: SessionTable<CommandResult>
    /// Members' published names and client URLs, by etcd member id.
    public internal(set) var members: [UInt64: MemberAttributes] = [:]
    /// The highest slot applied so far (0 before any).
    public internal(set) var appliedSlot: Slot = 0

    public init(sessionCapacity: Int = 100_000) {
        store = KVStore()
        sessions = SessionTable(capacity: sessionCapacity)
    }

    /// Applies one committed command exactly once per `(clientID, sequence)`.
    ///
    /// - Important: call in slot order, every command of every slot, on every replica.
    public mutating func apply(_ command: Command, slot: Slot) -> Output {
        appliedSlot = max(appliedSlot, slot)
        switch sessions.decide(command) {
        case .duplicate(let result): return Output(outcome: .duplicate(result), events: [])
        case .stale: return Output(outcome: .stale, events: [])
        case .apply: break
        }
        let result: CommandResult
        let events: [WatchEvent]
        do {
            let decoded = try KVCommand(decoding: command.payload)
            (result, events) = apply(decoded)
        } catch {
            // Recorded like any result so every replica answers a retry the same way.
            (result, events) = (.failure(.malformedCommand), [])
        }
        sessions.record(command, result: result, slot: slot)
        return Output(outcome: .applied(result), events: events)
    }

    /// Applies a decoded command without session bookkeeping.
    public mutating func apply(_ command: KVCommand) -> (CommandResult, [WatchEvent]) {
        do throws(KVError) {
            switch command {
            case .put(let request):
                let (response, events) = try store.put(request)
                return (.success(.put(response)), events)
            case .deleteRange(let request):
                let (response, events) = try store.deleteRange(request)
                return (.success(.deleteRange(response)), events)
            case .txn(let request):
                let (response, events) = try store.txn(request)
                return (.success(.txn(response)), events)
            case .compact(let revision):
                return (.success(.compact(revision: try store.compact(revision: revision))), [])
            case .leaseGrant(let id, let ttl):
                let revision = try store.leaseGrant(id: id, ttlSeconds: ttl)
                return (.success(.leaseGrant(id: id, ttlSeconds: ttl, revision: revision)), [])
            case .leaseRevoke(let id):
                let (revision, events) = try store.leaseRevoke(id: id)
                return (.success(.leaseRevoke(revision: revision)), events)
            case .leaseKeepAlive(let id):
                let info = try store.leaseInfo(id: id)
                return (.success(.leaseKeepAlive(id: id, ttlSeconds: info.grantedTTL, revision: store.revision)), [])
            case .publishMember(let memberID, let attributes):
                members[memberID] = attributes
                return (.success(.publishMember(revision: store.revision)), [])
            }
        } catch {
            return (.failure(error), [])
        }
    }
}
