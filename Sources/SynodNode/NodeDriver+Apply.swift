import SynodCore
import SynodKV

/// Applying chosen slots to the key-value state machine, in order, and answering the writes
/// that waited for them.
extension NodeDriver {
    mutating func apply(_ item: Apply) {
        switch item {
        case .snapshot(let snapshot):
            // Decoding a large state takes seconds (about one per 64 MiB): the shell does it
            // off its loop (`DriverOutput.decodeSnapshot`) so the replica keeps voting and
            // answering its peers meanwhile. The old state goes first: decoding beside it
            // would hold two states at once. Until `.snapshotDecoded` brings the new state,
            // entries above the snapshot wait, and so do reads (the state is not there).
            kv = KVStateMachine(sessionCapacity: kv.sessions.capacity)
            var decoding = StateDecoding(slot: snapshot.slot)
            if let previous = stateDecoding {
                // A newer snapshot replaces the one being decoded: the entries that waited are
                // below it, the reads and answers that waited go on waiting, for this one.
                decoding.reads = previous.reads
                decoding.reconfigurations = previous.reconfigurations
            }
            stateDecoding = decoding
            out.decodeSnapshot = SnapshotDecodeRequest(slot: snapshot.slot, bytes: snapshot.bytes,
                                                       sessionCapacity: kv.sessions.capacity)
        case .entry where stateDecoding != nil:
            stateDecoding?.entries.append(item)
        case .entry(let slot, let value):
            defer { stateSlot = slot }
            if settings.reportApplies { out.applied.append((slot, value)) }
            let commands = value.commands
            guard !commands.isEmpty else { return }
            out.events.append(.committed(commands: commands.count))
            for chosen in commands {
                let command = applyFilter.filter(chosen)
                let output = kv.apply(command, slot: slot)
                if case .applied(.success(.maintenance)) = output.outcome { observeMaintenance(output) }
                if !output.events.isEmpty { out.watchEvents.append((output.events, kv.store.revision)) }
                if case .applied(.success(let response)) = output.outcome {
                    leases.observe(command: command, response: response, now: clock)
                }
                guard let write = pendingWrites.removeValue(forKey: command.clientID) else { continue }
                switch output.outcome {
                case .applied(let result), .duplicate(let result):
                    switch result {
                    case .success(let response): complete(write, .success(response))
                    case .failure(let error): complete(write, .failure(.kv(error)))
                    }
                case .stale:
                    complete(write, .failure(.timedOut))
                }
            }
        }
    }

    /// The state decoded off the shell's loop from the snapshot through `slot` arrives: it
    /// becomes the state machine, then the entries that waited are applied and the reads and
    /// membership changes that waited are answered. A state decoded from a snapshot that a
    /// newer one replaced meanwhile is dropped (the newer one is being decoded).
    mutating func onSnapshotDecoded(slot: Slot, result: Result<KVStateMachine, SnapshotDecodeFailure>) {
        guard let decoding = stateDecoding, decoding.slot == slot else { return }
        switch result {
        case .success(let state):
            kv = state
        case .failure(let failure):
            // A snapshot that passed the peer codec and storage checksums but does not
            // decode (or whose file cannot be read) is a bug or corruption: serve nothing
            // rather than wrong data.
            out.events.append(.undecodableSnapshot(slot: slot, reason: failure.reason))
            stopReason = "undecodable snapshot at slot \(slot): \(failure.reason)"
            failEverything(.stopped)  // also the reads that waited for the state
            stateDecoding = nil
            return
        }
        stateDecoding = nil
        stateSlot = slot
        snapshots.lastSlot = slot
        leases.resetAll(from: kv.store, now: clock)
        out.stateReplaced = kv.store.revision
        out.events.append(.snapshotInstalled(slot: slot, revision: kv.store.revision))
        for item in decoding.entries {
            apply(item)
            if stopReason != nil { return }
        }
        for token in decoding.reads { out.reads.append((token, nil)) }
        out.reconfigurations += decoding.reconfigurations
    }

    /// A read the replica found ready: answered now, or once the state being decoded is there.
    mutating func readReady(token: UInt64) {
        if stateDecoding != nil && !settings.unsafeReadsWhileDecoding {
            stateDecoding?.reads.append(token)
        } else {
            out.reads.append((token, nil))
        }
    }

    /// After an integrity check, a report or an alarm change applied: report this replica's
    /// hash for a new check, and say which members are out of line with the majority.
    private mutating func observeMaintenance(_ output: KVStateMachine.Output) {
        let raised = kv.alarms.contains { $0.alarm == .corrupt }
        if raised != corruptAlarmRaised {
            corruptAlarmRaised = raised
            out.events.append(.corruptAlarm(raised: raised))
        }
        if let record = kv.integrityRecords.last, record.id != lastIntegrityRecordID {
            lastIntegrityRecordID = record.id
            out.events.append(.integrityCheckRecorded)
            let voters = replica.membershipHistory?.latest.voters.count ?? replica.configuration.members.count
            proposeInternal(.integrityReport(checkID: record.id, memberID: settings.memberID, hash: record.hash,
                                             voters: UInt64(max(1, voters))))
        }
        for mismatch in output.integrityMismatches {
            let name = kv.members[mismatch.memberID]?.name ?? String(mismatch.memberID, radix: 16)
            out.events.append(.integrityMismatch(mismatch, memberName: name, isLocal: mismatch.memberID == settings.memberID))
        }
    }
}
