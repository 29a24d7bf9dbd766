import SynodCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The nemesis: partitions (isolate one node, split minority from majority, one-way cuts)
/// and crashes (one node, or all at once), while faults are on.
extension Simulation {
    func nextNemesisDelay(meanMillis: Double? = nil) -> SimTime {
        // Exponentially distributed gaps with the configured mean.
        let mean = (meanMillis ?? options.faults.nemesisIntervalMillis) * 1_000
        let gap = -mean * log1p(-min(uniform(), 0.999_999))
        return now + SimTime(max(1_000, gap))
    }

    /// The node that currently leads with the highest ballot, if any is up.
    var currentLeaderIndex: Int? {
        nodes.indices.filter { nodes[$0].up && nodes[$0].replica.role == .leader }
            .max { (nodes[$0].replica.ownBallot ?? .zero) < (nodes[$1].replica.ownBallot ?? .zero) }
    }

    /// A victim: the leader half of the time (faults there matter most), else any node.
    private func pickVictim() -> Int {
        if chance(0.5), let leader = currentLeaderIndex { return leader }
        let members = memberNodes()
        return members.isEmpty ? Int(random.next() % UInt64(nodes.count)) : members[Int(random.next() % UInt64(members.count))]
    }

    func nemesis() {
        guard faultsOn else { return }
        let faults = options.faults
        let aimed = options.breaks.contains(.tickLease) || faults.stallsAimAtLeader
        let stallWeight = aimed ? max(faults.stallWeight, 4) : faults.stallWeight
        let total = faults.partitionWeight + faults.crashWeight + stallWeight
        if total > 0 {
            let roll = uniform() * total
            if roll < faults.partitionWeight {
                partition()
            } else if roll < faults.partitionWeight + faults.crashWeight {
                crash()
            } else {
                stall()
            }
        }
        queue.push(.nemesis, at: nextNemesisDelay())
    }

    private func partition() {
        blocked.removeAll()
        // Every node ever started (removed ones too, while they run), by index.
        let members = nodes.map(\.id)
        let staleLease = options.breaks.contains(.staleLease)
        // The stale-lease negative control aims its partitions at the leader, where a lease lives.
        let victim = staleLease ? (currentLeaderIndex ?? pickVictim()) : pickVictim()
        let kind = staleLease ? 0 : random.next() % 3
        var description: String
        switch kind {
        case 0:
            if staleLease {
                // Negative control: the isolated node's clock nearly stalls, drifting far
                // beyond the configured bound, so a leader there keeps trusting its lease.
                nodes[victim].setClockRate(0.02, at: now)
            }
            for other in members.indices where other != victim {
                blocked.insert(LinkKey(from: members[victim], to: members[other]))
                blocked.insert(LinkKey(from: members[other], to: members[victim]))
            }
            description = "isolates n\(nodes[victim].id.rawValue)"
        case 1:
            var minority: Set<Int> = [victim]
            let current = memberNodes()
            while minority.count < (current.count - 1) / 2 { minority.insert(current[Int(random.next() % UInt64(current.count))]) }
            for inside in minority {
                for outside in members.indices where !minority.contains(outside) {
                    blocked.insert(LinkKey(from: members[inside], to: members[outside]))
                    blocked.insert(LinkKey(from: members[outside], to: members[inside]))
                }
            }
            description = "splits {" + minority.sorted().map { "n\(nodes[$0].id.rawValue)" }.joined(separator: ",") + "} from the rest"
        default:
            // One-way: the victim's messages to the others are lost, theirs still arrive.
            for other in members.indices where other != victim {
                blocked.insert(LinkKey(from: members[victim], to: members[other]))
            }
            description = "cuts n\(nodes[victim].id.rawValue)'s outgoing links (one-way)"
        }
        result.partitions += 1
        hasher.mix(0xA0 | kind)
        trace("NEMESIS " + description)
        queue.push(.heal, at: now + between(100_000, 1_500_000))
    }

    func heal() {
        for node in nodes.indices where nodes[node].clockRate != nodes[node].baseClockRate {
            nodes[node].setClockRate(nodes[node].baseClockRate, at: now)
        }
        guard !blocked.isEmpty else { return }
        blocked.removeAll()
        trace("NEMESIS heals the network")
    }

    private func crash() {
        if chance(options.faults.crashAllRate) {
            trace("NEMESIS power loss: every node crashes")
            for node in nodes.indices where nodes[node].up {
                crashNode(node)
                queue.push(.restart(node: node), at: now + between(20_000, 500_000))
            }
            return
        }
        let victim = pickVictim()
        guard nodes[victim].up else { return }
        crashNode(victim)
        queue.push(.restart(node: victim), at: now + between(20_000, 1_000_000))
    }

    /// Stops a node's process for a while: the leader half of the time (always when stalls
    /// aim at the leader, as for the tick-lease negative control; those stalls also always
    /// cut its peer links).
    func stall() {
        let aimed = options.breaks.contains(.tickLease) || options.faults.stallsAimAtLeader
        let victim = aimed ? (currentLeaderIndex ?? pickVictim()) : pickVictim()
        guard nodes[victim].up, !nodes[victim].stalled else { return }
        // Mostly shorter than a client's attempt timeout (300 ms), so requests queued during
        // the stall are still awaited when the node wakes; sometimes far longer.
        let duration = chance(0.2) ? between(300_000, 2_000_000) : between(20_000, 280_000)
        nodes[victim].stalled = true
        result.stalls += 1
        hasher.mix(0xB0 | UInt64(victim) << 8)
        var cut: [LinkKey] = []
        if aimed || chance(0.5) {
            // Alone while stalled and for a while after waking: what it does then it does on
            // its own state, with clients able to reach it.
            for other in nodes.indices where other != victim {
                for link in [LinkKey(from: nodes[victim].id, to: nodes[other].id), LinkKey(from: nodes[other].id, to: nodes[victim].id)]
                where !blocked.contains(link) {
                    blocked.insert(link)
                    cut.append(link)
                }
            }
            queue.push(.restoreLinks(cut), at: now + duration + between(20_000, 400_000))
        }
        trace("NEMESIS stalls n\(nodes[victim].id.rawValue) for \(duration / 1_000) ms" + (cut.isEmpty ? "" : " with its peer links cut"))
        queue.push(.wake(node: victim, incarnation: nodes[victim].incarnation), at: now + duration)
    }

    /// The stalled process runs again: everything that arrived meanwhile is handled now, in an
    /// order of the seed's choosing (client requests may come before peer messages); storage
    /// completions keep their order. The tick timer fires once, not once per missed tick.
    func wake(_ node: Int, incarnation: Int) {
        guard nodes[node].incarnation == incarnation, nodes[node].stalled else { return }
        nodes[node].stalled = false
        let events = nodes[node].stalledEvents
        nodes[node].stalledEvents = []
        trace("n\(nodes[node].id.rawValue) wakes with \(events.count) event(s) waiting")
        var storageOrder: SimTime = 0
        for event in events {
            switch event {
            case .fsyncDone, .pretendDurable:
                storageOrder += 1
                queue.push(event, at: now + storageOrder)
            default:
                queue.push(event, at: now + between(1, 3_000))
            }
        }
        queue.push(.tick(node: node, incarnation: incarnation), at: now + between(1, 3_000))
    }

    /// A scripted partition starts (while faults are on): links between its groups are cut.
    func startScriptedPartition(_ index: Int) {
        guard faultsOn, options.partitions.indices.contains(index) else { return }
        let partition = options.partitions[index]
        var group: [UInt32: Int] = [:]
        for (number, members) in partition.groups.enumerated() {
            for id in members { group[id] = number }
        }
        var cut: [LinkKey] = []
        for from in nodes.map(\.id) {
            for to in nodes.map(\.id) where from != to {
                let link = LinkKey(from: from, to: to)
                if group[from.rawValue] == nil || group[from.rawValue] != group[to.rawValue], !blocked.contains(link) {
                    blocked.insert(link)
                    cut.append(link)
                }
            }
        }
        scriptedCuts[index] = cut
        result.partitions += 1
        let groups = partition.groups.map { "{" + $0.map { "n\($0)" }.joined(separator: ",") + "}" }.joined(separator: " | ")
        trace("NEMESIS splits the network into \(groups) (scripted)")
    }

    func endScriptedPartition(_ index: Int) {
        guard let cut = scriptedCuts.removeValue(forKey: index) else { return }
        let before = blocked.count
        for link in cut { blocked.remove(link) }
        if blocked.count != before { trace("NEMESIS heals the network (the scripted partition ends)") }
    }

    func restoreLinks(_ links: [LinkKey]) {
        for link in links { blocked.remove(link) }
    }

    func crashNode(_ node: Int) {
        let lost = nodes[node].unsyncedBatches.count
        nodes[node].fileSystem.crash(random: &random, tearing: options.faults.tornWrites)
        // An fsync failure injected for the sync in flight belongs to this incarnation: left
        // armed, it failed the recovery of the next start (seed 400689 on 5 nodes).
        nodes[node].fileSystem.failNextSync = false
        nodes[node].storage = nil
        nodes[node].unsyncedBatches.removeAll()
        nodes[node].removalNoticedAt = nil
        nodes[node].syncingThrough = nil
        nodes[node].up = false
        nodes[node].stalled = false
        nodes[node].stalledEvents = []
        nodes[node].incarnation += 1
        nodes[node].pendingReads.removeAll()
        nodes[node].pendingWrites.removeAll()
        result.crashes += 1
        hasher.mix(0xC0 | UInt64(node))
        trace("CRASH n\(nodes[node].id.rawValue) (\(lost) batch(es) not yet synced may be lost or torn)")
        // Media corruption while it is down, in at most a minority minus one of the nodes so
        // the cluster can still make progress without the nodes that refuse to start.
        // With membership changes: every membership that still governs an unchosen slot keeps
        // a majority of working disks, and only while no change is in flight (one could
        // still shrink the voters).
        let damagedTotal = nodes.filter(\.isDamaged).count
        let allowed = options.faults.reconfigIntervalMillis > 0
            ? operatorState.idle && healthyEverywhere(without: nodes[node].id)
            : damagedTotal < (options.nodes - 1) / 2
        let corruptionRate = options.breaks.contains(.truncateDamagedLog) || options.breaks.contains(.skipRepair)
            ? 0.5 : options.faults.corruptionRate
        if faultsOn && allowed && chance(corruptionRate) {
            injectCorruption(node)
        }
        // Media damage under a running node as well: it goes on from its memory and finds the
        // damage at its next start (a server reads its log only then), after it wrote more
        // behind it or a snapshot pruned it.
        if faultsOn && chance(corruptionRate / 2) {
            let candidates = nodes.indices.filter { $0 != node && nodes[$0].up && !damaged(nodes[$0].id) }
            guard !candidates.isEmpty else { return }
            let running = candidates[Int(random.next() % UInt64(candidates.count))]
            let damagedNow = nodes.filter(\.isDamaged).count
            let stillAllowed = options.faults.reconfigIntervalMillis > 0
                ? operatorState.idle && healthyEverywhere(without: nodes[running].id)
                : damagedNow < (options.nodes - 1) / 2
            if stillAllowed { injectCorruption(running) }
        }
    }

    func restart(_ node: Int) {
        guard !nodes[node].up, !nodes[node].refusedToStart else { return }
        guard let (storage, records, damaged) = reopenStorage(node) else { return }
        // The skip-repair control trusts what recovery could read and votes at once.
        let repairing = damaged && !options.breaks.contains(.skipRepair)
        nodes[node].repairPending = repairing
        do {
            // A joined member that crashed before its first snapshot joins again; it asks
            // the voters of the newest membership the sim knows (the operator's flags).
            var nodeConfiguration = nodes[node].configuration
            let voters = latestMembership.voters.filter { $0 != nodes[node].id }
            if nodes[node].joined && !voters.isEmpty {
                nodeConfiguration.members = voters
                nodeConfiguration.phase1Quorum = voters.count / 2 + 1
                nodeConfiguration.phase2Quorum = nodeConfiguration.phase1Quorum
            }
            let seed = options.seed &+ UInt64(node) &+ UInt64(nodes[node].incarnation) << 32
            let replica = try Replica(id: nodes[node].id, configuration: nodeConfiguration, seed: seed,
                                      restoring: records, joining: nodes[node].joined, repairing: repairing)
            if repairing, let reason = replica.repairImpossibleReason {
                nodes[node].refusedToStart = true
                result.corruptionsDetected += 1
                trace("n\(nodes[node].id.rawValue) refuses to start: damaged log, \(reason)")
                return
            }
            // A new process: a fresh driver, its state rebuilt from the replica's records.
            nodes[node].driver = makeDriver(replica, seed: seed)
            nodes[node].driver.useSnapshotSpooling(storage.snapshotSpooling)
        } catch {
            violation("n\(nodes[node].id.rawValue) cannot restart: \(error)")
            return
        }
        nodes[node].storage = storage
        recordAcceptances(node, records)
        nodes[node].up = true
        hasher.mix(0xD0 | UInt64(node))
        trace("RESTART n\(nodes[node].id.rawValue) from \(records.count) durable record(s), promised \(nodes[node].replica.promised)")
        step(node, .start)
        scheduleTick(node)
    }

    func endFaults() {
        let hadFaults = faultsEndTime > 0
        faultsOn = false
        heal()
        if hadFaults { trace("faults end: network healed, crashed nodes restart") }
        for node in nodes.indices where !nodes[node].up { restart(node) }
        // Stalled processes run again too (their queued events are handled now).
        for node in nodes.indices where nodes[node].stalled { wake(node, incarnation: nodes[node].incarnation) }
    }
}
