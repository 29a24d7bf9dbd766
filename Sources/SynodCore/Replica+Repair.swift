/// Repair after damage to synced records (protocol-aware recovery, after Alagappan et al.,
/// FAST 2018): storage found a write it had synced, and so may have acknowledged, damaged or
/// missing. What it held is unknown: promises, accepted values, chosen values. The replica
/// restores what it can read and then **abstains**: it answers no Prepare and no Accept and
/// never campaigns, while it learns chosen values like any follower and asks every other voter
/// for its promise and the highest slot it knows of (`repairQuery` / `repairReport`). It
/// votes again once
///
/// 1. every other voter of the memberships governing its unchosen slots has answered, none of
///    them repairing itself, and its promise is raised to the highest promise reported
///    (the **fence**); and
/// 2. its chosen prefix reaches the highest slot reported (the **horizon**);
///
/// and it writes that promise, then `.repaired`, before anything that could reveal a vote.
///
/// Why this is safe, for what the damage may have hidden:
/// - **A promise of ballot b.** A candidate makes its own promise of b durable before any
///   Prepare(b) leaves (`startElection`), so if the candidate still lives it reports a
///   promise >= b, and the fence is >= b: this replica never accepts below a ballot it may
///   have promised. If the candidate crashed before that promise was durable, ballot b can
///   never complete phase 1 (only its own node proposes in b), so the lost promise protects
///   nothing. Every other voter is asked, because the candidate may be any of them.
/// - **An acceptance of v in slot s.** If v was chosen with this replica in the quorum, the
///   rest of that phase-2 quorum (at least one other voter: a membership whose phase-2 quorum
///   is 1 cannot be repaired, see `repairImpossibleReason`) still holds it, so the horizon is
///   >= s. While this replica abstains, every phase-1 quorum excludes it and still meets
///   the rest of v's quorum, so any leader re-proposes v in s; once the chosen prefix passes
///   s this replica knows v chosen and reports it so. If v was not chosen, forgetting it
///   changes nothing anyone could rely on.
/// - **A chosen value.** Learned again from the others (chosen values are facts).
///
/// Repairing voters do not count, since their own promises may be incomplete: two damaged
/// voters wait for each other. They stay learners, which is the safe outcome; the operator
/// sees both repairing (metrics, log).
extension Replica {
    /// Whether this replica is repairing damaged records and so does not vote yet.
    public var isRepairing: Bool { repair != nil }

    /// Why damaged records cannot be repaired in the memberships this replica knows, if they
    /// cannot: without another voter nobody can tell what was lost, and with a phase-2 quorum
    /// of one this replica alone may have made a value chosen.
    public var repairImpossibleReason: String? {
        if membershipHistory != nil, voterPeers(from: chosenThrough + 1).isEmpty {
            return "no other voter to repair from"
        }
        let memberships = governingMemberships(from: chosenThrough + 1)
        if let single = memberships.first(where: { $0.phase2Quorum < 2 }) {
            return "a membership with voters \(single.voters.map(\.description).joined(separator: ",")) has a phase-2 quorum of 1,"
                + " so this member alone may have made a lost value chosen"
        }
        return nil
    }

    /// Enters repair: the fence and horizon start at what the readable records show.
    mutating func startRepair() {
        repair = RepairState(nonce: random.next(), fence: promised,
                             horizon: max(chosenThrough, log.keys.max() ?? 0))
    }

    /// Asks the voters that have not answered yet (again every retransmit interval).
    mutating func sendRepairQueries() {
        guard let state = repair else { return }
        if let sent = state.queriedAt, now - sent < UInt64(configuration.retransmitTicks) { return }
        for peer in voterPeers(from: chosenThrough + 1) where !state.answered.contains(peer) {
            send(.repairQuery(nonce: state.nonce), to: peer)
        }
        repair?.queriedAt = now
    }

    /// The highest slot this replica accepted, knows chosen or proposed as leader.
    var highestKnownSlot: Slot {
        var highest = max(chosenThrough, log.keys.max() ?? 0)
        if let leader { highest = max(highest, leader.nextSlot - 1) }
        return highest
    }

    mutating func onRepairQuery(from: NodeID, nonce: UInt64) {
        // The promise may be raised in memory and not yet durable: reporting it only raises
        // the asker's fence, which is the safe direction.
        send(.repairReport(nonce: nonce, promised: max(promised, ownBallot ?? .zero), highestSlot: highestKnownSlot,
                           repairing: repair != nil), to: from)
    }

    mutating func onRepairReport(from: NodeID, nonce: UInt64, promised reported: Ballot, highestSlot: Slot, repairing: Bool) {
        guard var state = repair, state.nonce == nonce, !repairing else { return }
        state.fence = max(state.fence, reported)
        state.horizon = max(state.horizon, highestSlot)
        state.answered.insert(from)
        repair = state
        if reported.node.rawValue >= 1 { noteBallot(reported) }
        // Catch up to the horizon even if no leader announces it: catch-up is asked again
        // until the chosen prefix gets there.
        catchUpGoal = max(catchUpGoal, highestSlot)
    }

    /// Ends the repair once both conditions hold (see the type's documentation).
    mutating func finishRepairIfDone() {
        guard let state = repair, membershipHistory != nil, repairImpossibleReason == nil else { return }
        let voters = voterPeers(from: chosenThrough + 1)
        guard voters.allSatisfy(state.answered.contains), chosenThrough >= state.horizon else { return }
        promised = max(promised, state.fence)
        highestSeen = max(highestSeen, promised)
        // Both go to disk in this step's batch, before any later batch that could carry a vote.
        persist(.promised(promised))
        persist(.repaired)
        repair = nil
        out.repairFinished = true
    }
}
