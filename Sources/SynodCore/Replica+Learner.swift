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

    /// Extends the contiguous chosen prefix; a membership change it passes joins the history
    /// (in slot order, so every replica derives the same history from the same prefix).
    mutating func advanceChosenThrough() {
        let before = chosenThrough
        let epochsBefore = membershipHistory?.epochs.count ?? 0
        while let value = log[chosenThrough + 1]?.chosen {
            chosenThrough += 1
            if case .reconfigure(let change) = value { noteMembershipChosen(change, at: chosenThrough) }
        }
        guard chosenThrough != before, let history = membershipHistory else { return }
        // Peers change when an epoch is added or the prefix crosses an activation slot.
        if history.epochs.count != epochsBefore || history.epochs.contains(where: { $0.activeFrom > before + 1 && $0.activeFrom <= chosenThrough + 1 }) {
            refreshPeers()
        }
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
            if case .reconfigure(let change) = value, change.origin == id {
                out.reconfigured.append(.init(requestID: change.requestID, result: .success(change)))
            }
        }
        releaseAppliedReads()
    }

    mutating func requestCatchUp(from target: NodeID) {
        guard target != id, catchUpSentAt == nil else { return }
        catchUpSentAt = now
        if let incoming = incomingSnapshot, snapshotTransferStalled(incoming) {
            // Its sender stopped answering (it crashed, was removed, or compacted past that
            // snapshot and has nothing newer): start over with the peer asked now.
            incomingSnapshot = nil
            snapshotTransfersAbandoned += 1
        }
        if let incoming = incomingSnapshot {
            // Mid-transfer: the next chunk, from where the transfer stands (also after a
            // lost message or a dropped connection).
            send(.snapshotChunkRequest(slot: incoming.slot, checksum: incoming.checksum, offset: incoming.received),
                 to: incoming.from)
            return
        }
        // Without a membership (joining) ask from slot 1, which always brings a snapshot: the
        // slots it already learned from Accepts and commit notices do not tell it who votes.
        send(.catchUpRequest(firstSlot: membershipHistory == nil ? 1 : chosenThrough + 1), to: target)
    }

    mutating func onCatchUpRequest(from: NodeID, firstSlot: Slot) {
        // A joining member needs a snapshot (it carries the membership); without one yet,
        // ask the driver to take one and answer the retry with it.
        if firstSlot == 1, snapshot == nil, chosenThrough >= 1 { out.snapshotWanted = true }
        if var served = servedSnapshot, firstSlot > served.entriesThrough, served.fetchers.contains(from) {
            // That fetcher is past what the pin keeps: done with it.
            served.fetchers.remove(from)
            servedSnapshot = served.fetchers.isEmpty ? nil : served
        }
        var replySnapshot: Snapshot?
        var slot = firstSlot
        if let served = servedSnapshot, firstSlot <= served.entriesThrough {
            // A pinned snapshot and the entries kept above it stand in for the compacted log.
            if firstSlot <= served.snapshot.slot {
                sendServedChunk(offset: 0, to: from)
                return
            }
            servedSnapshot?.served(to: from, now: now)
        } else if let snapshot, firstSlot <= snapshot.slot {
            if snapshot.bytes.count > configuration.snapshotChunkBytes {
                // Too large for one message: its first chunk; the requester asks for the rest
                // and then for the entries above it.
                pinSnapshot()
                sendServedChunk(offset: 0, to: from)
                return
            }
            // Small enough for one message: sent whole, read from its file if it is there.
            guard let data = snapshot.bytes.readAll() else {
                snapshotReadFailures += 1
                return
            }
            replySnapshot = Snapshot(slot: snapshot.slot, data: data, membership: snapshot.membership)
            slot = snapshot.slot + 1
        }
        var entries: [ChosenEntry] = []
        var entryBytes = 0
        while slot <= chosenThrough && entries.count < configuration.catchUpEntriesMax
                && (entries.isEmpty || entryBytes < configuration.catchUpBytesMax) {
            if let value = log[slot]?.chosen ?? servedSnapshot?.entries[slot] {
                entries.append(ChosenEntry(slot: slot, value: value))
                entryBytes += value.payloadBytes
            }
            slot += 1
        }
        send(.catchUpReply(snapshot: replySnapshot, entries: entries, chosenThrough: chosenThrough), to: from)
    }

    mutating func onCatchUpReply(from: NodeID, snapshot newSnapshot: Snapshot?, entries: [ChosenEntry], theirChosenThrough: Slot) {
        guard membershipHistory != nil || newSnapshot?.membership != nil else {
            // Joining: entries are useless without the membership they build on; retry later.
            catchUpSentAt = now
            catchUpGoal = max(catchUpGoal, theirChosenThrough)
            return
        }
        if let newSnapshot, newSnapshot.slot > chosenThrough {
            install(newSnapshot)
        } else if membershipHistory == nil, let newSnapshot, let history = newSnapshot.membership {
            adoptMembership(history, snapshotSlot: newSnapshot.slot)
        }
        for entry in entries { markChosen(slot: entry.slot, value: entry.value) }
        catchUpSentAt = nil
        catchUpGoal = max(catchUpGoal, theirChosenThrough)
        if chosenThrough < min(catchUpGoal, theirChosenThrough) { requestCatchUp(from: from) }
    }

    /// Pins the current snapshot (see `ServedSnapshot`), unless one is pinned already: every
    /// fetcher gets the pinned one while it lasts.
    private mutating func pinSnapshot() {
        guard servedSnapshot == nil, let snapshot else { return }
        guard let checksum = checksum(of: snapshot) else {
            snapshotReadFailures += 1
            return
        }
        servedSnapshot = ServedSnapshot(snapshot: snapshot, checksum: checksum, now: now)
    }

    /// Sends the chunk of the pinned snapshot at `offset` (at most `snapshotChunkBytes`).
    private mutating func sendServedChunk(offset: UInt64, to target: NodeID) {
        servedSnapshot?.served(to: target, now: now)
        guard let served = servedSnapshot else { return }
        let bytes = served.snapshot.bytes
        let start = Int(offset)
        guard let data = bytes.read(start..<(start + configuration.snapshotChunkBytes)) else {
            // Its file could not be read: nothing is sent, and the fetcher, hearing nothing,
            // abandons the transfer after the stall window and asks another peer.
            snapshotReadFailures += 1
            return
        }
        if start + data.count >= bytes.count { servedSnapshot?.installingSince[target] = now }
        send(.snapshotChunk(SnapshotChunk(slot: served.snapshot.slot, total: UInt64(bytes.count), checksum: served.checksum,
                                          offset: offset, data: data,
                                          membership: served.snapshot.membership, chosenThrough: chosenThrough)), to: target)
    }

    /// Before the log is cut through `slot` (a newer snapshot): the pinned snapshot keeps the
    /// chosen values above it, so its fetchers catch up from them. When the log does not hold
    /// them all (a snapshot installed from a peer replaced a log with gaps) the pin is dropped
    /// and its fetchers start over with the newer snapshot.
    private mutating func retainForServedSnapshot(through slot: Slot) {
        guard var served = servedSnapshot, slot > served.entriesThrough else { return }
        servedSnapshot = nil  // moved out while it grows, so its dictionary is not copied
        var next = served.entriesThrough + 1
        while next <= slot {
            guard let value = log[next]?.chosen else { return }
            served.entries[next] = value
            next += 1
        }
        served.entriesThrough = slot
        servedSnapshot = served
        pinnedSnapshotsOutlived += 1
    }

    /// Releases a pinned snapshot nobody asked for within the stall window, unless a fetcher
    /// that got its last chunk may still be installing it.
    mutating func expireServedSnapshot() {
        guard let served = servedSnapshot, now - served.lastServedAt >= snapshotStallTicks else { return }
        let grace = pinInstallGraceTicks(bytes: served.snapshot.bytes.count)
        if served.installingSince.values.contains(where: { now - $0 < grace }) { return }
        servedSnapshot = nil
    }

    /// How long a pin waits for a fetcher that got the last chunk to ask for the entries above
    /// it: the stall window plus a second per 64 MiB (decoding runs at about that rate or
    /// faster). Releasing the pin while the fetcher decoded made it fetch a newer snapshot and
    /// decode that too, holding two states at once (seen: a 2 GiB join, 46 s, joiner 4.7 GiB).
    func pinInstallGraceTicks(bytes: Int) -> UInt64 {
        let ticksPerSecond = max(1, 1_000_000_000 / configuration.tickNanoseconds)
        return snapshotStallTicks + UInt64(bytes / (64 << 20) + 1) * ticksPerSecond
    }

    /// The checksum of `snapshot` (this replica's own), computed once per snapshot (drivers
    /// usually hand it in with the snapshot, computed off their loop); nil when its file
    /// cannot be read.
    private mutating func checksum(of snapshot: Snapshot) -> UInt64? {
        if let cached = snapshotChecksum, cached.slot == snapshot.slot { return cached.value }
        guard let value = Snapshot.checksum(of: snapshot.bytes) else { return nil }
        snapshotChecksum = SnapshotChecksum(slot: snapshot.slot, value: value)
        return value
    }

    /// A chunked transfer that brings no chunk for this many catch-up retry intervals is
    /// abandoned (the sender is gone, or it compacted past that snapshot and sent nothing
    /// newer). Counted in time, not in retries: the retry on the tick is not the only path
    /// that asks for the next chunk (a heartbeat showing the replica behind asks too).
    static let snapshotStallRetries = 25

    /// `snapshotStallRetries` retry intervals, in ticks: how long a transfer (or a pin) lasts
    /// without progress.
    var snapshotStallTicks: UInt64 { UInt64(Self.snapshotStallRetries * configuration.catchUpRetryTicks) }

    func snapshotTransferStalled(_ incoming: IncomingSnapshot) -> Bool {
        now - incoming.progressAt >= snapshotStallTicks
    }

    /// The requester of a chunked snapshot asks for more: the next chunk of the pinned snapshot
    /// (kept while it is fetched, also after a newer one was taken: `ServedSnapshot`); the first
    /// chunk of the pinned one (or of the current one, pinned now) when it asks for an older
    /// one (the requester starts over with it); nothing when this replica has no large snapshot
    /// (the requester's retries go to other peers).
    mutating func onSnapshotChunkRequest(from: NodeID, slot: Slot, checksum: UInt64, offset: UInt64) {
        if let snapshot, snapshot.bytes.count > configuration.snapshotChunkBytes { pinSnapshot() }
        guard let served = servedSnapshot else { return }
        if served.snapshot.slot == slot, served.checksum == checksum, offset < UInt64(served.snapshot.bytes.count) {
            sendServedChunk(offset: offset, to: from)
        } else if served.snapshot.slot > slot {
            sendServedChunk(offset: 0, to: from)
        }
    }

    /// A chunk of a snapshot: kept if it continues the transfer in progress (or starts one
    /// for a newer snapshot), then the next one is asked for. A complete snapshot whose bytes
    /// match its checksum is installed like one from a catch-up reply; one that does not is
    /// discarded (and fetched again by the catch-up retries).
    mutating func onSnapshotChunk(from: NodeID, chunk: SnapshotChunk) {
        catchUpGoal = max(catchUpGoal, chunk.chosenThrough)
        guard chunk.slot > chosenThrough, membershipHistory != nil || chunk.membership != nil else { return }
        if let incoming = incomingSnapshot, incoming.slot <= chosenThrough { incomingSnapshot = nil }
        if chunk.offset == 0, incomingSnapshot == nil || chunk.slot > incomingSnapshot?.slot ?? 0 {
            incomingSnapshot = IncomingSnapshot(from: from, slot: chunk.slot, total: chunk.total,
                                                checksum: chunk.checksum, membership: chunk.membership,
                                                spool: snapshotSpooling?.makeSpool(slot: chunk.slot),
                                                progressAt: now)
        }
        guard var incoming = incomingSnapshot, incoming.slot == chunk.slot, incoming.checksum == chunk.checksum,
              incoming.total == chunk.total, incoming.received == chunk.offset else {
            return  // a duplicate, a late chunk, or another snapshot's
        }
        // Moved out before appending: with `incomingSnapshot` still holding the same buffer,
        // every append copied all bytes received so far (a 1 GiB snapshot took hours).
        incomingSnapshot = nil
        if let spool = incoming.spool {
            guard spool.append(chunk.data) else {
                // Not written (a full disk, say): dropped, and fetched again from the start
                // after the retry interval.
                snapshotSpoolFailures += 1
                catchUpSentAt = now
                return
            }
        } else {
            incoming.data.append(contentsOf: chunk.data)
        }
        incoming.received += UInt64(chunk.data.count)
        incoming.hash.combine(chunk.data)
        incoming.from = from
        incoming.progressAt = now
        guard incoming.received == incoming.total else {
            incomingSnapshot = incoming
            catchUpSentAt = nil
            requestCatchUp(from: from)
            return
        }
        incomingSnapshot = nil
        let checksum = incoming.hash.value
        guard checksum == incoming.checksum || configuration.unsafeSkipSnapshotChecksum else {
            snapshotChecksumFailures += 1
            catchUpSentAt = now  // fetched again from the start after the retry interval
            return
        }
        let bytes: SnapshotBytes
        if let spool = incoming.spool {
            guard let spooled = spool.finish(), spooled.count == Int(incoming.total) else {
                snapshotSpoolFailures += 1
                catchUpSentAt = now
                return
            }
            bytes = spooled
            snapshotsSpooled += 1
        } else {
            bytes = SnapshotBytes(incoming.data)
        }
        let complete = Snapshot(slot: incoming.slot, bytes: bytes, membership: incoming.membership)
        onCatchUpReply(from: from, snapshot: complete, entries: [], theirChosenThrough: chunk.chosenThrough)
        if snapshot?.slot == complete.slot, snapshot?.bytes.count == complete.bytes.count {
            // Installed: its checksum is known, so sending it on to others costs no hashing.
            snapshotChecksum = SnapshotChecksum(slot: complete.slot, value: checksum)
        }
        // The entries above the snapshot come next (onCatchUpReply asks while behind).
    }

    /// A joining replica that already learned the chosen prefix past the snapshot (a young
    /// cluster: Accepts and commit notices reached it before any snapshot did) takes the
    /// snapshot's membership and replays the membership changes of its own chosen slots above.
    private mutating func adoptMembership(_ history: MembershipHistory, snapshotSlot: Slot) {
        membershipHistory = history
        var slot = snapshotSlot + 1
        while slot <= chosenThrough {
            if case .reconfigure(let change)? = log[slot]?.chosen { noteMembershipChosen(change, at: slot) }
            slot += 1
        }
        refreshPeers()
        // Written down like an initial membership, so a restart does not need the peers again.
        persist(.membership(history))
    }

    /// Replaces everything through `newSnapshot.slot` by the snapshot (all of it is chosen).
    private mutating func install(_ newSnapshot: Snapshot) {
        // Pending proposals under the snapshot were decided elsewhere with values this leader
        // cannot compare: it may have been superseded, so it stops leading (see markChosen).
        if let state = leader, state.proposals.keys.contains(where: { $0 <= newSnapshot.slot }) { stepDown() }
        retainForServedSnapshot(through: newSnapshot.slot)
        snapshot = newSnapshot
        if let incoming = incomingSnapshot, incoming.slot <= newSnapshot.slot { incomingSnapshot = nil }
        log = log.filter { $0.key > newSnapshot.slot }
        recountChosenLogBytes()
        if var state = leader {
            state.proposals = state.proposals.filter { $0.key > newSnapshot.slot }
            leader = state
        }
        // The snapshot's membership is the history as of its slot; the log above it (kept,
        // and anything learned later) extends it again as the prefix advances.
        if let history = newSnapshot.membership { membershipHistory = history }
        chosenThrough = newSnapshot.slot
        advanceChosenThrough()
        refreshPeers()
        persist(.snapshot(newSnapshot))
    }

    /// The state machine snapshotted its state through `slot`: keep it and drop the log below.
    mutating func onSnapshotTaken(slot: Slot, bytes: SnapshotBytes, checksum: UInt64?) {
        precondition(slot <= appliedThrough, "a snapshot can only cover applied slots")
        guard slot > (snapshot?.slot ?? 0) else { return }
        retainForServedSnapshot(through: slot)
        let newSnapshot = Snapshot(slot: slot, bytes: bytes, membership: membershipHistory?.asOf(slot: slot))
        snapshot = newSnapshot
        if let checksum { snapshotChecksum = SnapshotChecksum(slot: slot, value: checksum) }
        membershipHistory?.dropEpochs(before: slot + 1)
        log = log.filter { $0.key > slot }
        recountChosenLogBytes()
        persist(.snapshot(newSnapshot))
    }

    /// The snapshot through `slot` is durable and readable from `bytes` (its file): the
    /// in-memory copy is dropped for it, here and in a pin of the same snapshot. A snapshot
    /// replaced meanwhile, or bytes of another size, change nothing.
    mutating func onSnapshotStored(slot: Slot, bytes: SnapshotBytes, checksum: UInt64?) {
        if let current = snapshot, current.slot == slot, current.bytes.count == bytes.count {
            snapshot?.bytes = bytes
            if let checksum { snapshotChecksum = SnapshotChecksum(slot: slot, value: checksum) }
        }
        if let served = servedSnapshot, served.snapshot.slot == slot, served.snapshot.bytes.count == bytes.count {
            servedSnapshot?.snapshot.bytes = bytes
        }
    }

    /// Recomputes `chosenLogBytes` after the log was cut (O(remaining slots)).
    mutating func recountChosenLogBytes() {
        chosenLogBytes = log.values.reduce(0) { $0 + ($1.chosen?.payloadBytes ?? 0) }
    }
}
