/// Phase 2 at the leader: queue client commands, pack them into slots (batching), keep up to
/// `windowSlots` slots in flight (pipelining), count Accepted replies, and heartbeat.
extension Replica {
    /// At most this many unconfirmed heartbeat rounds are remembered for leases.
    static let heartbeatRoundsMax = 64

    mutating func onPropose(_ command: Command) {
        if leader != nil {
            enqueue(command, local: true)
        } else if let hint = leaderBallot?.node, hint != id {
            stepForwards.append(command)  // sent as one Forward message at the end of the step
        } else {
            out.rejected.append(.init(command: command, reason: .noLeader(leaderHint: leaderBallot?.node)))
        }
    }

    mutating func onForward(_ commands: [Command]) {
        // A forward that reaches a non-leader is dropped: its clients time out and retry.
        guard leader != nil else { return }
        for command in commands { enqueue(command, local: false) }
    }

    private mutating func enqueue(_ command: Command, local: Bool) {
        guard let state = leader else { return }
        if state.queuedCount >= configuration.pendingCommandsMax {
            if local { out.rejected.append(.init(command: command, reason: .busy)) }
            return
        }
        leader?.queue.append(command)
    }

    /// Proposes `value` for `slot` in the leader's ballot: accepts it locally (counted once
    /// durable) and sends Accept, with the commit notice, to every peer.
    mutating func propose(slot: Slot, value: Value) {
        guard let ballot = leader?.ballot else { return }
        precondition(promised == ballot, "a leader proposes only in the ballot it holds")
        log[slot, default: LogEntry()].acceptedBallot = ballot
        log[slot, default: LogEntry()].acceptedValue = value
        highestAccepted = max(highestAccepted, ballot)
        persist(.accepted(slot: slot, ballot: ballot, value: value))
        voteForSelf(.accepted(ballot, slot))
        leader?.proposals[slot] = Proposal(value: value, sentAt: now)
        // The Accept reveals only the leader's proposal, not an acceptance, so it leaves now.
        broadcast(.accept(ballot: ballot, slot: slot, value: value, chosenThrough: chosenThrough))
    }

    mutating func selfAcceptDurable(ballot: Ballot, slot: Slot) {
        guard leader?.ballot == ballot, leader?.proposals[slot] != nil else { return }
        leader?.proposals[slot]?.selfAccepted = true
        checkChosen(slot)
    }

    mutating func onAccepted(from: NodeID, ballot: Ballot, slot: Slot) {
        guard leader?.ballot == ballot else { return }
        leader?.lastAckAt[from] = now  // heard from: check-quorum counts it
        guard let proposal = leader?.proposals[slot] else { return }
        if !proposal.votes.contains(from) { leader?.proposals[slot]?.votes.append(from) }
        checkChosen(slot)
    }

    private mutating func checkChosen(_ slot: Slot) {
        guard let proposal = leader?.proposals[slot], let membership = membership(at: slot) else { return }
        // Only voters of the membership governing the slot count (learners accept too).
        // Counted in place: this runs for every Accepted, so it allocates nothing.
        var votes = proposal.selfAccepted && membership.isVoter(id) ? 1 : 0
        for voter in proposal.votes where membership.isVoter(voter) { votes += 1 }
        guard votes >= membership.phase2Quorum else { return }
        markChosen(slot: slot, value: proposal.value)
        announceChosen()
    }

    /// Tells the followers at once when the chosen prefix grew (a Commit notice), instead of
    /// letting them wait for the next Accept or Heartbeat to carry it.
    private mutating func announceChosen() {
        guard let state = leader, chosenThrough > state.commitNoticeThrough else { return }
        leader?.commitNoticeThrough = chosenThrough
        broadcast(.commit(ballot: state.ballot, chosenThrough: chosenThrough))
    }

    /// Fills free window slots, in order: values recovered in phase 1, then a waiting
    /// membership change, then batches of queued commands, then no-ops that bring a chosen
    /// change into effect. Stops at a slot whose membership this leader has no phase-1
    /// quorum of (it asks the missing voters), or does not vote in (it hands off).
    private mutating func fillWindow() {
        guard var state = leader, membershipHistory != nil else { return }
        // A leader that was superseded without knowing it may have learned (by catch-up)
        // slots chosen beyond its own next slot; it never proposes inside the chosen prefix,
        // nor below a chosen prefix some promise reported (those slots are fetched).
        state.nextSlot = max(state.nextSlot, chosenThrough + 1, state.maxChosenReported + 1)
        leader = state
        // The window bounds slots past the chosen prefix, not just unchosen proposals: slots
        // chosen out of order behind a gap still occupy it, so nothing grows without bound
        // while a gap waits for catch-up. It is capped at α (rule 2 in Replica+Membership).
        let window = effectiveWindowSlots
        while let current = leader, current.nextSlot - 1 - chosenThrough < window {
            let slot = current.nextSlot
            if log[slot]?.chosen != nil {
                leader?.nextSlot = slot + 1
                continue
            }
            guard let membership = membership(at: slot) else { break }
            guard membership.isVoter(id) else {
                leaderLeaves(at: slot)
                break
            }
            guard Self.covers(current.promisedBy, membership) else {
                prepareMissingVoters(membership)
                break
            }
            let value: Value
            if slot <= current.recoverThrough {
                value = current.recovered[slot]?.value ?? .noop
                leader?.recovered.removeValue(forKey: slot)
            } else if current.transfer != nil {
                break  // a transfer in progress: nothing new until the target took over
            } else if let change = nextReconfiguration(at: slot) {
                value = .reconfigure(change)
            } else if current.queuedCount > 0 {
                value = .batch(takeBatch())
            } else if activationPending(after: slot) {
                value = .noop
            } else {
                break
            }
            leader?.nextSlot = slot + 1
            propose(slot: slot, value: value)
        }
        compactQueue()
    }

    private mutating func takeBatch() -> [Command] {
        guard var state = leader else { return [] }
        var batch: [Command] = []
        var bytes = 0
        while state.queueHead < state.queue.count && batch.count < configuration.batchCommandsMax {
            let command = state.queue[state.queueHead]
            if !batch.isEmpty && bytes + command.payload.count > configuration.batchBytesMax { break }
            batch.append(command)
            bytes += command.payload.count
            state.queueHead += 1
        }
        leader = state
        return batch
    }

    private mutating func compactQueue() {
        guard var state = leader else { return }
        if state.queueHead == state.queue.count {
            if state.queueHead == 0 { return }
            state.queue.removeAll(keepingCapacity: true)
            state.queueHead = 0
        } else if state.queueHead > 1024 && state.queueHead * 2 > state.queue.count {
            state.queue.removeFirst(state.queueHead)
            state.queueHead = 0
        } else {
            return
        }
        leader = state
    }

    mutating func leaderTick() {
        checkLeaderQuorum()
        guard let state = leader else { return }
        // During a transfer a heartbeat every tick brings the target's chosen prefix back.
        if now - state.lastHeartbeatAt >= UInt64(state.transfer == nil ? configuration.heartbeatIntervalTicks : 1) { sendHeartbeat() }
        // Reads need promises from every governing membership (leaseConfirmedRound), even
        // where no proposal goes yet.
        for membership in governingMemberships(from: chosenThrough + 1) where !Self.covers(state.promisedBy, membership) {
            prepareMissingVoters(membership)
            break
        }
        // Accepts may be lost: send them again to the acceptors that have not answered.
        var slot = chosenThrough + 1
        while slot < state.nextSlot {
            if let proposal = state.proposals[slot], now - proposal.sentAt >= UInt64(configuration.retransmitTicks) {
                for peer in peers where !proposal.votes.contains(peer) {
                    send(.accept(ballot: state.ballot, slot: slot, value: proposal.value, chosenThrough: chosenThrough), to: peer)
                }
                leader?.proposals[slot]?.sentAt = now
            }
            slot += 1
        }
    }

    mutating func leaderFinishStep() {
        fillWindow()
        progressTransfer()
        if let state = leader, state.readRoundDue, state.confirmedSequence == state.heartbeatSequence {
            sendHeartbeat()
        }
    }

    /// Starts heartbeat round `sequence`: liveness, commit notice, and lease / read-index proof.
    mutating func sendHeartbeat() {
        guard let state = leader else { return }
        let sequence = state.heartbeatSequence + 1
        leader?.heartbeatSequence = sequence
        if configuration.readMode == .lease {
            // Bounded while no quorum answers: a round older than a lease can no longer start
            // one (its lease would already have expired), so only younger rounds are kept.
            var rounds = state.heartbeatSentAt
            let oldest = rounds.firstIndex { $0.sentAt.adding(nanoseconds: configuration.leaseNanoseconds) > clock } ?? rounds.count
            rounds.removeFirst(oldest)
            if rounds.count >= Self.heartbeatRoundsMax { rounds.removeFirst(rounds.count - Self.heartbeatRoundsMax + 1) }
            rounds.append(HeartbeatRound(sequence: sequence, sentAt: clock))
            leader?.heartbeatSentAt = rounds
        }
        leader?.lastHeartbeatAt = now
        leader?.readRoundDue = false
        // The leader is an acceptor too and counts itself in the lease quorum, so it guards
        // its own lease: it promises no one else for an election timeout from now.
        guardUntil = max(guardUntil, clock.adding(nanoseconds: configuration.guardNanoseconds))
        broadcast(.heartbeat(ballot: state.ballot, chosenThrough: chosenThrough, sequence: sequence))
        let round = leaseConfirmedRound()  // a single voter confirms its own rounds
        if round > state.confirmedSequence { confirmRound(round) }
    }

    mutating func onHeartbeatAck(from: NodeID, ballot: Ballot, sequence: UInt64, theirChosenThrough: Slot) {
        guard let state = leader, state.ballot == ballot, sequence <= state.heartbeatSequence else { return }
        leader?.lastAckAt[from] = now
        leader?.peerChosenThrough[from] = max(state.peerChosenThrough[from] ?? 0, theirChosenThrough)
        let previous = state.ackedSequence[from] ?? 0
        guard sequence > previous else { return }
        leader?.ackedSequence[from] = sequence
        // The highest round acknowledged by a lease quorum of every governing membership
        // (the leader acks its own rounds).
        let quorumRound = leaseConfirmedRound()
        if quorumRound > state.confirmedSequence { confirmRound(quorumRound) }
    }

    /// A lease quorum acknowledged round `sequence` (and so every earlier one).
    private mutating func confirmRound(_ sequence: UInt64) {
        guard let state = leader, sequence > state.confirmedSequence else { return }
        leader?.confirmedSequence = sequence
        if configuration.readMode == .lease, let round = state.heartbeatSentAt.last(where: { $0.sequence <= sequence }) {
            // The lease counts from when the heartbeat was sent, not when the acks arrived. A
            // confirmed round confirms every earlier one: the newest kept is the best start.
            let leaseNanoseconds = configuration.leaseNanoseconds
            leader?.leaseExpiresAt = max(state.leaseExpiresAt, round.sentAt.adding(nanoseconds: leaseNanoseconds))
        }
        leader?.heartbeatSentAt = state.heartbeatSentAt.filter { $0.sequence > sequence }
        releaseConfirmedReads()
    }
}
