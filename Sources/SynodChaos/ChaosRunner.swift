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
    /// Test-only: every node measures its read lease in ticks, which stop while the process is
    /// stopped (SYNOD_FAILPOINTS=tick-lease): the stall nemesis must catch it.
    public var brokenLease: Bool = false
    /// Run every `synod serve` as this user (a name from /etc/passwd), through `setpriv`:
    /// what needs root (network namespaces, iptables) stays with the harness, the servers do
    /// not get it. Needs root; nil runs them as the harness's own user.
    public var serveUser: String?
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
        if let kind = nemesis.first(where: \.changesMembership), !MembershipPlanner.nodesAccepted.contains(nodes) {
            throw ChaosOptionsError("--nemesis \(kind.rawValue) needs --nodes between \(MembershipPlanner.votersMin) and \(MembershipPlanner.votersMax), got \(nodes)")
        }
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

    /// Whether the membership changes during the run.
    public var changesMembership: Bool { nemesis.contains(where: \.changesMembership) }

    /// How many nodes the run may start: the original ones plus one per planned add.
    public var nodeSlots: Int { MembershipPlanner.nodesNeeded(nodes: nodes, plan: schedule) }
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
        var dropPrivileges: [String] = []
        if let user = options.serveUser {
            let account = try ServeUser(name: user)
            // The servers create their own data directories under report/data.
            guard chown("\(report)/data", account.uid, account.gid) == 0 else {
                throw ChaosRunError("cannot hand \(report)/data to \(user): \(String(cString: strerror(errno)))")
            }
            dropPrivileges = account.setprivPrefix
        }
        let clock = ChaosClock()
        let addresses = try await network.prepare(nodeCount: options.nodeSlots)
        let processes = ClusterProcesses(
            binary: options.synodBinary, addresses: addresses,
            launchPrefixes: addresses.indices.map { network.launchPrefix(node: $0) + dropPrivileges },
            reportDirectory: report, clusterToken: "chaos-\(options.seed)", snapshotCount: options.snapshotCount,
            brokenReads: options.brokenReads, brokenLease: options.brokenLease,
            tearOnSignal: options.nemesis.contains(.crashAllTorn), clock: clock, originalCount: options.nodes)
        let members = ChaosMembership(addresses: addresses, originalCount: options.nodes)
        let admin = ChaosAdmin(members: members)
        let outcome: Result<(ChaosVerdict, [ChaosOperation], [NemesisEvent]), any Error>
        do {
            outcome = .success(try await experiment(processes: processes, members: members, admin: admin, clock: clock))
        } catch {
            outcome = .failure(error)
        }
        admin.shutdown()
        processes.killAllNow()
        await network.teardown()
        let (verdict, operations, events) = try outcome.get()
        let writer = ChaosReportWriter(directory: report)
        do {
            try writer.writeAll(operations: operations, nemesis: events, verdict: verdict,
                                nodeNames: members.used.map { addresses[$0].name },
                                title: "synod chaos: \(options.nodes) nodes, seed \(options.seed)")
        } catch {
            log("warning: could not write the report: \(error)")
        }
        if !verdict.failed && !options.keepData {
            try? FileManager.default.removeItem(atPath: "\(report)/data")
        }
        return verdict
    }

    private func experiment(processes: ClusterProcesses, members: ChaosMembership, admin: ChaosAdmin,
                            clock: ChaosClock) async throws -> (ChaosVerdict, [ChaosOperation], [NemesisEvent]) {
        let original = Array(0..<options.nodes)
        for index in original { try processes.start(index) }
        let memberIDs = try await waitForReadiness(admin: admin, nodes: original, members: members, processes: processes)
        for (id, index) in memberIDs { members.setMemberID(index, id) }
        let addresses = members.addresses
        log("cluster ready: \(options.nodes) nodes (\(original.map { "\(addresses[$0].name) \(addresses[$0].clientURL)" }.joined(separator: ", "))) at t=\(seconds(clock.nanos()))s")

        let recorder = ChaosRecorder()
        let events = NemesisLog()
        let stop = ChaosStopFlag()
        let windDown = ChaosStopFlag()
        let tally = MembershipTally()
        let clients = ChaosClients(members: members, clients: options.clients, keys: options.keys,
                                   opTimeoutSeconds: options.opTimeoutSeconds, seed: options.seed,
                                   recorder: recorder, clock: clock, stop: stop)
        let leaders = LeaderFinder(admin: admin, members: members)
        let membership = MembershipNemesis(processes: processes, network: network, members: members, leaders: leaders,
                                           clock: clock, events: events, tally: tally, log: log)
        let runStart = clock.nanos()
        var plan = options.schedule
        for i in plan.indices { plan[i].startNanos += runStart }
        let nemesis = NemesisRunner(plan: plan, processes: processes, network: network, leaders: leaders,
                                    members: members, membership: membership, clock: clock, events: events,
                                    windDown: windDown, log: log)
        let supervisor = CrashSupervisor(processes: processes, clock: clock, events: events, log: log)

        let supervisorTask = Task { await supervisor.run() }
        let clientsTask = Task { await clients.run() }
        let nemesisTask = Task { await nemesis.run() }
        let progressTask = Task { await progress(recorder: recorder, events: events, members: members, clock: clock) }
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

        // Wind down: end the fault in force, finish a rolling replacement, heal everything,
        // bring every member back without failpoints.
        windDown.set()
        let pendingReplacement = plan.contains { $0.kind == .replace }
        if pendingReplacement { log("duration over: finishing the rolling replacement's remaining steps, if any") }
        let nemesisDeadline = Task {
            try? await Task.sleep(for: .seconds(pendingReplacement ? 600 : 120))
            nemesisTask.cancel()
        }
        await nemesisTask.value
        nemesisDeadline.cancel()
        try Task.checkCancellation()
        try await heal(processes: processes, events: events, clock: clock)
        var membershipProblem: String?
        if options.changesMembership {
            membershipProblem = await membership.reconcile()
            try await healMembers(processes: processes, members: members)
        }
        // Let the healed cluster serve the clients for a moment (every member answering), then
        // stop the clients and wait until every replica applied the same history.
        await waitForAllAnswering(admin: admin, members: members, seconds: 10)
        stop.set()
        await clientsTask.value
        let converged = await waitForConvergence(admin: admin, members: members, seconds: 30)
        if !converged { log("warning: the nodes did not converge within 30 s") }
        progressTask.cancel()
        let elapsed = Double(clock.nanos() - runStart) / 1e9
        try Task.checkCancellation()

        // Final reads, replica hashes, alarms: over the final members.
        let finalMembers = members.members
        try await finalReads(endpoints: members.clientView().endpoints, recorder: recorder, clock: clock)
        _ = await waitForConvergence(admin: admin, members: members, seconds: 10)
        let (hashesEqual, hashRevision, hashes) = await replicaHashes(admin: admin, nodes: finalMembers, members: members)
        let alarms = await alarmList(admin: admin, members: members)
        supervisorTask.cancel()
        await supervisorTask.value

        let operations = recorder.operations
        let nemesisEvents = events.events
        log("checking \(operations.count) operations...")
        var verdict = ChaosCheck.verdict(
            operations: operations, nemesis: nemesisEvents, replicaHashesEqual: hashesEqual,
            hashRevision: hashRevision, replicaHashes: hashes, alarms: alarms, durationSeconds: elapsed,
            seed: options.seed, strict: options.strict, searchStepsMax: options.checkerStepsMax)
        if options.changesMembership {
            if membershipProblem == nil, options.nemesis.contains(.replace) {
                membershipProblem = Self.replacementProblem(voters: members.voters, learners: members.learners,
                                                            originalCount: options.nodes)
            }
            if membershipProblem == nil, !converged { membershipProblem = "the final members did not converge" }
            ChaosCheck.addMembership(to: &verdict, finalMembers: finalMembers.map { addresses[$0].name },
                                     summary: tally.summary, problem: membershipProblem)
            log("membership: \(tally.summary); final members \(members.names(finalMembers)) (voters \(members.names(members.voters)))")
            if let proxy = network as? ProxyNetwork, let unmapped = proxy.statistics()["unmappedSenders"], unmapped > 0 {
                log("proxy: \(unmapped) peer connection(s) from a sender id it could not place (forwarded, never cut)")
            }
        }
        if let violation = verdict.violation { log(violation) }
        if verdict.lostAcknowledgedWrites > 0 {
            log("lost acknowledged writes (operation ids): \(verdict.lostOperationIDs.prefix(20).map(String.init).joined(separator: ", "))")
        }
        return (verdict, operations, nemesisEvents)
    }

    /// What is wrong with the end state of a rolling replacement (nil: 3 voters, none original,
    /// no learner).
    static func replacementProblem(voters: [Int], learners: [Int], originalCount: Int) -> String? {
        let originals = voters.filter { $0 < originalCount }
        if !originals.isEmpty {
            return "rolling replacement incomplete: original members still vote (\(originals.map { "n\($0 + 1)" }.joined(separator: ",")))"
        }
        if voters.count != MembershipPlanner.votersMin {
            return "rolling replacement ended with \(voters.count) voters, not \(MembershipPlanner.votersMin)"
        }
        if !learners.isEmpty { return "rolling replacement left learners (\(learners.map { "n\($0 + 1)" }.joined(separator: ",")))" }
        return nil
    }

    func seconds(_ nanos: UInt64) -> String { String(format: "%.1f", Double(nanos) / 1e9) }

    /// Waits until every node of `nodes` answers `status` and knows a leader; returns member
    /// id -> index.
    private func waitForReadiness(admin: ChaosAdmin, nodes: [Int], members: ChaosMembership,
                                  processes: ClusterProcesses) async throws -> [UInt64: Int] {
        let deadline = ContinuousClock.now + .seconds(30)
        var lastProblem = "no answer yet"
        let client = try admin.client()
        while ContinuousClock.now < deadline {
            try Task.checkCancellation()
            if let down = processes.downNodes().first {
                throw ChaosRunError("n\(down + 1) exited during startup; see \(processes.logPath(down))")
            }
            var ids: [UInt64: Int] = [:]
            var ready = true
            for index in nodes {
                do {
                    let status = try await client.status(endpoint: members.addresses[index].clientURL)
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
            if ready && ids.count == nodes.count { return ids }
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
        for index in processes.activeIndices() {
            processes.resume(index)
            if processes.failpoints(index) != nil {
                await processes.kill(index, reason: "killed to clear failpoints at the end")
                processes.setFailpoints(index, nil)
            }
        }
        for index in processes.downNodes() {
            try processes.start(index, reason: "restarted for the final checks")
        }
        events.instant(kind: "heal", nodes: processes.activeIndices(), detail: "end of run: network healed, every node running",
                       at: clock.nanos())
    }

    /// After reconciling the membership: every member runs, every other node is stopped.
    private func healMembers(processes: ClusterProcesses, members: ChaosMembership) async throws {
        let current = Set(members.members)
        for index in processes.activeIndices() where !current.contains(index) {
            await processes.kill(index, reason: "stopped: not a member at the end")
            processes.retire(index)
        }
        for index in processes.downNodes() where current.contains(index) {
            try processes.start(index, reason: "restarted for the final checks")
        }
    }

    private func progress(recorder: ChaosRecorder, events: NemesisLog, members: ChaosMembership, clock: ChaosClock) async {
        guard !options.quiet else { return }
        let interval = Duration.milliseconds(Int64(max(0.5, options.progressIntervalSeconds) * 1000))
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: interval)
            } catch {
                return
            }
            let counts = recorder.counts()
            let voters = options.changesMembership ? "; voters \(members.names(members.voters))" : ""
            log("t=\(seconds(clock.nanos()))s ops ok \(counts.ok), unknown \(counts.unknown), fail \(counts.fail); fault: \(events.current ?? "none")\(voters)")
        }
    }
}
