/// A Multi-Paxos replica as a pure state machine: acceptor, proposer and learner in one value.
///
/// `step(_:)` takes one `Input` and returns the `Output` effects the driver must carry out.
/// The replica reads no clock, does no I/O and owns its seeded random generator, so the same
/// inputs always produce the same outputs.
///
/// - Important: Drivers must follow the contract on `Output` and `PersistBatch`: persist first,
///   send `messagesAfterDurable` only once the batch is durable, report `.durable(id)`, apply
///   in order, then answer reads.
public struct Replica: Sendable {
    public let id: NodeID
    public let configuration: Configuration
    /// Every member but this one of the memberships that govern slots from the first
    /// unchosen one on, in id order: who gets Accepts, heartbeats and commit notices.
    public internal(set) var peers: [NodeID]
    /// The memberships derived from the chosen prefix (see `Replica+Membership`); nil only
    /// while a joining replica waits for its first snapshot.
    public internal(set) var membershipHistory: MembershipHistory?
    /// The initial membership must still be written (first start of a new replica).
    var membershipBaseUnsaved = false
    /// A leader transfer this replica handed off, waiting to see the target lead.
    var transferWatch: (requestID: UInt64, target: NodeID, deadline: UInt64)?
    /// The node a leader handed off to: the lease guard does not hold it back.
    var handOffTarget: NodeID?

    var random: SplitMix64
    /// Local clock, in ticks since this incarnation started.
    public internal(set) var now: UInt64 = 0
    /// The driver's clock at the current step (see `ClockTime`): what leases and the lease
    /// guard are measured on.
    public internal(set) var clock: ClockTime = .zero
    /// The restart guard starts at the first step's clock reading.
    var restartGuardPending = true
    /// Set once this replica found its own safety broken (see `Output.halted`); it then
    /// ignores every input.
    public internal(set) var haltReason: String?

    // MARK: Acceptor state (durable)
    /// Highest ballot promised; never decreases.
    public internal(set) var promised: Ballot = .zero
    var log: [Slot: LogEntry] = [:]
    /// Payload bytes of the chosen values held in `log` (every slot above the snapshot): what
    /// a snapshot would let the replica drop. Drivers snapshot on it as well as on slot count,
    /// since with batching one slot can hold many commands.
    public internal(set) var chosenLogBytes = 0
    /// Highest ballot of any acceptance this acceptor recorded (never above `promised`).
    var highestAccepted: Ballot = .zero
    public internal(set) var snapshot: Snapshot?

    // MARK: Learner state
    /// Every slot `<= chosenThrough` is known chosen (contiguous prefix).
    public internal(set) var chosenThrough: Slot = 0
    /// Every slot `<= appliedThrough` has been handed to the driver to apply.
    public internal(set) var appliedThrough: Slot = 0
    /// The leader's chosen prefix as last announced; catch-up continues until we reach it.
    var catchUpGoal: Slot = 0
    var catchUpSentAt: UInt64?
    var catchUpAttempts: UInt64 = 0
    /// A snapshot being received in chunks.
    var incomingSnapshot: IncomingSnapshot?
    /// Where snapshots received in chunks are written (a node's storage sets it); nil keeps
    /// them in memory until installed (the simulator's tests without storage).
    public var snapshotSpooling: (any SnapshotSpooling)?
    /// Incoming transfers dropped because their spool could not be written or read back.
    public internal(set) var snapshotSpoolFailures = 0
    /// Snapshots received in chunks that were written to a spool (not collected in memory).
    public internal(set) var snapshotsSpooled = 0
    /// The checksum of `snapshot` once computed for sending it in chunks.
    var snapshotChecksum: SnapshotChecksum?
    /// A snapshot a peer is fetching in chunks, kept while the fetch goes on (`ServedSnapshot`).
    var servedSnapshot: ServedSnapshot?
    /// Whether a peer is fetching a snapshot of this replica in chunks (one is pinned).
    public var isServingSnapshot: Bool { servedSnapshot != nil }
    /// Times a pinned snapshot went on being served after a newer one was taken or installed.
    public internal(set) var pinnedSnapshotsOutlived = 0
    /// Chunked snapshots whose bytes did not match their checksum (discarded, asked again).
    public internal(set) var snapshotChecksumFailures = 0
    /// Chunks (or checksums) of this replica's snapshot that could not be read from its file.
    public internal(set) var snapshotReadFailures = 0
    /// Chunked transfers abandoned because their sender stopped answering (started over).
    public internal(set) var snapshotTransfersAbandoned = 0

    // MARK: Proposer state
    var candidate: CandidateState?
    var leader: LeaderState?
    /// The ballot of the leader this replica last heard from (Accept or Heartbeat).
    public internal(set) var leaderBallot: Ballot?
    /// Highest ballot seen in any message; a new ballot goes above it.
    var highestSeen: Ballot = .zero
    var electionDeadline: UInt64 = 0
    /// Lease guard, on the clock: until then, this acceptor promises no ballot of a proposer
    /// other than the leader it last heard from (or, when it leads, of anyone else).
    var guardUntil: ClockTime = .zero
    /// A pre-vote in progress (see `Replica+Election`).
    var preCandidate: PreCandidateState?

    // MARK: Reads at this replica
    /// Linearizable reads forwarded to the leader, by read id, with their start tick.
    var forwardedReads: [UInt64: UInt64] = [:]
    var readsAwaitingApply: [ReadAwaitingApply] = []

    // MARK: Persistence bookkeeping
    var nextBatchID: UInt64 = 1
    var durableBatchID: UInt64 = 0
    /// Self votes waiting for their batch to be durable, in batch order.
    var pendingSelfVotes: [(batch: UInt64, vote: SelfVote)] = []

    // MARK: The step under construction
    var out = Output()
    var stepRecords: [DurableRecord] = []
    var stepAfterDurable: [Envelope] = []
    var stepSelfVotes: [SelfVote] = []
    var stepForwards: [Command] = []

    /// Set while repairing damaged synced records (see `Replica+Repair`): no votes until done.
    var repair: RepairState?

    /// Safety problems this replica detected itself (e.g. learning two values for one slot),
    /// reported by `checkInvariants()`. Only a broken protocol or configuration causes them.
    var detectedConflicts: [String] = []

    /// Creates a replica, restoring its durable state from `records` (in the order they were
    /// persisted). The first input after this should be `.start`.
    /// - Throws: `ConfigurationError` if the configuration is unsafe or `id` is not a member.
    ///
    /// A replica restores its membership from its records (a snapshot's, or the initial one it
    /// wrote at first start). With no such record, a new replica starts from
    /// `configuration.members` (all voters) and writes that down at `.start`; a `joining`
    /// replica (added to a running cluster) instead has no membership until it installs a
    /// snapshot from a peer, and until then never campaigns.
    ///
    /// `initialMembership` (default: `configuration.initialMembership`) lets a server record
    /// names and peer URLs of the initial members; its voters must be `configuration.members`.
    ///
    /// `repairing`: storage found synced records damaged or missing, so `records` may lack
    /// promises and acceptances this replica made; it abstains until repaired (`Replica+Repair`).
    public init(id: NodeID, configuration: Configuration, seed: UInt64, restoring records: [DurableRecord] = [],
                joining: Bool = false, initialMembership: Membership? = nil, repairing: Bool = false) throws(ConfigurationError) {
        try configuration.validate()
        self.id = id
        self.configuration = configuration
        self.peers = configuration.members.filter { $0 != id }
        self.random = SplitMix64(seed: seed ^ (UInt64(id.rawValue) &* 0x9E37_79B9_7F4A_7C15))
        restore(records)
        if membershipHistory == nil && !joining {
            guard configuration.members.contains(id) else { throw .notAMember(id) }
            var initial = configuration.initialMembership
            if let given = initialMembership, given.voters == configuration.members.sorted() {
                initial = given
                initial.phase1Quorum = configuration.phase1Quorum
                initial.phase2Quorum = configuration.phase2Quorum
            }
            membershipHistory = MembershipHistory(initial: initial)
            membershipBaseUnsaved = true
        }
        chosenThrough = snapshot?.slot ?? 0
        advanceChosenThrough()
        refreshPeers()
        if repairing { startRepair() }
        // A restarted acceptor may have acknowledged a leader's heartbeat just before it
        // crashed; it forgot that, so it keeps the lease guard for a full window from its
        // first step (`restartGuardPending`).
        resetElectionTimer()
    }

    private mutating func restore(_ records: [DurableRecord]) {
        for record in records {
            switch record {
            case .promised(let ballot):
                promised = max(promised, ballot)
            case .accepted(let slot, let ballot, let value):
                promised = max(promised, ballot)
                highestAccepted = max(highestAccepted, ballot)
                guard slot > (snapshot?.slot ?? 0) else { continue }
                if log[slot]?.acceptedBallot.map({ $0 <= ballot }) ?? true {
                    log[slot, default: LogEntry()].acceptedBallot = ballot
                    log[slot, default: LogEntry()].acceptedValue = value
                }
            case .chosen(let slot, let value):
                guard slot > (snapshot?.slot ?? 0) else { continue }
                // The accepted record of the same slot usually carries an equal value: keep
                // one copy of its commands instead of two decoded ones.
                if let accepted = log[slot]?.acceptedValue, accepted == value {
                    log[slot, default: LogEntry()].chosen = accepted
                } else {
                    log[slot, default: LogEntry()].chosen = value
                }
            case .snapshot(let newSnapshot):
                guard newSnapshot.slot > (snapshot?.slot ?? 0) else { continue }
                snapshot = newSnapshot
                log = log.filter { $0.key > newSnapshot.slot }
                if let history = newSnapshot.membership { membershipHistory = history }
            case .membership(let history):
                if membershipHistory == nil { membershipHistory = history }
            case .repaired:
                continue
            }
        }
        highestSeen = promised
        recountChosenLogBytes()
    }

    /// This replica's current role.
    public var role: RoleKind {
        if leader != nil { return .leader }
        if candidate != nil { return .candidate }
        return .follower
    }

    /// The leader this replica believes in, if any (itself when it leads).
    public var leaderHint: NodeID? { leader != nil ? id : leaderBallot?.node }

    /// The ballot this replica leads or campaigns with, if any.
    public var ownBallot: Ballot? { leader?.ballot ?? candidate?.ballot }

    /// The chosen value of `slot`, if this replica knows it and has not compacted it away.
    public func chosenValue(at slot: Slot) -> Value? { log[slot]?.chosen }

    /// The log slots above `slot` this replica holds state for, in slot order: the ballot it
    /// accepted each in (nil when it only learned the slot chosen) and whether it knows the
    /// slot chosen. For observers (the simulator's replay); the replica does not use it.
    public func logSlots(above slot: Slot) -> [(slot: Slot, acceptedBallot: Ballot?, chosen: Bool)] {
        log.filter { $0.key > slot && ($0.value.acceptedBallot != nil || $0.value.chosen != nil) }
            .map { (slot: $0.key, acceptedBallot: $0.value.acceptedBallot, chosen: $0.value.chosen != nil) }
            .sorted { $0.slot < $1.slot }
    }

    /// Client commands queued at this replica (leader only).
    public var queuedCommands: Int { leader?.queuedCount ?? 0 }

    /// Feeds one input to the replica and returns the effects to carry out.
    ///
    /// `clock` is the driver's clock read now (see `ClockTime`); leases and the lease guard
    /// are decided on it, so it must be read for this very step, not reused from an earlier one.
    public mutating func step(_ input: Input, clock reading: ClockTime) -> Output {
        if let haltReason {
            // Fail-stop: a replica that saw its own safety broken does nothing more.
            var output = Output()
            output.halted = haltReason
            return output
        }
        let before = StepSnapshot(self)
        if reading > clock { clock = reading }
        if restartGuardPending {
            restartGuardPending = false
            guardUntil = max(guardUntil, clock.adding(nanoseconds: configuration.guardNanoseconds))
        }
        switch input {
        case .start:
            if membershipBaseUnsaved, let history = membershipHistory {
                membershipBaseUnsaved = false
                persist(.membership(MembershipHistory(epochs: [history.epochs[0]])))
            }
        case .tick: onTick()
        case .receive(let envelope): receive(envelope)
        case .propose(let command): onPropose(command)
        case .proposeAll(let commands): for command in commands { onPropose(command) }
        case .read(let readID, let consistency): onRead(readID: readID, consistency: consistency)
        case .durable(let batchID): onDurable(batchID)
        case .snapshot(let slot, let bytes, let checksum): onSnapshotTaken(slot: slot, bytes: bytes, checksum: checksum)
        case .snapshotStored(let slot, let bytes, let checksum): onSnapshotStored(slot: slot, bytes: bytes, checksum: checksum)
        case .reconfigure(let requestID, let change, let force):
            onReconfigure(origin: id, requestID: requestID, change: change, force: force)
        case .transferLeadership(let requestID, let target): onTransferLeadership(requestID: requestID, target: target)
        }
        if repair != nil {
            sendRepairQueries()
            finishRepairIfDone()
        }
        return finishStep(before: before)
    }

    private mutating func receive(_ envelope: Envelope) {
        guard envelope.to == id, envelope.from != id, envelope.from.rawValue >= 1,
              envelope.message.isWellFormed() else { return }
        let from = envelope.from
        switch envelope.message {
        case .prepare(let ballot, let firstSlot): onPrepare(from: from, ballot: ballot, firstSlot: firstSlot)
        case .promise(let ballot, let chosenThrough, let entries):
            onPromise(from: from, ballot: ballot, report: PromiseReport(chosenThrough: chosenThrough, entries: entries))
        case .accept(let ballot, let slot, let value, let chosenThrough):
            onAccept(from: from, ballot: ballot, slot: slot, value: value, leaderChosenThrough: chosenThrough)
        case .accepted(let ballot, let slot): onAccepted(from: from, ballot: ballot, slot: slot)
        case .reject(let ballot, let promisedBallot): onReject(ballot: ballot, promised: promisedBallot)
        case .heartbeat(let ballot, let chosenThrough, let sequence):
            onHeartbeat(from: from, ballot: ballot, leaderChosenThrough: chosenThrough, sequence: sequence)
        case .heartbeatAck(let ballot, let sequence, let theirs):
            onHeartbeatAck(from: from, ballot: ballot, sequence: sequence, theirChosenThrough: theirs)
        case .commit(let ballot, let chosenThrough):
            // Safe whatever this acceptor promised: the leader of `ballot` proposed one value
            // per slot and never reports a slot chosen with another value (markChosen), so a
            // slot accepted here in `ballot` and reported chosen holds that value.
            noteBallot(ballot)
            // A removed member's ballot does not depose the leader (see onAccept).
            if let own = leader?.ballot, own < ballot, knownVoter(ballot.node) { stepDown() }
            learnCommitNotice(ballot: ballot, leaderChosenThrough: chosenThrough, leader: from)
        case .catchUpRequest(let firstSlot): onCatchUpRequest(from: from, firstSlot: firstSlot)
        case .catchUpReply(let snapshot, let entries, let chosenThrough):
            onCatchUpReply(from: from, snapshot: snapshot, entries: entries, theirChosenThrough: chosenThrough)
        case .snapshotChunk(let chunk): onSnapshotChunk(from: from, chunk: chunk)
        case .snapshotChunkRequest(let slot, let checksum, let offset):
            onSnapshotChunkRequest(from: from, slot: slot, checksum: checksum, offset: offset)
        case .forward(let commands): onForward(commands)
        case .readIndexRequest(let readID): onReadIndexRequest(from: from, readID: readID)
        case .readIndexReply(let readID, let index): onReadIndexReply(from: from, readID: readID, index: index)
        case .reconfigureRequest(let requestID, let change, let force):
            onReconfigure(origin: from, requestID: requestID, change: change, force: force)
        case .reconfigureRefused(let requestID, let error):
            out.reconfigured.append(.init(requestID: requestID, result: .failure(error)))
        case .handOff(let ballot, let target): onHandOff(from: from, ballot: ballot, target: target)
        case .preVote(let ballot): onPreVote(from: from, ballot: ballot)
        case .preVoteReply(let ballot, let granted, let promisedBallot):
            onPreVoteReply(from: from, ballot: ballot, granted: granted, promised: promisedBallot)
        case .safetyAlarm(let reason): out.peerAlarms.append(PeerAlarm(node: from, reason: reason))
        case .repairQuery(let nonce): onRepairQuery(from: from, nonce: nonce)
        case .repairReport(let nonce, let promisedBallot, let highestSlot, let repairing):
            onRepairReport(from: from, nonce: nonce, promised: promisedBallot, highestSlot: highestSlot, repairing: repairing)
        }
    }

    private mutating func onTick() {
        now += 1
        if leader != nil {
            leaderTick()
        } else {
            if let candidate, now - candidate.prepareSentAt >= UInt64(configuration.retransmitTicks) {
                resendPrepare()
            }
            if let state = preCandidate, now - state.sentAt >= UInt64(configuration.retransmitTicks) {
                resendPreVote()
            }
            // One tick per `.tick` input: a driver that was stalled does not replay the ticks it
            // missed, so a woken follower reads its queued heartbeats before it campaigns.
            if now >= electionDeadline { electionTimeout() }
        }
        if let watch = transferWatch, now >= watch.deadline {
            transferWatch = nil
            out.transfers.append(.init(requestID: watch.requestID, result: .failure(.transferFailed("no new leader within the timeout"))))
        }
        // A joining replica keeps asking until a snapshot brings it a membership.
        if chosenThrough < catchUpGoal || membershipHistory == nil,
           now - (catchUpSentAt ?? 0) >= UInt64(configuration.catchUpRetryTicks), !peers.isEmpty {
            // No (complete) answer in time: ask again, alternating between the leader and a
            // random peer, since the leader itself may be the one missing the values.
            catchUpSentAt = nil
            catchUpAttempts += 1
            // A chunk (or the request for it) was lost: ask its sender again (requestCatchUp
            // starts over with any peer once the sender stopped answering).
            if let incoming = incomingSnapshot, !snapshotTransferStalled(incoming) {
                requestCatchUp(from: incoming.from)
            } else if catchUpAttempts % 2 == 1, let leaderNode = leaderBallot?.node, leaderNode != id {
                requestCatchUp(from: leaderNode)
            } else {
                requestCatchUp(from: peers[Int(random.next() % UInt64(peers.count))])
            }
        }
        expireServedSnapshot()
        expireReads()
    }

    private mutating func onDurable(_ batchID: UInt64) {
        guard batchID > durableBatchID else { return }
        durableBatchID = batchID
        var counted = 0
        for (batch, vote) in pendingSelfVotes {
            guard batch <= batchID else { break }
            counted += 1
            switch vote {
            case .promise(let ballot): selfPromiseDurable(ballot)
            case .accepted(let ballot, let slot): selfAcceptDurable(ballot: ballot, slot: slot)
            }
        }
        pendingSelfVotes.removeFirst(counted)
    }

    // MARK: Effects

    mutating func persist(_ record: DurableRecord) { stepRecords.append(record) }

    /// Sends a message that reveals durable state: it leaves once this step's batch is durable.
    mutating func sendAfterDurable(_ message: Message, to: NodeID) {
        stepAfterDurable.append(Envelope(from: id, to: to, message: message))
    }

    /// Sends a message that reveals nothing not already durable.
    mutating func send(_ message: Message, to: NodeID) {
        out.messages.append(Envelope(from: id, to: to, message: message))
    }

    mutating func broadcast(_ message: Message) {
        for peer in peers { send(message, to: peer) }
    }

    mutating func voteForSelf(_ vote: SelfVote) { stepSelfVotes.append(vote) }

    mutating func resetElectionTimer() {
        let base = UInt64(configuration.electionTimeoutTicks)
        electionDeadline = now + base + random.next() % base
    }

    mutating func noteBallot(_ ballot: Ballot) { highestSeen = max(highestSeen, ballot) }

    private mutating func finishStep(before: StepSnapshot) -> Output {
        if !stepForwards.isEmpty, let target = leaderBallot?.node, target != id {
            send(.forward(commands: stepForwards), to: target)
        }
        stepForwards.removeAll()
        if leader != nil { leaderFinishStep() }
        emitApplies()
        if !stepRecords.isEmpty || !stepAfterDurable.isEmpty || !stepSelfVotes.isEmpty {
            let batchID = nextBatchID
            nextBatchID += 1
            out.persist = PersistBatch(id: batchID, records: stepRecords, messagesAfterDurable: stepAfterDurable)
            for vote in stepSelfVotes { pendingSelfVotes.append((batchID, vote)) }
            stepRecords.removeAll()
            stepAfterDurable.removeAll()
            stepSelfVotes.removeAll()
        }
        if let broken = firstBrokenSafetyInvariant(since: before) {
            return halt(broken)
        }
        let result = out
        out = Output()
        return result
    }

    /// Stops this replica for good: the step's effects are dropped (nothing is persisted,
    /// sent, applied or answered), peers are told why, and every later step does nothing.
    private mutating func halt(_ reason: String) -> Output {
        haltReason = reason
        stepRecords.removeAll()
        stepAfterDurable.removeAll()
        stepSelfVotes.removeAll()
        var output = Output()
        output.halted = reason
        let alarm = Message.safetyAlarm(reason: String(decoding: reason.utf8.prefix(Message.safetyAlarmReasonBytesMax - 4), as: UTF8.self))
        for peer in peers { output.messages.append(Envelope(from: id, to: peer, message: alarm)) }
        out = Output()
        return output
    }
}
