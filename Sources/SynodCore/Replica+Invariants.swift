/// Invariants every replica keeps between steps. The simulator checks them after every step;
/// a non-empty result is a bug (or a deliberately broken configuration).
extension Replica {
    /// Returns a description of every broken invariant; empty when all hold.
    public func checkInvariants() -> [String] {
        var problems = detectedConflicts
        let snapshotSlot = snapshot?.slot ?? 0
        if appliedThrough > chosenThrough { problems.append("applied \(appliedThrough) beyond chosen \(chosenThrough)") }
        if appliedThrough != chosenThrough { problems.append("chosen \(chosenThrough) but applied only \(appliedThrough) after a step") }
        if chosenThrough < snapshotSlot { problems.append("snapshot \(snapshotSlot) beyond chosen \(chosenThrough)") }
        if log[chosenThrough + 1]?.chosen != nil { problems.append("chosen prefix \(chosenThrough) not advanced") }
        if chosenThrough > snapshotSlot {
            // Spot-check the ends of the chosen prefix (a full scan per step would be quadratic).
            for slot in [snapshotSlot + 1, chosenThrough] where log[slot]?.chosen == nil {
                problems.append("slot \(slot) inside chosen prefix has no chosen value")
            }
        }
        if let state = leader {
            if candidate != nil { problems.append("leader and candidate at once") }
            if state.ballot != promised { problems.append("leader ballot \(state.ballot) differs from promise \(promised)") }
            if state.ballot.node != id { problems.append("leads with another node's ballot \(state.ballot)") }
            if state.nextSlot - 1 > max(state.startSlot - 1, chosenThrough + UInt64(configuration.windowSlots)) {
                problems.append("slots through \(state.nextSlot - 1) proposed past chosen \(chosenThrough) + window \(configuration.windowSlots)")
            }
            if let lowest = state.proposals.keys.min(), lowest <= chosenThrough {
                problems.append("proposal for slot \(lowest) already chosen")
            }
        }
        if let state = candidate, state.ballot != promised {
            problems.append("candidate ballot \(state.ballot) differs from promise \(promised)")
        }
        if highestAccepted > promised {
            problems.append("accepted ballot \(highestAccepted) above promise \(promised)")
        }
        return problems
    }
}
