import SynodCore

/// The nodes that durably accepted one value for one slot in one ballot.
struct SlotAcceptance {
    var ballot: Ballot
    var value: Value
    var nodes: [NodeID]
}

/// The quorum check: every chosen slot was accepted, in one ballot, by a phase-2 quorum of the
/// membership that governs it according to the chosen log. It holds however the leader that
/// counted the votes reasoned; it fails when a proposer counted a slot with the wrong
/// membership (a change taking effect too early, or overlapping changes), which may show
/// as disagreement only much later, if ever.
extension Simulation {
    /// Records the acceptances in `records`: a synced batch, or what a restarted node's disk
    /// kept (a crash may keep unsynced writes, which then count as durable).
    func recordAcceptances(_ node: Int, _ records: [DurableRecord]) {
        for record in records {
            guard case .accepted(let slot, let ballot, let value) = record else { continue }
            let id = nodes[node].id
            if let index = acceptances[slot]?.firstIndex(where: { $0.ballot == ballot && $0.value == value }) {
                if !acceptances[slot]![index].nodes.contains(id) { acceptances[slot]![index].nodes.append(id) }
            } else {
                acceptances[slot, default: []].append(SlotAcceptance(ballot: ballot, value: value, nodes: [id]))
            }
        }
    }

    /// The membership governing `slot` according to the chosen log.
    func chosenMembership(at slot: Slot) -> Membership {
        var result = chosenEpochs[0].membership
        for epoch in chosenEpochs where epoch.activeFrom <= slot { result = epoch.membership }
        return result
    }

    func checkQuorums() {
        for slot in chosen.keys.sorted() {
            guard let value = chosen[slot] else { continue }
            let membership = chosenMembership(at: slot)
            let accepted = acceptances[slot] ?? []
            let hasQuorum = accepted.contains { acceptance in
                acceptance.value == value && acceptance.nodes.filter(membership.isVoter).count >= membership.phase2Quorum
            }
            if !hasQuorum {
                let best = accepted.filter { $0.value == value }.map { $0.nodes.map(\.description).sorted().joined(separator: ",") }
                violation("quorum: slot \(slot) chosen as \(value) without a phase-2 quorum of its voters \(membership.voters)"
                          + " (accepted in one ballot by: \(best.isEmpty ? "nobody" : best.joined(separator: " / ")))")
                recordSlotViolation(slot, values: [value])
                return
            }
        }
    }

    /// Checks every Promise as it leaves: it must report every value its sender durably
    /// accepted (at that ballot or a higher one) in a slot above both the Prepare's first slot
    /// and the chosen prefix it reports, unless it reports the slot chosen. A promise that
    /// forgets an acceptance lets the candidate propose another value where this one may be
    /// chosen: the hazard of trusting a log that lost synced writes (`--break skip-repair`).
    /// The simulator knows every acceptance that was durable (`acceptances`), also one the
    /// node's disk lost later.
    func checkVote(_ envelope: Envelope) {
        switch envelope.message {
        case .prepare(let ballot, let firstSlot):
            prepareFirstSlot[ballot] = firstSlot
        case .promise(let ballot, let chosenThrough, let entries):
            let lowest = max(prepareFirstSlot[ballot] ?? 1, chosenThrough + 1)
            let reported = Dictionary(entries.map { ($0.slot, $0) }, uniquingKeysWith: { first, _ in first })
            for (slot, accepted) in acceptances where slot >= lowest {
                for acceptance in accepted where acceptance.nodes.contains(envelope.from) && acceptance.ballot < ballot {
                    guard let entry = reported[slot] else {
                        violation("vote: \(envelope.from) promised \(ballot) without reporting slot \(slot), which it durably accepted"
                                  + " in \(acceptance.ballot) (its disk lost it, and it voted without repairing)")
                        return
                    }
                    if let entryBallot = entry.ballot, entryBallot < acceptance.ballot {
                        violation("vote: \(envelope.from) promised \(ballot) reporting slot \(slot) in \(entryBallot), below its durable"
                                  + " acceptance in \(acceptance.ballot)")
                        return
                    }
                }
            }
        default:
            break
        }
    }
}
