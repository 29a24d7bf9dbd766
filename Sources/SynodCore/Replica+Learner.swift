/// The learner role: record chosen values, apply them strictly in slot order, catch up from
/// peers when behind, and compact the log behind snapshots.
extension Replica {
    /// Records that `slot` is chosen with `value`. A chosen slot never changes: learning a
    /// different value for it means the protocol or its configuration is broken, which is
    /// recorded for `checkInvariants()` (the first value is kept).
    mutating func markChosen(slot: Slot, value: Value) {
        if slot <= (snapshot?.slot ?? 0) { return }
        if let known = log[slot]?.chosen {
            if known != value {
                detectedConflicts.append("slot \(slot) learned chosen as \(value) but was chosen as \(known)")
            }
            return
        }
        // A leader that learns (from a catch-up or another leader's notice) that one of its own
        // pending slots was chosen with a different value has been superseded by a higher
        // ballot. It must stop leading at once: its commit notices vouch that every slot it
        // reports chosen holds the value its ballot proposed there, which is now false.
        if let proposal = leader?.proposals[slot], proposal.value != value { stepDown() }
        log[slot, default: LogEntry()].chosen = value
        chosenLogBytes += value.payloadBytes
        persist(.chosen(slot: slot, value: value))
        leader?.proposals.removeValue(forKey: slot)
        advanceChosenThrough()
    }

    mutating func advanceChosenThrough() {
        while log[chosenThrough + 1]?.chosen != nil { chosenThrough += 1 }
    }

    /// Hands every newly chosen slot to the state machine, then answers the reads it unblocks.
    mutating func emitApplies() {
        if let snapshot, appliedThrough < snapshot.slot {
            out.apply.append(.snapshot(snapshot))
            appliedThrough = snapshot.slot
        }
        while appliedThrough < chosenThrough {
            let slot = appliedThrough + 1
            guard let value = log[slot]?.chosen else { break }
            out.apply.append(.entry(slot: slot, value: value))
            appliedThrough = slot
        }
        releaseAppliedReads()
    }

    mutating func requestCatchUp(from target: NodeID) {
        guard target != id, catchUpSentAt == nil else { return }
        catchUpSentAt = now
        send(.catchUpRequest(firstSlot: chosenThrough + 1), to: target)
    }

    mutating func onCatchUpRequest(from: NodeID, firstSlot: Slot) {
        var replySnapshot: Snapshot?
        var slot = firstSlot
        if let snapshot, firstSlot <= snapshot.slot {
            replySnapshot = snapshot
            slot = snapshot.slot + 1
        }
        var entries: [ChosenEntry] = []
        while slot <= chosenThrough && entries.count < configuration.catchUpEntriesMax {
            if let value = log[slot]?.chosen { entries.append(ChosenEntry(slot: slot, value: value)) }
            slot += 1
        }
        send(.catchUpReply(snapshot: replySnapshot, entries: entries, chosenThrough: chosenThrough), to: from)
    }

    mutating func onCatchUpReply(from: NodeID, snapshot newSnapshot: Snapshot?, entries: [ChosenEntry], theirChosenThrough: Slot) {
        if let newSnapshot, newSnapshot.slot > chosenThrough { install(newSnapshot) }
        for entry in entries { markChosen(slot: entry.slot, value: entry.value) }
        catchUpSentAt = nil
        catchUpGoal = max(catchUpGoal, theirChosenThrough)
        if chosenThrough < min(catchUpGoal, theirChosenThrough) { requestCatchUp(from: from) }
    }

    /// Replaces everything through `newSnapshot.slot` by the snapshot (all of it is chosen).
    private mutating func install(_ newSnapshot: Snapshot) {
        // Pending proposals under the snapshot were decided elsewhere with values this leader
        // cannot compare: it may have been superseded, so it stops leading (see markChosen).
        if let state = leader, state.proposals.keys.contains(where: { $0 <= newSnapshot.slot }) { stepDown() }
        snapshot = newSnapshot
        log = log.filter { $0.key > newSnapshot.slot }
        recountChosenLogBytes()
        if var state = leader {
            state.proposals = state.proposals.filter { $0.key > newSnapshot.slot }
            leader = state
        }
        chosenThrough = max(chosenThrough, newSnapshot.slot)
        advanceChosenThrough()
        persist(.snapshot(newSnapshot))
    }

    /// The state machine snapshotted its state through `slot`: keep it and drop the log below.
    mutating func onSnapshotTaken(slot: Slot, data: [UInt8]) {
        precondition(slot <= appliedThrough, "a snapshot can only cover applied slots")
        guard slot > (snapshot?.slot ?? 0) else { return }
        let newSnapshot = Snapshot(slot: slot, data: data)
        snapshot = newSnapshot
        log = log.filter { $0.key > slot }
        recountChosenLogBytes()
        persist(.snapshot(newSnapshot))
    }

    /// Recomputes `chosenLogBytes` after the log was cut (O(remaining slots)).
    mutating func recountChosenLogBytes() {
        chosenLogBytes = log.values.reduce(0) { $0 + ($1.chosen?.payloadBytes ?? 0) }
    }
}
