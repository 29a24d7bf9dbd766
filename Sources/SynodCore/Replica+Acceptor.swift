/// The acceptor role: promises (phase 1b) and acceptances (phase 2b), plus following a leader.
extension Replica {
    /// True while the lease guard forbids promising `ballot`: this acceptor heard from a
    /// leader (or, leading, sent a heartbeat) within the last election timeout, and `ballot`
    /// belongs to someone else. This is what makes the leader's lease safe: no proposer can
    /// finish phase 1 while a lease quorum still guards the current leader.
    func leaseGuardForbids(_ ballot: Ballot) -> Bool {
        guard clock < guardUntil else { return false }
        // The leader handed off to this node and stopped serving lease reads first.
        if let target = handOffTarget, ballot.node == target { return false }
        guard let current = leaderBallot else { return true }  // fresh restart: guard everyone
        return ballot.node != current.node
    }

    mutating func onPrepare(from: NodeID, ballot: Ballot, firstSlot: Slot) {
        // Repairing: no promise until the fence is known (Replica+Repair).
        if repair != nil {
            noteBallot(ballot)
            return
        }
        // A node that votes in no membership this acceptor knows of (a removed member that
        // missed its removal, a learner) is not answered, and its ballot is not remembered:
        // refusing a promise is always safe, and it keeps such a node from disrupting the
        // leader with ever higher ballots.
        if ballot > promised, !knownVoter(ballot.node) {
            askUnknownVoterForCatchUp(from)
            return
        }
        noteBallot(ballot)
        if ballot < promised {
            send(.reject(ballot: ballot, promised: promised), to: from)
            return
        }
        if ballot > promised {
            if leaseGuardForbids(ballot) { return }  // the candidate retries after its timeout
            promised = ballot
            persist(.promised(ballot))
            if let own = ownBallot, own < ballot { stepDown() }
            resetElectionTimer()
        }
        // ballot == promised: a first or a repeated Prepare; the answer leaves once durable.
        let report = promiseReport(firstSlot: firstSlot)
        sendAfterDurable(.promise(ballot: ballot, chosenThrough: report.chosenThrough, entries: report.entries), to: from)
    }

    /// Every slot above both `firstSlot - 1` and the chosen prefix that this acceptor accepted
    /// or knows chosen, in slot order. Slots inside the chosen prefix are not sent: the
    /// candidate learns them by catch-up, which is what `chosenThrough` tells it to do.
    func promiseReport(firstSlot: Slot) -> PromiseReport {
        let lowest = max(firstSlot, chosenThrough + 1)
        var entries: [PromisedEntry] = []
        for slot in log.keys.filter({ $0 >= lowest }).sorted() {
            guard let entry = log[slot] else { continue }
            if let chosen = entry.chosen {
                entries.append(PromisedEntry(slot: slot, ballot: nil, value: chosen))
            } else if let ballot = entry.acceptedBallot, let value = entry.acceptedValue {
                entries.append(PromisedEntry(slot: slot, ballot: ballot, value: value))
            }
        }
        return PromiseReport(chosenThrough: chosenThrough, entries: entries)
    }

    /// Whether `node` votes in a membership governing a slot this replica has not seen chosen
    /// (true while a joining replica has no membership yet: it follows whoever leads).
    func knownVoter(_ node: NodeID) -> Bool {
        membershipHistory == nil || governingMemberships(from: chosenThrough + 1).contains { $0.isVoter(node) }
    }

    /// A replica that knows it is behind and hears a campaign from a node it does not know
    /// as a voter asks that node for the missing slots: the campaigner may vote in a newer
    /// membership and be the only live holder of the state (simulator seed 273 on 3 nodes:
    /// a transfer's sender was removed while the replica, knowing only removed peers, kept
    /// refusing the one remaining voter's pre-votes, and neither could make progress).
    /// Catching up only learns chosen values, so asking anyone is safe.
    mutating func askUnknownVoterForCatchUp(_ node: NodeID) {
        guard chosenThrough < catchUpGoal, !peers.contains(node), node != id else { return }
        // Ahead of the retry interval: the retries only ever go to known peers. The rate is
        // the campaigner's, one request per pre-vote or prepare it sends.
        catchUpSentAt = nil
        requestCatchUp(from: node)
    }

    mutating func onAccept(from: NodeID, ballot: Ballot, slot: Slot, value: Value, leaderChosenThrough: Slot) {
        // Rule 6 (Replica+Membership). Found by the simulator's reconfiguration runs (seed
        // 100487 with an earlier operator; test: RemovedMemberScenarioTests): removed members
        // that missed their removal (a majority of an old membership) elected one of them,
        // whose Accepts and Heartbeats in a higher ballot made the real leader step down and
        // the voters follow it, again after every election: no progress. A leader that votes
        // in no membership this acceptor knows of is not followed; refusing an Accept is
        // always safe, and a legitimate new voter this acceptor does not know yet is followed
        // once the commit notices in its heartbeats made this acceptor catch up.
        guard knownVoter(ballot.node) else { return }
        noteBallot(ballot)
        if repair != nil {
            // Repairing: accepts nothing, but follows the leader and learns what it chose.
            if ballot >= promised { follow(ballot) }
            learnCommitNotice(ballot: ballot, leaderChosenThrough: leaderChosenThrough, leader: from)
            return
        }
        if ballot < promised {
            send(.reject(ballot: ballot, promised: promised), to: from)
            return
        }
        // An accepted record also raises the promise on recovery (see restore), so a higher
        // ballot needs no separate promise record when one is written below.
        let raisesPromise = ballot > promised
        promised = ballot
        follow(ballot)
        if slot <= chosenThrough || log[slot]?.chosen != nil {
            // Already chosen: the leader of any later ballot can only propose the chosen value,
            // so acknowledging without recording cannot make a different value chosen. The
            // raised promise still goes to disk: a repeated Prepare may reveal it later.
            if raisesPromise { persist(.promised(ballot)) }
            send(.accepted(ballot: ballot, slot: slot), to: from)
        } else if log[slot]?.acceptedBallot == ballot {
            // A retransmission; the acceptance is (or is about to be) durable.
            sendAfterDurable(.accepted(ballot: ballot, slot: slot), to: from)
        } else {
            log[slot, default: LogEntry()].acceptedBallot = ballot
            log[slot, default: LogEntry()].acceptedValue = value
        highestAccepted = max(highestAccepted, ballot)
            persist(.accepted(slot: slot, ballot: ballot, value: value))
            sendAfterDurable(.accepted(ballot: ballot, slot: slot), to: from)
        }
        learnCommitNotice(ballot: ballot, leaderChosenThrough: leaderChosenThrough, leader: from)
    }

    mutating func onHeartbeat(from: NodeID, ballot: Ballot, leaderChosenThrough: Slot, sequence: UInt64) {
        // Not followed nor acknowledged (see onAccept), but what it says is chosen is true, so
        // a lagging acceptor catches up from it (and learns whether it votes after all).
        guard knownVoter(ballot.node) else {
            if ballot >= promised { learnCommitNotice(ballot: ballot, leaderChosenThrough: leaderChosenThrough, leader: from) }
            return
        }
        noteBallot(ballot)
        if ballot < promised {
            send(.reject(ballot: ballot, promised: promised), to: from)
            return
        }
        follow(ballot)
        learnCommitNotice(ballot: ballot, leaderChosenThrough: leaderChosenThrough, leader: from)
        send(.heartbeatAck(ballot: ballot, sequence: sequence, chosenThrough: chosenThrough), to: from)
    }

    /// Records that the proposer of `ballot` leads: resets the election timer and the lease guard.
    mutating func follow(_ ballot: Ballot) {
        if let own = ownBallot, own != ballot { stepDown() }
        guard leader == nil else { return }
        preCandidate = nil  // a leader is alive: no campaign
        if let watch = transferWatch, ballot.node == watch.target {
            transferWatch = nil
            out.transfers.append(.init(requestID: watch.requestID, result: .success(watch.target)))
        }
        // A delayed message from an older leader must not move the lease guard away from the
        // newer leader this acceptor already acknowledged (that would let the old leader's
        // node win phase 1 while the newer leader's lease still runs).
        if let current = leaderBallot, ballot < current { return }
        if leaderBallot != ballot { handOffTarget = nil }
        leaderBallot = ballot
        guardUntil = max(guardUntil, clock.adding(nanoseconds: configuration.guardNanoseconds))
        resetElectionTimer()
    }

    /// A follower learns which slots the leader of `ballot` has chosen. A slot this acceptor
    /// accepted in that same ballot holds the leader's (one) value for it, so it is chosen;
    /// anything else is fetched from the leader.
    mutating func learnCommitNotice(ballot: Ballot, leaderChosenThrough: Slot, leader: NodeID) {
        guard leaderChosenThrough > chosenThrough else { return }
        catchUpGoal = max(catchUpGoal, leaderChosenThrough)
        var slot = chosenThrough + 1
        while slot <= leaderChosenThrough {
            guard let entry = log[slot] else { break }
            if entry.chosen == nil {
                guard entry.acceptedBallot == ballot, let value = entry.acceptedValue else { break }
                markChosen(slot: slot, value: value)
            }
            slot += 1
        }
        advanceChosenThrough()
        if chosenThrough < leaderChosenThrough { requestCatchUp(from: leader) }
    }
}
