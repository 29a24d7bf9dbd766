/// Reads: serializable reads are answered from the local state at once; linearizable reads
/// are answered by the leader under its lease, or after one heartbeat round confirms it still
/// leads (read index). A follower forwards linearizable reads to the leader for an index and
/// answers once it has applied through it.
extension Replica {
    mutating func onRead(readID: UInt64, consistency: ReadConsistency) {
        switch consistency {
        case .serializable:
            // Answered in this step: its index is the chosen prefix, which is applied before
            // the step ends (so this never queues).
            readsAwaitingApply.append(ReadAwaitingApply(readID: readID, index: chosenThrough, startedAt: now))
        case .linearizable:
            if leader != nil {
                leaderRead(readID: readID, requester: id)
            } else if let target = leaderBallot?.node, target != id {
                guard forwardedReads.count < configuration.pendingReadsMax else {
                    out.readsFailed.append(.init(readID: readID, reason: .busy))
                    return
                }
                forwardedReads[readID] = now
                send(.readIndexRequest(readID: readID), to: target)
            } else {
                out.readsFailed.append(.init(readID: readID, reason: .noLeader(leaderHint: nil)))
            }
        }
    }

    /// Whether the leader may answer reads from its own state right now.
    public var holdsLease: Bool {
        guard let state = leader else { return false }
        // Decided on the clock read for this very step (see `ClockTime`), never on ticks.
        return configuration.readMode == .lease && clock < state.leaseExpiresAt && chosenThrough + 1 >= state.startSlot
    }

    mutating func leaderRead(readID: UInt64, requester: NodeID) {
        guard let state = leader else { return }
        if holdsLease {
            deliverReadIndex(readID: readID, requester: requester, index: chosenThrough)
            return
        }
        guard state.reads.count < configuration.pendingReadsMax else {
            if requester == id {
                out.readsFailed.append(.init(readID: readID, reason: .busy))
            } else {
                send(.readIndexReply(readID: readID, index: nil), to: requester)
            }
            return
        }
        // Every slot a previous leader may have chosen is below startSlot; every slot this
        // leader chose is at most chosenThrough. The read waits for a round sent after it arrived.
        let index = max(chosenThrough, state.startSlot - 1)
        leader?.reads.append(LeaderRead(readID: readID, requester: requester, index: index,
                                        sequence: state.heartbeatSequence + 1, startedAt: now))
        leader?.readRoundDue = true
    }

    mutating func onReadIndexRequest(from: NodeID, readID: UInt64) {
        if leader != nil {
            leaderRead(readID: readID, requester: from)
        } else {
            send(.readIndexReply(readID: readID, index: nil), to: from)
        }
    }

    mutating func onReadIndexReply(from: NodeID, readID: UInt64, index: Slot?) {
        guard let startedAt = forwardedReads.removeValue(forKey: readID) else { return }
        guard let index else {
            out.readsFailed.append(.init(readID: readID, reason: .noLeader(leaderHint: leaderBallot?.node)))
            return
        }
        readsAwaitingApply.append(ReadAwaitingApply(readID: readID, index: index, startedAt: startedAt))
        if chosenThrough < index {
            catchUpGoal = max(catchUpGoal, index)
            requestCatchUp(from: from)
        }
    }

    private mutating func deliverReadIndex(readID: UInt64, requester: NodeID, index: Slot) {
        if requester == id {
            readsAwaitingApply.append(ReadAwaitingApply(readID: readID, index: index, startedAt: now))
        } else {
            send(.readIndexReply(readID: readID, index: index), to: requester)
        }
    }

    /// Reads whose heartbeat round a lease quorum confirmed get their index.
    mutating func releaseConfirmedReads() {
        guard let state = leader else { return }
        var waiting: [LeaderRead] = []
        for read in state.reads {
            if read.sequence <= state.confirmedSequence {
                deliverReadIndex(readID: read.readID, requester: read.requester, index: read.index)
            } else {
                waiting.append(read)
            }
        }
        leader?.reads = waiting
    }

    /// Reads whose index is applied are ready (the driver answers them after applying).
    mutating func releaseAppliedReads() {
        guard !readsAwaitingApply.isEmpty else { return }
        var waiting: [ReadAwaitingApply] = []
        for read in readsAwaitingApply {
            if read.index <= appliedThrough {
                out.readsReady.append(read.readID)
            } else {
                waiting.append(read)
            }
        }
        readsAwaitingApply = waiting
    }

    /// Reads that waited longer than `readTimeoutTicks` fail, so clients can retry elsewhere.
    mutating func expireReads() {
        let timeout = UInt64(configuration.readTimeoutTicks)
        for (readID, startedAt) in forwardedReads.sorted(by: { $0.key < $1.key }) where now - startedAt >= timeout {
            forwardedReads.removeValue(forKey: readID)
            out.readsFailed.append(.init(readID: readID, reason: .timedOut))
        }
        if readsAwaitingApply.contains(where: { now - $0.startedAt >= timeout }) {
            for read in readsAwaitingApply where now - read.startedAt >= timeout {
                out.readsFailed.append(.init(readID: read.readID, reason: .timedOut))
            }
            readsAwaitingApply.removeAll { now - $0.startedAt >= timeout }
        }
        if let state = leader, state.reads.contains(where: { now - $0.startedAt >= timeout }) {
            for read in state.reads where now - read.startedAt >= timeout {
                if read.requester == id {
                    out.readsFailed.append(.init(readID: read.readID, reason: .timedOut))
                } else {
                    send(.readIndexReply(readID: read.readID, index: nil), to: read.requester)
                }
            }
            leader?.reads.removeAll { now - $0.startedAt >= timeout }
        }
    }
}
