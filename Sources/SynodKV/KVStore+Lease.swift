extension KVStore {
    /// etcd `LeaseGrant` with the id the leader chose (it resolves a client's id 0 before
    /// proposing). Granting takes no revision: leases are not part of the key space.
    public mutating func leaseGrant(id: Int64, ttlSeconds: Int64) throws(KVError) -> Int64 {
        // etcd's lessor treats id 0 as "no lease".
        if id == 0 { throw .leaseNotFound }
        if ttlSeconds > Self.leaseTTLSecondsMax { throw .leaseTTLTooLarge }
        if leases[id] != nil { throw .leaseExists }
        leases[id] = LeaseState(ttlSeconds: ttlSeconds)
        return revision
    }

    /// etcd `LeaseRevoke` (also how the leader's expiry decision arrives): deletes every
    /// attached key in one revision, in key order so every replica writes the same history.
    public mutating func leaseRevoke(id: Int64) throws(KVError) -> (revision: Int64, events: [WatchEvent]) {
        guard let lease = leases[id] else { throw .leaseNotFound }
        var write = Write(after: revision)
        for key in lease.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            if let previous = live(key, at: revision) { deleteKey(previous, &write) }
        }
        leases[id] = nil
        let events = commit(write)
        return (revision, events)
    }

    /// The keys attached to lease `id` in key order, nil if there is no such lease (what the
    /// auth checks of a lease revoke, a put with a lease and a LeaseTimeToLive look at).
    public func attachedKeys(lease id: Int64) -> [[UInt8]]? {
        leases[id]?.keys.sorted { $0.lexicographicallyPrecedes($1) }
    }

    /// Every lease id, ascending (etcd `LeaseLeases`).
    public var leaseIDs: [Int64] { leases.keys.sorted() }

    /// The replicated part of etcd `LeaseTimeToLive`: the granted TTL and attached keys.
    public func leaseInfo(id: Int64) throws(KVError) -> LeaseInfo {
        guard let lease = leases[id] else { throw .leaseNotFound }
        let keys = lease.keys.sorted { $0.lexicographicallyPrecedes($1) }
        return LeaseInfo(id: id, grantedTTL: lease.ttlSeconds, keys: keys)
    }
}
