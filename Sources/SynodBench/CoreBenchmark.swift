import SynodCore

/// Drives a fault-free cluster of real replicas as fast as possible: every message is
/// delivered at once, every persist batch is durable at once, and clients keep the leader's
/// queue full. It measures the pure core, not a network or a disk.
public struct CoreBenchmark {
    public struct Report: Sendable {
        public var commands: Int
        public var slots: Int
        public var steps: Int
        /// Nanoseconds one run of the per-step safety checks took on the leader's final state
        /// (the mean of many), to compare with the time per step.
        public var safetyCheckNanos: Double
    }

    public let nodes: Int
    public let batchCommandsMax: Int
    public let windowSlots: Int
    public let payloadBytes: Int

    public init(nodes: Int = 3, batchCommandsMax: Int = 256, windowSlots: Int = 32, payloadBytes: Int = 256) {
        self.nodes = nodes
        self.batchCommandsMax = batchCommandsMax
        self.windowSlots = windowSlots
        self.payloadBytes = payloadBytes
    }

    /// Runs until `commands` commands are chosen and applied on every replica.
    /// - Throws: `ConfigurationError` for an invalid configuration.
    public func run(commands total: Int) throws(ConfigurationError) -> Report {
        var configuration = Configuration(members: (1...nodes).map { NodeID(UInt32($0)) })
        configuration.batchCommandsMax = batchCommandsMax
        configuration.windowSlots = windowSlots
        configuration.pendingCommandsMax = max(configuration.pendingCommandsMax, total)
        var replicas: [Replica] = []
        for member in configuration.members {
            replicas.append(try Replica(id: member, configuration: configuration, seed: 42))
        }
        var inbox: [Envelope] = []
        var steps = 0
        var appliedCommands = [Int](repeating: 0, count: nodes)
        var maxSlot: Slot = 0
        // One clock for the whole cluster, advanced by a tick at every round of ticks.
        var clock = ClockTime(nanoseconds: 1_000_000_000)

        func carry(_ index: Int, _ output: Output) {
            var pending = [output]
            while let next = pending.popLast() {
                inbox.append(contentsOf: next.messages)
                for apply in next.apply {
                    if case .entry(let slot, let value) = apply {
                        appliedCommands[index] += value.commands.count
                        maxSlot = max(maxSlot, slot)
                    }
                }
                if let batch = next.persist {
                    inbox.append(contentsOf: batch.messagesAfterDurable)
                    steps += 1
                    pending.append(replicas[index].step(.durable(batch.id), clock: clock))
                }
            }
        }

        func deliverAll() {
            while !inbox.isEmpty {
                let batch = inbox
                inbox.removeAll(keepingCapacity: true)
                for envelope in batch {
                    let target = Int(envelope.to.rawValue) - 1
                    steps += 1
                    carry(target, replicas[target].step(.receive(envelope), clock: clock))
                }
            }
        }

        for index in replicas.indices { carry(index, replicas[index].step(.start, clock: clock)) }
        // Tick everyone (the restart lease guard must expire too) until someone leads.
        var leaderIndex: Int? = nil
        while leaderIndex == nil {
            clock = clock.adding(nanoseconds: configuration.tickNanoseconds)
            for index in replicas.indices {
                steps += 1
                carry(index, replicas[index].step(.tick, clock: clock))
            }
            deliverAll()
            leaderIndex = replicas.indices.first { replicas[$0].role == .leader }
        }
        let leader = leaderIndex ?? 0
        let payload = [UInt8](repeating: 0x61, count: payloadBytes)
        var proposed = 0
        var sequence: UInt64 = 0
        while appliedCommands.min() ?? 0 < total {
            // Keep about two windows of batches queued at the leader.
            let backlog = 2 * windowSlots * batchCommandsMax
            while proposed < total && replicas[leader].queuedCommands < backlog {
                sequence += 1
                proposed += 1
                steps += 1
                carry(leader, replicas[leader].step(.propose(Command(clientID: 1, sequence: sequence, payload: payload)), clock: clock))
            }
            if inbox.isEmpty {
                // Nothing in flight: let time pass (heartbeats carry the last commit notice).
                clock = clock.adding(nanoseconds: configuration.tickNanoseconds)
                for index in replicas.indices {
                    steps += 1
                    carry(index, replicas[index].step(.tick, clock: clock))
                }
            }
            deliverAll()
        }
        // The safety checks every step ends with, alone, on the leader's final state.
        let checks = 200_000
        var broken = 0
        let final = replicas[leader]
        let started = ContinuousClock.now
        for _ in 0..<checks where final.safetyCheck() != nil { broken += 1 }
        let elapsed = ContinuousClock.now - started
        precondition(broken == 0, "a benchmark replica broke a safety invariant")
        let nanos = Double(elapsed.components.seconds) * 1e9 + Double(elapsed.components.attoseconds) / 1e9
        return Report(commands: total, slots: Int(maxSlot), steps: steps, safetyCheckNanos: nanos / Double(checks))
    }
}
