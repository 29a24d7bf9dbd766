/// Membership changes: the configuration is replicated state, chosen through the log.
///
/// The rule (the same on every replica, since it depends only on the chosen prefix):
///
/// 1. A change is the value of a slot. Chosen at slot `i`, it governs every slot from
///    `i + α` on (`activeFrom`, carried in the value), α = `activationDelaySlots`.
/// 2. A leader never proposes beyond `chosenThrough + α` (its window is capped at α), so when
///    it proposes slot `s` it knows every change chosen at or below `s - α`: it knows the
///    membership that governs `s`.
/// 3. One change at a time: a leader proposes a change at slot `s` only once the previous
///    change governs `s` (it is chosen and active). So consecutive memberships differ by one
///    step, and each step changes at most one voter (add a voter, remove one, or promote a
///    learner), so any majority of one intersects any majority of the next.
/// 4. Phase 1 is per membership: a leader proposes slot `s` only once it holds promises from
///    a phase-1 quorum of the membership governing `s`. It becomes leader with quorums of every
///    membership it knows for the slots from its first unchosen one; when its window reaches a
///    newer membership it sends Prepare to that membership's voters that have not promised and
///    merges their reports before proposing there.
/// 5. Reads: a lease or read index needs acks from a lease quorum of every membership that
///    governs a slot above the chosen prefix, and (rule 4) promises from a phase-1 quorum of
///    each of them: acks alone do not stop a proposer that completed phase 1 earlier.
/// 6. Acceptors answer (promise, accept, acknowledge, step down for) only a ballot whose node
///    votes in a membership they know governs a slot they have not seen chosen: removed
///    members that missed their removal must not depose the leader with higher ballots.
///
/// Why it is safe: each slot is plain Paxos in the membership that governs it (rule 2 makes
/// that membership well defined for every proposer, rule 4 gives the phase-1/phase-2 quorum
/// intersection within it). For reads and for a lagging proposer, rule 3 gives intersection
/// between neighbouring memberships, so a proposer whose quorum is one membership behind
/// still hears of every slot chosen in the next one and must then win phase 1 there too.
extension Replica {
    /// α: slots between a change being chosen and it governing.
    public static let activationDelaySlots: Slot = 32
    /// At most this many membership changes wait at the leader.
    public static let changeQueueMax = 16

    /// The leader's window: never more than α slots past the chosen prefix (rule 2).
    var effectiveWindowSlots: UInt64 {
        min(UInt64(configuration.windowSlots), Self.activationDelaySlots)
    }

    /// The membership governing `slot`, if known.
    public func membership(at slot: Slot) -> Membership? { membershipHistory?.membership(at: slot) }

    /// Whether this replica votes in the membership governing its first unchosen slot.
    public var isVoter: Bool { membership(at: chosenThrough + 1)?.isVoter(id) ?? false }

    /// Memberships governing the slots from `slot` on (empty while unknown).
    func governingMemberships(from slot: Slot) -> [Membership] {
        membershipHistory?.memberships(from: slot) ?? []
    }

    /// The chosen prefix passed a membership change at `slot`.
    mutating func noteMembershipChosen(_ change: Reconfiguration, at slot: Slot) {
        // A history taken from a snapshot already holds the changes chosen up to it.
        guard var history = membershipHistory, slot > history.latestEpoch.chosenAt else { return }
        // Every leader validates a change against the membership of the whole prefix below
        // it (rule 3), so a chosen change that is not one step from it means that rule broke.
        if !configuration.unsafeImmediateReconfiguration, let problem = change.stepProblem(after: history.latest) {
            detectedConflicts.append("the membership change chosen at slot \(slot) (\(change.change)) \(problem)")
        }
        let activeFrom = max(change.activeFrom, slot + 1, history.latestEpoch.activeFrom)
        history.append(MembershipEpoch(chosenAt: slot, activeFrom: activeFrom, membership: change.membership))
        membershipHistory = history
    }

    /// Recomputes `peers`: everyone in a membership that governs a slot from the first
    /// unchosen one on (voters, learners and members whose removal is not active yet).
    mutating func refreshPeers() {
        guard membershipHistory != nil else {
            peers = configuration.members.filter { $0 != id }
            return
        }
        var ids = Set<NodeID>()
        for membership in governingMemberships(from: chosenThrough + 1) {
            for member in membership.members { ids.insert(member.id) }
        }
        // Members the newest change removed still hear heartbeats and commit notices (and
        // their catch-up requests are answered) until the next change: a removed member that
        // was behind when its removal took effect must still learn it, so it can stop. Their
        // votes never count (see checkChosen) and acceptors ignore their Prepares.
        if let history = membershipHistory, history.epochs.count >= 2 {
            for member in history.epochs[history.epochs.count - 2].membership.members { ids.insert(member.id) }
        }
        ids.remove(id)
        let sorted = ids.sorted()
        if sorted != peers { peers = sorted }
    }

    /// Voters of the memberships governing slots from `slot` on, without this replica.
    func voterPeers(from slot: Slot) -> [NodeID] {
        var ids = Set<NodeID>()
        for membership in governingMemberships(from: slot) { ids.formUnion(membership.voters) }
        ids.remove(id)
        return ids.sorted()
    }

    /// True when `promisers` include a phase-1 quorum of `membership`.
    static func covers(_ promisers: Set<NodeID>, _ membership: Membership) -> Bool {
        membership.voters.filter { promisers.contains($0) }.count >= membership.phase1Quorum
    }

    // MARK: Phase 1 across memberships (leader)

    /// A late promise (from a voter of a newer membership) or the candidate's own reports:
    /// recovers values for slots the leader has not proposed yet.
    mutating func mergeReport(_ report: PromiseReport, from node: NodeID) {
        guard var state = leader else { return }
        state.promisedBy.insert(node)
        if report.chosenThrough > state.maxChosenReported {
            state.maxChosenReported = report.chosenThrough
            state.catchUpSource = node
        }
        var known: [PromisedEntry] = []
        for entry in report.entries where entry.slot > chosenThrough && entry.slot >= state.nextSlot {
            state.recoverThrough = max(state.recoverThrough, entry.slot)
            guard let ballot = entry.ballot else {
                known.append(entry)
                continue
            }
            if let current = state.recovered[entry.slot] {
                // nil ballot = known chosen: it outranks any accepted ballot.
                guard let currentBallot = current.ballot, ballot > currentBallot else { continue }
            }
            state.recovered[entry.slot] = entry
        }
        state.startSlot = max(state.startSlot, state.recoverThrough + 1, state.maxChosenReported + 1)
        leader = state
        for entry in known {
            leader?.recovered.removeValue(forKey: entry.slot)
            markChosen(slot: entry.slot, value: entry.value)
        }
        if let state = leader, chosenThrough < state.maxChosenReported, let source = state.catchUpSource {
            catchUpGoal = max(catchUpGoal, state.maxChosenReported)
            requestCatchUp(from: source)
        }
    }

    /// Asks the voters of `membership` that have not promised this ballot yet.
    mutating func prepareMissingVoters(_ membership: Membership) {
        guard let state = leader else { return }
        if let sentAt = state.latePrepareSentAt, now - sentAt < UInt64(configuration.retransmitTicks) { return }
        leader?.latePrepareSentAt = now
        for voter in membership.voters where voter != id && !state.promisedBy.contains(voter) {
            send(.prepare(ballot: state.ballot, firstSlot: state.prepareFirstSlot), to: voter)
        }
    }

    // MARK: Requests

    mutating func onReconfigure(origin: NodeID, requestID: UInt64, change: MembershipChange, force: Bool) {
        if let state = leader {
            guard state.changeQueue.count < Self.changeQueueMax else {
                refuse(origin: origin, requestID: requestID, .busy)
                return
            }
            leader?.changeQueue.append(PendingChange(origin: origin, requestID: requestID, change: change, force: force))
        } else if origin == id, let target = leaderBallot?.node, target != id {
            send(.reconfigureRequest(requestID: requestID, change: change, force: force), to: target)
        } else {
            refuse(origin: origin, requestID: requestID, .notLeader)
        }
    }

    mutating func refuse(origin: NodeID, requestID: UInt64, _ error: ReconfigurationError) {
        if origin == id {
            out.reconfigured.append(.init(requestID: requestID, result: .failure(error)))
        } else {
            send(.reconfigureRefused(requestID: requestID, error: error), to: origin)
        }
    }

    /// Voters that answered this leader within an election timeout, plus itself.
    func activeVoters(of membership: Membership) -> Int {
        guard let state = leader else { return 0 }
        let window = UInt64(configuration.electionTimeoutTicks)
        return membership.voters.filter { voter in
            voter == id || state.lastAckAt[voter].map { now - $0 < window } == true
        }.count
    }

    /// The change to propose at `slot`, if one waits and rule 3 allows it; refuses queued
    /// changes that are invalid against the membership they would follow.
    mutating func nextReconfiguration(at slot: Slot) -> Reconfiguration? {
        guard let history = membershipHistory, leader?.changeQueue.isEmpty == false else { return nil }
        let unsafe = configuration.unsafeImmediateReconfiguration
        // Rule 3: the last change governs `slot` already, and no other change is open between
        // the chosen prefix and `slot`. "Open" includes a change chosen out of order above a
        // gap: it has left `proposals` but is not in the history until the prefix reaches it,
        // and a change validated without it would build on a stale membership and could undo
        // it (remove A, then remove B, ending with A a voter again).
        if configuration.unsafeChangeBaseIgnoresChosenAboveGap {
            // The old rule, kept as a negative control: only unchosen proposals count.
            guard history.latestEpoch.activeFrom <= slot else { return nil }
            if let state = leader, state.proposals.values.contains(where: { if case .reconfigure = $0.value { return true } else { return false } }) {
                return nil
            }
        } else if !unsafe {
            guard history.latestEpoch.activeFrom <= slot, !changeOpen(below: slot) else { return nil }
        }
        var base = history.membership(at: slot)
        if unsafe, let state = leader {
            // The negative control builds on the newest proposal, overlapping changes.
            base = history.latest
            for proposalSlot in state.proposals.keys.sorted() {
                if case .reconfigure(let change) = state.proposals[proposalSlot]?.value { base = change.membership }
            }
        }
        while let pending = leader?.changeQueue.first {
            leader?.changeQueue.removeFirst()
            switch validate(pending, against: base) {
            case .success(let membership):
                let activeFrom = unsafe ? slot + 1 : slot + Self.activationDelaySlots
                return Reconfiguration(origin: pending.origin, requestID: pending.requestID, change: pending.change,
                                       membership: membership, activeFrom: activeFrom)
            case .failure(let error):
                refuse(origin: pending.origin, requestID: pending.requestID, error)
            }
        }
        return nil
    }

    /// Whether a slot between the chosen prefix and `slot` may hold a membership change: one
    /// chosen out of order, one this leader proposed, or a slot whose value this leader does
    /// not know (chosen elsewhere, still to be fetched). At most α slots (rule 2).
    func changeOpen(below slot: Slot) -> Bool {
        let ballot = leader?.ballot
        var open = chosenThrough + 1
        while open < slot {
            let value: Value?
            if let chosen = log[open]?.chosen {
                value = chosen
            } else if let proposal = leader?.proposals[open] {
                value = proposal.value
            } else if let entry = log[open], entry.acceptedBallot == ballot {
                value = entry.acceptedValue
            } else {
                value = nil
            }
            guard let value else { return true }
            if case .reconfigure = value { return true }
            open += 1
        }
        return false
    }

    private func validate(_ pending: PendingChange, against base: Membership) -> Result<Membership, ReconfigurationError> {
        guard base.hasMajorityQuorums || configuration.unsafeImmediateReconfiguration else { return .failure(.nonMajorityQuorums) }
        var next = base
        switch pending.change {
        case .add(let urls, let isLearner, let memberID):
            if !urls.isEmpty, base.members.contains(where: { !Set($0.peerURLs).isDisjoint(with: urls) }) { return .failure(.peerURLExists) }
            if isLearner {
                guard base.learners.count < configuration.learnersMax else { return .failure(.tooManyLearners) }
            }
            let newID = NodeID(base.nextNodeID)
            next.nextNodeID = base.nextNodeID + 1
            next.upsert(Member(id: newID, isLearner: isLearner, peerURLs: urls, memberID: memberID))
            // etcd's strict check: enough started voters for the new quorum (a one-voter
            // cluster may add its second voter, the way a restored cluster grows back).
            if !isLearner && !pending.force && base.voters.count > 1 && activeVoters(of: base) < next.phase1Quorum {
                return .failure(.unhealthy)
            }
        case .remove(let target):
            guard let member = base.member(target) else { return .failure(.memberNotFound) }
            if !member.isLearner {
                guard base.voters.count > 1 else { return .failure(.lastVoter) }
                next.remove(target)
                let activeAfter = activeVoters(of: next)
                if !pending.force && activeAfter < next.phase1Quorum { return .failure(.unhealthy) }
            } else {
                next.remove(target)
            }
        case .promote(let target):
            guard var member = base.member(target) else { return .failure(.memberNotFound) }
            guard member.isLearner else { return .failure(.notLearner) }
            let theirs = leader?.peerChosenThrough[target] ?? 0
            let recent = leader?.lastAckAt[target].map { now - $0 < UInt64(configuration.electionTimeoutTicks) } ?? false
            guard recent, theirs + UInt64(configuration.promoteLagSlotsMax) >= chosenThrough else {
                return .failure(.learnerNotReady)
            }
            member.isLearner = false
            next.upsert(member)
        case .update(let target, let urls, let name):
            guard var member = base.member(target) else { return .failure(.memberNotFound) }
            if !urls.isEmpty, base.members.contains(where: { $0.id != target && !Set($0.peerURLs).isDisjoint(with: urls) }) {
                return .failure(.peerURLExists)
            }
            if !urls.isEmpty { member.peerURLs = urls }
            if let name { member.name = name }
            next.upsert(member)
            // An update changes no voter: keep the quorums exactly as they were.
            next.phase1Quorum = base.phase1Quorum
            next.phase2Quorum = base.phase2Quorum
        }
        return .success(next)
    }

    /// A change chosen or proposed whose activation is still ahead of `slot`: the leader
    /// fills the gap with no-ops when idle, so the change takes effect promptly.
    func activationPending(after slot: Slot) -> Bool {
        guard let history = membershipHistory else { return false }
        if history.latestEpoch.activeFrom > slot { return true }
        guard let state = leader else { return false }
        return state.proposals.values.contains { proposal in
            if case .reconfigure(let change) = proposal.value { return change.activeFrom > slot }
            return false
        }
    }

    // MARK: Leaving leadership: removal of the leader, leader transfer

    /// The leader is not a voter of the membership governing `slot`: once everything below
    /// is chosen, and the most caught-up voter of that membership knows it, it hands
    /// leadership to that voter.
    mutating func leaderLeaves(at slot: Slot) {
        guard let state = leader, state.proposals.isEmpty, chosenThrough + 1 >= slot,
              let membership = membership(at: slot) else { return }
        let window = UInt64(configuration.electionTimeoutTicks)
        let candidates = membership.voters.filter { $0 != id }
        let target = candidates.max { a, b in
            let aLive = state.lastAckAt[a].map { now - $0 < window } == true
            let bLive = state.lastAckAt[b].map { now - $0 < window } == true
            if aLive != bLive { return !aLive }
            return (state.peerChosenThrough[a] ?? 0, b.rawValue) < (state.peerChosenThrough[b] ?? 0, a.rawValue)
        }
        guard let target else {
            stepDown()
            return
        }
        // The slots below `slot` are governed by a membership this leader votes in; once it
        // stops, no quorum of the new membership can decide them again. So it hands off only
        // when the target reported it knows they are chosen (heartbeat acks carry that), or
        // the target, unable to prepare them without this leader, would wait forever.
        // Seen in the simulator (seed 271, 3 nodes): [n1, n3] removed the leader n3, which
        // handed off and stopped before n1 heard that slots 108-109 were chosen.
        guard (state.peerChosenThrough[target] ?? 0) + 1 >= slot else { return }
        handOff(to: target)
    }

    /// Stops leading (no more lease reads from here), then tells every peer that `target`
    /// may take over now.
    mutating func handOff(to target: NodeID) {
        guard let state = leader else { return }
        leader?.transfer = nil
        stepDown()
        handOffTarget = target
        for peer in peers { send(.handOff(ballot: state.ballot, target: target), to: peer) }
    }

    mutating func onHandOff(from: NodeID, ballot: Ballot, target: NodeID) {
        noteBallot(ballot)
        // Only the leader this acceptor follows may release its own lease guard.
        guard leaderBallot == ballot, ballot.node == from else { return }
        handOffTarget = target
        if target == id && isVoter && leader == nil { startElection() }
    }

    mutating func onTransferLeadership(requestID: UInt64, target: NodeID) {
        guard let state = leader else {
            out.transfers.append(.init(requestID: requestID, result: .failure(.notLeader)))
            return
        }
        if target == id {
            out.transfers.append(.init(requestID: requestID, result: .success(id)))
            return
        }
        guard state.transfer == nil, transferWatch == nil else {
            out.transfers.append(.init(requestID: requestID, result: .failure(.transferFailed("another transfer is in progress"))))
            return
        }
        guard membership(at: state.nextSlot)?.isVoter(target) == true else {
            out.transfers.append(.init(requestID: requestID, result: .failure(.transferFailed("the target is not a voting member"))))
            return
        }
        leader?.transfer = PendingTransfer(requestID: requestID, target: target, startedAt: now)
        sendHeartbeat()
    }

    /// Called after every leader step: hands off once the target has everything chosen.
    mutating func progressTransfer() {
        guard let state = leader, let transfer = state.transfer else { return }
        if now - transfer.startedAt >= UInt64(configuration.transferTimeoutTicks) {
            leader?.transfer = nil
            out.transfers.append(.init(requestID: transfer.requestID,
                                       result: .failure(.transferFailed("the target did not catch up in time"))))
            return
        }
        guard state.proposals.isEmpty, state.nextSlot == chosenThrough + 1,
              (state.peerChosenThrough[transfer.target] ?? 0) >= chosenThrough else { return }
        transferWatch = (transfer.requestID, transfer.target, now + UInt64(configuration.transferTimeoutTicks))
        handOff(to: transfer.target)
    }

    /// The highest heartbeat round a lease quorum of every governing membership acknowledged.
    func leaseConfirmedRound() -> UInt64 {
        guard let state = leader else { return 0 }
        var result = UInt64.max
        for membership in governingMemberships(from: chosenThrough + 1) {
            // Rule 5 needs rule 4 as well: acks are no promises. Seen in the simulator's
            // reconfiguration runs (seed 100487 with an earlier operator): removed members that
            // missed their removal, a majority of an old membership, elected one of them; it
            // caught up from them to a newer membership whose lease quorum it met with another
            // removed member (but no phase-1 quorum: the real voters ignore it), so it could
            // answer lease reads from a stale state while the real voters chose newer values.
            // Only a phase-1 quorum of the membership governing the next slot keeps anyone
            // else from choosing it (and so any later slot, rule 2); the leader asks the
            // missing voters (leaderTick). Test: RemovedMemberScenarioTests.
            guard Self.covers(state.promisedBy, membership) else { return 0 }
            var acked = membership.voters.map { $0 == id ? state.heartbeatSequence : (state.ackedSequence[$0] ?? 0) }
            acked.sort(by: >)
            let quorum = membership.leaseQuorum
            result = min(result, quorum >= 1 && quorum <= acked.count ? acked[quorum - 1] : 0)
        }
        return result == .max ? 0 : result
    }
}
