import SynodCore
import SynodKV

/// Applying chosen slots to the key-value state machine, in order, and answering the writes
/// that waited for them.
extension NodeDriver {
    mutating func apply(_ item: Apply) {
        switch item {
        case .snapshot(let snapshot):
            do {
                // The old state goes first: decoding beside it would hold two states at once.
                let sessionCapacity = kv.sessions.capacity
                kv = KVStateMachine(sessionCapacity: sessionCapacity)
                kv = try KVStateMachine(snapshot: snapshot.bytes, sessionCapacity: sessionCapacity)
            } catch {
                // A snapshot that passed the peer codec and storage checksums but does not
                // decode (or whose file cannot be read) is a bug or corruption: serve nothing
                // rather than wrong data.
                let reason = "undecodable snapshot at slot \(snapshot.slot): \(error)"
                out.events.append(.undecodableSnapshot(slot: snapshot.slot, reason: "\(error)"))
                stopReason = reason
                failEverything(.stopped)
                return
            }
            stateSlot = snapshot.slot
            snapshots.lastSlot = snapshot.slot
            leases.resetAll(from: kv.store, now: clock)
            out.stateReplaced = kv.store.revision
            out.events.append(.snapshotInstalled(slot: snapshot.slot, revision: kv.store.revision))
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
