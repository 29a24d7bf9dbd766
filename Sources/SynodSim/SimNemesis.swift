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
        let total = faults.partitionWeight + faults.crashWeight
        if total > 0 {
            if uniform() * total < faults.partitionWeight {
                partition()
            } else {
                crash()
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
                nodes[victim].clockRate = 0.02
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
        for node in nodes.indices { nodes[node].clockRate = nodes[node].baseClockRate }
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

    func crashNode(_ node: Int) {
        let lost = nodes[node].unsyncedBatches.count
        nodes[node].fileSystem.crash(random: &random, tearing: options.faults.tornWrites)
        // An fsync failure injected for the sync in flight belongs to this incarnation: left
        // armed, it failed the recovery of the next start (seed 400689 on 5 nodes).
        nodes[node].fileSystem.failNextSync = false
        nodes[node].storage = nil
        nodes[node].unsyncedBatches.removeAll()
        nodes[node].syncingThrough = nil
        nodes[node].up = false
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
        let damagedTotal = nodes.filter { $0.refusedToStart || $0.injectedCorruption != nil }.count
        let allowed = options.faults.reconfigIntervalMillis > 0
            ? operatorState.idle && healthyEverywhere(without: nodes[node].id)
            : damagedTotal < (options.nodes - 1) / 2
        if faultsOn && allowed && chance(options.faults.corruptionRate) {
            injectCorruption(node)
        }
    }

    func restart(_ node: Int) {
        guard !nodes[node].up, !nodes[node].refusedToStart else { return }
        guard let (storage, records) = reopenStorage(node) else { return }
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
            let replica = try Replica(id: nodes[node].id, configuration: nodeConfiguration,
                                      seed: options.seed &+ UInt64(node) &+ UInt64(nodes[node].incarnation) << 32,
                                      restoring: records, joining: nodes[node].joined)
            nodes[node].replica = replica
        } catch {
            violation("n\(nodes[node].id.rawValue) cannot restart: \(error)")
            return
        }
        nodes[node].storage = storage
        recordAcceptances(node, records)
        nodes[node].kv = SimKV()
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
    }
}
