import Foundation

/// `synod bench compare`: a 3-member Synod cluster and a 3-member etcd cluster on this machine,
/// the same workloads against each in alternation, and one table of the medians.
///
/// - Important: every server process it starts is a child of `ChildRegistry.shared` and is
///   stopped before ``run()`` returns or throws; a signal handler should call
///   `ChildRegistry.shared.killAll()` and cancel the task running ``run()``.
public struct CompareRunner: Sendable {
    public let options: CompareOptions
    public let log: @Sendable (String) -> Void

    /// The key prefix of the memory phase's keys.
    static let memoryPrefix = "mem/"
    /// Concurrent writers of the bulk loader.
    static let loaderWorkers = 256

    public init(options: CompareOptions, log: @escaping @Sendable (String) -> Void) {
        self.options = options
        self.log = log
    }

    /// Runs everything and writes results.json, results.md (and chart.png with gnuplot) into
    /// the output directory.
    public func run() async throws -> CompareReport {
        try options.validate()
        let fileManager = FileManager.default
        guard fileManager.isExecutableFile(atPath: options.synodBinary) else {
            throw CompareError("synod executable not found at \(options.synodBinary) (--synod-bin)")
        }
        if !options.skipEtcd, !fileManager.isExecutableFile(atPath: options.etcdBinary) {
            throw CompareError("etcd not found at \(options.etcdBinary): install it (apt-get install etcd-server), pass --etcd-bin, or --skip-etcd")
        }
        let directory = options.outDirectory
        // With --tls: the certificates (before any cluster is described: the TLS members' flags
        // name their files).
        let pki = options.tls ? ComparePKI(directory: directory + "/pki") : nil
        let clusters = options.systems.flatMap { system in
            options.transports.map { tls -> CompareCluster in
                let base = options.basePort
                switch (system, tls ? pki : nil) {
                case (.synod, nil):
                    return CompareCluster(system: .synod, members: CompareClusterLayout.synod(binary: options.synodBinary, basePort: base, directory: directory))
                case (.etcd, nil):
                    return CompareCluster(system: .etcd, members: CompareClusterLayout.etcd(binary: options.etcdBinary, basePort: base, directory: directory))
                case (.synod, let pki?):
                    return CompareCluster(system: .synod, members: CompareClusterLayout.synodTLS(binary: options.synodBinary, basePort: base, directory: directory, pki: pki), pki: pki)
                case (.etcd, let pki?):
                    return CompareCluster(system: .etcd, members: CompareClusterLayout.etcdTLS(binary: options.etcdBinary, basePort: base, directory: directory, pki: pki), pki: pki)
                }
            }
        }
        try CompareClusterLayout.checkPortsFree(clusters.flatMap(\.members))
        do {
            removeMemberData(clusters)
            try fileManager.createDirectory(atPath: directory + "/logs", withIntermediateDirectories: true)
        } catch {
            throw CompareError("cannot create \(directory): \(error.localizedDescription)")
        }
        if let pki {
            let names = clusters.filter { $0.isTLS }.flatMap { $0.members.map { $0.name } }
            _ = try ComparePKI.make(directory: pki.directory, members: names)
            log("tls: CA and certificates for \(names.joined(separator: ", ")) and client '\(ComparePKI.clientUser)' in \(pki.directory)")
        }

        let machine = CompareMachineInfo.machine(etcdBinary: options.skipEtcd ? nil : options.etcdBinary)
        log("machine: \(machine.system); \(machine.cpuModel); \(machine.cores) cores; etcd \(machine.etcdVersion ?? "-"); synod \(machine.synodCommit ?? "-")")
        let baselines = try await measureBaselines()

        do {
            let report = try await measure(clusters, machine: machine, baselines: baselines)
            for cluster in clusters { await cluster.stop() }
            if !options.keepData { removeMemberData(clusters) }
            return try write(report)
        } catch {
            for cluster in clusters { cluster.killNow() }
            for cluster in clusters { await cluster.stop(graceSeconds: 0) }
            if !options.keepData { removeMemberData(clusters) }
            throw error
        }
    }

    /// Deletes the members' data directories (and their parent when that leaves it empty), and
    /// nothing else under the output directory.
    private func removeMemberData(_ clusters: [CompareCluster]) {
        for member in clusters.flatMap(\.members) { try? FileManager.default.removeItem(atPath: member.dataDirectory) }
        rmdir(options.outDirectory + "/data")
    }

    private func measure(_ clusters: [CompareCluster], machine: CompareMachine, baselines: CompareBaselines?) async throws -> CompareReport {
        for cluster in clusters {
            try cluster.startAll()
            log("\(cluster.label): started \(cluster.members.map(\.name).joined(separator: ", ")) on \(cluster.endpoints.joined(separator: ", "))")
        }
        for cluster in clusters {
            try checkAlive(cluster)
            let start = ContinuousClock.now
            let leaderIndex = try await leader(cluster)
            log("\(cluster.label): \(cluster.members[leaderIndex].name) leads after \(CompareFormat.seconds(CompareClient.seconds(since: start))) s")
        }

        var measurements: [CompareMeasurement] = []
        let schedule = compareSchedule(rounds: options.rounds, rows: options.rows, systems: options.systems, transports: options.transports)
        for (number, step) in schedule.enumerated() {
            try Task.checkCancellation()
            guard let cluster = clusters.first(where: { $0.system == step.system && $0.isTLS == step.tls }) else { continue }
            try checkAlive(cluster)
            let benchOptions = step.row.benchOptions(
                endpoints: cluster.endpoints, durationSeconds: options.durationSeconds, conns: options.conns,
                valueBytes: options.valueBytes, keySpace: options.keySpace, tls: cluster.benchTLS)
            let label = "[\(number + 1)/\(schedule.count)] round \(step.round) \(step.row) \(step.label)"
            do {
                let result = try await LoadGenerator.run(benchOptions)
                let errors = result.errors.values.reduce(0, +)
                if result.operations == 0 {
                    // Not a zero in the table: a row where every request failed (a refused
                    // handshake, say) is a failed measurement with its error counts.
                    let counts = result.errors.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
                    throw CompareError("no request succeeded" + (counts.isEmpty ? "" : " (\(counts))"))
                }
                measurements.append(CompareMeasurement(step: step, result: result))
                log("\(label): \(CompareFormat.rate(result.throughput)) ops/s, p50 \(CompareFormat.millis(result.latency.p50Micros)) ms, "
                    + "p99 \(CompareFormat.millis(result.latency.p99Micros)) ms" + (errors > 0 ? ", \(errors) errors" : ""))
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                try Task.checkCancellation()
                measurements.append(CompareMeasurement(step: step, result: nil, error: "\(error)"))
                log("\(label): failed: \(error)")
            }
            try await Task.sleep(for: .milliseconds(300))
        }
        let members = clusters.flatMap { $0.memory() }

        var phases: [CompareMemoryPhase] = []
        if options.memoryKeys > 0 {
            for cluster in clusters where !cluster.isTLS { phases.append(try await memoryPhase(cluster)) }
        }
        var notes: [String] = []
        if options.synodBinary.contains("/debug/") {
            notes.append("warning: \(options.synodBinary) is a debug build; use a release build (Scripts/bench-compare.sh) for figures worth comparing")
        }
        if options.skipEtcd { notes.append("etcd skipped (--skip-etcd)") }
        if options.skipSynod { notes.append("Synod skipped (--skip-synod)") }
        if options.memoryKeys == 0 { notes.append("memory and restart phase skipped (--memory-keys 0)") }
        if baselines == nil { notes.append("baselines skipped (--wal-seconds 0)") }
        if let pki = clusters.first(where: { $0.isTLS })?.pki {
            var note = "tls: rows marked mTLS ran on a second cluster per system with mutual TLS on the client and peer ports"
            note += " (--client-cert-auth, --peer-client-cert-auth, https:// URLs; ECDSA P-256 certificates from \(pki.directory)),"
            note += " each measured right after the same row in plaintext; the load generator presents the client certificate"
            note += " '\(ComparePKI.clientUser)' and negotiates h2 by ALPN; every connection is opened (TCP, TLS handshake, HTTP/2"
            note += " settings, one call) before the clock starts, so handshakes are not in the figures"
            if options.memoryKeys > 0 { note += "; the memory phase ran on the plaintext clusters" }
            notes.append(note)
        }
        notes.append("peak RSS: VmHWM of each member at the end of the workloads, before the memory phase")
        return CompareReport(machine: machine, options: options, measurements: measurements, baselines: baselines,
                             members: members, memoryPhases: phases, notes: notes)
    }

    /// Waits for a leader; returns its index among the cluster's members.
    private func leader(_ cluster: CompareCluster) async throws -> Int {
        let answer = try await CompareClient.waitForLeader(cluster.endpoints, timeoutSeconds: options.startTimeoutSeconds, tls: cluster.benchTLS)
        guard let index = answer.members.firstIndex(of: answer.leader) else { throw CompareError("\(cluster.label): leader is not a member") }
        return index
    }

    private func checkAlive(_ cluster: CompareCluster) throws {
        if let gone = cluster.exited().first {
            let path = cluster.members.first { $0.name == gone.name }?.logPath ?? ""
            throw CompareError("\(cluster.label) member \(gone.name) exited with status \(gone.status); see \(path)")
        }
    }

    /// Loads `memoryKeys` distinct keys, reads every member's memory, then kills a follower with
    /// SIGKILL, restarts it and times its first serializable read of the last key loaded.
    private func memoryPhase(_ cluster: CompareCluster) async throws -> CompareMemoryPhase {
        let name = cluster.system.rawValue
        var phase = CompareMemoryPhase(system: cluster.system, keys: options.memoryKeys, valueBytes: options.valueBytes)
        do {
            try checkAlive(cluster)
            let leaderIndex = try await leader(cluster)
            log("\(name): loading \(options.memoryKeys) keys of \(options.valueBytes) bytes ...")
            let loadSeconds = try await CompareClient.load(
                endpoint: cluster.endpoints[leaderIndex], prefix: Self.memoryPrefix, keys: options.memoryKeys,
                valueBytes: options.valueBytes, workers: Self.loaderWorkers, conns: options.conns)
            phase.loadSeconds = loadSeconds
            phase.afterLoad = cluster.memory()
            log("\(name): loaded in \(CompareFormat.seconds(loadSeconds)) s; RSS "
                + phase.afterLoad.map { "\($0.name) \(CompareFormat.mebibytes($0.rssBytes)) MiB" }.joined(separator: ", "))
            phase.range = await rangePhase(cluster, leaderIndex: leaderIndex)
            if options.snapshotWritesSeconds > 0 {
                phase.snapshotWrites = await snapshotWritesPhase(cluster, leaderIndex: try await leader(cluster))
            }
            let follower = leaderIndex == 0 ? 1 : 0
            let lastKey = CompareClient.key(prefix: Self.memoryPrefix, index: options.memoryKeys - 1, keyCount: options.memoryKeys)
            phase.restartedMember = cluster.members[follower].name
            let timeout = options.restartTimeoutSeconds
            phase.restartSeconds = try await CompareClient.withClient(cluster.endpoints[follower], fastReconnect: true) { client in
                await cluster.kill9(follower)
                let start = ContinuousClock.now
                try cluster.start(follower)
                return try await CompareClient.pollUntilServed(client, key: lastKey, since: start, timeoutSeconds: timeout)
            }
            log("\(name): \(cluster.members[follower].name) killed (SIGKILL) and restarted; first read after \(CompareFormat.seconds(phase.restartSeconds)) s")
            if options.join { phase.join = try await joinPhase(cluster, leaderIndex: try await leader(cluster)) }
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            try Task.checkCancellation()
            phase.error = "\(error)"
            log("\(name): memory phase failed: \(error)")
        }
        return phase
    }

    /// The raw fsync rate and the log with 256 writers (``WALBenchmark``) in the output
    /// directory, and the pure core's commands/s (``CoreBenchmark``).
    private func measureBaselines() async throws -> CompareBaselines? {
        guard options.walSeconds > 0 else { return nil }
        var baselines = CompareBaselines(walWriters: Self.loaderWorkers)
        let recordBytes = min(max(options.valueBytes, 64), 1 << 20)
        let wal = WALBenchmark(directory: options.outDirectory + "/wal-bench.tmp", recordBytes: recordBytes, secondsPerRow: options.walSeconds)
        do {
            let raw = try wal.rawSyncRate()
            baselines.rawFsyncPerSecond = raw.syncsPerSecond
            let row = try wal.run(writers: Self.loaderWorkers)
            baselines.walRecordsPerSecond = row.recordsPerSecond
            baselines.walRecordsPerSync = Double(row.records) / Double(max(1, row.syncs))
            let core = CoreBenchmark(nodes: 3, batchCommandsMax: 256, windowSlots: 32, payloadBytes: options.valueBytes)
            let start = ContinuousClock.now
            let report = try core.run(commands: options.coreCommands)
            baselines.coreCommandsPerSecond = Double(report.commands) / max(1e-9, CompareClient.seconds(since: start))
            baselines.coreCommandsPerSlot = Double(report.commands) / Double(max(1, report.slots))
        } catch {
            baselines.error = "\(error)"
        }
        try? FileManager.default.removeItem(atPath: options.outDirectory + "/wal-bench.tmp")
        log(baselines.line ?? "baselines: none")
        try Task.checkCancellation()
        return baselines
    }

    /// results.json, results.md and (with gnuplot) chart.png.
    func write(_ report: CompareReport) throws -> CompareReport {
        var report = report
        let directory = options.outDirectory
        report.notes.append(CompareChart.write(report, directory: directory))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        do {
            try encoder.encode(report).write(to: URL(fileURLWithPath: directory + "/results.json"))
            try Data(report.markdown.utf8).write(to: URL(fileURLWithPath: directory + "/results.md"))
        } catch {
            throw CompareError("cannot write the results to \(directory): \(error.localizedDescription)")
        }
        return report
    }
}
