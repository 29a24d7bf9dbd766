import XCTest
@testable import SynodCore

/// One step of a scenario, as the harness saw it.
struct TraceEntry: Hashable {
    var node: NodeID
    var input: Input
    var output: Output
}

/// A tiny deterministic driver for a few `Replica`s, for scenario tests.
///
/// It follows the driver contract of `Output` and `PersistBatch`: a persist batch is recorded
/// as durable (unless the node's disk is held), then its `messagesAfterDurable` are queued, then
/// the replica hears `.durable(id)`. Messages wait in one queue that the test delivers (in
/// order, or picking any one), drops, duplicates or delays explicitly. After every step it
/// checks `checkInvariants()`, that applies come strictly in slot order without gaps, that no
/// two nodes apply different values for a slot, and that no linearizable read is answered from
/// a state older than a slot some node applied before the read was submitted.
///
/// `@testable` is used only to set up scenarios (peeking at election deadlines and lease guards);
/// assertions use the public API.
struct Cluster {
    let configuration: Configuration
    let seed: UInt64
    private(set) var ids: [NodeID]
    /// Nodes added at run time: they restart as joining replicas until they hold a membership.
    private(set) var joiners: Set<NodeID> = []
    private(set) var replicas: [NodeID: Replica] = [:]
    private var incarnations: [NodeID: UInt64] = [:]
    /// Each node's machine clock (see `ClockTime`): a tick advances it by one tick's length;
    /// `stall` advances it without ticks (the process was stopped). It survives restarts.
    private(set) var clocks: [NodeID: ClockTime] = [:]

    // MARK: Network and disks
    /// Messages in flight, oldest first.
    var network: [Envelope] = []
    /// Nodes cut off from everyone: messages from or to them are dropped.
    var isolated: Set<NodeID> = []
    /// Directed links that drop everything (one-way partitions).
    var cutLinks: Set<[NodeID]> = []
    /// Nodes whose persist batches wait for `flush` instead of becoming durable at once.
    var heldDisks: Set<NodeID> = []
    private(set) var pendingBatches: [NodeID: [PersistBatch]] = [:]
    /// Everything made durable, per node, in order: what a restart restores from.
    private(set) var durableRecords: [NodeID: [DurableRecord]] = [:]

    // MARK: What happened
    /// Every step: node, input and output, in order (for determinism checks).
    private(set) var trace: [TraceEntry] = []
    /// Problems found by the harness's own checks; a test ends with `assertClean()`.
    private(set) var violations: [String] = []
    /// A negative control runs a broken variant and asserts on `violations` itself.
    var violationsExpected = false
    /// Applies per node, current incarnation.
    private(set) var applied: [NodeID: [Apply]] = [:]
    private(set) var appliedThrough: [NodeID: Slot] = [:]
    /// The first value any node applied per slot (agreement reference).
    private(set) var agreed: [Slot: Value] = [:]
    private(set) var readsReady: [NodeID: [UInt64]] = [:]
    private(set) var readsFailed: [NodeID: [Output.FailedRead]] = [:]
    private(set) var rejected: [NodeID: [Output.RejectedCommand]] = [:]
    private(set) var reconfigured: [NodeID: [ReconfigurationOutcome]] = [:]
    private(set) var transfers: [NodeID: [TransferOutcome]] = [:]
    private(set) var snapshotsWanted: Set<NodeID> = []
    /// Messages that left through `Output.messages` (no durability wait) and through
    /// `messagesAfterDurable`, with whether the sender then knew the slot chosen (for Accepted).
    private(set) var sentAtOnce: [(envelope: Envelope, slotKnownChosen: Bool)] = []
    private(set) var sentAfterDurable: [Envelope] = []

    /// Per node and read id: the highest slot any node had applied when the linearizable read
    /// was submitted. The read must not be answered from a state below it (a value applied
    /// anywhere was chosen, and possibly acknowledged, before the read began).
    private var readFloors: [NodeID: [UInt64: Slot]] = [:]
    /// The highest slot any node (any incarnation) has applied.
    private(set) var appliedAnywhere: Slot = 0
    private var commandsByName: [String: Command] = [:]

    init(nodes: Int = 3, seed: UInt64 = 1, configure: (inout Configuration) -> Void = { _ in }) {
        let ids = (1...nodes).map { NodeID(UInt32($0)) }
        var configuration = Configuration(members: ids)
        configure(&configuration)
        self.configuration = configuration
        self.seed = seed
        self.ids = ids
        for id in ids { start(id) }
    }

    private mutating func start(_ id: NodeID, repairing: Bool = false) {
        let incarnation = incarnations[id, default: 0]
        do {
            replicas[id] = try Replica(id: id, configuration: configuration, seed: seed &+ incarnation,
                                       restoring: durableRecords[id, default: []], joining: joiners.contains(id),
                                       repairing: repairing)
        } catch {
            XCTFail("cannot start \(id): \(error)")
            return
        }
        applied[id] = []
        appliedThrough[id] = 0
        step(id, .start)
    }

    /// The command a script names `name`: the same name always gives the same command.
    mutating func command(_ name: String) -> Command {
        if let known = commandsByName[name] { return known }
        let command = Command(clientID: UInt64(commandsByName.count + 1), sequence: 1, payload: Array(name.utf8))
        commandsByName[name] = command
        return command
    }

    // MARK: Driving

    @discardableResult
    mutating func step(_ id: NodeID, _ input: Input) -> Output {
        guard var replica = replicas[id] else { return Output() }
        if case .read(let readID, .linearizable) = input {
            readFloors[id, default: [:]][readID] = appliedAnywhere
        }
        var clock = clocks[id] ?? ClockTime(nanoseconds: 1_000_000_000)
        if case .tick = input { clock = clock.adding(nanoseconds: configuration.tickNanoseconds) }
        clocks[id] = clock
        let output = replica.step(input, clock: clock)
        replicas[id] = replica
        trace.append(TraceEntry(node: id, input: input, output: output))
        for problem in replica.checkInvariants() { violate("\(id) after \(input): \(problem)") }
        record(output, at: id, replica: replica)
        for envelope in output.messages { send(envelope) }
        if let batch = output.persist {
            pendingBatches[id, default: []].append(batch)
            if !heldDisks.contains(id) { flush(id) }
        }
        return output
    }

    @discardableResult
    mutating func step(_ id: UInt32, _ input: Input) -> Output { step(NodeID(id), input) }

    /// Makes every pending batch of `id` durable, sends what waited for it, and tells the replica.
    mutating func flush(_ id: NodeID) {
        let batches = pendingBatches[id, default: []]
        guard let last = batches.last else { return }
        pendingBatches[id] = []
        for batch in batches {
            durableRecords[id, default: []].append(contentsOf: batch.records)
            for envelope in batch.messagesAfterDurable {
                sentAfterDurable.append(envelope)
                send(envelope)
            }
        }
        step(id, .durable(last.id))
    }

    private mutating func record(_ output: Output, at id: NodeID, replica: Replica) {
        for envelope in output.messages {
            var known = false
            if case .accepted(_, let slot) = envelope.message {
                known = slot <= replica.chosenThrough || replica.chosenValue(at: slot) != nil
            }
            sentAtOnce.append((envelope, known))
        }
        for item in output.apply {
            applied[id, default: []].append(item)
            let through = appliedThrough[id, default: 0]
            switch item {
            case .snapshot(let snapshot):
                if snapshot.slot <= through { violate("\(id) applied snapshot \(snapshot.slot) at \(through)") }
                appliedThrough[id] = snapshot.slot
                appliedAnywhere = max(appliedAnywhere, snapshot.slot)
            case .entry(let slot, let value):
                if slot != through + 1 { violate("\(id) applied slot \(slot) after \(through)") }
                appliedThrough[id] = slot
                appliedAnywhere = max(appliedAnywhere, slot)
                if let first = agreed[slot], first != value {
                    violate("\(id) applied \(value) in slot \(slot), another node applied \(first)")
                }
                agreed[slot] = agreed[slot] ?? value
            }
        }
        readsReady[id, default: []].append(contentsOf: output.readsReady)
        for readID in output.readsReady {
            guard let floor = readFloors[id]?.removeValue(forKey: readID) else { continue }
            let through = appliedThrough[id, default: 0]
            if through < floor {
                violate("\(id) answered linearizable read \(readID) at slot \(through), but slot \(floor) was applied before it began")
            }
        }
        readsFailed[id, default: []].append(contentsOf: output.readsFailed)
        rejected[id, default: []].append(contentsOf: output.rejected)
        reconfigured[id, default: []].append(contentsOf: output.reconfigured)
        transfers[id, default: []].append(contentsOf: output.transfers)
        if output.snapshotWanted { snapshotsWanted.insert(id) }
    }

    /// Starts a new, empty replica that was added to the cluster (it asks the initial members
    /// for a snapshot). It is driven like the others from now on.
    mutating func join(_ id: NodeID) {
        joiners.insert(id)
        if !ids.contains(id) { ids.append(id) }
        start(id)
    }

    /// Takes the snapshots replicas asked for (a joining peer needs one).
    mutating func takeWantedSnapshots() {
        for id in snapshotsWanted.sorted() {
            guard let through = replicas[id]?.appliedThrough, through > 0 else { continue }
            step(id, .snapshot(slot: through, bytes: SnapshotBytes(Array("state@\(through)".utf8))))
        }
        snapshotsWanted.removeAll()
    }

    private mutating func violate(_ text: String) {
        violations.append(text)
        if !violationsExpected { XCTFail(text) }
    }

    private func blocked(_ envelope: Envelope) -> Bool {
        isolated.contains(envelope.from) || isolated.contains(envelope.to)
            || cutLinks.contains([envelope.from, envelope.to]) || replicas[envelope.to] == nil
    }

    private mutating func send(_ envelope: Envelope) {
        if !blocked(envelope) { network.append(envelope) }
    }

    /// Delivers queued messages (and the ones they cause) in FIFO order until none match.
    mutating func deliver(limit: Int = 100_000, where matches: (Envelope) -> Bool = { _ in true }) {
        var delivered = 0
        while let index = network.firstIndex(where: matches) {
            let envelope = network.remove(at: index)
            delivered += 1
            if delivered > limit { violate("delivery did not settle after \(limit) messages"); return }
            if blocked(envelope) { continue }
            step(envelope.to, .receive(envelope))
        }
    }

    mutating func deliverAll() { deliver() }

    /// Delivers the message at `index` of the queue (out of order, for randomized runs).
    mutating func deliverOne(at index: Int) {
        let envelope = network.remove(at: index)
        if !blocked(envelope) { step(envelope.to, .receive(envelope)) }
    }

    /// Removes matching messages from the network and returns them (to drop or delay them).
    @discardableResult
    mutating func take(where matches: (Envelope) -> Bool) -> [Envelope] {
        let taken = network.filter(matches)
        network.removeAll(where: matches)
        return taken
    }

    /// Puts a delayed message back on the network, at the end of the queue.
    mutating func inject(_ envelope: Envelope) { network.append(envelope) }

    mutating func tick(_ id: NodeID, times: Int = 1) {
        for _ in 0..<times { step(id, .tick) }
    }

    /// `id`'s process was stopped for `ticks` ticks: its clock moved on, it saw no tick.
    mutating func stall(_ id: NodeID, ticks: UInt64) {
        clocks[id] = (clocks[id] ?? ClockTime(nanoseconds: 1_000_000_000)).adding(nanoseconds: ticks * configuration.tickNanoseconds)
    }

    mutating func propose(_ id: NodeID, _ name: String) {
        step(id, .propose(command(name)))
    }

    mutating func crash(_ id: NodeID) {
        replicas[id] = nil
        pendingBatches[id] = []  // not durable: lost
        readFloors[id] = nil
        network.removeAll { $0.to == id }
    }

    mutating func restart(_ id: NodeID) {
        incarnations[id, default: 0] += 1
        start(id)
    }

    /// Restarts `id` (crashed) after its disk lost synced records — those `lost` matches —
    /// as storage reports damage: `repairing` is what a server passes (false: the broken
    /// variant that trusts what it could read).
    mutating func restartDamaged(_ id: NodeID, repairing: Bool, lost: (DurableRecord) -> Bool) {
        durableRecords[id] = durableRecords[id, default: []].filter { !lost($0) }
        incarnations[id, default: 0] += 1
        start(id, repairing: repairing)
    }

    // MARK: Scenario helpers

    /// Ticks `id` while its restart lease guard is on, but never into its own election.
    /// A fresh or restarted replica promises nobody for one election timeout.
    mutating func ageGuard(_ id: NodeID) {
        while let replica = replicas[id], replica.clock < replica.guardUntil || replica.restartGuardPending,
              replica.now + 1 < replica.electionDeadline {
            tick(id)
        }
    }

    /// Ticks `id` until it campaigns (its Prepare waits in the persist batch, or is sent).
    /// Its pre-vote round (the messages to and from `id`) is delivered on the way.
    mutating func tickUntilCandidate(_ id: NodeID, limit: Int = 100) {
        for _ in 0..<limit where replicas[id]?.role != .candidate {
            tick(id)
            deliver { envelope in
                switch envelope.message {
                case .preVote, .preVoteReply: return envelope.from == id || envelope.to == id
                default: return false
                }
            }
        }
    }

    /// Makes `id` the leader: ages the other live replicas past their guard, lets `id` time
    /// out, and delivers everything. Fails the test if `id` does not end up leading.
    mutating func elect(_ id: NodeID, file: StaticString = #filePath, line: UInt = #line) {
        for other in ids where other != id && !isolated.contains(other) { ageGuard(other) }
        tickUntilCandidate(id)
        deliverAll()
        XCTAssertEqual(replicas[id]?.role, .leader, "\(id) did not become leader", file: file, line: line)
    }

    var leaders: [NodeID] { ids.filter { replicas[$0]?.role == .leader } }

    /// Values applied by `id`, in slot order (entries only).
    func appliedValues(_ id: NodeID) -> [Value] {
        applied[id, default: []].compactMap { if case .entry(_, let value) = $0 { return value } else { return nil } }
    }

    /// Commands applied by `id`, in order, by script name (payload).
    func appliedNames(_ id: NodeID) -> [String] {
        appliedValues(id).flatMap(\.commands).map { String(decoding: $0.payload, as: UTF8.self) }
    }

    func assertClean(file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(violations, [], file: file, line: line)
    }

    // MARK: Scripts

    /// Runs a tiny scenario script, one command per line (or `;`-separated):
    /// `tick 2`, `tick 2 x 15`, `tick all x 3`, `deliver all`, `deliver 1->3`, `drop all`,
    /// `drop 1->3`, `propose 1 name`, `elect 1`, `isolate 3`, `connect 3`, `heal`, `crash 3`, `restart 3`,
    /// `read 1 linearizable 7`, `read 1 serializable 8`, `snapshot 1`, `hold 2`, `flush 2`,
    /// `cycle 5` (five rounds of: tick every connected node once, deliver all).
    mutating func run(_ script: String, file: StaticString = #filePath, line: UInt = #line) {
        for rawLine in script.split(whereSeparator: { $0 == "\n" || $0 == ";" }) {
            let words = rawLine.split(separator: " ").map(String.init)
            guard let verb = words.first else { continue }
            func node(_ index: Int) -> NodeID { NodeID(UInt32(words[index])!) }
            func link(_ text: String) -> (NodeID, NodeID) {
                let parts = text.split(separator: "-").map { String($0.drop(while: { $0 == ">" })) }
                return (NodeID(UInt32(parts[0])!), NodeID(UInt32(parts[1])!))
            }
            switch verb {
            case "tick":
                let times = words.count >= 4 && words[2] == "x" ? Int(words[3])! : 1
                let targets = words[1] == "all" ? ids : [node(1)]
                for _ in 0..<times { for target in targets { tick(target) } }
            case "deliver", "drop":
                let matches: (Envelope) -> Bool
                if words[1] == "all" {
                    matches = { _ in true }
                } else {
                    let (from, to) = link(words[1])
                    matches = { $0.from == from && $0.to == to }
                }
                if verb == "deliver" { deliver(where: matches) } else { take(where: matches) }
            case "cycle":
                for _ in 0..<(Int(words[1]) ?? 1) {
                    for id in ids where !isolated.contains(id) { tick(id) }
                    deliverAll()
                    takeWantedSnapshots()
                }
            case "propose": propose(node(1), words[2])
            case "elect": elect(node(1), file: file, line: line)
            case "isolate": isolated.insert(node(1))
            case "connect": isolated.remove(node(1))
            case "heal": isolated.removeAll(); cutLinks.removeAll()
            case "crash": crash(node(1))
            case "restart": restart(node(1))
            case "read":
                let consistency: ReadConsistency = words[2] == "linearizable" ? .linearizable : .serializable
                step(node(1), .read(readID: UInt64(words[3])!, consistency: consistency))
            case "snapshot":
                let id = node(1)
                let through = replicas[id]!.appliedThrough
                step(id, .snapshot(slot: through, bytes: SnapshotBytes(Array("state@\(through)".utf8))))
            case "hold": heldDisks.insert(node(1))
            case "flush": heldDisks.remove(node(1)); flush(node(1))
            default: XCTFail("unknown script command: \(rawLine)", file: file, line: line)
            }
        }
    }
}
