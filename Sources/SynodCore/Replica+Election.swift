/// Phase 1: becoming leader. A follower that has not heard from a leader for its randomized
/// election timeout picks a ballot above every one it has seen and asks every acceptor to
/// promise it for all slots from its first unchosen one.
extension Replica {
    mutating func startElection() {
        if leader != nil { return }
        // Learners, joining replicas and removed members never campaign.
        guard isVoter else {
            resetElectionTimer()
            return
        }
        let ballot = Ballot(round: max(promised.round, highestSeen.round) + 1, node: id)
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
        var newLeader = LeaderState(ballot: state.ballot, startSlot: chosenThrough + 1, nextSlot: chosenThrough + 1, lastHeartbeatAt: now)
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
        resetElectionTimer()
    }
}
