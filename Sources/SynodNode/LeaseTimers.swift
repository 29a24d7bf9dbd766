import SynodCore
import SynodKV

/// Lease expiry timers (etcd leases, not the read lease). Every replica restarts a lease's
/// timer when a grant or keep-alive for it applies; only the leader acts on expiry, by
/// proposing a revoke, so expiry is decided by one node and replicated like any write.
public struct LeaseTimers: Sendable {
    private var deadlines: [Int64: ClockTime] = [:]
    /// Leases whose revoke was proposed, with when (retried if it does not apply).
    private var revoking: [Int64: ClockTime] = [:]
    /// A proposed revoke that did not apply is proposed again after this long.
    static let revokeRetryNanoseconds: UInt64 = 2_000_000_000

    public init() {}

    /// Seconds left for `id` (rounded up), or nil if this node has no timer for it.
    public func remainingSeconds(_ id: Int64, now: ClockTime) -> Int64? {
        guard let deadline = deadlines[id] else { return nil }
        guard deadline > now else { return 0 }
        let nanos = deadline.nanoseconds - now.nanoseconds
        return Int64((nanos + 999_999_999) / 1_000_000_000)
    }

    mutating func observe(command: Command, response: KVResponse, now: ClockTime) {
        switch response {
        case .leaseGrant(let id, let ttl, _), .leaseKeepAlive(let id, let ttl, _):
            deadlines[id] = now.adding(nanoseconds: UInt64(max(0, ttl)) &* 1_000_000_000)
            revoking.removeValue(forKey: id)
        case .leaseRevoke:
            if let decoded = try? KVCommand(decoding: command.payload), case .leaseRevoke(let id) = decoded {
                deadlines.removeValue(forKey: id)
                revoking.removeValue(forKey: id)
            }
        default:
            break
        }
    }

    /// Restarts every lease's timer (a new leader does, as etcd's leader promotion does).
    mutating func resetAll(from store: KVStore, now: ClockTime) {
        var fresh: [Int64: ClockTime] = [:]
        for id in store.leaseIDs {
            if let info = try? store.leaseInfo(id: id) {
                fresh[id] = now.adding(nanoseconds: UInt64(max(0, info.grantedTTL)) &* 1_000_000_000)
            }
        }
        deadlines = fresh
        revoking.removeAll()
    }

    /// Leases past their deadline whose revoke is not in flight (marks them in flight).
    mutating func expired(now: ClockTime, store: KVStore) -> [Int64] {
        var due: [Int64] = []
        for (id, deadline) in deadlines where deadline <= now {
            if let since = revoking[id], since.adding(nanoseconds: Self.revokeRetryNanoseconds) > now { continue }
            due.append(id)
        }
        for id in due where (try? store.leaseInfo(id: id)) == nil {
            deadlines.removeValue(forKey: id)  // already gone (revoked elsewhere)
        }
        due.removeAll { deadlines[$0] == nil }
        for id in due { revoking[id] = now }
        return due.sorted()
    }
}
