/// Permission checks, pure functions of the auth state: the state machine runs them when a
/// write applies, the server before serving a read or opening a watch. Each `check…` answers
/// nil when the request may proceed (always, while auth is disabled), else etcd's error.
///
/// A caller is named by `user` (empty: the request carried no credentials) and
/// `authRevision`, the auth revision its token was issued or last verified at (0: none).
extension AuthStore {
    // MARK: - Coverage

    /// Whether `user` may access every key of `key`/`rangeEnd` (etcd's convention: empty
    /// `rangeEnd` is the single key, `[0]` every key `>= key`) with `type` (`.readWrite`: both).
    ///
    /// A user with the role `root` may access everything; otherwise the range must be covered
    /// by the union of the permissions of a matching type over all the user's roles (several
    /// adjacent or overlapping permissions may cover it together). An unknown user, an empty
    /// single key and an empty range (`rangeEnd <= key`) are never permitted. Ignores whether
    /// auth is enabled.
    public func isPermitted(user: String, key: [UInt8], rangeEnd: [UInt8], type: AuthPermission.PermissionType) -> Bool {
        guard let account = users[user] else { return false }
        if account.roles.contains(Self.rootName) { return true }
        if type == .readWrite {
            return isPermitted(user: user, key: key, rangeEnd: rangeEnd, type: .read)
                && isPermitted(user: user, key: key, rangeEnd: rangeEnd, type: .write)
        }
        guard let wanted = Span(key: key, rangeEnd: rangeEnd) else { return false }
        var granted: [Span] = []
        for roleName in account.roles {
            guard let role = roles[roleName] else { continue }
            for permission in role.permissions where permission.type.allows(type) {
                if let span = Span(key: permission.key, rangeEnd: permission.rangeEnd) { granted.append(span) }
            }
        }
        return Span.union(of: granted, covers: wanted)
    }

    /// A non-empty half-open interval of keys `[lower, upper)`; `upper == nil`: unbounded.
    struct Span {
        var lower: [UInt8]
        var upper: [UInt8]?

        /// etcd's key/rangeEnd convention as an interval: a single key `k` is `[k, k + "\0")`
        /// (no key lies strictly between the two). Nil for an empty single key and an empty
        /// interval. An interval starting at the empty key starts at `"\0"`, the smallest key.
        init?(key: [UInt8], rangeEnd: [UInt8]) {
            if rangeEnd.isEmpty {
                if key.isEmpty { return nil }
                lower = key
                upper = key + [0]
                return
            }
            lower = key.isEmpty ? [0] : key
            upper = rangeEnd == [0] ? nil : rangeEnd
            if let upper, !lower.lexicographicallyPrecedes(upper) { return nil }
        }

        /// Whether the union of `spans` covers all of `wanted`: a sweep from `wanted.lower`
        /// over the spans in order of their lower bounds, stopping at the first gap.
        static func union(of spans: [Span], covers wanted: Span) -> Bool {
            var reached = wanted.lower // every key in [wanted.lower, reached) is covered
            for span in spans.sorted(by: { $0.lower.lexicographicallyPrecedes($1.lower) }) {
                if let end = wanted.upper, !reached.lexicographicallyPrecedes(end) { return true }
                // No later span starts at or below `reached`: the key `reached` is not covered.
                if reached.lexicographicallyPrecedes(span.lower) { return false }
                guard let upper = span.upper else { return true }
                if reached.lexicographicallyPrecedes(upper) { reached = upper }
            }
            guard let end = wanted.upper else { return false }
            return !reached.lexicographicallyPrecedes(end)
        }
    }

    // MARK: - Caller checks

    /// etcd `isOpPermitted`: no credentials → user name is empty; a token older than the
    /// auth revision → revision of auth store is old; an unknown user or a range not covered
    /// → permission denied.
    public func checkAccess(user: String, authRevision: UInt64, key: [UInt8], rangeEnd: [UInt8],
                            type: AuthPermission.PermissionType) -> KVError? {
        guard enabled else { return nil }
        if user.isEmpty || authRevision == 0 { return .userEmpty }
        if authRevision < revision { return .authOldRevision }
        guard users[user] != nil else { return .permissionDenied }
        return isPermitted(user: user, key: key, rangeEnd: rangeEnd, type: type) ? nil : .permissionDenied
    }

    /// etcd `IsAdminPermitted`: auth management, cluster and maintenance requests need the
    /// role `root` (no revision check, as etcd).
    public func checkAdmin(user: String) -> KVError? {
        guard enabled else { return nil }
        if user.isEmpty { return .userEmpty }
        guard let account = users[user] else { return .userNotFound }
        return account.roles.contains(Self.rootName) ? nil : .permissionDenied
    }

    /// etcd `requireAuthInfo`: any authenticated caller (LeaseGrant, LeaseRevoke and
    /// LeaseTimeToLive must carry credentials while auth is enabled).
    public func checkAuthenticated(user: String) -> KVError? {
        guard enabled else { return nil }
        return user.isEmpty ? .userEmpty : nil
    }

    /// Range: READ on the range.
    public func checkRange(user: String, authRevision: UInt64, _ request: RangeRequest) -> KVError? {
        AuthChecker(store: self, user: user, authRevision: authRevision).range(request)
    }

    /// Put: WRITE on the key; with `prevKv` READ on it too; and, when the put attaches an
    /// existing lease, WRITE on every key already attached to it (etcd `checkLeasePuts`: who
    /// could not revoke the lease may not attach keys to it). `leaseKeys(id)`: the keys
    /// attached to lease `id`, nil if there is no such lease.
    public func checkPut(user: String, authRevision: UInt64, _ request: PutRequest,
                         leaseKeys: (Int64) -> [[UInt8]]?) -> KVError? {
        withoutActuallyEscaping(leaseKeys) { leaseKeys in
            AuthChecker(store: self, user: user, authRevision: authRevision, leaseKeys: leaseKeys).put(request)
        }
    }

    /// DeleteRange: WRITE on the range; with `prevKv` READ on it too.
    public func checkDeleteRange(user: String, authRevision: UInt64, _ request: DeleteRangeRequest) -> KVError? {
        AuthChecker(store: self, user: user, authRevision: authRevision).deleteRange(request)
    }

    /// Txn: READ on every compare's range, and every operation of both branches (whichever
    /// is taken) checked as its own request, nested txns included.
    public func checkTxn(user: String, authRevision: UInt64, _ request: TxnRequest,
                         leaseKeys: (Int64) -> [[UInt8]]?) -> KVError? {
        withoutActuallyEscaping(leaseKeys) { leaseKeys in
            AuthChecker(store: self, user: user, authRevision: authRevision, leaseKeys: leaseKeys).txn(request)
        }
    }

    /// Watch: READ on the watched range.
    public func checkWatch(user: String, authRevision: UInt64, key: [UInt8], rangeEnd: [UInt8]) -> KVError? {
        AuthChecker(store: self, user: user, authRevision: authRevision).watch(key: key, rangeEnd: rangeEnd)
    }

    /// LeaseRevoke by a client: WRITE on every key attached to the lease (`attachedKeys`, nil
    /// for an unknown lease), unless the caller is root. Lease expiry is the cluster's own
    /// revoke and is not checked.
    public func checkLeaseRevoke(user: String, authRevision: UInt64, attachedKeys: [[UInt8]]?) -> KVError? {
        if let error = checkAuthenticated(user: user) { return error }
        return AuthChecker(store: self, user: user, authRevision: authRevision).leasePuts(attachedKeys)
    }

    /// LeaseTimeToLive: credentials; with `keys` requested, READ on every attached key
    /// (`attachedKeys`) unless the caller is root (etcd `checkLeaseTimeToLive`).
    public func checkLeaseTimeToLive(user: String, authRevision: UInt64, keysRequested: Bool,
                                     attachedKeys: [[UInt8]]?) -> KVError? {
        if let error = checkAuthenticated(user: user) { return error }
        guard keysRequested else { return nil }
        return AuthChecker(store: self, user: user, authRevision: authRevision).leaseKeysRead(attachedKeys)
    }

    /// LeaseGrant (and LeaseLeases): credentials only.
    public func checkLeaseGrant(user: String) -> KVError? {
        checkAuthenticated(user: user)
    }

    /// Compaction: etcd 3.4 (and later) checks nothing, not even credentials; kept as an entry
    /// point so the server has one per request kind.
    public func checkCompact(user: String, authRevision: UInt64) -> KVError? {
        nil
    }
}

/// One check of a request, named so tests can switch exactly one off (`AuthChecker.skipping`)
/// and show that the request would then have passed.
enum AuthCheck: Hashable, Sendable, CaseIterable {
    case rangeRead
    case putWrite
    case putPrevKvRead
    case putLeaseKeysWrite
    case deleteWrite
    case deletePrevKvRead
    case txnCompareRead
    case txnSuccessOps
    case txnFailureOps
    case txnNested
    case watchRead
    case leaseRevokeKeysWrite
    case leaseTimeToLiveKeysRead
    case admin
    /// A client write with no credentials while auth is enabled (`KVStateMachine`).
    case credentials
}

/// The checks of one caller's request; `skipping` is for tests only.
struct AuthChecker {
    var store: AuthStore
    var user: String
    var authRevision: UInt64
    var skipping: Set<AuthCheck> = []
    var leaseKeys: (Int64) -> [[UInt8]]? = { _ in nil }

    func access(_ check: AuthCheck, _ key: [UInt8], _ rangeEnd: [UInt8], _ type: AuthPermission.PermissionType) -> KVError? {
        if skipping.contains(check) { return nil }
        return store.checkAccess(user: user, authRevision: authRevision, key: key, rangeEnd: rangeEnd, type: type)
    }

    func admin() -> KVError? {
        skipping.contains(.admin) ? nil : store.checkAdmin(user: user)
    }

    func range(_ request: RangeRequest) -> KVError? {
        access(.rangeRead, request.key, request.rangeEnd, .read)
    }

    /// etcd `checkPutAuth`.
    func put(_ request: PutRequest) -> KVError? {
        if let error = access(.putWrite, request.key, [], .write) { return error }
        if let error = leasePuts(leaseKeys(request.lease), check: .putLeaseKeysWrite) { return error }
        if request.prevKv, let error = access(.putPrevKvRead, request.key, [], .read) { return error }
        return nil
    }

    func deleteRange(_ request: DeleteRangeRequest) -> KVError? {
        if let error = access(.deleteWrite, request.key, request.rangeEnd, .write) { return error }
        if request.prevKv, let error = access(.deletePrevKvRead, request.key, request.rangeEnd, .read) { return error }
        return nil
    }

    /// etcd `checkTxnAuth`: both branches whatever the compares decide, recursively.
    func txn(_ request: TxnRequest) -> KVError? {
        for compare in request.compare {
            if let error = access(.txnCompareRead, compare.key, compare.rangeEnd, .read) { return error }
        }
        if !skipping.contains(.txnSuccessOps), let error = ops(request.success) { return error }
        if !skipping.contains(.txnFailureOps), let error = ops(request.failure) { return error }
        return nil
    }

    private func ops(_ ops: [RequestOp]) -> KVError? {
        for op in ops {
            let error: KVError?
            switch op {
            case .range(let range): error = self.range(range)
            case .put(let put): error = self.put(put)
            case .deleteRange(let delete): error = deleteRange(delete)
            case .txn(let nested): error = skipping.contains(.txnNested) ? nil : txn(nested)
            }
            if let error { return error }
        }
        return nil
    }

    func watch(key: [UInt8], rangeEnd: [UInt8]) -> KVError? {
        access(.watchRead, key, rangeEnd, .read)
    }

    /// etcd `checkLeasePuts`: root may; otherwise WRITE on each attached key.
    func leasePuts(_ attachedKeys: [[UInt8]]?, check: AuthCheck = .leaseRevokeKeysWrite) -> KVError? {
        guard let attachedKeys, !skipping.contains(check) else { return nil }
        if store.checkAdmin(user: user) == nil { return nil }
        for key in attachedKeys {
            if let error = store.checkAccess(user: user, authRevision: authRevision, key: key, rangeEnd: [], type: .write) {
                return error
            }
        }
        return nil
    }

    func leaseKeysRead(_ attachedKeys: [[UInt8]]?) -> KVError? {
        guard let attachedKeys, !skipping.contains(.leaseTimeToLiveKeysRead) else { return nil }
        if store.checkAdmin(user: user) == nil { return nil }
        for key in attachedKeys {
            if let error = store.checkAccess(user: user, authRevision: authRevision, key: key, rangeEnd: [], type: .read) {
                return error
            }
        }
        return nil
    }
}
