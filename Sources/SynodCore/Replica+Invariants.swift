/// Invariants every replica keeps between steps.
///
/// Two levels:
/// - `firstBrokenSafetyInvariant(since:)` runs at the end of every step, in every build (it is
///   a handful of comparisons and allocates nothing). A broken one halts the replica
///   (fail-stop, see `Output.halted`): a replica that sees its own safety broken must not
///   keep serving.
/// - `checkInvariants()` adds the checks that cost more; the simulator and the tests run it
///   after every step.
extension Replica {
    /// Returns a description of every broken invariant; empty when all hold.
    public func checkInvariants() -> [String] {
        var problems = detectedConflicts
        if let broken = firstBrokenStateInvariant() { problems.append(broken) }
        let snapshotSlot = snapshot?.slot ?? 0
        if appliedThrough != chosenThrough { problems.append("chosen \(chosenThrough) but applied only \(appliedThrough) after a step") }
        if chosenThrough > snapshotSlot {
            // Spot-check the ends of the chosen prefix (a full scan per step would be quadratic).
            for slot in [snapshotSlot + 1, chosenThrough] where log[slot]?.chosen == nil {
                problems.append("slot \(slot) inside chosen prefix has no chosen value")
            }
        }
        if let state = leader {
            if state.nextSlot - 1 > max(state.startSlot - 1, chosenThrough + UInt64(configuration.windowSlots)) {
                problems.append("slots through \(state.nextSlot - 1) proposed past chosen \(chosenThrough) + window \(configuration.windowSlots)")
            }
            if let lowest = state.proposals.keys.min(), lowest <= chosenThrough {
                problems.append("proposal for slot \(lowest) already chosen")
            }
        }
        return problems
    }

    /// The checks `step` runs after every input, against the current state: nil when they
    /// pass (always, between steps of a replica that did not halt). For measuring their cost
    /// (`synod bench core`) and for drivers that want to assert soundness.
    public func safetyCheck() -> String? {
        firstBrokenSafetyInvariant(since: StepSnapshot(self))
    }

    /// The safety invariants checked after every step in production: what the replica
    /// detected itself (two values for one slot), what must never go down across a step
    /// (the promise, the highest acceptance, the chosen and applied prefixes), and the
    /// relations between the ballots it holds.
    func firstBrokenSafetyInvariant(since before: StepSnapshot) -> String? {
        if let conflict = detectedConflicts.first { return conflict }
        if promised < before.promised { return "promised ballot went down from \(before.promised) to \(promised)" }
        if highestAccepted < before.highestAccepted {
            return "highest accepted ballot went down from \(before.highestAccepted) to \(highestAccepted)"
        }
        if chosenThrough < before.chosenThrough { return "chosen prefix went down from \(before.chosenThrough) to \(chosenThrough)" }
        if appliedThrough < before.appliedThrough { return "applied prefix went down from \(before.appliedThrough) to \(appliedThrough)" }
        return firstBrokenStateInvariant()
    }

    /// Relations that hold in every state between steps; allocation-free when they hold.
    private func firstBrokenStateInvariant() -> String? {
        let snapshotSlot = snapshot?.slot ?? 0
        if appliedThrough > chosenThrough { return "applied \(appliedThrough) beyond chosen \(chosenThrough)" }
        if chosenThrough < snapshotSlot { return "snapshot \(snapshotSlot) beyond chosen \(chosenThrough)" }
        if log[chosenThrough + 1]?.chosen != nil { return "chosen prefix \(chosenThrough) not advanced" }
        if highestAccepted > promised { return "accepted ballot \(highestAccepted) above promise \(promised)" }
        // Only the ballots are read: binding `leader` or `candidate` would copy their state
        // (arrays and dictionaries) on every step.
        if let ballot = leader?.ballot {
            if candidate != nil { return "leader and candidate at once" }
            if ballot != promised { return "leader ballot \(ballot) differs from promise \(promised)" }
            if ballot.node != id { return "leads with another node's ballot \(ballot)" }
        }
        if let ballot = candidate?.ballot, ballot != promised {
            return "candidate ballot \(ballot) differs from promise \(promised)"
        }
        return nil
    }
}

/// What a step must not make go down, taken before it (see `firstBrokenSafetyInvariant`).
struct StepSnapshot {
    var promised: Ballot
    var highestAccepted: Ballot
    var chosenThrough: Slot
    var appliedThrough: Slot

    init(_ replica: Replica) {
        promised = replica.promised
        highestAccepted = replica.highestAccepted
        chosenThrough = replica.chosenThrough
        appliedThrough = replica.appliedThrough
    }
}
