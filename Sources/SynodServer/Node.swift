import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization
import SynodBytes
import SynodCore
import SynodKV
import SynodStore
import SynodTransport

/// Why a client request failed before or instead of an etcd result.
public enum NodeError: Error, Hashable, Sendable, CustomStringConvertible {
    case noLeader
    case timedOut
    case tooManyRequests
    case stopped
    case requestTooLarge
    /// A learner serves serializable reads only (etcd's interceptor refuses the rest).
    case notSupportedForLearner
    /// This member joined with an empty data directory and has no state from the cluster yet.
    case joining
    /// This member's removal from the cluster was chosen; it stops soon.
    case removed
    /// A leader transfer did not finish within the request timeout.
    case transferTimedOut
    /// This member stopped leading while the request waited (its outcome is unknown, as
    /// with etcd's "leader changed": the client may retry).
    case leaderChanged
    case kv(KVError)

    /// The message etcd clients recognize.
    public var description: String {
        switch self {
        case .noLeader: return "etcdserver: no leader"
        case .timedOut: return "etcdserver: request timed out"
        case .tooManyRequests: return "etcdserver: too many requests"
        case .stopped: return "etcdserver: server stopped"
        case .requestTooLarge: return "etcdserver: request is too large"
        case .notSupportedForLearner: return "etcdserver: rpc not supported for learner"
        case .joining: return "etcdserver: not ready: the member is still joining the cluster"
        case .removed: return "etcdserver: the member has been permanently removed from the cluster"
        case .transferTimedOut: return "etcdserver: request timed out, leader transfer took too long"
        case .leaderChanged: return "etcdserver: leader changed"
        case .kv(let error): return error.message
        }
    }
}

/// A snapshot of the node's status for Maintenance.Status, /health and metrics.
public struct NodeStatus: Sendable {
    public var leader: NodeID?
    public var isLeader: Bool
    public var ballotRound: UInt64
    public var chosenThrough: Slot
    public var appliedThrough: Slot
    public var revision: Int64
    public var compactRevision: Int64
    public var storageFailure: String?
    /// This member is a learner (it votes in no quorum).
    public var isLearner: Bool
    /// The leader's etcd member id (0 when no leader is known).
    public var leaderMemberID: UInt64
}

/// One running node: the replica, its storage thread, the state machine and the clients
/// waiting on it. All state lives on `loop` (one NIO event loop); public methods hop onto it.
///
/// Concurrency: every stored mutable property is read and written only on `loop` (checked
/// with `preconditionInEventLoop` at the entry points), which is why the class is
/// `@unchecked Sendable`: the event loop is its lock.
public final class Node: @unchecked Sendable {
    public let options: NodeOptions
    public let loop: any EventLoop
    let logger: Logger
    let metrics: SynodMetrics
    /// Who this member is: from `--initial-cluster` for a new cluster, else from
    /// `options.join` (discovery or the data directory). Never changes.
    public let nodeID: NodeID
    public let clusterID: UInt64
    /// etcd's member id of this member (response headers, published attributes).
    public let memberID: UInt64
    var replica: Replica
    /// What the replica's leases are measured on (CLOCK_BOOTTIME).
    let clock: NodeClock
    private(set) var kv = KVStateMachine(sessionCapacity: 65_536)
    private let storageWorker: StorageWorker
    var transport: PeerTransport?
    /// Persist batches handed to storage and not yet durable, oldest first.
    private var unsyncedBatches: [PersistBatch] = []
    private var pendingWrites: [UInt64: PendingWrite] = [:]
    private var pendingReads: [UInt64: PendingRead] = [:]
    private var nextReadID: UInt64 = 1
    private var clientIDGenerator: SplitMix64
    private var tickTask: RepeatedTask?
    private var lastLeaderBallot: Ballot?
    var wasLeader = false
    private var lastSnapshotSlot: Slot = 0
    var storageFailure: String?
    var watchers = WatcherRegistry()
    var leases = LeaseTimers()
    var stoppedFlag = false
    /// Membership bookkeeping (see Node+Membership.swift).
    var pendingReconfigurations: [UInt64: PendingRequest<Reconfiguration>] = [:]
    var pendingTransfers: [UInt64: PendingRequest<NodeID>] = [:]
    var observedMembership: MembershipObservation?
    var observedPeerAddresses: [NodeID: PeerAddress] = [:]
    var removalNoticedAt: NIODeadline?
    var removalFinished = false
    var onRemoved: (@Sendable () -> Void)?
    /// This member's role, recomputed whenever the membership changes (see `observeMembership`).
    var localRole = LocalRole.joining
    /// The slot the state machine reflects: the last slot applied to it, commands or not (a
    /// no-op or a membership change leaves `kv.appliedSlot` behind but the state as it is).
    var stateSlot: Slot = 0
    /// Orphan probe (see `probeIfOrphaned`): when a leader was last known here, the last probe,
    /// whether one runs, and whether the cluster said this member was removed.
    var leaderSeenAt: NIODeadline?
    var lastProbeAt: NIODeadline?
    var probeRunning = false
    var removedByCluster = false
    /// Pending requests (ids) to remove this very member.
    var pendingSelfRemovals: Set<UInt64> = []
    /// A joining peer asked for a snapshot this node does not have: take one at the next tick.
    var snapshotRequested = false
    /// A snapshot is being encoded off the loop (one at a time).
    var snapshotEncoding = false
    /// Peer reachability as last reported (see `observePeerReachability`): nil until the
    /// first report, which waits for `reachabilityGraceAt`.
    var quorumReachable: Bool?
    var reachabilityCheckedAt: NIODeadline?
    /// The membership as other threads see it (API admission, discovery, peer names).
    let shared = Mutex(SharedMembership())
    /// Work gathered during one event-loop turn and carried out once at its end (`flushTurn`):
    /// client commands (proposed together, so they share slots), persist batches (handed to
    /// storage together) and outgoing messages (one coalesced write per peer).
    private var turnProposals: [Command] = []
    private var turnPersist: [PersistBatch] = []
    private var turnMessages: [Envelope] = []
    private var turnFlushScheduled = false
    private var publishProposedAt: NIODeadline?
    /// `corrupt-apply` bookkeeping.
    private var putsApplied = 0
    private var corrupted = false
    private var nextIntegrityCheckAt: NIODeadline?
    private var lastIntegrityRecordID: UInt64?
    /// The latest ballot round, readable from any thread (response headers' raft_term).
    private let roundCell = Atomic<UInt64>(0)
    public var ballotRound: UInt64 { roundCell.load(ordering: .relaxed) }

    struct PendingWrite {
        var command: Command
        var promise: EventLoopPromise<KVResponse>
        /// Later attempts of the same request (same `synod-request-id`) waiting here too.
        var duplicates: [EventLoopPromise<KVResponse>] = []

        func succeed(_ response: KVResponse) {
            promise.succeed(response)
            for other in duplicates { other.succeed(response) }
        }

        func fail(_ error: any Error) {
            promise.fail(error)
            for other in duplicates { other.fail(error) }
        }
        var deadline: NIODeadline
        /// When it was last handed to the replica; nil while waiting for a leader.
        var proposedAt: NIODeadline?
    }

    struct PendingRead {
        /// Called on the loop once the read may be served (nil) or has failed.
        var complete: (NodeError?) -> Void
    }

    /// Opens storage and recovers. Throws `StorageError` (corruption, another cluster's data
    /// directory, permissions) or `ConfigurationError`.
    public init(options: NodeOptions, loop: any EventLoop, logger: Logger, metrics: SynodMetrics) throws {
        self.options = options
        self.loop = loop
        self.logger = logger
        self.metrics = metrics
        let local = options.local
        let nodeID = options.join?.nodeID ?? local.nodeID
        let clusterID = options.join?.clusterID ?? options.clusterID
        self.nodeID = nodeID
        self.clusterID = clusterID
        let identity = DataDirectoryIdentity(clusterID: clusterID, nodeID: nodeID.rawValue)
        let fileSystem: any FileSystem = options.failpoints.crashInSnapshot > 0
            ? FailpointFileSystem(base: POSIXFileSystem(), crashInSnapshot: options.failpoints.crashInSnapshot)
            : POSIXFileSystem()
        let opened = try DurableStorage.open(fileSystem: fileSystem, directory: options.dataDirectory,
                                             identity: identity)
        logger.info("storage opened", metadata: ["dir": "\(options.dataDirectory)", "recovery": "\(opened.report)"])
        var seed = SystemRandomNumberGenerator()
        let replicaSeed = UInt64.random(in: .min ... .max, using: &seed)
        if let join = options.join {
            // Joining (or restarting a member that joined): the membership comes from the
            // cluster's snapshot or from the data; the discovered voters are whom to ask.
            let voters = join.membership?.voters.filter { $0 != nodeID } ?? []
            replica = try Replica(id: nodeID, configuration: options.protocolConfiguration(voters: voters.isEmpty ? [nodeID] : voters),
                                  seed: replicaSeed, restoring: opened.records, joining: true)
        } else {
            let initial = Membership(members: options.members.map {
                Member(id: $0.nodeID, name: $0.name, peerURLs: [$0.peerURL], memberID: $0.memberID)
            })
            replica = try Replica(id: nodeID, configuration: options.protocolConfiguration(), seed: replicaSeed,
                                  restoring: opened.records, initialMembership: initial)
        }
        let recorded = replica.membershipHistory?.epochs.lazy.compactMap { $0.membership.member(nodeID)?.memberID }.first
        memberID = recorded ?? (options.join?.memberID).flatMap { $0 == 0 ? nil : $0 } ?? local.memberID
        clientIDGenerator = SplitMix64(seed: UInt64.random(in: .min ... .max, using: &seed))
        clock = NodeClock(countsTicks: options.failpoints.tickLease, tickNanoseconds: replica.configuration.tickNanoseconds)
        storageWorker = StorageWorker(storage: opened.storage, failpoints: options.failpoints)
        if !options.failpoints.isEmpty {
            logger.warning("failpoints enabled (testing only)", metadata: ["failpoints": "\(options.failpoints)"])
        }
    }

    /// Starts the storage thread, replays recovered state and begins ticking.
    /// `onRemoved` runs (on the loop) once this member applied its own removal and stopped.
    func start(transport: PeerTransport, onRemoved: (@Sendable () -> Void)? = nil) {
        loop.preconditionInEventLoop()
        self.transport = transport
        self.onRemoved = onRemoved
        storageWorker.start(
            onDurable: { [weak self] report in
                guard let self else { return }
                self.loop.execute { self.durable(report) }
            },
            onFailure: { [weak self] error in
                guard let self else { return }
                self.loop.execute { self.storageFailed(error) }
            })
        step(.start)
        lastSnapshotSlot = replica.snapshot?.slot ?? 0
        stateSlot = replica.appliedThrough
        observeMembership(force: true)
        let tick = TimeAmount.milliseconds(Int64(options.tickMilliseconds))
        tickTask = loop.scheduleRepeatedTask(initialDelay: tick, delay: tick) { [self] _ in self.tick() }
        logger.info("node started", metadata: ["applied": "\(replica.appliedThrough)", "revision": "\(kv.store.revision)"])
    }

    /// Stops ticking, fails waiting clients, and finishes the storage thread.
    func stop() {
        loop.preconditionInEventLoop()
        guard !stoppedFlag else { return }
        stoppedFlag = true
        tickTask?.cancel()
        for (_, write) in pendingWrites { write.fail(NodeError.stopped) }
        pendingWrites.removeAll()
        for (_, read) in pendingReads { read.complete(NodeError.stopped) }
        pendingReads.removeAll()
        failMembershipRequests(NodeError.stopped)
        watchers.finishAll()
        if !turnPersist.isEmpty { storageWorker.submit(turnPersist) }
        turnPersist.removeAll()
        turnProposals.removeAll()
        turnMessages.removeAll()
        storageWorker.stop()
    }

    // MARK: - Inputs

    /// Messages from peers (called from transport threads).
    func receive(_ envelopes: [Envelope]) {
        loop.execute { [self] in
            guard !stoppedFlag else { return }
            for envelope in envelopes where envelope.to == replica.id {
                step(.receive(envelope))
                if stoppedFlag { return }
            }
        }
    }

    private func tick() {
        guard !stoppedFlag else { return }
        step(.tick)
        guard !stoppedFlag else { return }
        let now = NIODeadline.now()
        observePeerReachability(now: now)
        observeLeadership(now: now)
        retryAndExpireWrites(now: now)
        if replica.role == .leader {
            expireLeases(now: now)
            proposeIntegrityCheckIfDue(now: now)
        }
        expireMembershipRequests(now: now)
        if removalNoticedAt != nil { checkRemoval(now: now) }
        probeIfOrphaned(now: now)
        maybeSnapshot()
        watchers.catchUp(store: kv.store)
        metrics.appliedIndex.record(Int64(replica.appliedThrough))
        metrics.chosenIndex.record(Int64(replica.chosenThrough))
        metrics.kvRevision.record(kv.store.revision)
    }

    private func durable(_ report: StorageWorker.SyncReport) {
        guard !stoppedFlag else { return }
        metrics.fsyncDuration.recordNanoseconds(Int64(report.seconds * 1e9))
        metrics.fsyncBatchRecords.record(Double(report.records))
        var messages: [Envelope] = []
        while let first = unsyncedBatches.first, first.id <= report.durableThrough {
            messages += first.messagesAfterDurable
            unsyncedBatches.removeFirst()
        }
        if !messages.isEmpty {
            turnMessages += messages
            scheduleTurnFlush()
        }
        step(.durable(report.durableThrough))
    }

    private func storageFailed(_ error: StorageError) {
        storageFailure = error.description
        logger.critical("storage failed; the node stops serving and must be restarted by an operator",
                        metadata: ["error": "\(error)"])
        stop()
        options.onStorageFailure?(error.description)
    }

    /// Fails every write waiting here with `error`.
    func failPendingWrites(_ error: NodeError) {
        guard !pendingWrites.isEmpty else { return }
        let failed = pendingWrites
        pendingWrites.removeAll()
        for (_, write) in failed.sorted(by: { $0.key < $1.key }) { write.fail(error) }
    }

    /// Drops the messages gathered this turn (a halted replica's effects must not leave).
    func turnMessagesDiscard() {
        turnMessages.removeAll()
        turnPersist.removeAll()
        turnProposals.removeAll()
    }

    // MARK: - Outputs

    /// Steps the replica with the clock read now (leases are decided on it, see `ClockTime`)
    /// and carries out the effects.
    func step(_ input: Input) {
        handle(replica.step(input, clock: clock.now(ticks: replica.now)))
    }

    /// Carries out one step's effects in the order `Output` prescribes.
    func handle(_ output: Output) {
        if let reason = output.halted {
            haltOnSafetyViolation(reason, alarms: output.messages)
            return
        }
        for alarm in output.peerAlarms { raiseSafetyAlarm(alarm) }
        if let batch = output.persist {
            unsyncedBatches.append(batch)
            turnPersist.append(batch)
            scheduleTurnFlush()
        }
        if !output.messages.isEmpty {
            turnMessages += output.messages
            scheduleTurnFlush()
        }
        for item in output.apply { apply(item) }
        for readID in output.readsReady { pendingReads.removeValue(forKey: readID)?.complete(nil) }
        for failed in output.readsFailed {
            let error: NodeError
            switch failed.reason {
            case .noLeader: error = .noLeader
            case .timedOut: error = .timedOut
            case .busy: error = .tooManyRequests
            }
            pendingReads.removeValue(forKey: failed.readID)?.complete(error)
        }
        for rejected in output.rejected {
            guard var write = pendingWrites[rejected.command.clientID] else { continue }
            switch rejected.reason {
            case .noLeader:
                write.proposedAt = nil  // proposed again once a leader is known
                pendingWrites[rejected.command.clientID] = write
            case .busy:
                pendingWrites.removeValue(forKey: rejected.command.clientID)
                write.fail(NodeError.tooManyRequests)
            }
        }
        if output.snapshotWanted { snapshotRequested = true }
        if wasLeader && replica.role != .leader { leadershipLost() }
        observeMembership()
        for outcome in output.reconfigured {
            pendingReconfigurations.removeValue(forKey: outcome.requestID)?.promise.completeWith(outcome.result.mapError { $0 })
        }
        for outcome in output.transfers {
            pendingTransfers.removeValue(forKey: outcome.requestID)?.promise.completeWith(outcome.result.mapError { $0 })
        }
    }

    /// Runs `flushTurn` after the tasks already queued on the loop, so everything they produce
    /// goes out together.
    private func scheduleTurnFlush() {
        guard !turnFlushScheduled else { return }
        turnFlushScheduled = true
        loop.execute { [self] in flushTurn() }
    }

    /// Proposes the commands gathered this turn as one step, then hands the turn's persist
    /// batches to storage (one wake-up of the storage thread) before sending the turn's
    /// messages (one write per peer), as `Output` prescribes: persist first, then send.
    private func flushTurn() {
        // Stays set while flushing: what the proposal step produces goes out in this flush.
        defer { turnFlushScheduled = false }
        guard !stoppedFlag else { return }
        if !turnProposals.isEmpty {
            let commands = turnProposals
            turnProposals.removeAll(keepingCapacity: true)
            step(.proposeAll(commands))
        }
        if !turnPersist.isEmpty {
            storageWorker.submit(turnPersist)
            turnPersist.removeAll(keepingCapacity: true)
        }
        if !turnMessages.isEmpty {
            let messages = turnMessages
            turnMessages.removeAll(keepingCapacity: true)
            send(messages)
        }
    }

    private func send(_ messages: [Envelope]) {
        let drop = options.failpoints.dropOutgoing
        guard drop > 0 else { transport?.send(messages); return }
        let kept = messages.filter { _ in !Failpoints.roll(drop) }
        if !kept.isEmpty { transport?.send(kept) }
    }

    /// `corrupt-apply`: after the configured number of puts, changes the value of the next one
    /// this replica applies, so its state silently diverges (the integrity check must notice).
    private func corruptIfRequested(_ command: Command) -> Command {
        guard let after = options.failpoints.corruptApplyAfter, !corrupted,
              case .put(var request)? = try? KVCommand(decoding: command.payload) else { return command }
        putsApplied += 1
        guard putsApplied > after else { return command }
        corrupted = true
        request.value = Array("corrupted by failpoint".utf8)
        logger.warning("failpoint corrupt-apply: changed the value of a put", metadata: ["key": "\(String(decoding: request.key, as: UTF8.self))"])
        return Command(clientID: command.clientID, sequence: command.sequence, payload: KVCommand.put(request).encoded())
    }

    private func apply(_ item: Apply) {
        switch item {
        case .snapshot(let snapshot):
            do {
                kv = try KVStateMachine(snapshot: snapshot.data, sessionCapacity: kv.sessions.capacity)
                stateSlot = snapshot.slot
                lastSnapshotSlot = snapshot.slot
                leases.resetAll(from: kv.store, now: .now())
                watchers.snapshotInstalled(revision: kv.store.revision)
                logger.info("installed snapshot", metadata: ["slot": "\(snapshot.slot)", "revision": "\(kv.store.revision)"])
            } catch {
                // A snapshot that passed the peer codec and storage checksums but does not decode
                // is a bug or corruption: keep serving nothing rather than wrong data.
                logger.critical("undecodable snapshot; stopping", metadata: ["slot": "\(snapshot.slot)", "error": "\(error)"])
                storageFailure = "undecodable snapshot at slot \(snapshot.slot)"
                stop()
            }
        case .entry(let slot, let value):
            defer { stateSlot = slot }
            let now = NIODeadline.now()
            for original in value.commands {
                let command = corruptIfRequested(original)
                let output = kv.apply(command, slot: slot)
                metrics.commits.increment()
                if case .applied(.success(.maintenance)) = output.outcome { observeMaintenance(output, now: now) }
                if !output.events.isEmpty { watchers.publish(output.events, revision: kv.store.revision) }
                if case .applied(.success(let response)) = output.outcome {
                    leases.observe(command: command, response: response, now: now)
                }
                guard let write = pendingWrites.removeValue(forKey: command.clientID) else { continue }
                switch output.outcome {
                case .applied(let result), .duplicate(let result):
                    switch result {
                    case .success(let response): write.succeed(response)
                    case .failure(let error): write.fail(NodeError.kv(error))
                    }
                case .stale:
                    write.fail(NodeError.timedOut)
                }
            }
        }
    }

    // MARK: - Housekeeping

    private func observeLeadership(now: NIODeadline) {
        let ballot = replica.leaderBallot
        if ballot != lastLeaderBallot {
            lastLeaderBallot = ballot
            if ballot != nil {
                metrics.leaderChanges.increment()
                let leaderName = ballot.map { memberName($0.node) } ?? "?"
                logger.info("leader elected", metadata: ["leader": "\(leaderName)", "round": "\(ballot?.round ?? 0)"])
            }
        }
        let isLeader = replica.role == .leader
        if isLeader != wasLeader {
            wasLeader = isLeader
            metrics.isLeader.set(to: isLeader ? 1 : 0)
            // A new leader restarts every lease's timer, as etcd's leader promotion does.
            if isLeader { leases.resetAll(from: kv.store, now: now) }
        }
        metrics.ballotRound.record(Int64(ballot?.round ?? 0))
        roundCell.store(ballot?.round ?? replica.promised.round, ordering: .relaxed)
        publishAttributesIfNeeded(now: now)
    }

    /// Publishes this member's name and client URLs through the log until they are applied.
    private func publishAttributesIfNeeded(now: NIODeadline) {
        let attributes = MemberAttributes(name: options.name, clientURLs: options.advertiseClientURLs)
        guard kv.members[memberID] != attributes, replica.leaderHint != nil, localRole.mayPublish else { return }
        if let at = publishProposedAt, at + .seconds(3) > now { return }
        publishProposedAt = now
        proposeInternal(.publishMember(memberID: memberID, attributes: attributes))
    }

    private func retryAndExpireWrites(now: NIODeadline) {
        guard !pendingWrites.isEmpty else { return }
        let retryAfter = TimeAmount.milliseconds(Int64(max(options.electionTimeoutMilliseconds, 200)))
        var expired: [UInt64] = []
        var retry: [Command] = []
        for (clientID, write) in pendingWrites {
            if write.deadline <= now {
                expired.append(clientID)
            } else if write.proposedAt.map({ $0 + retryAfter <= now }) ?? (replica.leaderHint != nil) {
                retry.append(write.command)
            }
        }
        for clientID in expired {
            pendingWrites.removeValue(forKey: clientID)?.fail(replica.leaderHint == nil ? NodeError.noLeader : NodeError.timedOut)
        }
        // Re-proposing is safe: the session table applies a (client, sequence) at most once.
        for command in retry.sorted(by: { $0.clientID < $1.clientID }) {
            pendingWrites[command.clientID]?.proposedAt = now
            step(.propose(command))
        }
    }

    /// The leader starts a replicated integrity check every `integrityCheckMilliseconds`: every
    /// replica records its hash at that log position and reports it through the log; the
    /// majority's hash decides who is out of line (KVStateMachine.applyIntegrityReport).
    private func proposeIntegrityCheckIfDue(now: NIODeadline) {
        guard options.integrityCheckMilliseconds > 0 else { return }
        guard let due = nextIntegrityCheckAt else {
            nextIntegrityCheckAt = now + .milliseconds(Int64(options.integrityCheckMilliseconds))
            return
        }
        guard due <= now else { return }
        nextIntegrityCheckAt = now + .milliseconds(Int64(options.integrityCheckMilliseconds))
        proposeInternal(.integrityCheck(id: clientIDGenerator.next() | 1))
    }

    /// After an integrity check, a report or an alarm change applied: report this replica's
    /// hash for a new check, and log every member found out of line with the majority.
    private func observeMaintenance(_ output: KVStateMachine.Output, now: NIODeadline) {
        metrics.corruptAlarm.set(to: kv.alarms.contains { $0.alarm == .corrupt } ? 1 : 0)
        if let record = kv.integrityRecords.last, record.id != lastIntegrityRecordID {
            lastIntegrityRecordID = record.id
            metrics.integrityChecks.increment()
            let voters = replica.membershipHistory?.latest.voters.count ?? options.members.count
            proposeInternal(.integrityReport(checkID: record.id, memberID: memberID, hash: record.hash,
                                             voters: UInt64(max(1, voters))))
        }
        for mismatch in output.integrityMismatches {
            let isLocal = mismatch.memberID == memberID
            if isLocal { metrics.integrityMismatches.increment() }
            let name = kv.members[mismatch.memberID]?.name ?? String(mismatch.memberID, radix: 16)
            logger.critical(isLocal ? "integrity check failed: this replica's state differs from the majority's; CORRUPT alarm raised"
                                    : "integrity check failed: a member's state differs from the majority's; CORRUPT alarm raised",
                            metadata: [
                                "member": "\(name)", "revision": "\(mismatch.revision)",
                                "check": "\(String(mismatch.checkID, radix: 16))",
                                "member-hash": "\(String(mismatch.memberHash, radix: 16))",
                                "majority-hash": "\(String(mismatch.majorityHash, radix: 16))",
                            ])
        }
    }

    private func expireLeases(now: NIODeadline) {
        for id in leases.expired(now: now, store: kv.store) {
            logger.debug("lease expired", metadata: ["lease": "\(String(id, radix: 16))"])
            proposeInternal(.leaseRevoke(id: id))
        }
    }

    private func maybeSnapshot() {
        let applied = replica.appliedThrough
        // Every `--snapshot-count` slots, or sooner once the log of chosen commands (kept in
        // memory until a snapshot covers it) reaches an eighth of the last snapshot's size, at
        // least 32 MiB (about etcd's 100,000 in-memory entries of 256 bytes): with batching a
        // slot holds up to hundreds of commands, so a slot count alone lets the log grow to
        // gigabytes. The eighth bounds the cost of re-encoding the whole state (at most 8
        // snapshot bytes per log byte).
        let logBytesMax = max(32 << 20, (replica.snapshot?.data.count ?? 0) / 8)
        let due = applied >= lastSnapshotSlot + Slot(options.snapshotEverySlots)
            || (replica.chosenLogBytes >= logBytesMax && applied > lastSnapshotSlot)
            || (snapshotRequested && applied > lastSnapshotSlot)
        guard due, stateSlot == applied, !snapshotEncoding else { return }
        snapshotRequested = false
        lastSnapshotSlot = applied
        // Encoding the whole key space takes long (seconds for gigabytes): it runs on another
        // thread, on a copy of the state as of `applied` (a value: copying shares its storage,
        // and the loop's later writes copy what they change), so the loop keeps serving.
        snapshotEncoding = true
        let state = kv
        let revision = kv.store.revision
        DispatchQueue.global(qos: .utility).async { [self] in
            let data = state.snapshot()
            loop.execute { [self] in
                snapshotEncoding = false
                guard !stoppedFlag else { return }
                step(.snapshot(slot: applied, data: data))
                logger.info("snapshot taken", metadata: ["slot": "\(applied)", "revision": "\(revision)", "bytes": "\(data.count)"])
            }
        }
    }

    /// A command the node proposes for itself (lease expiry); nobody waits for its outcome.
    func proposeInternal(_ command: KVCommand) {
        let promise = loop.makePromise(of: KVResponse.self)
        promise.futureResult.whenFailure { _ in }
        register(command.encoded(), promise: promise)
    }

    /// Proposes an encoded `KVCommand` and remembers who waits for it. The command's session is
    /// fresh, or derived from the client's request id and the payload, so that every attempt
    /// of one request maps to the same session and is applied at most once.
    private func register(_ payload: [UInt8], requestID: UInt64? = nil, promise: EventLoopPromise<KVResponse>) {
        let clientID: UInt64
        if let requestID {
            var hash = FNV1a64()
            withUnsafeBytes(of: requestID.littleEndian) { hash.combine(Array($0)) }
            hash.combine(payload)
            clientID = hash.value | 1
            if pendingWrites[clientID] != nil {
                // Another attempt of a request that is still in flight here: wait with it.
                pendingWrites[clientID]?.duplicates.append(promise)
                return
            }
        } else {
            clientID = clientIDGenerator.next() | 1  // never 0
        }
        let command = Command(clientID: clientID, sequence: 1, payload: payload)
        let now = NIODeadline.now()
        pendingWrites[clientID] = PendingWrite(
            command: command, promise: promise,
            deadline: now + .milliseconds(Int64(options.requestTimeoutMilliseconds)), proposedAt: now)
        metrics.proposals.increment()
        turnProposals.append(command)
        scheduleTurnFlush()
    }

    // MARK: - Client API (any thread)

    /// Proposes a write and waits until it is applied here (or fails).
    /// `requestID` (optional) identifies the client's request across retries: attempts with the
    /// same id and payload are applied at most once.
    public func write(_ command: KVCommand, requestID: UInt64? = nil) async throws -> KVResponse {
        try await writeFuture(command, requestID: requestID).get()
    }

    /// `write` for event-loop callers (the frame-level gRPC fast path): no task, no await.
    public func writeFuture(_ command: KVCommand, requestID: UInt64? = nil) -> EventLoopFuture<KVResponse> {
        let payload = command.encoded()
        if payload.count > options.maxRequestBytes { return loop.makeFailedFuture(NodeError.requestTooLarge) }
        let promise = loop.makePromise(of: KVResponse.self)
        loop.execute { [self] in
            guard !stoppedFlag else { promise.fail(NodeError.stopped); return }
            if let refusal = localRole.refusal(needsVoter: true) { promise.fail(refusal); return }
            register(payload, requestID: requestID, promise: promise)
        }
        return promise.futureResult
    }

    /// Waits until a read at `consistency` may be served from the local state machine.
    public func readBarrier(_ consistency: ReadConsistency) async throws {
        try await read(consistency) { _ in () }
    }

    /// A read barrier that also works at a learner (health checks: it has applied what the
    /// leader had chosen when the barrier began).
    func internalReadBarrier() async throws {
        try await readFuture(.linearizable, admitted: true) { _ in () }.get()
    }

    /// Runs `body` against the current state on the node loop.
    public func withState<T: Sendable>(_ body: @escaping @Sendable (NodeState) throws -> T) async throws -> T {
        try await loop.submit { [self] in
            guard !stoppedFlag else { throw NodeError.stopped }
            return try body(NodeState(node: self))
        }.get()
    }

    /// A read of the state after a barrier at `consistency`. One hop onto the loop: `body`
    /// runs there as soon as the barrier is passed (at once for serializable reads and lease
    /// reads, after a quorum-acknowledged heartbeat round for read-index reads).
    public func read<T: Sendable>(_ consistency: ReadConsistency,
                                  _ body: @escaping @Sendable (NodeState) throws -> T) async throws -> T {
        try await readFuture(consistency, body).get()
    }

    /// `read` for event-loop callers (the frame-level gRPC fast path).
    public func readFuture<T: Sendable>(_ consistency: ReadConsistency,
                                        _ body: @escaping @Sendable (NodeState) throws -> T) -> EventLoopFuture<T> {
        readFuture(consistency, admitted: false, body)
    }

    private func readFuture<T: Sendable>(_ consistency: ReadConsistency, admitted: Bool,
                                         _ body: @escaping @Sendable (NodeState) throws -> T) -> EventLoopFuture<T> {
        let promise = loop.makePromise(of: T.self)
        loop.execute { [self] in
            guard !stoppedFlag else { promise.fail(NodeError.stopped); return }
            if !admitted, let refusal = localRole.refusal(needsVoter: consistency == .linearizable) {
                promise.fail(refusal)
                return
            }
            // `stale-reads` is the deliberately broken server the chaos harness must catch.
            guard consistency == .linearizable, !options.failpoints.staleReads else {
                promise.completeWith(Result { try body(NodeState(node: self)) })
                return
            }
            let readID = nextReadID
            nextReadID += 1
            pendingReads[readID] = PendingRead { [self] error in
                if let error {
                    promise.fail(error)
                } else {
                    promise.completeWith(Result { try body(NodeState(node: self)) })
                }
            }
            step(.read(readID: readID, consistency: .linearizable))
        }
        return promise.futureResult
    }

    // Accessors for NodeState (loop only).
    var currentStatus: NodeStatus {
        let leader = replica.leaderHint
        return NodeStatus(leader: leader, isLeader: replica.role == .leader,
                          ballotRound: replica.leaderBallot?.round ?? replica.promised.round,
                          chosenThrough: replica.chosenThrough, appliedThrough: replica.appliedThrough,
                          revision: kv.store.revision, compactRevision: kv.store.compactRevision,
                          storageFailure: storageFailure, isLearner: localRole == .learner,
                          leaderMemberID: leader.flatMap { knownMember($0)?.memberID } ?? 0)
    }

    /// Starts a watch: history from `startRevision` (0 = from now) and then live events, with
    /// no gap between them (both are read on the node loop). The first history comes with the
    /// answer, at most `WatcherRegistry.catchUpRevisionsMax` revisions of it; the rest arrives
    /// on the stream as the client reads (the watch starts behind, see `WatcherRegistry`).
    ///
    /// - Important: The stream's consumer must report every `.events` delivery it has written
    ///   to its client to `backlog.written(_:)`, or the watch stays behind.
    public func watch(_ filter: WatchFilter, startRevision: Int64) async throws -> WatchStart {
        // Unbounded as a buffer, bounded by the backlog accounting (the registry stops
        // delivering to a watch whose client does not keep up).
        let (stream, continuation) = AsyncStream<WatchDelivery>.makeStream(bufferingPolicy: .unbounded)
        let backlog = WatchBacklog()
        return try await loop.submit { [self] () throws -> WatchStart in
            guard !stoppedFlag else { throw NodeError.stopped }
            let store = kv.store
            var history: [WatchEvent] = []
            var behindFrom: Int64?
            if startRevision > 0 && startRevision <= store.revision {
                do {
                    let events = try store.events(from: startRevision, key: filter.key, rangeEnd: filter.rangeEnd,
                                                  revisionsMax: WatcherRegistry.catchUpRevisionsMax)
                    if let last = events.last?.kv.modRevision, last < store.revision,
                       Set(events.map(\.kv.modRevision)).count >= WatcherRegistry.catchUpRevisionsMax {
                        behindFrom = last + 1
                    }
                    history = filter.select(events)
                } catch {
                    continuation.finish()
                    return .compacted(compactRevision: store.compactRevision)
                }
            }
            let id = watchers.add(filter, continuation: continuation, backlog: backlog, behindFrom: behindFrom)
            return .started(id: id, history: history, revision: store.revision, stream: stream, backlog: backlog)
        }.get()
    }

    public func cancelWatch(_ id: UInt64) {
        loop.execute { [self] in watchers.remove(id) }
    }

    /// Live peer connections (for health).
    public func connectedPeers() -> Set<NodeID> { transport?.connectedPeers() ?? [] }
}

/// How a watch began.
public enum WatchStart: Sendable {
    case compacted(compactRevision: Int64)
    case started(id: UInt64, history: [WatchEvent], revision: Int64, stream: AsyncStream<WatchDelivery>, backlog: WatchBacklog)
}

/// A read-only view of the node's state, valid only inside `Node.withState`.
public struct NodeState {
    let node: Node
    public var kv: KVStateMachine { node.kv }
    public var status: NodeStatus { node.currentStatus }
    public var leases: LeaseTimers { node.leases }
    /// The newest membership this node knows (nil while joining).
    public var membership: Membership? { node.replica.membershipHistory?.latest }
    /// This member's role in it.
    public var role: LocalRole { node.localRole }
}
