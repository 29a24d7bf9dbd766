/// Phase 1: becoming leader. A follower that has not heard from a leader for its randomized
/// election timeout picks a ballot above every one it has seen and asks every acceptor to
/// promise it for all slots from its first unchosen one.
extension Replica {
    mutating func startElection() {
        if leader != nil { return }
        let ballot = Ballot(round: max(promised.round, highestSeen.round) + 1, node: id)
        // The own promise is durable before any Prepare leaves: after a crash this replica
        // restarts above `ballot` and so never proposes twice in one ballot.
        promised = ballot
        persist(.promised(ballot))
        voteForSelf(.promise(ballot))
        leaderBallot = nil
        let firstSlot = chosenThrough + 1
        candidate = CandidateState(ballot: ballot, firstSlot: firstSlot, prepareSentAt: now)
        for peer in peers { sendAfterDurable(.prepare(ballot: ballot, firstSlot: firstSlot), to: peer) }
        resetElectionTimer()
    }

    /// Prepare is sent again to acceptors that have not promised yet (messages may be lost).
    mutating func resendPrepare() {
        guard let state = candidate else { return }
        for peer in peers where state.promises[peer] == nil {
            sendAfterDurable(.prepare(ballot: state.ballot, firstSlot: state.firstSlot), to: peer)
        }
        candidate?.prepareSentAt = now
    }

    mutating func onPromise(from: NodeID, ballot: Ballot, report: PromiseReport) {
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
        guard let state = candidate, state.selfPromised,
              state.promises.count + 1 >= configuration.phase1Quorum else { return }
        becomeLeader(state)
    }

    /// Phase 1 is complete: recover every slot the promises report and fill the holes.
    ///
    /// Slots up to the highest `chosenThrough` among the promises are chosen; where this
    /// replica does not know their value it fetches them (it must not re-propose there: the
    /// acceptor that knew them did not report them). Above that, each slot gets the value of
    /// its highest-ballot report (a known-chosen report wins), or a no-op where nobody
    /// accepted anything.
    private mutating func becomeLeader(_ state: CandidateState) {
        var reports = Array(state.promises.values)
        reports.append(promiseReport(firstSlot: state.firstSlot))
        var maxChosen = chosenThrough
        var catchUpSource: NodeID?
        for (node, report) in state.promises.sorted(by: { $0.key < $1.key }) where report.chosenThrough > maxChosen {
            maxChosen = report.chosenThrough
            catchUpSource = node
        }
        var best: [Slot: PromisedEntry] = [:]
        var maxSlot = maxChosen
        for report in reports {
            for entry in report.entries {
                maxSlot = max(maxSlot, entry.slot)
                if let current = best[entry.slot] {
                    // nil ballot = known chosen: it outranks any accepted ballot.
                    guard let currentBallot = current.ballot else { continue }
                    if let ballot = entry.ballot, ballot <= currentBallot { continue }
                }
                best[entry.slot] = entry
            }
        }
        candidate = nil
        leaderBallot = state.ballot
        leader = LeaderState(ballot: state.ballot, startSlot: maxSlot + 1, nextSlot: maxSlot + 1, lastHeartbeatAt: now)
        if chosenThrough < maxSlot {
            for slot in (chosenThrough + 1)...maxSlot where log[slot]?.chosen == nil {
                let recovered = best[slot]
                if let recovered, recovered.ballot == nil {
                    markChosen(slot: slot, value: recovered.value)
                } else if slot > maxChosen {
                    propose(slot: slot, value: recovered?.value ?? .noop)
                }
            }
        }
        advanceChosenThrough()
        if chosenThrough < maxChosen, let source = catchUpSource {
            catchUpGoal = max(catchUpGoal, maxChosen)
            requestCatchUp(from: source)
        }
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
