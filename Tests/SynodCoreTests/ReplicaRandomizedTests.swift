import XCTest
import SynodCore

/// Randomized runs of small clusters through the scenario harness: random ticks, out-of-order
/// delivery, loss, duplication, replays of old messages, partitions, one-way cuts, crashes
/// with lost unflushed batches, restarts, snapshots, proposals and linearizable reads.
///
/// The harness checks after every step: `checkInvariants()`, in-order applies, agreement across
/// nodes, and that no linearizable read is answered below a slot applied before it began. After
/// the faults heal, the cluster must elect one leader and apply a final command everywhere.
/// This is a small cousin of the simulator (SynodSim), kept here so the core's own test target
/// exercises the interleavings too.
final class ReplicaRandomizedTests: XCTestCase {
    private static let stepsPerRun = 1500

    /// Per seed, a cluster shape: sizes, flexible quorums and read modes.
    private static func configure(_ variant: UInt64) -> (nodes: Int, configure: (inout Configuration) -> Void) {
        let nodes = variant < 3 ? 3 : 5
        return (nodes, { configuration in
            // Small bounds so batching, windows and catch-up paging all happen.
            configuration.catchUpEntriesMax = 3
            configuration.windowSlots = 4
            configuration.batchCommandsMax = 3
            switch variant {
            case 1: configuration.phase1Quorum = 3; configuration.phase2Quorum = 1
            case 2: configuration.readMode = .readIndex
            case 4: configuration.phase1Quorum = 4; configuration.phase2Quorum = 2
            case 5: configuration.phase1Quorum = 2; configuration.phase2Quorum = 4; configuration.readMode = .readIndex
            default: break
            }
        })
    }

    private func run(seed: UInt64) -> Cluster {
        let shape = Self.configure(seed % 6)
        var cluster = Cluster(nodes: shape.nodes, seed: seed, configure: shape.configure)
        var random = SplitMix64(seed: seed &* 7919)
        func pick(_ count: Int) -> Int { Int(random.next() % UInt64(count)) }
        var crashed: [NodeID] = []
        var commandCount = 0
        var readID: UInt64 = 0
        for _ in 0..<Self.stepsPerRun {
            let roll = random.next() % 100
            let live = cluster.ids.filter { !crashed.contains($0) }
            let node = live[pick(live.count)]
            switch roll {
            case 0..<30:
                cluster.tick(node)
            case 30..<70:
                if !cluster.network.isEmpty { cluster.deliverOne(at: pick(cluster.network.count)) }
            case 70..<76:
                if !cluster.network.isEmpty { cluster.network.remove(at: pick(cluster.network.count)) }
            case 76..<78:
                if !cluster.network.isEmpty { cluster.inject(cluster.network[pick(cluster.network.count)]) }
            case 78..<80:
                // A long-delayed duplicate of a message that really left its sender.
                let sent = cluster.sentAtOnce.map(\.envelope) + cluster.sentAfterDurable
                if !sent.isEmpty { cluster.inject(sent[pick(sent.count)]) }
            case 80..<88:
                commandCount += 1
                cluster.propose(node, "c\(commandCount)")
            case 88..<90:
                // At most one node down at a time, so a quorum of every shape stays possible.
                if crashed.isEmpty {
                    cluster.crash(node)
                    crashed.append(node)
                } else {
                    cluster.restart(crashed.removeFirst())
                }
            case 90..<93:
                readID += 1
                cluster.step(node, .read(readID: readID, consistency: .linearizable))
            case 93..<95:
                if let through = cluster.replicas[node]?.appliedThrough, through > 0 {
                    cluster.step(node, .snapshot(slot: through, bytes: SnapshotBytes(Array("s\(through)".utf8))))
                }
            case 95..<97:
                // A slow disk: batches wait (and are lost if the node crashes meanwhile).
                if let held = cluster.heldDisks.first {
                    cluster.heldDisks.remove(held)
                    cluster.flush(held)
                } else {
                    cluster.heldDisks.insert(node)
                }
            case 97:
                if cluster.isolated.isEmpty { cluster.isolated.insert(node) } else { cluster.isolated.removeAll() }
            case 98:
                let other = cluster.ids[pick(cluster.ids.count)]
                if other != node { cluster.cutLinks.insert([node, other]) }
            default:
                cluster.cutLinks.removeAll()
            }
        }
        // Heal everything and let the cluster settle.
        for id in crashed { cluster.restart(id) }
        for id in cluster.heldDisks { cluster.flush(id) }
        cluster.heldDisks.removeAll()
        cluster.run("heal; cycle 80")
        if let leader = cluster.leaders.first {
            cluster.propose(leader, "final")
            cluster.run("cycle 10")
        }
        return cluster
    }

    func testRandomRunsKeepAgreementAndRecover() {
        for seed in UInt64(1)...60 {
            let cluster = run(seed: seed)
            XCTAssertEqual(cluster.violations, [], "seed \(seed)")
            XCTAssertEqual(cluster.leaders.count, 1, "seed \(seed): one leader once faults heal")
            for id in cluster.ids {
                XCTAssertEqual(cluster.appliedNames(id).last, "final", "seed \(seed) \(id): progress after healing")
            }
            let through = Set(cluster.ids.compactMap { cluster.replicas[$0]?.appliedThrough })
            XCTAssertEqual(through.count, 1, "seed \(seed): every node applied the same prefix")
        }
    }

    func testRandomRunsAreReproducible() {
        let first = run(seed: 33), second = run(seed: 33)
        XCTAssertEqual(first.trace, second.trace)
    }
}
