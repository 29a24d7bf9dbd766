import SynodCore
import SynodStore

/// The driver's storage path, the same one a server takes: append each persist batch, one
/// sync at a time (group commit), send a batch's gated messages and report `.durable` only
/// when the sync that covers it completes. Storage faults: torn writes at crashes, failed
/// fsyncs, and bit flips in a stopped node's log.
extension Simulation {
    var storageOptions: StorageOptions {
        var storageOptions = StorageOptions()
        storageOptions.segmentBytes = 32 << 10  // small segments, so rolling and deletion happen
        storageOptions.snapshotsRetained = 2
        storageOptions.unsafeTruncateAtDamage = options.breaks.contains(.truncateDamagedLog)
        // As a server with peers does: damage to synced writes is skipped and repaired from
        // the other members (Replica+Repair) instead of refusing to start.
        storageOptions.repairDamage = !options.breaks.contains(.truncateDamagedLog)
        return storageOptions
    }

    func storageIdentity(_ id: NodeID) -> DataDirectoryIdentity {
        DataDirectoryIdentity(clusterID: options.seed | 1 << 63, nodeID: id.rawValue)
    }

    func persist(_ node: Int, _ batch: PersistBatch) {
        hasher.mix(batch.id)
        guard let storage = nodes[node].storage else { return }
        if options.trace && !batch.records.isEmpty {
            trace("n\(nodes[node].id.rawValue) writes " + batch.records.map(describe).joined(separator: ", "))
        }
        storage.append(batch)
        nodes[node].unsyncedBatches.append(batch)
        if options.breaks.contains(.noPromiseFsync) {
            // Negative control: act as if the batch were durable before the fsync completes
            // (right after this output is carried out, so effects keep their order).
            for envelope in batch.messagesAfterDurable { send(envelope) }
            queue.push(.pretendDurable(node: node, incarnation: nodes[node].incarnation, batch: batch.id), at: now)
        }
        startSync(node)
    }

    func startSync(_ node: Int) {
        guard nodes[node].syncingThrough == nil, let storage = nodes[node].storage else { return }
        let through: UInt64?
        do {
            through = try storage.beginSync()
        } catch {
            storageFailed(node, error)
            return
        }
        guard let through else { return }
        nodes[node].syncingThrough = through
        if faultsOn && chance(options.faults.syncFailureRate) { nodes[node].fileSystem.failNextSync = true }
        let latency = chance(0.1) ? between(5_000, 40_000) : between(500, 5_000)
        queue.push(.fsyncDone(node: node, incarnation: nodes[node].incarnation, through: through), at: now + latency)
    }

    func completeSync(_ node: Int, through: UInt64) {
        guard let storage = nodes[node].storage else { return }
        do {
            let durable = try storage.completeSync()
            precondition(durable == through, "storage and driver disagree on the durable batch")
        } catch {
            storageFailed(node, error)
            return
        }
        nodes[node].syncingThrough = nil
        nodes[node].syncedLogEnd = storage.syncedLogEnd
        let done = nodes[node].unsyncedBatches.prefix { $0.id <= through }
        for batch in done { recordAcceptances(node, batch.records) }
        nodes[node].unsyncedBatches.removeFirst(done.count)
        // The driver sends the messages that waited for these batches once it hears this.
        if !options.breaks.contains(.noPromiseFsync) { step(node, .durable(through: through)) }
        handOverStoredSnapshot(node)
        startSync(node)
    }

    /// As a server does: a snapshot made durable is read from its file from now on (one found
    /// at restart already is), so chunked transfers in the simulation read the simulated disk,
    /// through a handle that a crash invalidates.
    func handOverStoredSnapshot(_ node: Int) {
        guard nodes[node].up, let stored = nodes[node].storage?.takeStoredSnapshot() else { return }
        step(node, .snapshotStored(slot: stored.slot, bytes: stored.bytes, checksum: nil))
    }

    /// A storage error stops the node, as it would stop a server: a failed fsync is never
    /// retried. The node restarts later from what its disk kept.
    func storageFailed(_ node: Int, _ error: StorageError) {
        result.storageFailures += 1
        trace("n\(nodes[node].id.rawValue) stops: \(error)")
        crashNode(node)
        queue.push(.restart(node: node), at: now + between(20_000, 500_000))
    }

    /// Opens the node's storage after a crash; nil when it refuses to start. `repairing`: it
    /// found damage to synced writes (now or at an earlier start) not yet repaired.
    func reopenStorage(_ node: Int) -> (storage: DurableStorage, records: [DurableRecord], repairing: Bool)? {
        // Damage under a running node vanishes with its segment when a snapshot pruned it.
        let pruned = nodes[node].injectedPath.map { !nodes[node].fileSystem.exists($0) } ?? false
        let injected = pruned ? nil : nodes[node].injectedCorruption
        nodes[node].injectedCorruption = nil
        nodes[node].injectedPath = nil
        do {
            let opened = try DurableStorage.open(fileSystem: nodes[node].fileSystem, directory: SimNode.dataDirectory,
                                                 identity: storageIdentity(nodes[node].id), options: storageOptions)
            if let injected, !opened.report.repairNeeded {
                violation("corruption hidden: \(injected) on n\(nodes[node].id.rawValue), and recovery did not report it")
            }
            if opened.report.repairNeeded {
                result.repairsStarted += 1
                trace("n\(nodes[node].id.rawValue) recovery: \(opened.report)")
            }
            if opened.report.tornTail != nil { result.tornWritesDiscarded += 1 }
            if opened.report.tornTail != nil || !opened.report.removedEmptySegments.isEmpty {
                trace("n\(nodes[node].id.rawValue) recovery: \(opened.report)")
            }
            return (opened.storage, opened.records, opened.report.repairNeeded)
        } catch {
            if case .corruption = error, injected != nil {
                nodes[node].refusedToStart = true
                result.corruptionsDetected += 1
                trace("n\(nodes[node].id.rawValue) refuses to start: \(error)")
            } else {
                violation("n\(nodes[node].id.rawValue) cannot restart: \(error)")
            }
            return nil
        }
    }

    /// Damages the synced part of one of the node's log segments (stopped, or running): data it may have
    /// acknowledged, which recovery must never drop or return damaged unnoticed. One of: a
    /// flipped bit; a lost write (a synced write that never reached the platter: zeros where
    /// it should be, later writes intact); a misdirected write (it landed over another synced
    /// write instead of its own place). The skip-repair control aims at the newest writes,
    /// where the votes that matter are.
    func injectCorruption(_ node: Int) {
        let fileSystem = nodes[node].fileSystem
        guard let end = nodes[node].syncedLogEnd,
              let names = try? fileSystem.listDirectory(SimNode.dataDirectory + "/wal") else { return }
        let candidates = names.map { SimNode.dataDirectory + "/wal/" + $0 }.filter { $0 <= end.path }
        guard !candidates.isEmpty else { return }
        let aimed = options.breaks.contains(.skipRepair)
        let path = aimed ? end.path : candidates[Int(random.next() % UInt64(candidates.count))]
        guard let content = fileSystem.durableContent(of: path) else { return }
        let limit = path == end.path ? min(Int(end.offset), content.count) : (content.lastIndex { $0 != 0 }.map { $0 + 1 } ?? 0)
        guard limit > 32 else { return }
        let id = nodes[node].id.rawValue
        // Whole-write faults need two synced writes after the segment's first (the header's
        // promise) in the synced part: the damaged one and one after it.
        let writes = WALLayout.writes(in: Array(content.prefix(limit))).dropFirst()
        let kind = writes.count >= 2 ? random.next() % 3 : 0
        switch kind {
        case 1:
            let index = aimed ? writes.count - 2 : Int(random.next() % UInt64(writes.count - 1))
            let lost = writes[writes.startIndex + index]
            fileSystem.overwrite(path: path, byteOffset: lost.lowerBound, with: [UInt8](repeating: 0, count: lost.count))
            nodes[node].injectedCorruption = "synced write at \(lost.lowerBound) of \(path) lost"
        case 2:
            let index = aimed ? writes.count - 2 : Int(random.next() % UInt64(writes.count - 1))
            let misplaced = writes[writes.startIndex + index]
            let victim = writes[writes.startIndex + index + 1]
            let bytes = Array(content[misplaced])
            fileSystem.overwrite(path: path, byteOffset: misplaced.lowerBound, with: [UInt8](repeating: 0, count: misplaced.count))
            fileSystem.overwrite(path: path, byteOffset: victim.lowerBound, with: Array(bytes.prefix(victim.count)))
            nodes[node].injectedCorruption = "synced write at \(misplaced.lowerBound) of \(path) landed at \(victim.lowerBound)"
        default:
            let offset = 32 + Int(random.next() % UInt64(limit - 32))
            let bit = Int(random.next() % 8)
            fileSystem.flipBit(path: path, byteOffset: offset, bit: bit)
            nodes[node].injectedCorruption = "bit \(bit) of byte \(offset) in \(path) flipped"
        }
        nodes[node].injectedPath = path
        trace("NEMESIS damages \(nodes[node].up ? "running " : "")n\(id)'s log: \(nodes[node].injectedCorruption ?? "") (synced end \(end.path) @ \(end.offset))")
    }
}
