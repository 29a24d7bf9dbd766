import CSynodSystem
import Foundation
import Logging
import NIOCore
import NIOPosix
import Prometheus
import Synchronization
@_exported import SynodNode
import SynodBytes
import SynodCore
import SynodKV
import SynodStore
import SynodTransport

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
    /// Damaged synced records are being repaired from the other members: this member votes in
    /// no quorum until that finishes (`synod_repairing`).
    public var isRepairing: Bool = false
}

/// The shell around one member's `NodeDriver`: it moves bytes and time. It feeds the driver
/// timer firings, peer messages, storage reports and client requests, each with the clock read
/// for it, and carries out what the driver returns: persist batches to the storage thread,
/// messages to the peer transport, answers to the waiting clients, watch events to the watch
/// streams, snapshots to encode off the loop. Every decision is the driver's.
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
    var driver: NodeDriver
    /// The clock handed to every step (CLOCK_BOOTTIME; the `tick-lease` failpoint swaps it).
    let clock: any ReplicaClock
    /// Where outgoing messages go (the transport; the `drop-outgoing` failpoint wraps it).
    let outgoing: OutgoingMessages
    private let storageWorker: StorageWorker
    /// The snapshot found on disk at start, whose transfer checksum is computed after `start`.
    private var loadedSnapshot: StorageWorker.StoredSnapshot?
    /// Spool files in the snapshot directory, for snapshots received or encoded.
    private let snapshotSpooling: SnapshotSpoolDirectory
    var transport: PeerTransport?
    /// Who waits for what, by the token handed to the driver.
    private var nextToken: UInt64 = 1
    private var writePromises: [UInt64: EventLoopPromise<KVResponse>] = [:]
    private var readWaiters: [UInt64: (NodeError?) -> Void] = [:]
    /// Looks at the state (`withState`, `watch`) that wait while a snapshot's state is decoded
    /// off the loop; run in order once it is there (nil: the node stopped).
    var stateWaiters: [(NodeError?) -> Void] = []
    private var reconfigurationPromises: [UInt64: EventLoopPromise<Reconfiguration>] = [:]
    private var transferPromises: [UInt64: EventLoopPromise<NodeID>] = [:]
    private var tickTask: RepeatedTask?
    var storageFailure: String?
    var watchers = WatcherRegistry()
    var stoppedFlag = false
    var onRemoved: (@Sendable () -> Void)?
    var observedPeerAddresses: [NodeID: PeerAddress] = [:]
    /// Peer reachability as last reported (see `observePeerReachability`).
    var quorumReachable: Bool?
    var reachabilityCheckedAt: NIODeadline?
    /// The membership as other threads see it (API admission, discovery, peer names).
    let shared = Mutex(SharedMembership())
    /// Work gathered during one event-loop turn and carried out once at its end (`flushTurn`):
    /// the writes (proposed together, so they share slots), persist batches (one wake-up of
    /// the storage thread) and outgoing messages (one coalesced write per peer).
    private var turnPersist: [PersistBatch] = []
    private var turnMessages: [Envelope] = []
    private var turnFlushScheduled = false
    /// The last peer messages sent and received, for the live page (loop only).
    var messageLog = LiveMessageLog()
    /// Cut off from every peer by the live page's control (`isolate`): every message to or
    /// from a peer is dropped until `heal` (loop only; connections stay up).
    var isolated = false
    /// The latest ballot round, readable from any thread (response headers' raft_term).
    private let roundCell = Atomic<UInt64>(0)
    private let decodingCell = Atomic<Bool>(false)
    /// Whether the member is decoding a snapshot into its state (any thread): reads and
    /// looks at the state wait meanwhile (`/health` says so at once).
    public var isDecodingSnapshot: Bool { decodingCell.load(ordering: .relaxed) }
    public var ballotRound: UInt64 { roundCell.load(ordering: .relaxed) }

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
        let fileSystem: any FileSystem = FailpointFileSystem.needed(options.failpoints)
            ? FailpointFileSystem(base: POSIXFileSystem(), failpoints: options.failpoints)
            : POSIXFileSystem()
        // Damage to synced log writes is repaired from the other members instead of refusing
        // to start (Replica+Repair); a member that cannot repair refuses below.
        var storageOptions = StorageOptions()
        storageOptions.repairDamage = true
        let opened = try DurableStorage.open(fileSystem: fileSystem, directory: options.dataDirectory,
                                             identity: identity, options: storageOptions)
        logger.info("storage opened", metadata: ["dir": "\(options.dataDirectory)", "recovery": "\(opened.report)"])
        let repairing = opened.report.repairNeeded
        var seed = SystemRandomNumberGenerator()
        let replicaSeed = UInt64.random(in: .min ... .max, using: &seed)
        let replica: Replica
        if let join = options.join {
            // Joining (or restarting a member that joined): the membership comes from the
            // cluster's snapshot or from the data; the discovered voters are whom to ask.
            let voters = join.membership?.voters.filter { $0 != nodeID } ?? []
            replica = try Replica(id: nodeID, configuration: options.protocolConfiguration(voters: voters.isEmpty ? [nodeID] : voters),
                                  seed: replicaSeed, restoring: opened.records, joining: true, repairing: repairing)
        } else {
            let initial = Membership(members: options.members.map {
                Member(id: $0.nodeID, name: $0.name, peerURLs: [$0.peerURL], memberID: $0.memberID)
            })
            replica = try Replica(id: nodeID, configuration: options.protocolConfiguration(), seed: replicaSeed,
                                  restoring: opened.records, initialMembership: initial, repairing: repairing)
        }
        if repairing {
            let damage = opened.report.damage.map { $0.description }.joined(separator: "; ")
            if let reason = replica.repairImpossibleReason {
                throw NodeStartError("the write-ahead log in \(options.dataDirectory)/wal has damaged synced records that cannot be"
                    + " repaired from the other members (\(reason)): \(damage)."
                    + " Acknowledged writes may be in them. Restore this member's data from a backup, or remove it from the"
                    + " cluster and add it back with an empty data directory")
            }
            metrics.repairing.set(to: 1)
            logger.warning("damaged synced log records: this member repairs them from the other members and does not vote until then",
                           metadata: ["damage": "\(damage)"])
        }
        let recorded = replica.membershipHistory?.epochs.lazy.compactMap { $0.membership.member(nodeID)?.memberID }.first
        memberID = recorded ?? (options.join?.memberID).flatMap { $0 == 0 ? nil : $0 } ?? local.memberID
        driver = NodeDriver(replica: replica, settings: options.driverSettings(memberID: memberID),
                            seed: UInt64.random(in: .min ... .max, using: &seed),
                            applyFilter: options.failpoints.applyFilter)
        // Snapshots received in chunks go to a file as they arrive, not into memory; so do the
        // ones this member encodes.
        snapshotSpooling = opened.storage.snapshotSpooling
        driver.useSnapshotSpooling(snapshotSpooling)
        clock = options.failpoints.replicaClock(tickNanoseconds: replica.configuration.tickNanoseconds)
        outgoing = OutgoingMessages(dropProbability: options.failpoints.dropOutgoing)
        loadedSnapshot = opened.storage.takeStoredSnapshot().map { StorageWorker.StoredSnapshot(slot: $0.slot, bytes: $0.bytes) }
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
        if let loaded = loadedSnapshot {
            // The snapshot recovered from disk is read from its file; its transfer checksum is
            // hashed here, off the loop, rather than on it the first time a peer fetches it.
            loadedSnapshot = nil
            DispatchQueue.global(qos: .utility).async { [weak self] in
                let checksum = Snapshot.checksum(of: loaded.bytes)
                guard let self, let checksum else { return }
                self.loop.execute {
                    guard !self.stoppedFlag else { return }
                    self.step(.snapshotStored(slot: loaded.slot, bytes: loaded.bytes, checksum: checksum))
                }
            }
        }
        let tick = TimeAmount.milliseconds(Int64(options.tickMilliseconds))
        tickTask = loop.scheduleRepeatedTask(initialDelay: tick, delay: tick) { [self] _ in self.tick() }
        logger.info("node started", metadata: ["applied": "\(driver.replica.appliedThrough)",
                                               "revision": driver.isDecodingSnapshot ? "decoding its snapshot" : "\(driver.kv.store.revision)"])
    }

    /// Stops ticking, fails waiting clients, and finishes the storage thread.
    func stop() {
        loop.preconditionInEventLoop()
        guard !stoppedFlag else { return }
        stoppedFlag = true
        tickTask?.cancel()
        for (_, promise) in writePromises { promise.fail(NodeError.stopped) }
        writePromises.removeAll()
        for (_, waiter) in readWaiters { waiter(NodeError.stopped) }
        readWaiters.removeAll()
        let waiting = stateWaiters
        stateWaiters.removeAll()
        for waiter in waiting { waiter(NodeError.stopped) }
        decodingCell.store(false, ordering: .relaxed)
        for (_, promise) in reconfigurationPromises { promise.fail(NodeError.stopped) }
        reconfigurationPromises.removeAll()
        for (_, promise) in transferPromises { promise.fail(NodeError.stopped) }
        transferPromises.removeAll()
        watchers.finishAll()
        if !turnPersist.isEmpty { storageWorker.submit(turnPersist) }
        turnPersist.removeAll()
        turnMessages.removeAll()
        storageWorker.stop()
    }

    // MARK: - Inputs

    /// Messages from peers (called from transport threads).
    func receive(_ envelopes: [Envelope]) {
        loop.execute { [self] in
            guard !stoppedFlag, !isolated else { return }
            messageLog.record(envelopes, outgoing: false, wallMicros: LiveMessageLog.wallMicrosNow())
            countSnapshotChunks(envelopes, counter: metrics.snapshotChunksReceived)
            step(.receive(envelopes))
        }
    }

    private func tick() {
        guard !stoppedFlag else { return }
        step(.tick)
        guard !stoppedFlag else { return }
        observePeerReachability(now: .now())
        if !driver.isDecodingSnapshot {
            watchers.catchUp(store: driver.kv.store)
            metrics.kvRevision.record(driver.kv.store.revision)
        }
        metrics.appliedIndex.record(Int64(driver.replica.appliedThrough))
        metrics.chosenIndex.record(Int64(driver.replica.chosenThrough))
        metrics.snapshotChecksumFailures.record(Int64(driver.replica.snapshotChecksumFailures))
        metrics.snapshotsSpooled.record(Int64(driver.replica.snapshotsSpooled))
        metrics.snapshotSpoolFailures.record(Int64(driver.replica.snapshotSpoolFailures))
        let snapshotBytes = driver.replica.snapshot?.bytes
        metrics.snapshotMemoryBytes.record(Int64(snapshotBytes?.isInMemory == true ? snapshotBytes?.count ?? 0 : 0))
    }

    private func countSnapshotChunks(_ envelopes: [Envelope], counter: Prometheus.Counter) {
        for envelope in envelopes {
            if case .snapshotChunk = envelope.message { counter.increment() }
        }
    }

    private func durable(_ report: StorageWorker.SyncReport) {
        guard !stoppedFlag else { return }
        metrics.fsyncDuration.recordNanoseconds(Int64(report.seconds * 1e9))
        metrics.fsyncBatchRecords.record(Double(report.records))
        step(.durable(through: report.durableThrough))
        if let stored = report.storedSnapshot, !stoppedFlag {
            step(.snapshotStored(slot: stored.slot, bytes: stored.bytes, checksum: nil))
        }
    }

    private func storageFailed(_ error: StorageError) {
        storageFailure = error.description
        logger.critical("storage failed; the node stops serving and must be restarted by an operator",
                        metadata: ["error": "\(error)"])
        stop()
        options.onStorageFailure?(error.description)
    }

    // MARK: - Outputs

    /// Steps the driver with the clock read now and carries out what it returns.
    func step(_ input: DriverInput) {
        carry(driver.step(input, clock: clock.now(ticks: driver.replica.now)))
    }

    /// Carries out one step's effects in the order `DriverOutput` prescribes.
    private func carry(_ output: DriverOutput) {
        if let reason = output.halted {
            answer(output)
            haltOnSafetyViolation(reason, alarms: output.send)
            return
        }
        if !output.persist.isEmpty {
            turnPersist += output.persist
            scheduleTurnFlush()
        }
        if !output.send.isEmpty {
            turnMessages += output.send
            scheduleTurnFlush()
        }
        if output.flushWanted { scheduleTurnFlush() }
        for (events, revision) in output.watchEvents { watchers.publish(events, revision: revision) }
        if let revision = output.stateReplaced { watchers.snapshotInstalled(revision: revision) }
        answer(output)
        for event in output.events { report(event) }
        if output.peersChanged { membershipChanged() }
        roundCell.store(driver.replica.leaderBallot?.round ?? driver.replica.promised.round, ordering: .relaxed)
        if let (slot, state) = output.encodeSnapshot { encodeSnapshot(slot: slot, state: state) }
        if let request = output.decodeSnapshot { decodeSnapshot(request) }
        let decoding = driver.isDecodingSnapshot
        if decoding != decodingCell.load(ordering: .relaxed) {
            decodingCell.store(decoding, ordering: .relaxed)
            metrics.snapshotDecoding.set(to: decoding ? 1 : 0)
        }
        if !stateWaiters.isEmpty && !decoding { runStateWaiters() }
        if output.probeMembership { probeMembership() }
        if output.removed { finishRemoval() }
        if let reason = driver.stopReason, !stoppedFlag {
            storageFailure = reason
            logger.critical("the node stops serving", metadata: ["reason": "\(reason)"])
            stop()
        }
    }

    /// Completes the clients' promises the step answered.
    private func answer(_ output: DriverOutput) {
        for (token, result) in output.writes {
            guard let promise = writePromises.removeValue(forKey: token) else { continue }
            promise.completeWith(result.mapError { $0 })
        }
        for (token, failure) in output.reads { readWaiters.removeValue(forKey: token)?(failure) }
        for (token, result) in output.reconfigurations {
            reconfigurationPromises.removeValue(forKey: token)?.completeWith(result)
        }
        for (token, result) in output.transfers { transferPromises.removeValue(forKey: token)?.completeWith(result) }
    }

    private func newToken() -> UInt64 {
        defer { nextToken += 1 }
        return nextToken
    }

    /// Runs `flushTurn` after the tasks already queued on the loop, so everything they produce
    /// goes out together.
    private func scheduleTurnFlush() {
        guard !turnFlushScheduled else { return }
        turnFlushScheduled = true
        loop.execute { [self] in flushTurn() }
    }

    /// Proposes the writes gathered this turn as one step, then hands the turn's persist
    /// batches to storage (one wake-up of the storage thread) before sending the turn's
    /// messages (one write per peer): persist first, then send.
    private func flushTurn() {
        // Stays set while flushing: what the proposal step produces goes out in this flush.
        defer { turnFlushScheduled = false }
        guard !stoppedFlag else { return }
        step(.flush)
        if !turnPersist.isEmpty {
            storageWorker.submit(turnPersist)
            turnPersist.removeAll(keepingCapacity: true)
        }
        if !turnMessages.isEmpty {
            let messages = turnMessages
            turnMessages.removeAll(keepingCapacity: true)
            guard !isolated else { return }
            messageLog.record(messages, outgoing: true, wallMicros: LiveMessageLog.wallMicrosNow())
            countSnapshotChunks(messages, counter: metrics.snapshotChunksSent)
            if let transport { outgoing.send(messages, through: transport) }
        }
    }

    /// Drops what this turn gathered (a halted replica's effects must not leave).
    func discardTurn() {
        turnMessages.removeAll()
        turnPersist.removeAll()
    }

    private func encodeSnapshot(slot: Slot, state: KVStateMachine) {
        // Encoding the whole key space takes long (seconds for gigabytes): it runs on another
        // thread, on the driver's copy of the state, so the loop keeps serving; so does the
        // checksum that chunked transfers of the snapshot carry. The encoding goes straight
        // into a spool file in the snapshot directory, a piece at a time, which storage then
        // completes into the snapshot file: the whole encoding is never in memory beside the
        // state, and storage does not write it a second time. Should the file fail (a full
        // disk), it is encoded in memory instead.
        //
        // The thread runs at a lower CPU priority (nice +5: about a quarter of a core's share
        // when the loops want every core), and it hands each piece to the disk as it goes
        // (`SnapshotSpool.pace`), so the completing sync is short. Writes still slow down
        // while a snapshot of 1 GiB is encoded (about twice the median, 3 to 5 times the
        // p99 on 2 cores: `synod bench compare --memory-keys`, README).
        let spooling = snapshotSpooling
        metrics.snapshotInProgress.set(to: 1)
        let encoder = Thread { [self] in
            _ = synod_lower_thread_priority(5)
            var hash = Snapshot.ChecksumHash()
            var spooled: SnapshotBytes?
            if let spool = spooling.makeSpool(slot: slot),
               state.writeSnapshot(pieceBytes: 4 << 20, { piece in
                   hash.combine(piece)
                   guard spool.append(piece) else { return false }
                   spool.pace()
                   return true
               }) {
                spooled = spool.finish()
            }
            let bytes: SnapshotBytes
            if let spooled {
                bytes = spooled
            } else {
                let data = state.snapshot()
                hash = Snapshot.ChecksumHash()
                hash.combine(data)
                bytes = SnapshotBytes(data)
            }
            let checksum = hash.value
            loop.execute { [self] in
                metrics.snapshotInProgress.set(to: 0)
                guard !stoppedFlag else { return }
                step(.snapshotEncoded(slot: slot, bytes: bytes, checksum: checksum))
            }
        }
        encoder.name = "synod-snapshot"
        encoder.start()
    }

    private func decodeSnapshot(_ request: SnapshotDecodeRequest) {
        // Decoding a received or recovered snapshot takes about a second per 64 MiB: it runs
        // on another thread, so the loop keeps answering peers (votes, acceptances,
        // heartbeats) and clients (who wait for the state: `withState`, reads) meanwhile.
        let delay = options.failpoints.decodeDelayMilliseconds
        let decoder = Thread { [self] in
            if delay > 0 { Thread.sleep(forTimeInterval: Double(delay) / 1_000) }
            let result = request.decode()
            loop.execute { [self] in
                guard !stoppedFlag else { return }
                step(.snapshotDecoded(slot: request.slot, result: result))
            }
        }
        decoder.name = "synod-decode"
        decoder.start()
    }

    /// Runs the looks at the state that waited for a decoded snapshot, in order.
    private func runStateWaiters() {
        let waiting = stateWaiters
        stateWaiters.removeAll()
        for waiter in waiting { waiter(stoppedFlag ? NodeError.stopped : nil) }
    }

    /// Runs `body` on the loop once the state is there (at once unless a snapshot's state is
    /// being decoded); fails if the node is stopped.
    func onCurrentState<T: Sendable>(_ body: @escaping @Sendable () throws -> T) -> EventLoopFuture<T> {
        let promise = loop.makePromise(of: T.self)
        loop.execute { [self] in
            guard !stoppedFlag else { promise.fail(NodeError.stopped); return }
            let run: (NodeError?) -> Void = { error in
                if let error { promise.fail(error) } else { promise.completeWith(Result { try body() }) }
            }
            if driver.isDecodingSnapshot { stateWaiters.append(run) } else { run(nil) }
        }
        return promise.futureResult
    }

    // MARK: - Client API (any thread)

    /// Proposes a write and waits until it is applied here (or fails).
    /// `requestID` (optional) identifies the client's request across retries: attempts with the
    /// same id and payload are applied at most once.
    public func write(_ command: KVCommand, requestID: UInt64? = nil, credentials: AuthCredentials? = nil) async throws -> KVResponse {
        try await writeFuture(command, requestID: requestID, credentials: credentials).get()
    }

    /// `write` for event-loop callers (the frame-level gRPC fast path): no task, no await.
    ///
    /// `credentials`: a client's (nil for the cluster's own commands). While auth is enabled
    /// the command is proposed wrapped with the caller they name (`KVCommand.authorized`), and
    /// every member checks the caller's permissions when it applies, at the same auth
    /// revision; credentials that name no valid caller fail here ("invalid auth token").
    public func writeFuture(_ command: KVCommand, requestID: UInt64? = nil,
                            credentials: AuthCredentials? = nil) -> EventLoopFuture<KVResponse> {
        let payload = command.encoded()
        if payload.count > options.maxRequestBytes { return loop.makeFailedFuture(NodeError.requestTooLarge) }
        let promise = loop.makePromise(of: KVResponse.self)
        loop.execute { [self] in
            guard !stoppedFlag else { promise.fail(NodeError.stopped); return }
            var payload = payload
            if let credentials, driver.kv.auth.enabled {
                do {
                    if let caller = try driver.kv.auth.caller(credentials) {
                        payload = KVCommand.encodedAuthorized(user: caller.user, authRevision: caller.authRevision, encodedCommand: payload)
                    }
                } catch {
                    promise.fail(error)
                    return
                }
            }
            let token = newToken()
            writePromises[token] = promise
            step(.write(token: token, payload: payload, requestID: requestID))
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
        let promise = loop.makePromise(of: Void.self)
        loop.execute { [self] in
            guard !stoppedFlag else { promise.fail(NodeError.stopped); return }
            let token = newToken()
            readWaiters[token] = { error in
                if let error { promise.fail(error) } else { promise.succeed(()) }
            }
            carry(driver.memberReadBarrier(token: token, clock: clock.now(ticks: driver.replica.now)))
        }
        try await promise.futureResult.get()
    }

    /// Runs `body` against the current state on the node loop.
    public func withState<T: Sendable>(_ body: @escaping @Sendable (NodeState) throws -> T) async throws -> T {
        try await onCurrentState { [self] in try body(NodeState(node: self)) }.get()
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
        let promise = loop.makePromise(of: T.self)
        loop.execute { [self] in
            guard !stoppedFlag else { promise.fail(NodeError.stopped); return }
            let token = newToken()
            readWaiters[token] = { [self] error in
                if let error {
                    promise.fail(error)
                } else {
                    promise.completeWith(Result { try body(NodeState(node: self)) })
                }
            }
            step(.read(token: token, consistency: options.failpoints.readConsistency(consistency)))
        }
        return promise.futureResult
    }

    /// Asks the cluster for a membership change and waits until it is chosen and applied here
    /// (the returned value carries the resulting membership), refused, or timed out.
    /// - Throws: `ReconfigurationError` (refused), `NodeError.timedOut` or `.stopped`.
    public func reconfigure(_ change: MembershipChange, force: Bool = false) async throws -> Reconfiguration {
        let promise = loop.makePromise(of: Reconfiguration.self)
        loop.execute { [self] in
            guard !stoppedFlag else { promise.fail(NodeError.stopped); return }
            let token = newToken()
            reconfigurationPromises[token] = promise
            step(.reconfigure(token: token, change: change, force: force))
        }
        return try await promise.futureResult.get()
    }

    /// Asks this node (it must lead) to hand leadership to `target`; returns the new leader
    /// once it leads.
    /// - Throws: `ReconfigurationError` (`.notLeader`, `.transferFailed`, `.leaderChanged`),
    ///   `NodeError.transferTimedOut` or `.stopped`.
    public func transferLeadership(to target: NodeID) async throws -> NodeID {
        let promise = loop.makePromise(of: NodeID.self)
        loop.execute { [self] in
            guard !stoppedFlag else { promise.fail(NodeError.stopped); return }
            let token = newToken()
            transferPromises[token] = promise
            step(.transferLeadership(token: token, target: target))
        }
        return try await promise.futureResult.get()
    }

    // Accessors for NodeState (loop only).
    var currentStatus: NodeStatus {
        let replica = driver.replica
        let leader = replica.leaderHint
        return NodeStatus(leader: leader, isLeader: replica.role == .leader,
                          ballotRound: replica.leaderBallot?.round ?? replica.promised.round,
                          chosenThrough: replica.chosenThrough, appliedThrough: replica.appliedThrough,
                          revision: driver.kv.store.revision, compactRevision: driver.kv.store.compactRevision,
                          storageFailure: storageFailure, isLearner: driver.role == .learner,
                          leaderMemberID: leader.flatMap { knownMember($0)?.memberID } ?? 0,
                          isRepairing: replica.isRepairing)
    }

    /// Live peer connections (for health).
    public func connectedPeers() -> Set<NodeID> { transport?.connectedPeers() ?? [] }
}

/// A read-only view of the node's state, valid only inside `Node.withState`.
public struct NodeState {
    let node: Node
    public var kv: KVStateMachine { node.driver.kv }
    public var status: NodeStatus { node.currentStatus }
    /// Seconds left on lease `id`'s timer here, or nil if this node has none.
    public func leaseRemainingSeconds(_ id: Int64) -> Int64? {
        node.driver.leases.remainingSeconds(id, now: node.driver.clock)
    }
    /// The newest membership this node knows (nil while joining).
    public var membership: Membership? { node.driver.latestMembership }
    /// This member's role in it.
    public var role: LocalRole { node.driver.role }
}

/// Why a node could not start, in one sentence for the operator.
public struct NodeStartError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
