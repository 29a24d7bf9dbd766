import SynodBytes
import SynodCore
import SynodKV

/// Changes a chosen command on its way into the state machine. Production applies what was
/// chosen (`ApplyAsChosen`); the `corrupt-apply` failpoint is another filter, handed to the
/// driver at start (a decorator, not a condition on the apply path).
public protocol ApplyFilter: Sendable {
    /// The command to apply in place of `command` (the same one, unless broken on purpose).
    mutating func filter(_ command: Command) -> Command
}

/// Applies exactly what was chosen.
public struct ApplyAsChosen: ApplyFilter {
    public init() {}
    public func filter(_ command: Command) -> Command { command }
}

/// One member's node as a value: the replica and the key-value state machine it feeds, the
/// client requests waiting on them, and the node's housekeeping (leases, integrity checks,
/// member publishing, snapshots, membership and removal).
///
/// Like `Replica`, it does no I/O and reads no clock: `step(_:clock:)` takes one input and
/// the clock read for it, and returns the effects (`DriverOutput`) for the shell to carry
/// out. The server's shell (`Node` in SynodServer) moves bytes and time between it and the
/// world; the simulator drives the same value.
///
/// - Important: A shell must carry out every output in order: persist (`persist`) before it
///   sends what waited for durability (the driver puts those messages into `send` once
///   `.durable` reports them), then `send`, then the answers. Reads marked ready are answered
///   from `kv` at once, before the next step.
public struct NodeDriver: Sendable {
    public let nodeID: NodeID
    public let settings: DriverSettings
    public internal(set) var replica: Replica
    public internal(set) var kv: KVStateMachine
    public internal(set) var leases = LeaseTimers()
    /// This member's role, as of the last membership change.
    public internal(set) var role: LocalRole = .joining
    /// The latest clock reading (readings never go backwards).
    public internal(set) var clock: ClockTime = .zero
    /// Why the node stopped for good: the replica halted on a safety violation, or a
    /// snapshot did not decode. Every later step does nothing.
    public internal(set) var stopReason: String?
    /// This member's removal took effect; it does nothing more.
    public internal(set) var removed = false

    var applyFilter: any ApplyFilter
    var sessionIDs: SplitMix64
    var pendingWrites: [UInt64: PendingWrite] = [:]
    var turnProposals: [Command] = []
    /// Linearizable reads at the replica: its read id → the shell's token.
    var pendingReads: [UInt64: UInt64] = [:]
    var nextReadID: UInt64 = 1
    var pendingReconfigurations: [UInt64: PendingRequest] = [:]
    var pendingTransfers: [UInt64: PendingRequest] = [:]
    /// Requests (ids) to remove this very member.
    var pendingSelfRemovals: Set<UInt64> = []
    /// Persist batches handed out and not durable yet, oldest first.
    var unsyncedBatches: [PersistBatch] = []
    /// The slot the state machine reflects: the last slot applied to it, commands or not.
    var stateSlot: Slot = 0
    /// A snapshot's state being decoded off the shell's loop (nil when `kv` is current).
    var stateDecoding: StateDecoding?
    var snapshots: SnapshotPolicy
    var integrity: IntegritySchedule
    var lastIntegrityRecordID: UInt64?
    var corruptAlarmRaised = false
    var publisher: MemberPublisher
    var probe: OrphanProbe
    var removal: RemovalWatch
    var removedByCluster = false
    var lastLeaderBallot: Ballot?
    var wasLeader = false
    var observed: MembershipObservation?
    var out = DriverOutput()

    struct PendingWrite: Sendable {
        var command: Command
        /// The shell's tokens waiting for it (later attempts of the same request join).
        var tokens: [UInt64]
        var deadline: ClockTime
        /// When it was last handed to the replica; nil while waiting for a leader.
        var proposedAt: ClockTime?
    }

    struct PendingRequest: Sendable {
        var token: UInt64
        var deadline: ClockTime
    }

    /// No shell waits for internal commands (lease revokes, integrity checks, publishing).
    static let internalToken: UInt64 = 0

    /// - Parameters:
    ///   - replica: the replica, restored from this member's storage (not started yet).
    ///   - seed: seeds the session ids of writes without a request id.
    public init(replica: Replica, settings: DriverSettings, seed: UInt64, applyFilter: any ApplyFilter = ApplyAsChosen()) {
        self.nodeID = replica.id
        self.settings = settings
        self.replica = replica
        self.kv = KVStateMachine(sessionCapacity: settings.sessionCapacity)
        self.applyFilter = applyFilter
        self.sessionIDs = SplitMix64(seed: seed)
        self.snapshots = SnapshotPolicy(everySlots: settings.snapshotEverySlots)
        self.integrity = IntegritySchedule(intervalNanoseconds: settings.integrityCheckNanoseconds)
        self.publisher = MemberPublisher(retryNanoseconds: settings.publishRetryNanoseconds)
        self.probe = OrphanProbe(quietNanoseconds: settings.orphanQuietNanoseconds)
        self.removal = RemovalWatch(graceNanoseconds: settings.removalGraceNanoseconds)
    }

    /// The session (client id) of a write: derived from the client's request id and the
    /// payload, so every attempt of one request maps to the same session and is applied at
    /// most once; random without a request id. Never 0.
    public static func sessionID(requestID: UInt64, payload: [UInt8]) -> UInt64 {
        var hash = FNV1a64()
        withUnsafeBytes(of: requestID.littleEndian) { hash.combine(Array($0)) }
        hash.combine(payload)
        return hash.value | 1
    }

    /// Whether a snapshot's state is being decoded off the shell's loop: `kv` is empty until
    /// `.snapshotDecoded` arrives, and reads of it must wait (the driver holds back the reads
    /// it answers; a shell holds back its own looks at `kv`).
    public var isDecodingSnapshot: Bool { stateDecoding != nil }

    /// Where the replica writes snapshots it receives in chunks (the storage's spool files);
    /// nil collects them in memory.
    public mutating func useSnapshotSpooling(_ spooling: (any SnapshotSpooling)?) {
        replica.snapshotSpooling = spooling
    }

    /// Feeds one input, with the clock read for it, and returns the effects to carry out.
    public mutating func step(_ input: DriverInput, clock reading: ClockTime) -> DriverOutput {
        if reading > clock { clock = reading }
        guard stopReason == nil, !removed else { return refuseAfterStop(input) }
        switch input {
        case .start:
            stepReplica(.start)
            snapshots.lastSlot = replica.snapshot?.slot ?? 0
            stateSlot = replica.appliedThrough
            observeMembership(force: true)
        case .tick: onTick()
        case .receive(let envelopes):
            for envelope in envelopes where envelope.to == nodeID {
                stepReplica(.receive(envelope))
                if stopReason != nil { break }
            }
        case .durable(let through): onDurable(through)
        case .write(let token, let payload, let requestID): onWrite(token: token, payload: payload, requestID: requestID)
        case .read(let token, let consistency): onRead(token: token, consistency: consistency)
        case .flush:
            if !turnProposals.isEmpty {
                let commands = turnProposals
                turnProposals.removeAll(keepingCapacity: true)
                stepReplica(.proposeAll(commands))
            }
        case .reconfigure(let token, let change, let force): onReconfigure(token: token, change: change, force: force)
        case .transferLeadership(let token, let target): onTransfer(token: token, target: target)
        case .snapshotEncoded(let slot, let bytes, let checksum):
            snapshots.encoding = false
            stepReplica(.snapshot(slot: slot, bytes: bytes, checksum: checksum))
            out.events.append(.snapshotTaken(slot: slot, revision: kv.store.revision, bytes: bytes.count))
        case .snapshotStored(let slot, let bytes, let checksum):
            stepReplica(.snapshotStored(slot: slot, bytes: bytes, checksum: checksum))
        case .snapshotDecoded(let slot, let result): onSnapshotDecoded(slot: slot, result: result)
        case .probeAnswered(let membership): onProbeAnswered(membership)
        }
        out.flushWanted = !turnProposals.isEmpty
        let result = out
        out = DriverOutput()
        return result
    }

    /// After the node stopped: requests fail at once, everything else is ignored.
    private func refuseAfterStop(_ input: DriverInput) -> DriverOutput {
        var output = DriverOutput()
        let error: NodeError = removed ? .removed : .stopped
        switch input {
        case .write(let token, _, _): output.writes.append((token, .failure(error)))
        case .read(let token, _): output.reads.append((token, error))
        case .reconfigure(let token, _, _): output.reconfigurations.append((token, .failure(error)))
        case .transferLeadership(let token, _): output.transfers.append((token, .failure(error)))
        default: break
        }
        output.halted = removed ? nil : stopReason
        return output
    }

    private mutating func onTick() {
        stepReplica(.tick)
        guard stopReason == nil else { return }
        observeLeadership()
        retryAndExpireWrites()
        if replica.role == .leader, stateDecoding == nil {
            expireLeases()
            if integrity.isDue(now: clock) { proposeInternal(.integrityCheck(id: sessionIDs.next() | 1)) }
        }
        expireMembershipRequests()
        if role == .removed { checkRemoval() }
        probeIfOrphaned()
        maybeSnapshot()
    }

    private mutating func onDurable(_ through: UInt64) {
        var released = 0
        for batch in unsyncedBatches {
            guard batch.id <= through else { break }
            out.send += batch.messagesAfterDurable
            released += 1
        }
        unsyncedBatches.removeFirst(released)
        stepReplica(.durable(through))
    }

    // MARK: The replica

    /// Steps the replica with this step's clock and carries out what it says.
    mutating func stepReplica(_ input: Input) {
        handle(replica.step(input, clock: clock))
    }

    private mutating func handle(_ output: Output) {
        if let reason = output.halted {
            stopReason = reason
            out.halted = reason
            out.send = output.messages  // only the alarms to the peers
            out.persist = []
            unsyncedBatches = []
            failEverything(.stopped)
            return
        }
        for alarm in output.peerAlarms { raiseAlarm(for: alarm) }
        if output.repairFinished { out.events.append(.repairFinished) }
        if let batch = output.persist {
            unsyncedBatches.append(batch)
            out.persist.append(batch)
        }
        out.send += output.messages
        for item in output.apply {
            apply(item)
            if stopReason != nil { return }
        }
        for readID in output.readsReady {
            if let token = pendingReads.removeValue(forKey: readID) { readReady(token: token) }
        }
        for failed in output.readsFailed {
            guard let token = pendingReads.removeValue(forKey: failed.readID) else { continue }
            switch failed.reason {
            case .noLeader: out.reads.append((token, .noLeader))
            case .timedOut: out.reads.append((token, .timedOut))
            case .busy: out.reads.append((token, .tooManyRequests))
            }
        }
        for rejected in output.rejected {
            guard var write = pendingWrites[rejected.command.clientID] else { continue }
            switch rejected.reason {
            case .noLeader:
                write.proposedAt = nil  // proposed again once a leader is known
                pendingWrites[rejected.command.clientID] = write
            case .busy:
                pendingWrites.removeValue(forKey: rejected.command.clientID)
                complete(write, .failure(.tooManyRequests))
            }
        }
        if output.snapshotWanted { snapshots.requested = true }
        // Outcomes first: a member whose own removal is answered here may stop in
        // `observeMembership` below, and must still answer the request that removed it.
        for outcome in output.reconfigured {
            guard let request = pendingReconfigurations.removeValue(forKey: outcome.requestID) else { continue }
            let answer = (token: request.token, result: outcome.result.mapError { $0 as any Error })
            // A change is answered once applied here, as a write is: while a snapshot's state
            // is decoded the entries wait, and so does the answer.
            if stateDecoding != nil { stateDecoding?.reconfigurations.append(answer) } else { out.reconfigurations.append(answer) }
        }
        for outcome in output.transfers {
            guard let request = pendingTransfers.removeValue(forKey: outcome.requestID) else { continue }
            out.transfers.append((request.token, outcome.result.mapError { $0 }))
        }
        if wasLeader && replica.role != .leader { leadershipLost() }
        observeMembership()
    }

    /// Fails every request waiting here (the node stopped).
    mutating func failEverything(_ error: NodeError) {
        for (_, write) in pendingWrites.sorted(by: { $0.key < $1.key }) { complete(write, .failure(error)) }
        pendingWrites.removeAll()
        turnProposals.removeAll()
        for (_, token) in pendingReads.sorted(by: { $0.key < $1.key }) { out.reads.append((token, error)) }
        pendingReads.removeAll()
        for token in stateDecoding?.reads ?? [] { out.reads.append((token, error)) }
        stateDecoding?.reads.removeAll()
        // Changes that were chosen are answered as they are (chosen is chosen).
        out.reconfigurations += stateDecoding?.reconfigurations ?? []
        stateDecoding?.reconfigurations.removeAll()
        for (_, request) in pendingReconfigurations.sorted(by: { $0.key < $1.key }) {
            out.reconfigurations.append((request.token, .failure(error)))
        }
        pendingReconfigurations.removeAll()
        for (_, request) in pendingTransfers.sorted(by: { $0.key < $1.key }) { out.transfers.append((request.token, .failure(error))) }
        pendingTransfers.removeAll()
    }

    mutating func complete(_ write: PendingWrite, _ result: Result<KVResponse, NodeError>) {
        for token in write.tokens where token != Self.internalToken { out.writes.append((token, result)) }
    }

    /// A peer halted on a safety violation: the CORRUPT alarm for it goes into the log.
    private mutating func raiseAlarm(for alarm: PeerAlarm) {
        out.events.append(.peerHalted(node: alarm.node, name: memberName(alarm.node), reason: alarm.reason))
        guard let memberID = knownMember(alarm.node)?.memberID, memberID != 0 else { return }
        proposeInternal(.alarm(action: .activate, member: AlarmMember(memberID: memberID, alarm: .corrupt)))
    }

    // MARK: Leadership

    private mutating func observeLeadership() {
        let ballot = replica.leaderBallot
        if ballot != lastLeaderBallot {
            lastLeaderBallot = ballot
            if let ballot { out.events.append(.leaderElected(leader: ballot.node, round: ballot.round)) }
        }
        let isLeader = replica.role == .leader
        if isLeader && !wasLeader {
            wasLeader = true
            out.events.append(.becameLeader)
            // A new leader restarts every lease's timer, as etcd's leader promotion does.
            leases.resetAll(from: kv.store, now: clock)
        }
        let attributes = MemberAttributes(name: settings.name, clientURLs: settings.advertiseClientURLs)
        // While a snapshot's state is decoded `kv.members` is empty: nothing to compare with.
        if stateDecoding == nil,
           publisher.shouldPropose(now: clock, published: kv.members[settings.memberID] == attributes,
                                   leaderKnown: replica.leaderHint != nil, role: role) {
            proposeInternal(.publishMember(memberID: settings.memberID, attributes: attributes))
        }
    }

    /// This member stopped leading: writes waiting here fail now with etcd's "leader changed"
    /// (their outcome is unknown; a client retries, with the same request id at most once),
    /// instead of waiting out their timeout for a leader that may be gone for good.
    private mutating func leadershipLost() {
        wasLeader = false
        out.events.append(.stoppedLeading)
        for (_, write) in pendingWrites.sorted(by: { $0.key < $1.key }) { complete(write, .failure(.leaderChanged)) }
        pendingWrites.removeAll()
    }

    private mutating func expireLeases() {
        for id in leases.expired(now: clock, store: kv.store) {
            out.events.append(.leaseExpired(id: id))
            proposeInternal(.leaseRevoke(id: id))
        }
    }

    private mutating func maybeSnapshot() {
        // The state is not there while a snapshot's is decoded (its entries wait).
        guard stateDecoding == nil else { return }
        let applied = replica.appliedThrough
        guard snapshots.isDue(applied: applied, stateSlot: stateSlot, chosenLogBytes: replica.chosenLogBytes,
                              snapshotBytes: replica.snapshot?.bytes.count ?? 0,
                              serving: replica.isServingSnapshot) else { return }
        snapshots.requested = false
        snapshots.lastSlot = applied
        snapshots.encoding = true
        // Encoding the whole key space takes long: the shell does it off its loop, on this
        // copy of the state (a value: copying shares its storage).
        out.encodeSnapshot = (applied, kv)
    }
}
