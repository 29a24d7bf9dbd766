/// One member of the cluster as the replicated configuration records it.
///
/// The core only needs `id` and `isLearner`; the rest is carried for the server (etcd's
/// MemberList) so that every replica agrees on it without a second source of truth.
public struct Member: Hashable, Sendable {
    public var id: NodeID
    /// A learner receives chosen slots and snapshots but never votes and never counts
    /// toward a quorum.
    public var isLearner: Bool
    /// Empty for a member added at run time until it starts (etcd shows it "unstarted").
    public var name: String
    public var peerURLs: [String]
    /// etcd's 64-bit member id.
    public var memberID: UInt64

    public init(id: NodeID, isLearner: Bool = false, name: String = "", peerURLs: [String] = [], memberID: UInt64 = 0) {
        self.id = id
        self.isLearner = isLearner
        self.name = name
        self.peerURLs = peerURLs
        self.memberID = memberID
    }
}

/// A configuration of the replicated log: who votes, who learns, and the quorum sizes.
public struct Membership: Hashable, Sendable {
    /// Every member, sorted by id.
    public private(set) var members: [Member]
    /// The id the next added member gets. Ids are never reused: a removed member's id could
    /// otherwise be confused with its successor's (its old acceptances were never copied).
    public var nextNodeID: UInt32
    /// Voters that must promise before a proposer may lead (phase 1).
    public var phase1Quorum: Int
    /// Voters that must accept a value for it to be chosen (phase 2).
    public var phase2Quorum: Int

    public init(members: [Member], nextNodeID: UInt32? = nil, phase1Quorum: Int? = nil, phase2Quorum: Int? = nil) {
        self.members = members.sorted { $0.id < $1.id }
        self.nextNodeID = nextNodeID ?? ((members.map(\.id.rawValue).max() ?? 0) + 1)
        let majority = members.filter { !$0.isLearner }.count / 2 + 1
        self.phase1Quorum = phase1Quorum ?? majority
        self.phase2Quorum = phase2Quorum ?? majority
    }

    /// Voting members, in id order.
    public var voters: [NodeID] { members.filter { !$0.isLearner }.map(\.id) }
    /// Learners, in id order.
    public var learners: [NodeID] { members.filter(\.isLearner).map(\.id) }
    public func isVoter(_ id: NodeID) -> Bool { members.contains { $0.id == id && !$0.isLearner } }
    public func contains(_ id: NodeID) -> Bool { members.contains { $0.id == id } }
    public func member(_ id: NodeID) -> Member? { members.first { $0.id == id } }

    /// Acks needed for a lease or a read index: enough voters that every phase-1 quorum
    /// contains one of them.
    public var leaseQuorum: Int { voters.count - phase1Quorum + 1 }

    /// True when both quorums are majorities of the voters (membership changes need that:
    /// their safety argument is that majorities of two voter sets that differ by one voter
    /// intersect).
    public var hasMajorityQuorums: Bool {
        let majority = voters.count / 2 + 1
        return phase1Quorum == majority && phase2Quorum == majority
    }

    /// Replaces or inserts `member`; quorums become majorities of the new voters.
    mutating func upsert(_ member: Member) {
        members.removeAll { $0.id == member.id }
        members.append(member)
        members.sort { $0.id < $1.id }
        resetQuorums()
    }

    mutating func remove(_ id: NodeID) {
        members.removeAll { $0.id == id }
        resetQuorums()
    }

    private mutating func resetQuorums() {
        let majority = voters.count / 2 + 1
        phase1Quorum = majority
        phase2Quorum = majority
    }

    /// How many voters differ between `self` and `other` (added plus removed).
    func voterDistance(to other: Membership) -> Int {
        let mine = Set(voters), theirs = Set(other.voters)
        return mine.symmetricDifference(theirs).count
    }
}

/// A membership and the slots it governs: it was chosen at `chosenAt` (0 for the initial
/// membership) and governs every slot from `activeFrom` until the next epoch's `activeFrom`.
public struct MembershipEpoch: Hashable, Sendable {
    public var chosenAt: Slot
    public var activeFrom: Slot
    public var membership: Membership

    public init(chosenAt: Slot, activeFrom: Slot, membership: Membership) {
        self.chosenAt = chosenAt
        self.activeFrom = activeFrom
        self.membership = membership
    }
}

/// The memberships that govern the slots a replica may still need to reason about, oldest
/// first. It is a pure function of the chosen prefix (plus the initial membership), so every
/// replica that knows the same prefix derives the same history.
public struct MembershipHistory: Hashable, Sendable {
    public private(set) var epochs: [MembershipEpoch]

    /// - Precondition: `epochs` is non-empty and sorted by `activeFrom`.
    public init(epochs: [MembershipEpoch]) {
        precondition(!epochs.isEmpty, "a membership history needs an initial membership")
        self.epochs = epochs
    }

    /// The history of a new cluster: `membership` governs from slot 1.
    public init(initial membership: Membership) {
        self.epochs = [MembershipEpoch(chosenAt: 0, activeFrom: 1, membership: membership)]
    }

    /// The membership that governs `slot`.
    public func membership(at slot: Slot) -> Membership {
        var result = epochs[0].membership
        for epoch in epochs where epoch.activeFrom <= slot { result = epoch.membership }
        return result
    }

    /// The newest membership chosen (it may not govern any slot yet).
    public var latest: Membership { epochs[epochs.count - 1].membership }
    public var latestEpoch: MembershipEpoch { epochs[epochs.count - 1] }

    /// Memberships that govern some slot at or after `slot`, oldest first.
    public func memberships(from slot: Slot) -> [Membership] {
        var result: [Membership] = []
        for (index, epoch) in epochs.enumerated() {
            let nextActive = index + 1 < epochs.count ? epochs[index + 1].activeFrom : Slot.max
            if nextActive > slot { result.append(epoch.membership) }
        }
        return result
    }

    /// Forgets epochs that govern no slot at or after `slot`.
    mutating func dropEpochs(before slot: Slot) {
        var first = 0
        for (index, epoch) in epochs.enumerated() where epoch.activeFrom <= slot { first = index }
        if first > 0 { epochs.removeFirst(first) }
    }

    /// Records a membership chosen at `chosenAt` that governs from `activeFrom`.
    mutating func append(_ epoch: MembershipEpoch) {
        epochs.append(epoch)
    }

    /// The history as it was once every slot through `slot` was chosen: epochs chosen after
    /// `slot` are dropped, and epochs no slot above `slot` is governed by are trimmed away.
    public func asOf(slot: Slot) -> MembershipHistory {
        var kept = epochs.filter { $0.chosenAt <= slot }
        if kept.isEmpty { kept = [epochs[0]] }
        // Keep the epoch governing slot + 1 and everything after it.
        var first = 0
        for (index, epoch) in kept.enumerated() where epoch.activeFrom <= slot + 1 { first = index }
        return MembershipHistory(epochs: Array(kept[first...]))
    }
}

/// A membership change an operator asks for.
public enum MembershipChange: Hashable, Sendable {
    /// Adds a member (a learner, or a voter at once); the leader assigns its id.
    case add(peerURLs: [String], isLearner: Bool, memberID: UInt64)
    /// Removes a member (voter or learner).
    case remove(NodeID)
    /// Makes a learner a voter; refused unless it is caught up with the leader.
    case promote(NodeID)
    /// Changes a member's peer URLs (and its name, once it starts and publishes it).
    case update(NodeID, peerURLs: [String], name: String?)
}

/// Why a membership change or a leader transfer was refused.
public enum ReconfigurationError: Error, Hashable, Sendable, CustomStringConvertible {
    /// This replica does not lead and knows no leader to forward to.
    case notLeader
    case memberNotFound
    /// Another member already uses one of these peer URLs.
    case peerURLExists
    /// Promote asked for a member that already votes.
    case notLearner
    /// The learner is more than `promoteLagSlotsMax` slots behind the leader.
    case learnerNotReady
    case tooManyLearners
    /// The change would leave fewer active voters than the new quorum needs.
    case unhealthy
    /// The last voter cannot be removed.
    case lastVoter
    /// The quorums are configured (flexible quorums), so changes are not supported.
    case nonMajorityQuorums
    /// Too many changes are waiting at the leader.
    case busy
    /// A leader transfer is already running, or its target cannot lead.
    case transferFailed(String)
    /// The leader stepped down before the change was chosen.
    case leaderChanged

    public var description: String {
        switch self {
        case .notLeader: return "not leader"
        case .memberNotFound: return "member not found"
        case .peerURLExists: return "peer URLs already exists"
        case .notLearner: return "can only promote a learner member"
        case .learnerNotReady: return "can only promote a learner member which is in sync with leader"
        case .tooManyLearners: return "too many learner members in cluster"
        case .unhealthy: return "unhealthy cluster"
        case .lastVoter: return "cannot remove the last voting member"
        case .nonMajorityQuorums: return "membership changes need majority quorums"
        case .busy: return "too many membership changes in progress"
        case .transferFailed(let reason): return "leader transfer failed: \(reason)"
        case .leaderChanged: return "leader changed"
        }
    }
}

/// A chosen membership change: the value of a slot. The leader computes the resulting
/// membership and the first slot it governs when it proposes; a later leader re-proposing
/// the slot re-proposes the same value, so every replica applies exactly this.
public struct Reconfiguration: Hashable, Sendable {
    /// The replica the request came in at, which answers the client once it applies the slot.
    public var origin: NodeID
    public var requestID: UInt64
    public var change: MembershipChange
    /// The membership after the change.
    public var membership: Membership
    /// The first slot the new membership governs (the chosen slot + `Replica.activationDelaySlots`).
    public var activeFrom: Slot

    public init(origin: NodeID, requestID: UInt64, change: MembershipChange, membership: Membership, activeFrom: Slot) {
        self.origin = origin
        self.requestID = requestID
        self.change = change
        self.membership = membership
        self.activeFrom = activeFrom
    }
}

extension Reconfiguration {
    /// What is wrong with this change as the successor of `previous` (the membership after
    /// every change chosen before it), or nil when its membership is `previous` with exactly
    /// the one change it names: one member added, removed or promoted, or none changed in
    /// role (an update). So consecutive memberships differ by at most one voter, and a change
    /// stays in effect until a later change undoes it (rule 3 in Replica+Membership).
    public func stepProblem(after previous: Membership) -> String? {
        let before = Set(previous.voters), after = Set(membership.voters)
        let changedVoters = before.symmetricDifference(after)
        if changedVoters.count > 1 {
            return "changes \(changedVoters.count) voters at once (\(previous.voters) -> \(membership.voters))"
        }
        func roles(_ membership: Membership) -> [NodeID: Bool] {
            var roles: [NodeID: Bool] = [:]
            for member in membership.members { roles[member.id] = member.isLearner }
            return roles
        }
        var expected = roles(previous)
        let actual = roles(membership)
        switch change {
        case .add(_, let isLearner, _):
            let added = actual.keys.filter { expected[$0] == nil }
            guard added.count == 1, let id = added.first else {
                return "adds \(added.count) members to \(previous.members.map(\.id)) instead of one"
            }
            expected[id] = isLearner
        case .remove(let target):
            expected.removeValue(forKey: target)
        case .promote(let target):
            guard expected[target] == true else { return "promotes \(target), which was not a learner in \(previous.members.map(\.id))" }
            expected[target] = false
        case .update:
            break
        }
        guard expected == actual else {
            func describe(_ roles: [NodeID: Bool]) -> String {
                roles.keys.sorted().map { "\($0)" + (roles[$0] == true ? "(learner)" : "") }.joined(separator: ",")
            }
            return "builds on another membership: expected {\(describe(expected))} after {\(describe(roles(previous)))}, got {\(describe(actual))}"
        }
        return nil
    }
}
