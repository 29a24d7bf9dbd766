import SynodCore
import SynodKV
import SynodNode

/// Driving a node: the simulator is the shell around each node's `NodeDriver`, the value a
/// server runs. It hands the driver its inputs with the node's clock and carries out the
/// outputs: persist through the simulated disk, send through the simulated network, answer
/// the simulated clients, encode snapshots on the spot, answer discovery probes.
extension Simulation {
    /// Every node's driver settings: short timings to match the simulated cluster (a tick of
    /// 10 ms, an election timeout of 100 ms) and frequent integrity checks.
    func makeDriver(_ replica: Replica, seed: UInt64) -> NodeDriver {
        var settings = DriverSettings(name: "n\(replica.id.rawValue)", advertiseClientURLs: [],
                                      memberID: Self.memberIDBase + UInt64(replica.id.rawValue))
        settings.requestTimeoutNanoseconds = 2_000_000_000
        settings.retryAfterNanoseconds = 200_000_000
        settings.snapshotEverySlots = options.snapshotEverySlots
        settings.integrityCheckNanoseconds = 300_000_000
        settings.publishRetryNanoseconds = 500_000_000
        settings.orphanQuietNanoseconds = 500_000_000
        settings.removalGraceNanoseconds = 500_000_000
        settings.reportApplies = true
        settings.unsafeReadsWhileDecoding = options.breaks.contains(.unsafeDecodeReads)
        return NodeDriver(replica: replica, settings: settings, seed: seed)
    }

    /// etcd member ids of the simulated nodes: this plus the node id.
    static let memberIDBase: UInt64 = 0x5EED_0000

    /// The clock reading the driver hands node `node` now: its machine's monotonic clock,
    /// or, for the tick-lease negative control, a clock that counts the replica's ticks.
    func clockReading(_ node: Int) -> ClockTime {
        if options.breaks.contains(.tickLease) {
            return ClockTime(nanoseconds: nodes[node].replica.now &* configuration.tickNanoseconds)
        }
        return ClockTime(nanoseconds: nodes[node].clock(at: now))
    }

    /// Steps node `node`'s driver and carries out the effects, checking the replica's invariants.
    func step(_ node: Int, _ input: DriverInput) {
        let roleBefore = nodes[node].replica.role
        // A tick advances the replica's tick count in the step: the tick-lease control's
        // clock must count it, as a clock derived from ticks would.
        var reading = clockReading(node)
        if case .tick = input, options.breaks.contains(.tickLease) {
            reading = reading.adding(nanoseconds: configuration.tickNanoseconds)
        }
        let output = nodes[node].driver.step(input, clock: reading)
        let problems = nodes[node].replica.checkInvariants()
        if !problems.isEmpty {
            violation("invariant broken on n\(nodes[node].id.rawValue) at \(timeText()): \(problems.joined(separator: "; "))")
        }
        let roleAfter = nodes[node].replica.role
        if roleAfter != roleBefore {
            if roleAfter == .leader { result.elections += 1 }
            trace("n\(nodes[node].id.rawValue) becomes \(roleAfter.rawValue)" + (nodes[node].replica.ownBallot.map { " with ballot \($0)" } ?? ""))
        }
        handle(node: node, output)
    }

    func handle(node: Int, _ output: DriverOutput) {
        if let reason = output.halted {
            // Fail-stop: in a correct protocol no replica ever finds its safety broken.
            result.halts += 1
            violation("n\(nodes[node].id.rawValue) halted at \(timeText()): \(reason)")
            for envelope in output.send { send(envelope) }
            crashNode(node)
            nodes[node].refusedToStart = true
            return
        }
        for batch in output.persist { persist(node, batch) }
        for envelope in output.send { send(envelope) }
        for (slot, value) in output.applied { applied(node, slot: slot, value: value) }
        for (events, revision) in output.watchEvents { checkWatchEvents(node, events, revision: revision) }
        for (token, result) in output.writes { writeAnswered(node, token: token, result) }
        for (token, failure) in output.reads { readAnswered(node, token: token, failure: failure) }
        handleMembershipOutputs(node, output)
        if output.peersChanged {
            nodes[node].publishedLatest = nodes[node].driver.latestMembership
            nodes[node].publishedGoverning = nodes[node].driver.governingMembership
        }
        for event in output.events { observe(node, event) }
        if let (slot, state) = output.encodeSnapshot {
            // Like the server, encode into a spool file on the node's disk (two snapshots in
            // three; the third in memory, the server's fallback), and hand in the checksum
            // computed with the encoding for half of them (the replica computes the others').
            var bytes: SnapshotBytes?
            if slot % 3 != 0, let spool = nodes[node].storage?.snapshotSpooling.makeSpool(slot: slot),
               state.writeSnapshot(pieceBytes: 4 << 10, { spool.append($0) }) {
                bytes = spool.finish()
            }
            let encoded = bytes ?? SnapshotBytes(state.snapshot())
            let checksum = slot % 2 == 0 ? Snapshot.checksum(of: encoded) : nil
            step(node, .snapshotEncoded(slot: slot, bytes: encoded, checksum: checksum))
        }
        if let request = output.decodeSnapshot {
            // The server decodes a snapshot on another thread (a second per 64 MiB or so),
            // while its loop goes on: the node is handed the state 1–60 ms later, and what
            // arrives meanwhile (messages, reads, chosen entries) finds it still decoding.
            queue.push(.stateDecoded(node: node, incarnation: nodes[node].incarnation, slot: request.slot, result: request.decode()),
                       at: now + between(1_000, 60_000))
        }
        if output.probeMembership {
            // Discovery over the peer port: a round trip, or a connection attempt timing out.
            queue.push(.probeAnswer(node: node, incarnation: nodes[node].incarnation), at: now + between(5, 1_500))
        }
        if output.removed {
            trace("n\(nodes[node].id.rawValue) stops: its removal took effect")
            nodes[node].removed = true
        }
        if output.flushWanted { step(node, .flush) }
        if let reason = nodes[node].driver.stopReason, nodes[node].up {
            violation("n\(nodes[node].id.rawValue) stopped: \(reason)")
            crashNode(node)
            nodes[node].refusedToStart = true
        }
    }

    private func observe(_ node: Int, _ event: DriverEvent) {
        switch event {
        case .snapshotInstalled(let slot, _):
            trace("n\(nodes[node].id.rawValue) installs snapshot through slot \(slot)")
        case .removalNoticed:
            if nodes[node].removalNoticedAt == nil { nodes[node].removalNoticedAt = now }
        case .peerHalted:
            result.safetyAlarms += 1
        case .repairFinished:
            result.repairsFinished += 1
            nodes[node].repairPending = false
            trace("n\(nodes[node].id.rawValue) repaired its damaged log from the others: votes again, promised \(nodes[node].replica.promised)")
        case .integrityMismatch(let mismatch, let name, _):
            violation("integrity: \(name) differs from the majority at revision \(mismatch.revision) (seen at n\(nodes[node].id.rawValue))")
        default:
            break
        }
    }

    /// A slot applied at `node`: agreement with every other application, validity of its
    /// commands, and the membership history.
    private func applied(_ node: Int, slot: Slot, value: Value) {
        hasher.mix(slot)
        if let known = chosen[slot] {
            if known != value {
                recordChosen(slot)
                violation("agreement: slot \(slot) chosen as \(known) and as \(value) (n\(nodes[node].id.rawValue), \(timeText()))")
                recordSlotViolation(slot, values: [known, value])
            }
        } else {
            chosen[slot] = value
            highestApplied = max(highestApplied, slot)
            result.commandsChosen += value.commands.count
            trace("slot \(slot) chosen: \(value)")
            recordChosen(slot)
            if case .reconfigure(let change) = value { membershipChosen(change, at: slot) }
        }
        for command in value.commands {
            let key = CommandKey(command)
            if let payload = submitted[key] {
                if payload != command.payload { violation("validity: \(command) applied with a payload its client never sent") }
            } else if !Self.isInternal(command) {
                violation("validity: \(command) applied but never submitted")
            }
            appliedCommands.insert(key)
        }
    }

    /// Commands the nodes propose themselves (member publishing, integrity checks and
    /// reports, lease revokes, alarms).
    static func isInternal(_ command: Command) -> Bool {
        switch try? KVCommand(decoding: command.payload) {
        case .publishMember?, .integrityCheck?, .integrityReport?, .integrityReportFNV?, .leaseRevoke?, .alarm?: return true
        default: return false
        }
    }

    /// Every replica produces the same watch events for a revision (the state machine is a
    /// function of the log), in revision order.
    private func checkWatchEvents(_ node: Int, _ events: [WatchEvent], revision: Int64) {
        if let known = watchEventsByRevision[revision] {
            if known != events {
                violation("watch: n\(nodes[node].id.rawValue) reported other events for revision \(revision) than another replica")
            }
        } else {
            watchEventsByRevision[revision] = events
        }
        if events.contains(where: { $0.kv.modRevision != revision }) {
            violation("watch: n\(nodes[node].id.rawValue) reported events of another revision under \(revision)")
        }
    }

    /// A discovery probe reaches a random running member; its newest membership answers.
    func answerProbe(_ node: Int, incarnation: Int) {
        guard nodes[node].up, nodes[node].incarnation == incarnation else { return }
        let others = nodes.indices.filter { $0 != node && nodes[$0].up }
        var answer: Membership?
        if !others.isEmpty {
            let peer = others[Int(random.next() % UInt64(others.count))]
            // As the server's discovery answer: removed only when neither the newest
            // membership nor the one governing the answerer's first unchosen slot has it,
            // as the answerer last published them (the server answers from another thread).
            let id = nodes[node].id
            if let membership = nodes[peer].publishedLatest, !membership.contains(id),
               nodes[peer].publishedGoverning?.contains(id) != true,
               id.rawValue < membership.nextNodeID {
                answer = membership
            }
        }
        step(node, .probeAnswered(removedFrom: answer))
    }
}
