import SynodCheck
import SynodCore
import SynodKV
import SynodNode
import SynodStore

/// Runs simulated clusters of real `Replica`s. Everything random comes from the seed.
public enum Simulator {
    /// Runs one simulation and checks it: agreement, validity, no lost acknowledged write,
    /// linearizability of the client history, replica invariants after every step,
    /// convergence, and progress after faults heal.
    public static func run(_ options: SimulationOptions) -> SimulationResult {
        let simulation = Simulation(options)
        return simulation.run()
    }
}

/// Events of the simulated world.
enum SimEvent {
    case tick(node: Int, incarnation: Int)
    /// A message, numbered in send order (the same number on every copy).
    case deliver(Envelope, id: Int)
    case fsyncDone(node: Int, incarnation: Int, through: UInt64)
    /// Negative control only: tell the replica a batch is durable before it is.
    case pretendDurable(node: Int, incarnation: Int, batch: UInt64)
    case restart(node: Int)
    /// A stalled node's process runs again.
    case wake(node: Int, incarnation: Int)
    /// The peer links a stall cut are restored.
    case restoreLinks([LinkKey])
    case nemesis
    /// The stall every run gets (besides those the nemesis draws).
    case stall
    /// A node's discovery probe reaches a peer (see `answerProbe`).
    case probeAnswer(node: Int, incarnation: Int)
    /// A snapshot's state, decoded off the node's loop, is handed to it.
    case stateDecoded(node: Int, incarnation: Int, slot: Slot, result: Result<KVStateMachine, SnapshotDecodeFailure>)
    /// The operator may start a membership-change script (while faults are on).
    case reconfigure
    case heal
    case endFaults
    case clientArrive(node: Int, request: ClientRequest)
    case clientReply(client: Int, node: Int, token: UInt64, reply: ClientReply)
    case clientTimeout(client: Int, token: UInt64)
    case clientStart(client: Int)
    /// The operator sends its script's next step (or retries it).
    case operatorNext
    case operatorTimeout(requestID: UInt64)
    /// The operator starts the process of a member added by a chosen change.
    case startMember(NodeID)
    /// A scripted partition (`SimulationOptions.partitions`, by index) starts or heals.
    case scriptedPartition(Int)
    case scriptedHeal(Int)
}

/// A client request as it arrives at a node.
enum ClientRequest {
    case write(ClientWrite, client: Int, token: UInt64)
    case read(key: String, client: Int, token: UInt64)
}

/// A node's answer to a client.
enum ClientReply {
    case written(KVResult)
    case read(String?)
    case failed(leaderHint: NodeID?)
}

/// The state of one simulated run.
final class Simulation {
    let options: SimulationOptions
    let configuration: Configuration
    var random: SplitMix64
    var queue = EventQueue<SimEvent>()
    var now: SimTime = 0
    var result: SimulationResult
    var hasher = TraceHasher()

    /// Every node ever started, in start order; `indexOf` finds one by its id (never iterated).
    var nodes: [SimNode] = []
    var indexOf: [NodeID: Int] = [:]
    /// Members added by a chosen change whose process is about to start (never iterated).
    var startingMembers: Set<NodeID> = []
    /// The newest membership in the chosen log (as first applied anywhere).
    var latestMembership: Membership
    /// Every membership chosen (as first applied), and the highest slot applied anywhere.
    var chosenEpochs: [MembershipEpoch]
    /// Request ids of the membership changes chosen so far (looked up, never iterated).
    var chosenChangeRequests: Set<UInt64> = []
    var highestApplied: Slot = 0
    var operatorState = SimOperator()
    var lastMemberStartAt: SimTime = 0
    var clients: [SimClient] = []
    var history: [HistoryOperation] = []
    /// Links (from, to) that currently lose every message.
    var blocked: Set<LinkKey> = []
    /// The links each scripted partition cut (and that were not cut before it), by index.
    var scriptedCuts: [Int: [LinkKey]] = [:]
    var faultsOn = true
    /// Messages sent so far (each gets its number).
    var messagesNumbered = 0
    /// The replay being recorded (options.record).
    var recorder: ReplayRecorder?
    /// Called with each recorded step's index right after it is recorded (tests compare the
    /// recorded state with the simulation's own at that moment).
    var recordedStepObserver: ((Int) -> Void)?

    // Global knowledge for the checks.
    var chosen: [Slot: Value] = [:]
    var submitted: [CommandKey: [UInt8]] = [:]
    var appliedCommands: Set<CommandKey> = []
    var acknowledgedWrites: [CommandKey: Int] = [:]
    /// The watch events of each revision, as first applied anywhere.
    var watchEventsByRevision: [Int64: [WatchEvent]] = [:]
    var firstWriteAfterHeal: SimTime?
    /// Durable acceptances per slot: which nodes accepted which value in which ballot.
    var acceptances: [Slot: [SlotAcceptance]] = [:]
    /// The first slot each Prepare asked about, by ballot (for `checkVote`).
    var prepareFirstSlot: [Ballot: Slot] = [:]

    /// The stale-change-base control reorders more (at least 20% of messages delayed), so
    /// changes are often chosen out of order above a gap, the case it gets wrong.
    var delayRate: Double {
        options.breaks.contains(.staleChangeBase) ? max(options.faults.delayRate, 0.2) : options.faults.delayRate
    }

    /// The membership negative controls churn: a script every 50 ms at most.
    var reconfigIntervalMillis: Double {
        options.breaks.contains(.unsafeReconfig) || options.breaks.contains(.staleChangeBase)
            ? min(options.faults.reconfigIntervalMillis, 50) : options.faults.reconfigIntervalMillis
    }

    let tickMicros: SimTime = 10_000
    let faultsEndTime: SimTime
    let workloadEndTime: SimTime
    let runEndTime: SimTime

    init(_ options: SimulationOptions) {
        self.options = options
        self.configuration = options.configuration()
        self.random = SplitMix64(seed: options.seed)
        self.result = SimulationResult(seed: options.seed)
        self.latestMembership = configuration.initialMembership
        self.chosenEpochs = [MembershipEpoch(chosenAt: 0, activeFrom: 1, membership: configuration.initialMembership)]
        let duration = max(options.durationSeconds, 0.5)
        faultsEndTime = max(0, min(duration * 0.7, duration - 1)).micros
        workloadEndTime = duration.micros
        // The final reader reads the keys one at a time after the workload: a large key space
        // (`--keys`, to give the key index many chunks) gets 20 ms of run per key beyond the
        // first 64, so that its final reads can finish. Runs with fewer keys, every seeded test
        // among them, end where they always did.
        let finalReadAllowance = Double(max(0, options.keys - 64)) * 0.02
        runEndTime = (duration + options.progressBoundSeconds + 3 + finalReadAllowance).micros
        if options.record { recorder = makeRecorder() }
    }

    func run() -> SimulationResult {
        do {
            try configuration.validate()
        } catch {
            result.violations.append("configuration rejected: \(error)")
            return result
        }
        for index in 0..<options.nodes {
            nodes.append(makeNode(index: index, id: configuration.members[index], configuration: configuration, joining: false))
            indexOf[configuration.members[index]] = index
        }
        beginStep(label: "the nodes start")
        for index in 0..<options.nodes {
            nodes[index].up = true
            step(index, .start)
            scheduleTick(index)
        }
        endStep()
        for index in 0...options.clients {
            // The last client only does the final reads.
            clients.append(SimClient(index: index, clientID: 1000 + UInt64(index)))
        }
        for index in 0..<options.clients {
            queue.push(.clientStart(client: index), at: SimTime(random.next() % 20_000))
        }
        queue.push(.clientStart(client: options.clients), at: workloadEndTime)
        if faultsEndTime > 0 && (options.faults.partitionWeight > 0 || options.faults.crashWeight > 0 || options.faults.stallWeight > 0) {
            queue.push(.nemesis, at: nextNemesisDelay())
        }
        if faultsEndTime > 0 && options.faults.stallWeight > 0 {
            // Every run stalls a node at least once, somewhere in the first 60% of its faults.
            queue.push(.stall, at: between(faultsEndTime / 10, faultsEndTime * 6 / 10))
        }
        if faultsEndTime > 0 && options.faults.reconfigIntervalMillis > 0 {
            queue.push(.reconfigure, at: nextNemesisDelay(meanMillis: reconfigIntervalMillis))
        }
        for (index, partition) in options.partitions.enumerated() {
            queue.push(.scriptedPartition(index), at: (max(0, partition.atMillis) / 1_000).micros)
            queue.push(.scriptedHeal(index), at: (max(0, partition.atMillis, partition.healAtMillis) / 1_000).micros)
        }
        queue.push(.endFaults, at: faultsEndTime)
        // After the final reads, a quiet second lets followers hear the last commit notice.
        // A member started late (its add was chosen after the faults) gets two seconds to
        // catch up before the convergence check.
        var finishedAt: SimTime?
        var stopTime = runEndTime
        while let (time, event) = queue.pop(), time <= stopTime {
            now = time
            process(event)
            if clients[options.clients].finished && finishedAt == nil { finishedAt = now }
            if let finishedAt { stopTime = min(runEndTime, max(finishedAt + 1_000_000, lastMemberStartAt + 2_000_000)) }
        }
        // The nodes keep proposing their own commands (integrity checks and reports every few
        // hundred milliseconds), so the run ends at a moment every working member has applied
        // the same prefix, at most two seconds later; the convergence check judges that moment.
        let settleEnd = stopTime + 2_000_000
        while !appliedPrefixesEqual(), let (time, event) = queue.pop(), time <= settleEnd {
            now = time
            process(event)
        }
        beginStep(label: "the checks at the end of the run")
        finish()
        endStep()
        finishRecording()
        return result
    }

    /// Whether every working member of the final membership applied the same prefix.
    func appliedPrefixesEqual() -> Bool {
        let applied = nodes.filter { $0.up && !$0.refusedToStart && !$0.removed }.map(\.replica.appliedThrough)
        return Set(applied).count <= 1
    }

    /// A node with a fresh data directory; `joining` for a member added at run time.
    func makeNode(index: Int, id: NodeID, configuration: Configuration, joining: Bool) -> SimNode {
        // Clock rates: within the configured drift bound (with a margin), unless the
        // stale-lease negative control asks for far more drift than the bound allows.
        let bound = Double(configuration.maxClockDriftTicks) / Double(2 * configuration.electionTimeoutTicks) * 0.9
        let rate = 1 + (uniform() * 2 - 1) * bound
        do {
            let replica = try Replica(id: id, configuration: configuration, seed: options.seed &+ UInt64(index), joining: joining)
            var node = SimNode(index: index, configuration: configuration, joined: joining,
                               driver: makeDriver(replica, seed: options.seed &+ UInt64(index)), baseClockRate: rate)
            // A fresh data directory: nothing to restore yet.
            let opened = try DurableStorage.open(fileSystem: node.fileSystem, directory: SimNode.dataDirectory,
                                                 identity: storageIdentity(id), options: storageOptions)
            node.storage = opened.storage
            node.driver.useSnapshotSpooling(opened.storage.snapshotSpooling)
            return node
        } catch {
            preconditionFailure("a fresh simulated node failed to start: \(error)")
        }
    }

    // MARK: Randomness

    func uniform() -> Double { Double(random.next() >> 11) / Double(1 << 53) }
    func chance(_ probability: Double) -> Bool { probability > 0 && uniform() < probability }
    func between(_ low: SimTime, _ high: SimTime) -> SimTime { low + random.next() % max(1, high - low) }

    // MARK: Event dispatch

    /// The node an event is handled by, when it is handled by a node's process (so it waits
    /// while that process is stalled).
    private func processTarget(_ event: SimEvent) -> Int? {
        switch event {
        case .tick(let node, _), .fsyncDone(let node, _, _), .pretendDurable(let node, _, _), .clientArrive(let node, _),
             .probeAnswer(let node, _), .stateDecoded(let node, _, _, _):
            return node
        case .deliver(let envelope, _):
            return indexOf[envelope.to]
        default:
            return nil
        }
    }

    func process(_ event: SimEvent) {
        beginStep(event)
        defer { endStep() }
        if let node = processTarget(event), nodes[node].stalled {
            // A tick is not kept: the timer fires once after the stall (see `wake`).
            if case .tick = event { return }
            nodes[node].stalledEvents.append(event)
            return
        }
        switch event {
        case .tick(let node, let incarnation):
            guard nodes[node].up, nodes[node].incarnation == incarnation else { return }
            mixEvent(1, node)
            step(node, .tick)
            scheduleTick(node)
        case .deliver(let envelope, let id):
            // A message to a member whose process has not started yet is lost.
            guard let node = indexOf[envelope.to], nodes[node].up else { return }
            mixEvent(2, node)
            traceMessage(envelope, delivered: true)
            recordMessage(envelope, id: id, fate: .delivered)
            step(node, .receive([envelope]))
        case .fsyncDone(let node, let incarnation, let through):
            guard nodes[node].up, nodes[node].incarnation == incarnation else { return }
            mixEvent(3, node)
            completeSync(node, through: through)
        case .pretendDurable(let node, let incarnation, let batch):
            guard nodes[node].up, nodes[node].incarnation == incarnation else { return }
            step(node, .durable(through: batch))
        case .restart(let node): restart(node)
        case .wake(let node, let incarnation): wake(node, incarnation: incarnation)
        case .restoreLinks(let links): restoreLinks(links)
        case .nemesis: nemesis()
        case .stall: if faultsOn { stall() }
        case .probeAnswer(let node, let incarnation): answerProbe(node, incarnation: incarnation)
        case .stateDecoded(let node, let incarnation, let slot, let result):
            guard nodes[node].up, nodes[node].incarnation == incarnation else { return }
            step(node, .snapshotDecoded(slot: slot, result: result))
        case .reconfigure:
            guard faultsOn else { return }
            reconfigure()
            queue.push(.reconfigure, at: nextNemesisDelay(meanMillis: reconfigIntervalMillis))
        case .heal: heal()
        case .endFaults: endFaults()
        case .clientArrive(let node, let request): clientArrive(node: node, request: request)
        case .clientReply(let client, let node, let token, let reply): clientReply(client: client, node: node, token: token, reply: reply)
        case .clientTimeout(let client, let token): clientTimeout(client: client, token: token)
        case .clientStart(let client): startOperation(client)
        case .operatorNext: submitNext()
        case .operatorTimeout(let requestID): operatorTimedOut(requestID: requestID)
        case .startMember(let id): startMember(id)
        case .scriptedPartition(let index): startScriptedPartition(index)
        case .scriptedHeal(let index): endScriptedPartition(index)
        }
    }

    func scheduleTick(_ node: Int) {
        let interval = SimTime(Double(tickMicros) / nodes[node].clockRate)
        queue.push(.tick(node: node, incarnation: nodes[node].incarnation), at: now + interval)
    }

    func mixEvent(_ kind: UInt64, _ node: Int) {
        hasher.mix(now)
        hasher.mix(kind << 8 | UInt64(node))
    }

    func send(_ envelope: Envelope) {
        result.messagesSent += 1
        messagesNumbered += 1
        let id = messagesNumbered
        checkVote(envelope)
        let link = LinkKey(from: envelope.from, to: envelope.to)
        if blocked.contains(link) || (faultsOn && chance(options.faults.dropRate)) {
            result.messagesDropped += 1
            recordMessage(envelope, id: id, fate: .dropped)
            if options.trace && shouldTrace(envelope.message) { trace("    lost: \(envelope.from) -> \(envelope.to) \(describe(envelope.message))") }
            return
        }
        var envelope = envelope
        var damaged = false
        if case .snapshotChunk = envelope.message { result.snapshotChunksSent += 1 }
        if case .snapshotChunk(var chunk) = envelope.message, faultsOn, !chunk.data.isEmpty,
           chance(options.breaks.contains(.trustSnapshotChunks) ? 0.3 : options.faults.chunkCorruptionRate) {
            let index = Int(between(0, UInt64(chunk.data.count)))
            chunk.data[index] ^= 0x5a
            envelope.message = .snapshotChunk(chunk)
            result.chunksCorrupted += 1
            damaged = true
            if options.trace { trace("    damaged: \(envelope.from) -> \(envelope.to) \(describe(envelope.message)), byte \(index)") }
        }
        let copies = faultsOn && chance(options.faults.duplicateRate) ? 2 : 1
        recordMessage(envelope, id: id, fate: .sent, copies: copies, damaged: damaged)
        for _ in 0..<copies {
            var latency = between(100, 1_000)
            if faultsOn && chance(delayRate) { latency += between(5_000, 100_000) }
            queue.push(.deliver(envelope, id: id), at: now + latency)
        }
    }

    func violation(_ text: String) {
        if result.violations.count < 20 { result.violations.append(text) }
        recordViolation(text)
        trace("VIOLATION: \(text)")
    }
}

/// A directed network link.
struct LinkKey: Hashable {
    var from: NodeID
    var to: NodeID
}

/// Identifies a client command for exactly-once bookkeeping.
struct CommandKey: Hashable {
    var clientID: UInt64
    var sequence: UInt64
    init(_ command: Command) {
        clientID = command.clientID
        sequence = command.sequence
    }

    init(clientID: UInt64, sequence: UInt64) {
        self.clientID = clientID
        self.sequence = sequence
    }
}
