import SynodCore
import SynodKV

/// Client requests: writes (sessions, retries, expiry), read barriers, membership changes and
/// leader transfers.
extension NodeDriver {
    mutating func onWrite(token: UInt64, payload: [UInt8], requestID: UInt64?) {
        if let refusal = role.refusal(needsVoter: true) {
            out.writes.append((token, .failure(refusal)))
            return
        }
        register(payload, requestID: requestID, token: token)
    }

    /// A command the node proposes for itself; nobody waits for its outcome.
    mutating func proposeInternal(_ command: KVCommand) {
        register(command.encoded(), requestID: nil, token: Self.internalToken)
    }

    /// Remembers who waits for a command and queues it for the next flush.
    private mutating func register(_ payload: [UInt8], requestID: UInt64?, token: UInt64) {
        let clientID: UInt64
        if let requestID {
            clientID = Self.sessionID(requestID: requestID, payload: payload)
            if pendingWrites[clientID] != nil {
                // Another attempt of a request still in flight here: it waits with it.
                pendingWrites[clientID]?.tokens.append(token)
                return
            }
        } else {
            clientID = sessionIDs.next() | 1  // never 0
        }
        let command = Command(clientID: clientID, sequence: 1, payload: payload)
        pendingWrites[clientID] = PendingWrite(command: command, tokens: [token],
                                               deadline: clock.adding(nanoseconds: settings.requestTimeoutNanoseconds),
                                               proposedAt: clock)
        out.events.append(.proposed)
        turnProposals.append(command)
    }

    /// Writes past their deadline fail; writes not applied `retryAfter` after they were
    /// proposed (or never proposed, now that a leader is known) are proposed again, which is
    /// safe: the session table applies a (client, sequence) at most once.
    mutating func retryAndExpireWrites() {
        guard !pendingWrites.isEmpty else { return }
        var expired: [UInt64] = []
        var retry: [Command] = []
        for (clientID, write) in pendingWrites {
            if write.deadline <= clock {
                expired.append(clientID)
            } else if write.proposedAt.map({ $0.adding(nanoseconds: settings.retryAfterNanoseconds) <= clock })
                        ?? (replica.leaderHint != nil) {
                retry.append(write.command)
            }
        }
        let error: NodeError = replica.leaderHint == nil ? .noLeader : .timedOut
        for clientID in expired.sorted() {
            if let write = pendingWrites.removeValue(forKey: clientID) { complete(write, .failure(error)) }
        }
        for command in retry.sorted(by: { $0.clientID < $1.clientID }) {
            pendingWrites[command.clientID]?.proposedAt = clock
            stepReplica(.propose(command))
        }
    }

    mutating func onRead(token: UInt64, consistency: ReadConsistency) {
        if let refusal = role.refusal(needsVoter: consistency == .linearizable) {
            out.reads.append((token, refusal))
            return
        }
        guard consistency == .linearizable else {
            readReady(token: token)  // the local state, now (once it is there)
            return
        }
        let readID = nextReadID
        nextReadID += 1
        pendingReads[readID] = token
        stepReplica(.read(readID: readID, consistency: .linearizable))
    }

    /// A read barrier that also works at a learner (health checks: it has applied what the
    /// leader had chosen when the barrier began).
    public mutating func memberReadBarrier(token: UInt64, clock reading: ClockTime) -> DriverOutput {
        if reading > clock { clock = reading }
        guard stopReason == nil, !removed else {
            var output = DriverOutput()
            output.reads.append((token, removed ? .removed : .stopped))
            return output
        }
        let readID = nextReadID
        nextReadID += 1
        pendingReads[readID] = token
        stepReplica(.read(readID: readID, consistency: .linearizable))
        out.flushWanted = !turnProposals.isEmpty
        let result = out
        out = DriverOutput()
        return result
    }

    mutating func onReconfigure(token: UInt64, change: MembershipChange, force: Bool) {
        let requestID = freshRequestID()
        pendingReconfigurations[requestID] = PendingRequest(token: token, deadline: requestDeadline)
        if change == .remove(nodeID) { pendingSelfRemovals.insert(requestID) }
        stepReplica(.reconfigure(requestID: requestID, change: change, force: force))
    }

    mutating func onTransfer(token: UInt64, target: NodeID) {
        let requestID = freshRequestID()
        pendingTransfers[requestID] = PendingRequest(token: token, deadline: requestDeadline)
        stepReplica(.transferLeadership(requestID: requestID, target: target))
    }

    private mutating func freshRequestID() -> UInt64 {
        var requestID = sessionIDs.next() | 1
        while pendingReconfigurations[requestID] != nil || pendingTransfers[requestID] != nil {
            requestID = sessionIDs.next() | 1
        }
        return requestID
    }

    private var requestDeadline: ClockTime { clock.adding(nanoseconds: settings.requestTimeoutNanoseconds) }

    /// Membership requests whose outcome never came (lost with a leader change) fail.
    mutating func expireMembershipRequests() {
        for (id, request) in pendingReconfigurations.sorted(by: { $0.key < $1.key }) where request.deadline <= clock {
            pendingReconfigurations.removeValue(forKey: id)
            out.reconfigurations.append((request.token, .failure(NodeError.timedOut)))
        }
        for (id, request) in pendingTransfers.sorted(by: { $0.key < $1.key }) where request.deadline <= clock {
            pendingTransfers.removeValue(forKey: id)
            out.transfers.append((request.token, .failure(NodeError.transferTimedOut)))
        }
        pendingSelfRemovals = pendingSelfRemovals.filter { pendingReconfigurations[$0] != nil }
    }
}
