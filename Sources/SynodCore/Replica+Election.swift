/// Phase 1: becoming leader. A follower that has not heard from a leader for its randomized
/// election timeout first asks the voters whether they would promise a higher ballot
/// (pre-vote); once a phase-1 quorum of every governing membership would, it picks a ballot
/// above every one it has seen and asks every acceptor to promise it for all slots from its
/// first unchosen one.
///
/// Pre-vote changes nothing durable on either side. It exists for liveness: a node cut off
/// from a healthy leader would otherwise raise its promised ballot at every timeout, and once
/// reconnected reject the leader's Accepts and Heartbeats with that higher ballot, making it
/// step down for nothing. Acceptors refuse a pre-vote while their lease guard holds (they
/// heard from a leader within an election timeout), so an isolated node stays a follower
/// with its old ballot and rejoins quietly.
extension Replica {
    /// The election timer fired: campaign, through a pre-vote unless it is off.
    mutating func electionTimeout() {
        guard configuration.preVote else {
            startElection()
            return
        }
        startPreVote()
    }

    /// The ballot a campaign from here would use: above every ballot seen.
    var nextCampaignBallot: Ballot { Ballot(round: max(promised.round, highestSeen.round) + 1, node: id) }

    mutating func startPreVote() {
        if leader != nil { return }
        guard isVoter, repair == nil else {
            resetElectionTimer()
            return
        }
        candidate = nil
        let ballot = nextCampaignBallot
        let firstSlot = chosenThrough + 1
        preCandidate = PreCandidateState(ballot: ballot, firstSlot: firstSlot, grantedBy: [id], sentAt: now)
        for peer in voterPeers(from: firstSlot) { send(.preVote(ballot: ballot), to: peer) }
        resetElectionTimer()
        startElectionIfPreVoted()
    }

    /// Pre-votes are sent again to voters that have not answered (messages may be lost).
    mutating func resendPreVote() {
        guard let state = preCandidate else { return }
        for peer in voterPeers(from: state.firstSlot) where !state.answeredBy.contains(peer) {
            send(.preVote(ballot: state.ballot), to: peer)
        }
        preCandidate?.sentAt = now
    }

    /// Would this acceptor promise `ballot` now? Answered without changing any state.
    mutating func onPreVote(from: NodeID, ballot: Ballot) {
        // Like Prepare: a node that votes in no membership this acceptor knows is not answered.
        guard knownVoter(ballot.node) else {
            askUnknownVoterForCatchUp(from)
            return
        }
        let granted = ballot > promised && leader == nil && !leaseGuardForbids(ballot)
        send(.preVoteReply(ballot: ballot, granted: granted, promised: promised), to: from)
    }

    mutating func onPreVoteReply(from: NodeID, ballot: Ballot, granted: Bool, promised higher: Ballot) {
        guard preCandidate?.ballot == ballot else { return }
        preCandidate?.answeredBy.insert(from)
        guard granted else {
            // A higher promise elsewhere: the next campaign goes above it.
            if higher.node.rawValue >= 1 { noteBallot(higher) }
            return
        }
        preCandidate?.grantedBy.insert(from)
        startElectionIfPreVoted()
    }

    private mutating func startElectionIfPreVoted() {
        guard let state = preCandidate else { return }
        let memberships = governingMemberships(from: state.firstSlot)
        guard !memberships.isEmpty, memberships.allSatisfy({ Self.covers(state.grantedBy, $0) }) else { return }
        startElection()
    }

    mutating func startElection() {
        if leader != nil { return }
        // Learners, joining replicas, removed members and repairing replicas never campaign.
        guard isVoter, repair == nil else {
            resetElectionTimer()
            return
        }
        preCandidate = nil
        let ballot = nextCampaignBallot
        // The own promise is durable before any Prepare leaves: after a crash this replica
        // restarts above `ballot` and so never proposes twice in one ballot.
        promised = ballot
        persist(.promised(ballot))
        voteForSelf(.promise(ballot))
        leaderBallot = nil
        let firstSlot = chosenThrough + 1
        candidate = CandidateState(ballot: ballot, firstSlot: firstSlot, prepareSentAt: now)
        for peer in voterPeers(from: firstSlot) { sendAfterDurable(.prepare(ballot: ballot, firstSlot: firstSlot), to: peer) }
        resetElectionTimer()
    }

    /// Prepare is sent again to acceptors that have not promised yet (messages may be lost).
    mutating func resendPrepare() {
        guard let state = candidate else { return }
        for peer in voterPeers(from: state.firstSlot) where state.promises[peer] == nil {
            sendAfterDurable(.prepare(ballot: state.ballot, firstSlot: state.firstSlot), to: peer)
        }
        candidate?.prepareSentAt = now
    }

    mutating func onPromise(from: NodeID, ballot: Ballot, report: PromiseReport) {
        if let state = leader, state.ballot == ballot, !state.promisedBy.contains(from) {
            mergeReport(report, from: from)  // a voter of a newer membership (rule 4)
            return
        }
        guard let state = candidate, state.ballot == ballot else { return }
        candidate?.promises[from] = report
        becomeLeaderIfPromised()
    }

    mutating func selfPromiseDurable(_ ballot: Ballot) {
        guard candidate?.ballot == ballot else { return }
        candidate?.selfPromised = true
        becomeLeaderIfPromised()
    }

    private mutating func becomeLeaderIfPromised() {
        guard let state = candidate, state.selfPromised else { return }
        var promisers = Set(state.promises.keys)
        promisers.insert(id)
        let memberships = governingMemberships(from: state.firstSlot)
        guard !memberships.isEmpty, memberships.allSatisfy({ Self.covers(promisers, $0) }) else { return }
        becomeLeader(state)
    }

    /// Phase 1 is complete for every membership this replica knows: recover the slots the
    /// promises report.
    ///
    /// Slots up to the highest `chosenThrough` among the promises are chosen; where this
    /// replica does not know their value it fetches them (it must not re-propose there: the
    /// acceptor that knew them did not report them). Above that, each slot gets the value of
    /// its highest-ballot report (a known-chosen report wins), or a no-op where nobody
    /// accepted anything; `fillWindow` proposes them in order, within the window and only
    /// where the governing membership's voters promised (see Replica+Membership).
    private mutating func becomeLeader(_ state: CandidateState) {
        candidate = nil
        leaderBallot = state.ballot
        var newLeader = LeaderState(ballot: state.ballot, startSlot: chosenThrough + 1, nextSlot: chosenThrough + 1,
                                    lastHeartbeatAt: now, electedAt: now)
        newLeader.prepareFirstSlot = state.firstSlot
        newLeader.maxChosenReported = chosenThrough
        leader = newLeader
        mergeReport(promiseReport(firstSlot: state.firstSlot), from: id)
        for (node, report) in state.promises.sorted(by: { $0.key < $1.key }) { mergeReport(report, from: node) }
        sendHeartbeat()
    }

    mutating func onReject(ballot: Ballot, promised higher: Ballot) {
        noteBallot(higher)
        guard let own = ownBallot, own == ballot, higher > own else { return }
        stepDown()
    }

    /// Gives up leading or campaigning: queued commands and waiting reads fail so their
    /// clients can retry at the new leader.
    mutating func stepDown() {
        if let state = leader {
            for pending in state.changeQueue {
                refuse(origin: pending.origin, requestID: pending.requestID, .leaderChanged)
            }
            if let transfer = state.transfer {
                out.transfers.append(.init(requestID: transfer.requestID, result: .failure(.leaderChanged)))
            }
            for index in state.queueHead..<state.queue.count {
                out.rejected.append(.init(command: state.queue[index], reason: .noLeader(leaderHint: nil)))
            }
            for read in state.reads {
                if read.requester == id {
                    out.readsFailed.append(.init(readID: read.readID, reason: .noLeader(leaderHint: nil)))
                } else {
                    send(.readIndexReply(readID: read.readID, index: nil), to: read.requester)
                }
            }
            leaderBallot = nil
        }
        leader = nil
        candidate = nil
        preCandidate = nil
        resetElectionTimer()
    }

    /// Check-quorum: a leader that heard from fewer than a phase-2 quorum of some governing
    /// membership within the last election timeout cannot choose anything and may have been
    /// superseded; it steps down, so its waiting requests fail now and their clients retry
    /// elsewhere instead of waiting out their timeouts.
    mutating func checkLeaderQuorum() {
        guard configuration.checkQuorum, let state = leader else { return }
        let window = UInt64(configuration.electionTimeoutTicks)
        guard now - state.electedAt >= window else { return }
        for membership in governingMemberships(from: chosenThrough + 1) where membership.isVoter(id) {
            var heard = 0
            for voter in membership.voters where voter == id || state.lastAckAt[voter].map({ now - $0 < window }) == true {
                heard += 1
            }
            if heard < membership.phase2Quorum {
                stepDown()
                return
            }
        }
    }
}
