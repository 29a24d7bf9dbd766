import SynodCheck
import SynodCore

/// What the simulation keeps while it records a replay (`SimulationOptions.record`): a
/// class, so that recording a step never copies the steps recorded before.
final class ReplayRecorder {
    var replay: SimReplay
    /// The step being recorded (between `beginStep` and `endStep`).
    var current: ReplayStep?
    /// Each node's state as last recorded.
    var lastNodes: [UInt32: ReplayNode] = [:]
    /// The cut links as last recorded.
    var lastCuts: [[UInt32]] = []
    /// The steps at which each slot was chosen (by each value, as first applied).
    var chosenSteps: [Slot: [Int]] = [:]
    /// The step at which each client operation completed, by history index.
    var operationSteps: [Int: Int] = [:]

    /// The index the current step gets if it is kept.
    var currentIndex: Int { replay.steps.count }

    init(replay: SimReplay) { self.replay = replay }
}

extension Simulation {
    static let replayHeartbeatSampling = 10

    func makeRecorder() -> ReplayRecorder {
        ReplayRecorder(replay: SimReplay(
            seed: options.seed, nodeCount: options.nodes, breaks: options.breaks.map(\.rawValue).sorted(),
            readMode: options.readMode.rawValue,
            tickMillis: Double(configuration.tickNanoseconds) / 1_000_000,
            electionTimeoutMillis: Double(configuration.electionTimeoutTicks) * Double(configuration.tickNanoseconds) / 1_000_000,
            leaseMillis: Double(configuration.leaseTicks) * Double(configuration.tickNanoseconds) / 1_000_000,
            heartbeatSampling: Self.replayHeartbeatSampling, stepLimit: options.recordStepLimit,
            initialNodes: configuration.members.map(\.rawValue)))
    }

    // MARK: Steps

    func beginStep(_ event: SimEvent) {
        guard recorder != nil else { return }
        beginStep(label: label(event))
    }

    func beginStep(label: String) {
        guard let recorder else { return }
        recorder.current = ReplayStep(index: recorder.currentIndex, time: now, event: label)
    }

    /// Ends the current step: records the nodes whose state changed, and keeps the step if
    /// anything visible happened in it.
    func endStep() {
        guard let recorder, var step = recorder.current else { return }
        recorder.current = nil
        for index in nodes.indices {
            let state = replayNode(index)
            if recorder.lastNodes[state.id] != state {
                step.nodes.append(state)
            }
        }
        let cuts = blocked.map { [$0.from.rawValue, $0.to.rawValue] }.sorted { ($0[0], $0[1]) < ($1[0], $1[1]) }
        if cuts != recorder.lastCuts { step.cuts = cuts }
        if !step.messages.isEmpty || !step.notes.isEmpty || !step.nodes.isEmpty || step.cuts != nil {
            if recorder.replay.steps.count < recorder.replay.stepLimit {
                for state in step.nodes { recorder.lastNodes[state.id] = state }
                if let cuts = step.cuts { recorder.lastCuts = cuts }
                step.index = recorder.replay.steps.count
                recorder.replay.steps.append(step)
                recordedStepObserver?(step.index)
            } else {
                recorder.replay.stepsOmitted += 1
            }
        }
    }

    private func label(_ event: SimEvent) -> String {
        func name(_ node: Int) -> String { nodes.indices.contains(node) ? "n\(nodes[node].id.rawValue)" : "node \(node)" }
        switch event {
        case .tick(let node, _): return "tick at \(name(node))"
        case .deliver(let envelope, _): return "\(envelope.from) -> \(envelope.to): \(envelope.message.kind) arrives"
        case .fsyncDone(let node, _, _): return "\(name(node))'s disk finishes a sync"
        case .pretendDurable(let node, _, _): return "\(name(node)) pretends a write is durable"
        case .restart(let node): return "\(name(node)) restarts"
        case .wake(let node, _): return "\(name(node)) wakes"
        case .restoreLinks: return "cut links restored"
        case .nemesis: return "nemesis"
        case .stall: return "nemesis stalls a node"
        case .probeAnswer(let node, _): return "\(name(node)) hears a discovery answer"
        case .stateDecoded(let node, _, _, _): return "\(name(node)) finishes decoding a snapshot"
        case .reconfigure: return "operator"
        case .heal: return "the network heals"
        case .endFaults: return "faults end"
        case .clientArrive(let node, _): return "a client request reaches \(name(node))"
        case .clientReply(let client, let node, _, _): return "client \(client) hears from \(name(node))"
        case .clientTimeout(let client, _): return "client \(client) times out"
        case .clientStart(let client): return "client \(client) starts an operation"
        case .operatorNext: return "operator sends its next step"
        case .operatorTimeout: return "operator times out"
        case .startMember(let id): return "operator starts \(id)"
        case .scriptedPartition: return "scripted partition"
        case .scriptedHeal: return "scripted partition heals"
        }
    }

    // MARK: What happens in a step

    func replayNode(_ index: Int) -> ReplayNode {
        let node = nodes[index]
        let replica = node.replica
        let status: ReplayNode.Status
        if node.refusedToStart {
            status = .refused
        } else if node.removed {
            status = .removed
        } else if !node.up {
            status = .down
        } else if node.stalled {
            status = .stalled
        } else {
            status = .up
        }
        let membership = node.driver.latestMembership
        return ReplayNode(
            id: node.id.rawValue, status: status, role: replica.role.rawValue,
            ballot: replica.ownBallot?.description, promised: replica.promised.description,
            chosenThrough: replica.chosenThrough, appliedThrough: replica.appliedThrough,
            lease: replica.holdsLease, leaderHint: replica.leaderHint?.rawValue,
            voters: membership?.voters.map(\.rawValue) ?? [], learners: membership?.learners.map(\.rawValue) ?? [],
            snapshotThrough: replica.snapshot?.slot ?? 0,
            log: replica.logSlots(above: replica.chosenThrough).map {
                ReplaySlot(slot: $0.slot, ballot: $0.acceptedBallot?.description, chosen: $0.chosen ? true : nil)
            },
            disk: replica.isRepairing || node.repairPending ? "repairing" : node.injectedCorruption != nil ? "damaged" : nil)
    }

    func isHeartbeat(_ message: Message) -> Bool {
        switch message {
        case .heartbeat, .heartbeatAck, .commit: return true
        default: return false
        }
    }

    /// Records a message (heartbeats sampled by message number).
    func recordMessage(_ envelope: Envelope, id: Int, fate: ReplayMessage.Fate, copies: Int = 1, damaged: Bool = false) {
        guard recorder?.current != nil else { return }
        if isHeartbeat(envelope.message) && id % Self.replayHeartbeatSampling != 0 {
            if fate != .delivered { recorder?.replay.heartbeatsOmitted += 1 }
            return
        }
        var message = ReplayMessage(id: id, fate: fate, type: envelope.message.kind,
                                    from: envelope.from.rawValue, to: envelope.to.rawValue)
        if fate != .delivered {
            let (ballot, slots) = ballotAndSlots(envelope.message)
            message.ballot = ballot?.description
            message.slots = slots
            message.text = describe(envelope.message)
            message.copies = copies == 1 ? nil : copies
            message.damaged = damaged ? true : nil
            switch envelope.message {
            case .promise(_, _, let entries):
                let shown = entries.prefix(16)
                message.accepted = shown.map { $0.ballot?.description ?? "" }
                message.values = shown.map(\.value.description)
            case .accept(_, _, let value, _):
                message.values = [value.description]
            default:
                break
            }
        }
        recorder?.current?.messages.append(message)
    }


    func ballotAndSlots(_ message: Message) -> (Ballot?, [UInt64]) {
        switch message {
        case .prepare(let ballot, let firstSlot): return (ballot, [firstSlot])
        case .promise(let ballot, _, let entries): return (ballot, entries.prefix(16).map(\.slot))
        case .accept(let ballot, let slot, _, _): return (ballot, [slot])
        case .accepted(let ballot, let slot): return (ballot, [slot])
        case .reject(let ballot, _): return (ballot, [])
        case .heartbeat(let ballot, let chosenThrough, _): return (ballot, [chosenThrough])
        case .heartbeatAck(let ballot, _, let chosenThrough): return (ballot, [chosenThrough])
        case .commit(let ballot, let chosenThrough): return (ballot, [chosenThrough])
        case .catchUpRequest(let firstSlot): return (nil, [firstSlot])
        case .catchUpReply(_, let entries, _): return (nil, entries.prefix(16).map(\.slot))
        case .handOff(let ballot, _), .preVote(let ballot), .preVoteReply(let ballot, _, _): return (ballot, [])
        default: return (nil, [])
        }
    }

    /// A line of the run's story (see `trace`) as a note of the current step. Message lines
    /// are not notes: messages are recorded as such.
    func recordNote(_ text: String) {
        guard recorder?.current != nil else { return }
        let kind: ReplayNote.Kind
        if text.hasPrefix("VIOLATION") {
            kind = .violation
        } else if text.hasPrefix("NEMESIS") || text.hasPrefix("CRASH") || text.hasPrefix("RESTART") || text.hasPrefix("faults end")
                    || text.contains("refuses to start") || text.contains(" wakes with ") || text.contains(" stops: ")
                    || text.contains(" recovery: ") || text.contains("repaired its damaged log") {
            kind = .fault
        } else if text.hasPrefix("OPERATOR") || text.hasPrefix("MEMBERSHIP") || text.hasPrefix("START ") {
            kind = .membership
        } else if text.hasPrefix("client ") {
            kind = .client
        } else if text.contains(" becomes ") {
            kind = .role
        } else if text.hasPrefix("slot ") && text.contains(" chosen") {
            kind = .chosen
        } else if text.hasPrefix(" ") || text.contains(" -> ") && text.hasPrefix("n") && !text.contains(" becomes ") {
            return
        } else if text.contains(" writes ") {
            kind = .storage
        } else {
            kind = .other
        }
        recorder?.current?.notes.append(ReplayNote(kind: kind, text: text))
    }

    func recordClientInvoked(_ operation: HistoryOperation) {
        guard recorder?.current != nil else { return }
        recorder?.current?.notes.append(ReplayNote(kind: .client, text: "client \(operation.client) invokes \(describe(operation.operation))",
                                                   operation: operation.id))
    }

    /// Marks the client note just recorded with the operation it completes.
    func recordClientCompleted(_ historyIndex: Int) {
        guard let recorder, recorder.current != nil else { return }
        if let last = recorder.current?.notes.indices.last, recorder.current?.notes[last].kind == .client {
            recorder.current?.notes[last].operation = historyIndex
        }
        recorder.operationSteps[historyIndex] = recorder.currentIndex
    }

    func recordChosen(_ slot: Slot) {
        guard let recorder, recorder.current != nil else { return }
        if let last = recorder.current?.notes.indices.last, recorder.current?.notes[last].kind == .chosen {
            recorder.current?.notes[last].slot = slot
        }
        recorder.chosenSteps[slot, default: []].append(recorder.currentIndex)
    }

    // MARK: Violations

    func recordViolation(_ text: String) {
        guard let recorder, recorder.replay.violation == nil else { return }
        let step = recorder.current != nil ? recorder.currentIndex : max(0, recorder.replay.steps.count - 1)
        let kind: String
        if text.hasPrefix("not linearizable") || text.hasPrefix("linearizability") {
            kind = "linearizability"
        } else if text.hasPrefix("invariant broken") {
            kind = "invariant"
        } else if text.contains(" halted at ") {
            kind = "halt"
        } else if text.hasPrefix("n"), text.contains(" stopped: ") {
            kind = "stopped"
        } else {
            kind = text.split(separator: ":").first.map(String.init) ?? "violation"
        }
        recorder.replay.violation = ReplayViolation(step: max(0, min(step, recorder.replay.stepLimit - 1)), text: text, kind: kind)
    }

    /// Details of the first violation when it is about one slot: who accepted what, where it
    /// was chosen, and the messages about that slot. A check at the end of the run (quorum)
    /// points at the step the slot was chosen.
    func recordSlotViolation(_ slot: Slot, values: [Value]) {
        guard let recorder, var violation = recorder.replay.violation, violation.slot == nil, violation.operations.isEmpty else { return }
        violation.slot = slot
        violation.chosenValues = values.map(\.description)
        violation.chosenSteps = recorder.chosenSteps[slot] ?? []
        violation.acceptances = (acceptances[slot] ?? []).map {
            ReplayAcceptance(ballot: $0.ballot.description, value: $0.value.description, nodes: $0.nodes.map(\.rawValue).sorted())
        }
        if violation.kind == "quorum", let last = violation.chosenSteps.last { violation.step = last }
        violation.messageIDs = messageIDs(through: violation.step) { message in
            (message.slots ?? []).contains(slot) && ["Accept", "Accepted", "Promise", "Prepare"].contains(message.type)
        }
        recorder.replay.violation = violation
    }

    /// Details of a linearizability violation (found at the end of the run): the operations
    /// involved and the step each completed; the violation points at the last of them.
    func recordOperationsViolation(_ operations: [HistoryOperation]) {
        guard let recorder, var violation = recorder.replay.violation, violation.kind == "linearizability",
              violation.operations.isEmpty else { return }
        violation.operations = operations.map { operation in
            let outcome: String
            switch operation.outcome {
            case .unknown: outcome = "unknown"
            default: outcome = "\(operation.outcome)"
            }
            return ReplayOperation(id: operation.id, client: operation.client, text: describe(operation.operation),
                                   invokedAt: operation.invokedAt, completedAt: operation.completedAt, outcome: outcome,
                                   step: recorder.operationSteps[operation.id])
        }
        if let last = violation.operations.compactMap(\.step).max() { violation.step = last }
        let first = violation.operations.compactMap { operation in
            recorder.replay.steps.firstIndex { $0.time >= operation.invokedAt }
        }.min() ?? violation.step
        violation.messageIDs = messageIDs(from: first, through: violation.step) { message in
            ["Prepare", "Promise", "Accept", "Accepted", "ReadIndexRequest", "ReadIndexReply"].contains(message.type)
        }
        recorder.replay.violation = violation
    }

    /// The ids of recorded messages sent in steps `first...last` that match, the last 60.
    private func messageIDs(from first: Int = 0, through last: Int, _ matches: (ReplayMessage) -> Bool) -> [Int] {
        guard let recorder, first <= last else { return [] }
        var ids: [Int] = []
        for recorded in recorder.replay.steps.prefix(last + 1).dropFirst(first) {
            for message in recorded.messages where message.fate != .delivered && matches(message) { ids.append(message.id) }
        }
        return Array(ids.suffix(60))
    }

    /// Steps kept after the first violation (the replay stops there; what follows is counted).
    static let replayStepsAfterViolation = 200

    func finishRecording() {
        guard let recorder else { return }
        recorder.replay.violations = result.violations
        if let violation = recorder.replay.violation {
            let keep = violation.step + 1 + Self.replayStepsAfterViolation
            if recorder.replay.steps.count > keep {
                recorder.replay.stepsOmitted += recorder.replay.steps.count - keep
                recorder.replay.steps.removeLast(recorder.replay.steps.count - keep)
            }
        }
        result.replay = recorder.replay
    }
}
