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
        /// Set when an integrity check found this replica's hash different from the proposer's.
        public var integrityMismatch: IntegrityMismatch?

        public init(outcome: Outcome, events: [WatchEvent], integrityMismatch: IntegrityMismatch? = nil) {
            self.outcome = outcome
            self.events = events
            self.integrityMismatch = integrityMismatch
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
    /// Raised alarms (etcd's Maintenance.Alarm), replicated.
    public internal(set) var alarms: Set<AlarmMember> = []
    /// This replica's hash at the last few integrity checks, oldest first (replicated: every
    /// replica records the same ids at the same log positions).
    public internal(set) var integrityRecords: [IntegrityRecord] = []
    /// How many integrity records are kept.
    public static let integrityRecordsMax = 8

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
        var mismatch: IntegrityMismatch?
        do {
            let decoded = try KVCommand(decoding: command.payload)
            if case .integrityCheck(let id, let previousID, let previousHash) = decoded {
                mismatch = applyIntegrityCheck(id: id, previousID: previousID, previousHash: previousHash)
                (result, events) = (.success(.maintenance(revision: store.revision)), [])
            } else {
                (result, events) = apply(decoded)
            }
        } catch {
            // Recorded like any result so every replica answers a retry the same way.
            (result, events) = (.failure(.malformedCommand), [])
        }
        sessions.record(command, result: result, slot: slot)
        return Output(outcome: .applied(result), events: events, integrityMismatch: mismatch)
    }

    /// Compares this replica's hash recorded at check `previousID` (if it has it: a replica
    /// that restored a later snapshot does not) with the proposer's, then records the hash at
    /// this point under `id`. Returns the mismatch, if any.
    ///
    /// Safe to replay: the records are part of the replicated state (and of snapshots), and a
    /// check only reads the records and the store's `integrityHash`, which are identical on
    /// replicas that applied identical commands.
    public mutating func applyIntegrityCheck(id: UInt64, previousID: UInt64, previousHash: UInt64) -> IntegrityMismatch? {
        var mismatch: IntegrityMismatch?
        if previousID != 0, let record = integrityRecords.last(where: { $0.id == previousID }), record.hash != previousHash {
            mismatch = IntegrityMismatch(checkID: previousID, revision: record.revision,
                                         localHash: record.hash, expectedHash: previousHash)
        }
        integrityRecords.append(IntegrityRecord(id: id, revision: store.revision, hash: store.integrityHash))
        if integrityRecords.count > Self.integrityRecordsMax {
            integrityRecords.removeFirst(integrityRecords.count - Self.integrityRecordsMax)
        }
        return mismatch
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
            case .integrityCheck(let id, let previousID, let previousHash):
                _ = applyIntegrityCheck(id: id, previousID: previousID, previousHash: previousHash)
                return (.success(.maintenance(revision: store.revision)), [])
            case .alarm(let action, let member):
                switch action {
                case .activate: alarms.insert(member)
                case .deactivate: alarms.remove(member)
                }
                return (.success(.maintenance(revision: store.revision)), [])
            }
        } catch {
            return (.failure(error), [])
        }
    }
}

/// One replica's hash at one integrity check.
public struct IntegrityRecord: Hashable, Sendable {
    public var id: UInt64
    public var revision: Int64
    public var hash: UInt64

    public init(id: UInt64, revision: Int64, hash: UInt64) {
        self.id = id
        self.revision = revision
        self.hash = hash
    }
}

/// An integrity check that failed on this replica: at check `checkID` (store revision
/// `revision`) this replica's state hashed to `localHash`, the proposer's to `expectedHash`.
public struct IntegrityMismatch: Hashable, Sendable {
    public var checkID: UInt64
    public var revision: Int64
    public var localHash: UInt64
    public var expectedHash: UInt64
}
