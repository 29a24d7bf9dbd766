import SynodCore
import SynodKV

/// What of the membership the driver last acted on; cheap to compute and compare after
/// every step.
struct MembershipObservation: Hashable, Sendable {
    var epochs: Int
    var latestChosenAt: Slot
    var latestActiveFrom: Slot
    /// The latest membership governs the first unchosen slot already.
    var latestActive: Bool
    var peers: [NodeID]
}

/// This member in the membership: its role, who its peers are, its removal.
extension NodeDriver {
    /// The newest membership this member knows (nil while joining).
    public var latestMembership: Membership? { replica.membershipHistory?.latest }

    /// The membership governing the first unchosen slot (older than `latestMembership`
    /// while a change waits to take effect).
    public var governingMembership: Membership? { replica.membership(at: replica.chosenThrough + 1) }

    /// The member `id` in the newest membership that has it.
    public func knownMember(_ id: NodeID) -> Member? {
        guard let history = replica.membershipHistory else { return nil }
        for epoch in history.epochs.reversed() {
            if let member = epoch.membership.member(id) { return member }
        }
        return nil
    }

    public func memberName(_ id: NodeID) -> String {
        if let name = knownMember(id)?.name, !name.isEmpty { return name }
        return "node \(id)"
    }

    /// This member's role from the replica's membership. Ids are never reused, so a member
    /// missing from the latest membership whose id is below `nextNodeID` was removed; one
    /// above it has not been added in what this replica knows yet (a joiner that installed a
    /// snapshot older than its addition).
    public func computeRole() -> LocalRole {
        if removedByCluster { return .removed }
        guard let history = replica.membershipHistory else { return .joining }
        let latest = history.latest
        guard let newest = latest.member(nodeID) else {
            return nodeID.rawValue < latest.nextNodeID ? .removed : .joining
        }
        // The governing membership decides (a promotion counts once it is active); a member
        // added but not active yet takes its role in the latest one.
        let current = history.membership(at: replica.chosenThrough + 1).member(nodeID) ?? newest
        return current.isLearner ? .learner : .voter
    }

    /// After a step: acts on membership changes (role, peers, removal). Cheap when nothing changed.
    mutating func observeMembership(force: Bool = false) {
        let history = replica.membershipHistory
        let latestEpoch = history?.latestEpoch
        let observation = MembershipObservation(
            epochs: history?.epochs.count ?? 0, latestChosenAt: latestEpoch?.chosenAt ?? 0,
            latestActiveFrom: latestEpoch?.activeFrom ?? 0,
            latestActive: (latestEpoch?.activeFrom ?? 0) <= replica.chosenThrough + 1, peers: replica.peers)
        guard force || observation != observed else { return }
        let previous = observed
        observed = observation
        let newRole = computeRole()
        // A promotion takes effect when it governs the first unchosen slot, a step that may
        // change no peer: a new role is published like new peers.
        let roleChanged = newRole != role
        if roleChanged || force { out.events.append(.roleChanged(newRole)) }
        role = newRole
        if let latest = history?.latest,
           force || previous?.latestChosenAt != observation.latestChosenAt || previous?.epochs == 0 {
            out.events.append(.membershipChanged(latest, chosenAt: observation.latestChosenAt,
                                                 activeFrom: observation.latestActiveFrom))
        }
        // Peers, role, a new membership, or one taking effect (the governing membership a
        // discovery answer reports changes then, with no peer or role changing): publish.
        out.peersChanged = true
        if role == .removed { checkRemoval() }
    }

    /// Stops the member once its removal takes effect (see `RemovalWatch`).
    mutating func checkRemoval() {
        guard role == .removed else { return }
        let active = replica.membership(at: replica.chosenThrough + 1)?.contains(nodeID) != true
        let (noticed, stop, ask) = removal.check(now: clock, removalActive: active, leading: replica.role == .leader,
                                                 removedByCluster: removedByCluster)
        if noticed { out.events.append(.removalNoticed) }
        if ask { out.probeMembership = true }
        guard stop else { return }
        removed = true
        out.removed = true
        failEverything(.removed)
    }

    /// Asks the peers whether this member was removed, when it has known no leader for a
    /// while or waits for its own removal (see `OrphanProbe`).
    mutating func probeIfOrphaned() {
        if probe.shouldProbe(now: clock, leaderKnown: replica.leaderHint != nil,
                             selfRemovalPending: !pendingSelfRemovals.isEmpty, role: role) {
            out.probeMembership = true
        }
    }

    /// The peers answered the probe: a membership without this member means it was removed.
    mutating func onProbeAnswered(_ membership: Membership?) {
        probe.answered()
        guard let without = membership else { return }
        out.events.append(.removedByCluster)
        // The removal asked here was chosen (ids are never reused, so this membership
        // follows it): answer it now, from the peers' membership.
        for requestID in pendingSelfRemovals.sorted() {
            let removal = Reconfiguration(origin: nodeID, requestID: requestID, change: .remove(nodeID),
                                          membership: without, activeFrom: 0)
            if let request = pendingReconfigurations.removeValue(forKey: requestID) {
                out.reconfigurations.append((request.token, .success(removal)))
            }
        }
        pendingSelfRemovals.removeAll()
        removedByCluster = true
        observeMembership(force: true)
    }
}
