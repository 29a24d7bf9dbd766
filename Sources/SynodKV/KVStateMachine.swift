import SynodBytes
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
        /// Members an integrity report just found out of line with the majority (each now has
        /// the CORRUPT alarm).
        public var integrityMismatches: [IntegrityMismatch]

        public init(outcome: Outcome, events: [WatchEvent], integrityMismatches: [IntegrityMismatch] = []) {
            self.outcome = outcome
            self.events = events
            self.integrityMismatches = integrityMismatches
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
    /// Every member's reported hash for the last few checks, oldest first.
    public internal(set) var integrityReports: [IntegrityReports] = []
    /// Users, roles, permissions and whether auth is enabled (etcd's auth store), replicated.
    public internal(set) var auth = AuthStore()
    /// How many integrity records (and report sets) are kept.
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
        var mismatches: [IntegrityMismatch] = []
        do {
            let decoded = try KVCommand(decoding: command.payload)
            if case .integrityReport(let checkID, let memberID, let hash, let voters) = decoded {
                mismatches = applyIntegrityReport(checkID: checkID, memberID: memberID, hash: hash, voters: voters)
                (result, events) = (.success(.maintenance(revision: store.revision)), [])
            } else if case .integrityReportFNV(let checkID, let memberID, let hash, let voters) = decoded {
                mismatches = applyIntegrityReport(checkID: checkID, memberID: memberID, hash: hash, voters: voters,
                                                  algorithm: .fnv1a)
                (result, events) = (.success(.maintenance(revision: store.revision)), [])
            } else {
                (result, events) = apply(decoded)
            }
        } catch {
            // Recorded like any result so every replica answers a retry the same way.
            (result, events) = (.failure(.malformedCommand), [])
        }
        sessions.record(command, result: result, slot: slot)
        return Output(outcome: .applied(result), events: events, integrityMismatches: mismatches)
    }

    /// Records this replica's hash at check `id` (this point of the log). The server then
    /// reports it with `integrityReport`.
    public mutating func applyIntegrityCheck(id: UInt64) {
        integrityRecords.append(IntegrityRecord(id: id, revision: store.revision, hash: integrityHash))
        if integrityRecords.count > Self.integrityRecordsMax {
            integrityRecords.removeFirst(integrityRecords.count - Self.integrityRecordsMax)
        }
    }

    /// Adds one member's hash for check `checkID`. When more than half of `voters` reported
    /// the same hash, every member that reported a different one (now or later) is raised the
    /// CORRUPT alarm; returns the members newly alarmed.
    ///
    /// Deterministic: every replica applies the same reports in the same order, so every
    /// replica reaches the same alarms, whichever member (leader included) is the odd one.
    /// Reports of one check made with different hash algorithms (`algorithm`: a check that
    /// straddled an upgrade) are counted apart and never compared with each other.
    public mutating func applyIntegrityReport(checkID: UInt64, memberID: UInt64, hash: UInt64, voters: UInt64,
                                              algorithm: IntegrityHashAlgorithm = .current) -> [IntegrityMismatch] {
        let index: Int
        if let existing = integrityReports.firstIndex(where: { $0.checkID == checkID && $0.algorithm == algorithm }) {
            index = existing
        } else {
            integrityReports.append(IntegrityReports(checkID: checkID, hashes: [:], algorithm: algorithm))
            if integrityReports.count > Self.integrityRecordsMax {
                integrityReports.removeFirst(integrityReports.count - Self.integrityRecordsMax)
            }
            index = integrityReports.count - 1
        }
        integrityReports[index].hashes[memberID] = hash
        var votes: [UInt64: UInt64] = [:]
        for reported in integrityReports[index].hashes.values { votes[reported, default: 0] += 1 }
        guard let majority = votes.max(by: { ($0.value, $0.key) < ($1.value, $1.key) }), majority.value * 2 > voters else {
            return []
        }
        let revision = integrityRecords.last(where: { $0.id == checkID })?.revision ?? 0
        var newlyAlarmed: [IntegrityMismatch] = []
        for (member, reported) in integrityReports[index].hashes.sorted(by: { $0.key < $1.key }) where reported != majority.key {
            if alarms.insert(AlarmMember(memberID: member, alarm: .corrupt)).inserted {
                newlyAlarmed.append(IntegrityMismatch(checkID: checkID, memberID: member, revision: revision,
                                                      memberHash: reported, majorityHash: majority.key))
            }
        }
        return newlyAlarmed
    }

    /// The integrity check's state hash: the key space's (`KVStore.integrityHash`, O(1)) and,
    /// once auth has ever changed, the auth store's (O(users + roles)). A state whose auth
    /// store was never touched hashes as it did before auth existed, so members of older
    /// builds agree with this one.
    public var integrityHash: UInt64 {
        let keySpace = store.integrityHash
        if auth == AuthStore() { return keySpace }
        var writer = LittleEndianWriter()
        writer.authStore(auth)
        var hash = XXHash64()
        hash.combine(writer.bytes)
        var z = keySpace ^ (hash.value &* 0x9e37_79b9_7f4a_7c15)
        z = (z ^ (z >> 33)) &* 0xc4ce_b9fe_1a85_ec53
        return z ^ (z >> 33)
    }

    /// Applies a decoded command without session bookkeeping.
    public mutating func apply(_ command: KVCommand) -> (CommandResult, [WatchEvent]) {
        apply(command, skippingAuthChecks: [])
    }

    /// `apply(_:)`, with the auth checks in `skipping` switched off (tests show with it that
    /// each check is what refuses a request).
    mutating func apply(_ command: KVCommand, skippingAuthChecks skipping: Set<AuthCheck>) -> (CommandResult, [WatchEvent]) {
        if let error = authorizationError(command, skipping: skipping) { return (.failure(error), []) }
        let unwrapped: KVCommand
        if case .authorized(_, _, let inner) = command { unwrapped = inner } else { unwrapped = command }
        return applyAuthorized(unwrapped)
    }

    /// Why `command` may not apply now, as etcd's auth layer decides it (nil: it may).
    ///
    /// With auth disabled every command may. With auth enabled, an `authorized` command's
    /// caller is checked (`AuthStore`'s checks: keys need permissions, auth management and
    /// maintenance need root, a lease grant or revoke needs credentials, compaction needs
    /// nothing); an unwrapped client write (put, delete, txn, lease grant, auth management) has
    /// no caller and fails with "user name is empty"; the cluster's own commands (lease expiry,
    /// keep-alives, member publishing, integrity checks, alarms) and compaction pass.
    ///
    /// The server may call this before proposing to fail early; the decision that counts is
    /// the one made when the command applies.
    public func authorizationError(for command: KVCommand) -> KVError? {
        authorizationError(command, skipping: [])
    }

    func authorizationError(_ command: KVCommand, skipping: Set<AuthCheck>) -> KVError? {
        guard auth.enabled else {
            if case .authorized(_, _, .authorized) = command { return .malformedCommand }
            return nil
        }
        switch command {
        case .put, .deleteRange, .txn, .leaseGrant, .auth:
            return skipping.contains(.credentials) ? nil : .userEmpty
        case .compact, .leaseRevoke, .leaseKeepAlive, .publishMember, .integrityCheck, .integrityReport,
             .integrityReportFNV, .alarm:
            return nil
        case .authorized(let user, let authRevision, let inner):
            let checker = AuthChecker(store: auth, user: user, authRevision: authRevision, skipping: skipping,
                                      leaseKeys: { [store] id in store.attachedKeys(lease: id) })
            switch inner {
            case .put(let request): return checker.put(request)
            case .deleteRange(let request): return checker.deleteRange(request)
            case .txn(let request): return checker.txn(request)
            case .compact: return auth.checkCompact(user: user, authRevision: authRevision)
            case .leaseGrant: return auth.checkLeaseGrant(user: user)
            case .leaseRevoke(let id):
                if let error = auth.checkAuthenticated(user: user) { return error }
                return checker.leasePuts(store.attachedKeys(lease: id))
            case .leaseKeepAlive: return nil
            case .auth, .publishMember, .integrityCheck, .integrityReport, .integrityReportFNV, .alarm:
                return checker.admin()
            case .authorized: return .malformedCommand
            }
        }
    }

    /// etcd's checks of a txn served without the log (read-only), with the lease keys of this
    /// state: `AuthStore.checkTxn`.
    public func checkTxn(user: String, authRevision: UInt64, _ request: TxnRequest) -> KVError? {
        auth.checkTxn(user: user, authRevision: authRevision, request, leaseKeys: { [store] id in store.attachedKeys(lease: id) })
    }

    /// etcd's checks of LeaseTimeToLive with this state's lease keys: `AuthStore.checkLeaseTimeToLive`.
    public func checkLeaseTimeToLive(user: String, authRevision: UInt64, leaseID: Int64, keysRequested: Bool) -> KVError? {
        auth.checkLeaseTimeToLive(user: user, authRevision: authRevision, keysRequested: keysRequested,
                                  attachedKeys: store.attachedKeys(lease: leaseID))
    }

    /// Applies a command whose caller was checked (never `authorized`).
    private mutating func applyAuthorized(_ command: KVCommand) -> (CommandResult, [WatchEvent]) {
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
            case .integrityCheck(let id):
                applyIntegrityCheck(id: id)
                return (.success(.maintenance(revision: store.revision)), [])
            case .integrityReport(let checkID, let memberID, let hash, let voters):
                _ = applyIntegrityReport(checkID: checkID, memberID: memberID, hash: hash, voters: voters)
                return (.success(.maintenance(revision: store.revision)), [])
            case .integrityReportFNV(let checkID, let memberID, let hash, let voters):
                _ = applyIntegrityReport(checkID: checkID, memberID: memberID, hash: hash, voters: voters, algorithm: .fnv1a)
                return (.success(.maintenance(revision: store.revision)), [])
            case .alarm(let action, let member):
                switch action {
                case .activate: alarms.insert(member)
                case .deactivate: alarms.remove(member)
                }
                return (.success(.maintenance(revision: store.revision)), [])
            case .auth(let change):
                try auth.apply(change)
                return (.success(.auth(revision: store.revision)), [])
            case .authorized:
                return (.failure(.malformedCommand), [])
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

/// All members' reported hashes for one check.
public struct IntegrityReports: Hashable, Sendable {
    public var checkID: UInt64
    /// Member id -> reported hash.
    public var hashes: [UInt64: UInt64]
    /// The algorithm behind every hash in `hashes`.
    public var algorithm: IntegrityHashAlgorithm

    public init(checkID: UInt64, hashes: [UInt64: UInt64], algorithm: IntegrityHashAlgorithm = .current) {
        self.checkID = checkID
        self.hashes = hashes
        self.algorithm = algorithm
    }
}

/// How a state hash for the integrity check (`KVStore.integrityHash`) was computed. Hashes of
/// different algorithms are never compared: a member that reported with one and a member
/// that reported with the other are not out of line with each other.
public enum IntegrityHashAlgorithm: UInt8, Hashable, Sendable {
    /// FNV-1a over each live key's state (snapshot format 3 and earlier, report tag 10).
    case fnv1a = 0
    /// XXH64 over each live key's state (snapshot format 4, report tag 11).
    case xxh64 = 1

    /// What this build computes.
    public static let current = IntegrityHashAlgorithm.xxh64
}

/// A member whose state hash at check `checkID` (store revision `revision`, 0 if this replica
/// has no record of the check) differs from the majority's.
public struct IntegrityMismatch: Hashable, Sendable {
    public var checkID: UInt64
    public var memberID: UInt64
    public var revision: Int64
    public var memberHash: UInt64
    public var majorityHash: UInt64
}
