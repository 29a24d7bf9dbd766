import SynodCheck
import SynodCore

/// The checks at the end of a run.
extension Simulation {
    func finish() {
        checkQuorums()
        // Every acknowledged write must be in the chosen log.
        for (key, historyIndex) in acknowledgedWrites.sorted(by: { $0.value < $1.value }) where !appliedCommands.contains(key) {
            violation("lost acknowledged write: \(describe(history[historyIndex].operation)) (client \(key.clientID) #\(key.sequence))")
        }
        // Progress: once faults heal, the cluster must commit again within the bound.
        let bound = faultsEndTime + options.progressBoundSeconds.micros
        if let first = firstWriteAfterHeal {
            if first > bound { violation("progress: first write after healing took \((first - faultsEndTime) / 1_000) ms") }
        } else if options.clients > 0 {
            violation("progress: no write acknowledged after faults healed at \(faultsEndTime / 1_000) ms")
        }
        if !clients[options.clients].finished && options.keys > 0 {
            violation("progress: final reads did not complete")
        }
        // Convergence: replicas that applied the same prefix hold the same state, and every
        // replica reached the highest applied slot.
        // Members of the final membership only: a removed node may have stopped hearing of
        // the log (agreement was checked on every node, removed or not, at every apply).
        let working = nodes.filter { !$0.refusedToStart && !$0.removed }
        if !healthy(latestMembership.voters) {
            violation("simulator: the final voters \(latestMembership.voters) lack a majority with working disks")
        }
        result.snapshotChecksumFailures = nodes.reduce(0) { $0 + $1.replica.snapshotChecksumFailures }
        result.pinnedSnapshotsOutlived = nodes.reduce(0) { $0 + $1.replica.pinnedSnapshotsOutlived }
        result.snapshotsSpooled = nodes.reduce(0) { $0 + $1.replica.snapshotsSpooled }
        let highest = working.map(\.replica.appliedThrough).max() ?? 0
        var hashes: Set<UInt64> = []
        for node in working {
            if node.replica.appliedThrough == highest {
                hashes.insert(node.kv.stateHash)
                if let alarm = node.kv.alarms.first { violation("n\(node.id.rawValue) ends with the \(alarm.alarm) alarm for member \(String(alarm.memberID, radix: 16))") }
            } else if !node.up {
                violation("n\(node.id.rawValue) is down at the end")
            } else {
                violation("convergence: n\(node.id.rawValue) applied through \(node.replica.appliedThrough) of \(highest)")
            }
        }
        if hashes.count > 1 { violation("replicas at slot \(highest) hold different states") }
        // A removed member stops once the cluster confirms its removal (discovery answered
        // from what the others published): one still running long after it noticed the
        // removal, with the network healed, was never told (seen: members that did not
        // publish the governing membership when a removal took effect).
        for node in nodes where node.up && !node.removed && !node.refusedToStart {
            if let noticed = node.removalNoticedAt, now > max(noticed, faultsEndTime) + 4_000_000 {
                violation("removal: n\(node.id.rawValue) noticed its removal at \(noticed / 1_000) ms and still runs at \(now / 1_000) ms")
            }
        }
        // Linearizability of everything the clients saw.
        let checker = LinearizabilityChecker()
        switch checker.check(history) {
        case .linearizable:
            result.linearizable = true
        case .violation(let found):
            result.linearizable = false
            violation("not linearizable: \(found)")
            recordOperationsViolation(found.operations)
        case .timedOut(let key):
            result.linearizable = false
            violation("linearizability check gave up on key \(key)")
        }
        for operation in history {
            switch operation.outcome {
            case .unknown: break
            default: continue
            }
        }
        result.operationsFailed = result.operations - result.operationsOK - result.operationsUnknown
        result.chosenSlots = chosen.count
        hasher.mix(UInt64(chosen.count))
        result.traceHash = hasher.value
    }
}
