import Foundation
import SynodClient

/// The settings of one `synod chaos` run.
public struct ChaosOptions: Sendable {
    public var nodes: Int = 3
    public var durationSeconds: Double = 60
    public var clients: Int = 10
    public var keys: Int = 8
    public var nemesis: [NemesisKind] = NemesisKind.defaults
    public var seed: UInt64 = 0
    public var reportDirectory: String = "chaos-report"
    /// The `synod` executable started as `synod serve`.
    public var synodBinary: String = ""
    /// Mean seconds between nemesis actions.
    public var intervalSeconds: Double = 5
    /// Test-only: every node answers linearizable reads locally (SYNOD_FAILPOINTS=stale-reads).
    public var brokenReads: Bool = false
    public var opTimeoutSeconds: Double = 2
    public var quiet: Bool = false
    /// Treat a checker timeout (linearizable: unknown) as a failure.
    public var strict: Bool = false
    /// `--snapshot-count` for the nodes (small, so snapshots happen during a run).
    public var snapshotCount: Int = 2000
    /// Seconds between progress lines.
    public var progressIntervalSeconds: Double = 5
    /// Keep `<report>/data` even when the run passed.
    public var keepData: Bool = false
    /// Per-key step budget of the linearizability checker.
    public var checkerStepsMax: Int = 20_000_000

    public init() {}

    /// Checks the ranges; throws one line naming the flag.
    public func validate() throws(ChaosOptionsError) {
        guard (1...7).contains(nodes) else { throw ChaosOptionsError("--nodes must be between 1 and 7, got \(nodes)") }
        guard durationSeconds > 0 else { throw ChaosOptionsError("--duration must be positive") }
        guard (1...1000).contains(clients) else { throw ChaosOptionsError("--clients must be between 1 and 1000, got \(clients)") }
        guard (1...100_000).contains(keys) else { throw ChaosOptionsError("--keys must be between 1 and 100000, got \(keys)") }
        guard intervalSeconds > 0 else { throw ChaosOptionsError("--interval must be positive") }
        guard opTimeoutSeconds > 0 else { throw ChaosOptionsError("--op-timeout must be positive") }
        guard !synodBinary.isEmpty else { throw ChaosOptionsError("--synod-bin: no synod executable given") }
        guard FileManager.default.isExecutableFile(atPath: synodBinary) else {
            throw ChaosOptionsError("--synod-bin: '\(synodBinary)' is not an executable file")
        }
    }

    /// The planned faults of this run.
    public var schedule: [PlannedFault] {
        NemesisSchedule.plan(seed: seed, kinds: nemesis, nodes: nodes, durationSeconds: durationSeconds,
                             intervalSeconds: intervalSeconds)
    }
}

/// Runs a real cluster of `synod serve` processes under faults, records a client history and
/// checks it.
public struct ChaosRunner: Sendable {
    public var options: ChaosOptions
    public var network: any ChaosNetwork
    public var log: @Sendable (String) -> Void

    public init(options: ChaosOptions, network: any ChaosNetwork, log: @escaping @Sendable (String) -> Void) {
        self.options = options
        self.network = network
        self.log = log
    }

    /// Runs the whole experiment, writes the report and returns the verdict. Every child
    /// process is killed before this returns or throws.
    public func run() async throws -> ChaosVerdict {
        try options.validate()
        let report = options.reportDirectory
        try FileManager.default.createDirectory(atPath: "\(report)/nodes", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: "\(report)/data", withIntermediateDirectories: true)
        let clock = ChaosClock()
        let addresses = try await network.prepare(nodeCount: options.nodes)
        let processes = ClusterProcesses(
            binary: options.synodBinary, addresses: addresses,
            launchPrefixes: addresses.indices.map { network.launchPrefix(node: $0) },
            reportDirectory: report, clusterToken: "chaos-\(options.seed)", snapshotCount: options.snapshotCount,
            brokenReads: options.brokenReads, clock: clock)
        let outcome: Result<(ChaosVerdict, [ChaosOperation], [NemesisEvent]), any Error>
        do {
            outcome = .success(try await experiment(processes: processes, addresses: addresses, clock: clock))
        } catch {
            outcome = .failure(error)
        }
        processes.killAllNow()
        await network.teardown()
        let (verdict, operations, events) = try outcome.get()
        let writer = ChaosReportWriter(directory: report)
        do {
            try writer.writeAll(operations: operations, nemesis: events, verdict: verdict,
                                nodeNames: addresses.map(\.name),
                                title: "synod chaos: \(options.nodes) nodes, seed \(options.seed)")
        } catch {
            log("warning: could not write the report: \(error)")
        }
        if !verdict.failed && !options.keepData {
            try? FileManager.default.removeItem(atPath: "\(report)/data")
        }
        return verdict
    }

    private func experiment(processes: ClusterProcesses, addresses: [ChaosNodeAddresses],
                            clock: ChaosClock) async throws -> (ChaosVerdict, [ChaosOperation], [NemesisEvent]) {
        let endpoints = addresses.map(\.clientURL)
        let adminConfig = SynodClientConfiguration(endpoints: endpoints, requestTimeout: .seconds(1),
                                                   attemptTimeout: .milliseconds(500), retryBackoff: .milliseconds(50))
        return try await withSynodClient(adminConfig) { admin in
            for index in addresses.indices { try processes.start(index) }
            let memberIDs = try await waitForReadiness(admin: admin, endpoints: endpoints, processes: processes)
            log("cluster ready: \(addresses.count) nodes (\(addresses.map { "\($0.name) \($0.clientURL)" }.joined(separator: ", "))) at t=\(seconds(clock.nanos()))s")

            let recorder = ChaosRecorder()
            let events = NemesisLog()
            let stop = ChaosStopFlag()
            let clients = ChaosClients(endpoints: endpoints, clients: options.clients, keys: options.keys,
                                       opTimeoutSeconds: options.opTimeoutSeconds, seed: options.seed,
                                       recorder: recorder, clock: clock, stop: stop)
            let leaders = LeaderFinder(admin: admin, endpoints: endpoints, indexByMemberID: memberIDs)
            let runStart = clock.nanos()
            var plan = options.schedule
            for i in plan.indices { plan[i].startNanos += runStart }
            let nemesis = NemesisRunner(plan: plan, processes: processes, network: network, leaders: leaders,
                                        clock: clock, events: events, log: log)
            let supervisor = CrashSupervisor(processes: processes, clock: clock, events: events, log: log)

            let supervisorTask = Task { await supervisor.run() }
            let clientsTask = Task { await clients.run() }
            let nemesisTask = Task { await nemesis.run() }
            let progressTask = Task { await progress(recorder: recorder, events: events, clock: clock) }
            defer {
                supervisorTask.cancel()
                clientsTask.cancel()
                nemesisTask.cancel()
                progressTask.cancel()
            }

            do {
                try await clock.sleep(untilNanos: runStart + UInt64(options.durationSeconds * 1e9))
            } catch {
                stop.set()
                throw error
            }

            // Wind down: stop the faults, heal everything, bring every node back without failpoints.
            nemesisTask.cancel()
            await nemesisTask.value
            try await heal(processes: processes, events: events, clock: clock)
            // Let the healed cluster serve the clients for a moment (every node answering), then
            // stop the clients and wait until every replica applied the same history.
            await waitForAllAnswering(admin: admin, endpoints: endpoints, seconds: 10)
            stop.set()
            await clientsTask.value
            let converged = await waitForConvergence(admin: admin, endpoints: endpoints, seconds: 30)
            if !converged { log("warning: the nodes did not converge within 30 s") }
            progressTask.cancel()
            let elapsed = Double(clock.nanos() - runStart) / 1e9
            try Task.checkCancellation()

            // Final reads, replica hashes, alarms.
            try await finalReads(endpoints: endpoints, recorder: recorder, clock: clock)
            _ = await waitForConvergence(admin: admin, endpoints: endpoints, seconds: 10)
            let (hashesEqual, hashRevision, hashes) = await replicaHashes(admin: admin, addresses: addresses)
            let alarms = await alarmList(admin: admin, memberIDs: memberIDs)
            supervisorTask.cancel()
            await supervisorTask.value

            let operations = recorder.operations
            let nemesisEvents = events.events
            log("checking \(operations.count) operations...")
            let verdict = ChaosCheck.verdict(
                operations: operations, nemesis: nemesisEvents, replicaHashesEqual: hashesEqual,
                hashRevision: hashRevision, replicaHashes: hashes, alarms: alarms, durationSeconds: elapsed,
                seed: options.seed, strict: options.strict, searchStepsMax: options.checkerStepsMax)
            if let violation = verdict.violation { log(violation) }
            if verdict.lostAcknowledgedWrites > 0 {
                log("lost acknowledged writes (operation ids): \(verdict.lostOperationIDs.prefix(20).map(String.init).joined(separator: ", "))")
            }
            return (verdict, operations, nemesisEvents)
        }
    }

    func seconds(_ nanos: UInt64) -> String { String(format: "%.1f", Double(nanos) / 1e9) }

    /// Waits until every node answers `status` and knows a leader; returns member id -> index.
    private func waitForReadiness(admin: SynodClient, endpoints: [String],
                                  processes: ClusterProcesses) async throws -> [UInt64: Int] {
        let deadline = ContinuousClock.now + .seconds(30)
        var lastProblem = "no answer yet"
        while ContinuousClock.now < deadline {
            try Task.checkCancellation()
            if let down = processes.downNodes().first {
                throw ChaosRunError("n\(down + 1) exited during startup; see \(processes.logPath(down))")
            }
            var ids: [UInt64: Int] = [:]
            var ready = true
            for (index, endpoint) in endpoints.enumerated() {
                do {
                    let status = try await admin.status(endpoint: endpoint)
                    ids[status.header.memberID] = index
                    if status.leader == 0 {
                        ready = false
                        lastProblem = "n\(index + 1) knows no leader"
                    }
                } catch {
                    ready = false
                    lastProblem = "n\(index + 1): \(error)"
                }
            }
            if ready && ids.count == endpoints.count { return ids }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw ChaosRunError("the cluster was not ready within 30 s (\(lastProblem)); see \(options.reportDirectory)/nodes/")
    }

    /// Heals the network, resumes paused nodes, restarts dead ones without failpoints.
    private func heal(processes: ClusterProcesses, events: NemesisLog, clock: ChaosClock) async throws {
        do {
            try await network.heal()
        } catch {
            log("warning: heal failed: \(error)")
        }
        for index in 0..<processes.count {
            processes.resume(index)
            if processes.failpoints(index) != nil {
                await processes.kill(index, reason: "killed to clear failpoints at the end")
                processes.setFailpoints(index, nil)
            }
        }
        for index in processes.downNodes() {
            try processes.start(index, reason: "restarted for the final checks")
        }
        events.instant(kind: "heal", nodes: Array(0..<processes.count), detail: "end of run: network healed, every node running",
                       at: clock.nanos())
    }

    /// Waits until every node answers `status` and knows a leader (or the time runs out).
    private func waitForAllAnswering(admin: SynodClient, endpoints: [String], seconds: Int) async {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline && !Task.isCancelled {
            let results = await admin.statusAll()
            let good = results.filter { entry in
                if case .success(let status) = entry.result { return status.leader != 0 }
                return false
            }
            if good.count == endpoints.count { return }
            try? await Task.sleep(for: .milliseconds(200))
        }
    }

    /// Waits until every node reports the same revision and applied index twice in a row.
    private func waitForConvergence(admin: SynodClient, endpoints: [String], seconds: Int) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        var previous: [Int64]?
        while ContinuousClock.now < deadline && !Task.isCancelled {
            let results = await admin.statusAll()
            var values: [Int64] = []
            for (_, result) in results {
                guard case .success(let status) = result else { break }
                values.append(status.header.revision)
                values.append(Int64(truncatingIfNeeded: status.raftAppliedIndex))
            }
            if values.count == 2 * endpoints.count {
                let revisions = stride(from: 0, to: values.count, by: 2).map { values[$0] }
                let applied = stride(from: 1, to: values.count, by: 2).map { values[$0] }
                let same = Set(revisions).count == 1 && Set(applied).count == 1
                if same && previous == values { return true }
                previous = same ? values : nil
            } else {
                previous = nil
            }
            try? await Task.sleep(for: .milliseconds(300))
        }
        return false
    }

    /// Reads every key linearizably after the clients stopped (recorded with `final: true`).
    private func finalReads(endpoints: [String], recorder: ChaosRecorder, clock: ChaosClock) async throws {
        let config = SynodClientConfiguration(endpoints: endpoints, requestTimeout: .seconds(5),
                                              attemptTimeout: .seconds(2), retryBackoff: .milliseconds(100))
        try await withSynodClient(config) { client in
            for keyIndex in 0..<options.keys {
                let key = ChaosClients.keyName(keyIndex)
                for _ in 0..<5 {
                    var op = ChaosOperation(id: recorder.nextID(), client: -1, kind: .read, key: key,
                                            invokedNanos: clock.nanos(), endpoint: endpoints.first, final: true)
                    do {
                        let response = try await client.get(key)
                        op.completedNanos = clock.nanos()
                        let kv = response.kvs.first
                        op.readValue = kv.map { String(decoding: $0.value, as: UTF8.self) }
                        op.modRevision = kv?.modRevision
                        op.revision = response.header.revision
                        op.status = .ok
                        recorder.record(op)
                        break
                    } catch {
                        op.completedNanos = clock.nanos()
                        op.status = .fail
                        op.error = ChaosClients.describe(error)
                        recorder.record(op)
                        try Task.checkCancellation()
                    }
                }
            }
        }
    }

    /// Compares every node's KV hash at the lowest revision all of them have.
    private func replicaHashes(admin: SynodClient, addresses: [ChaosNodeAddresses]) async -> (Bool, Int64, [String: UInt32]) {
        var revisions: [Int64] = []
        for address in addresses {
            if let status = try? await admin.status(endpoint: address.clientURL) {
                revisions.append(status.header.revision)
            }
        }
        guard revisions.count == addresses.count, let revision = revisions.min() else {
            log("replica hashes: not every node answered status")
            return (false, 0, [:])
        }
        var hashes: [String: UInt32] = [:]
        var equal = true
        for address in addresses {
            do {
                let response = try await admin.hashKV(endpoint: address.clientURL, revision: revision)
                hashes[address.name] = response.hash
            } catch {
                log("replica hashes: \(address.name): \(error)")
                equal = false
            }
        }
        if Set(hashes.values).count > 1 { equal = false }
        return (equal, revision, hashes)
    }

    private func alarmList(admin: SynodClient, memberIDs: [UInt64: Int]) async -> [String] {
        do {
            let response = try await admin.alarmList()
            return response.alarms.map { alarm in
                let node = memberIDs[alarm.memberID].map { "n\($0 + 1)" } ?? String(alarm.memberID, radix: 16)
                return "\(alarm.alarm) on \(node)"
            }
        } catch {
            log("warning: alarm list failed: \(error)")
            return []
        }
    }

    private func progress(recorder: ChaosRecorder, events: NemesisLog, clock: ChaosClock) async {
        guard !options.quiet else { return }
        let interval = Duration.milliseconds(Int64(max(0.5, options.progressIntervalSeconds) * 1000))
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: interval)
            } catch {
                return
            }
            let counts = recorder.counts()
            log("t=\(seconds(clock.nanos()))s ops ok \(counts.ok), unknown \(counts.unknown), fail \(counts.fail); fault: \(events.current ?? "none")")
        }
    }
}
