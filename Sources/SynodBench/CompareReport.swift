/// One measurement of a `compare` run: the load generator's result, or why there is none.
public struct CompareMeasurement: Codable, Sendable, Equatable {
    public var step: CompareStep
    public var result: BenchResult?
    public var error: String?

    public init(step: CompareStep, result: BenchResult?, error: String? = nil) {
        self.step = step
        self.result = result
        self.error = error
    }
}

/// One system's figures in one row: the median over the rounds that produced a result.
public struct CompareFigures: Codable, Sendable, Equatable {
    public var throughput: Double
    public var p50Micros: Double
    public var p99Micros: Double
    /// Rounds that produced a result.
    public var rounds: Int
    /// Failed requests summed over those rounds.
    public var errors: Int

    public init(throughput: Double, p50Micros: Double, p99Micros: Double, rounds: Int, errors: Int) {
        self.throughput = throughput
        self.p50Micros = p50Micros
        self.p99Micros = p99Micros
        self.rounds = rounds
        self.errors = errors
    }
}

/// One row of the summary table.
public struct CompareSummaryRow: Codable, Sendable, Equatable {
    public var row: CompareRow
    /// Both systems' clusters with mutual TLS (`--tls`); false: plaintext.
    public var tls: Bool
    public var synod: CompareFigures?
    public var etcd: CompareFigures?

    public init(row: CompareRow, tls: Bool = false, synod: CompareFigures?, etcd: CompareFigures?) {
        self.row = row
        self.tls = tls
        self.synod = synod
        self.etcd = etcd
    }

    private enum CodingKeys: String, CodingKey { case row, tls, synod, etcd }

    /// Results written before `--tls` existed have no `tls`: plaintext.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        row = try container.decode(CompareRow.self, forKey: .row)
        tls = try container.decodeIfPresent(Bool.self, forKey: .tls) ?? false
        synod = try container.decodeIfPresent(CompareFigures.self, forKey: .synod)
        etcd = try container.decodeIfPresent(CompareFigures.self, forKey: .etcd)
    }

    /// "put@1", "put@1 tls".
    public var label: String { row.description + (tls ? " tls" : "") }

    public func figures(_ system: CompareSystem) -> CompareFigures? {
        switch system {
        case .synod: synod
        case .etcd: etcd
        }
    }

    /// Synod throughput / etcd throughput (> 1: Synod serves more).
    public var throughputRatio: Double? { ratio(synod?.throughput, etcd?.throughput) }
    /// etcd p50 / Synod p50 (> 1: Synod is faster).
    public var p50Ratio: Double? { ratio(etcd?.p50Micros, synod?.p50Micros) }
    /// etcd p99 / Synod p99 (> 1: Synod is faster).
    public var p99Ratio: Double? { ratio(etcd?.p99Micros, synod?.p99Micros) }

    private func ratio(_ numerator: Double?, _ denominator: Double?) -> Double? {
        guard let numerator, let denominator, denominator > 0 else { return nil }
        return numerator / denominator
    }
}

/// What TLS costs one system in one row: its TLS figures over its plaintext figures, each a
/// median over the rounds, measured back to back in every round.
public struct CompareTLSCost: Codable, Sendable, Equatable {
    /// TLS throughput / plaintext throughput (below 1: TLS serves fewer).
    public var throughputRatio: Double
    /// TLS p50 / plaintext p50 (above 1: TLS is slower).
    public var p50Ratio: Double
    /// TLS p99 / plaintext p99 (above 1: TLS is slower).
    public var p99Ratio: Double

    public init(plaintext: CompareFigures, tls: CompareFigures) {
        func over(_ numerator: Double, _ denominator: Double) -> Double { denominator > 0 ? numerator / denominator : .nan }
        throughputRatio = over(tls.throughput, plaintext.throughput)
        p50Ratio = over(tls.p50Micros, plaintext.p50Micros)
        p99Ratio = over(tls.p99Micros, plaintext.p99Micros)
    }
}

/// The cost of TLS in one row for both systems (`--tls`).
public struct CompareTLSCostRow: Codable, Sendable, Equatable {
    public var row: CompareRow
    public var synod: CompareTLSCost?
    public var etcd: CompareTLSCost?

    public init(row: CompareRow, synod: CompareTLSCost?, etcd: CompareTLSCost?) {
        self.row = row
        self.synod = synod
        self.etcd = etcd
    }

    public func cost(_ system: CompareSystem) -> CompareTLSCost? {
        switch system {
        case .synod: synod
        case .etcd: etcd
        }
    }
}

/// Per row, TLS over plaintext for each system that has both lines in `summary`.
public func compareTLSCost(_ summary: [CompareSummaryRow]) -> [CompareTLSCostRow] {
    var rows: [CompareTLSCostRow] = []
    for tlsLine in summary where tlsLine.tls {
        guard let plain = summary.first(where: { !$0.tls && $0.row == tlsLine.row }) else { continue }
        func cost(_ system: CompareSystem) -> CompareTLSCost? {
            guard let base = plain.figures(system), let secure = tlsLine.figures(system) else { return nil }
            return CompareTLSCost(plaintext: base, tls: secure)
        }
        rows.append(CompareTLSCostRow(row: tlsLine.row, synod: cost(.synod), etcd: cost(.etcd)))
    }
    return rows
}

/// The single-machine ceilings the servers are held against, measured in-process on the disk
/// of the data directories before the clusters start.
public struct CompareBaselines: Codable, Sendable, Equatable {
    /// 256-byte write + fdatasync per second on one preallocated file.
    public var rawFsyncPerSecond: Double?
    /// Writers of the write-ahead-log row below.
    public var walWriters: Int
    /// Records per second through Synod's write-ahead log (group commit) with `walWriters` writers.
    public var walRecordsPerSecond: Double?
    /// Records per fsync in that row: the group-commit batch.
    public var walRecordsPerSync: Double?
    /// Commands per second through the pure Paxos core (3 replicas, no network, no disk).
    public var coreCommandsPerSecond: Double?
    public var coreCommandsPerSlot: Double?
    public var error: String?

    public init(rawFsyncPerSecond: Double? = nil, walWriters: Int = 256, walRecordsPerSecond: Double? = nil, walRecordsPerSync: Double? = nil,
                coreCommandsPerSecond: Double? = nil, coreCommandsPerSlot: Double? = nil, error: String? = nil) {
        self.rawFsyncPerSecond = rawFsyncPerSecond
        self.walWriters = walWriters
        self.walRecordsPerSecond = walRecordsPerSecond
        self.walRecordsPerSync = walRecordsPerSync
        self.coreCommandsPerSecond = coreCommandsPerSecond
        self.coreCommandsPerSlot = coreCommandsPerSlot
        self.error = error
    }
}

/// A member's memory as /proc/PID/status reported it.
public struct CompareMemberMemory: Codable, Sendable, Equatable {
    public var system: CompareSystem
    public var name: String
    /// VmHWM (peak resident set) in bytes.
    public var peakRSSBytes: Int?
    /// VmRSS (current resident set) in bytes.
    public var rssBytes: Int?

    public init(system: CompareSystem, name: String, peakRSSBytes: Int?, rssBytes: Int?) {
        self.system = system
        self.name = name
        self.peakRSSBytes = peakRSSBytes
        self.rssBytes = rssBytes
    }
}

/// The memory and restart phase of one system.
public struct CompareMemoryPhase: Codable, Sendable, Equatable {
    public var system: CompareSystem
    public var keys: Int
    public var valueBytes: Int
    public var loadSeconds: Double?
    /// Every member's memory right after loading.
    public var afterLoad: [CompareMemberMemory]
    /// The follower killed with SIGKILL and restarted.
    public var restartedMember: String?
    /// From the restart until it answered a serializable get of the last key loaded.
    public var restartSeconds: Double?
    /// One Range over every loaded key, on the leader (before the restart).
    public var range: CompareRange?
    /// Puts while the leader snapshots the loaded state (after the range).
    public var snapshotWrites: CompareSnapshotWrites?
    /// With `--join`: a fourth member added as a learner and caught up.
    public var join: CompareJoin?
    public var error: String?

    public init(system: CompareSystem, keys: Int, valueBytes: Int, loadSeconds: Double? = nil, afterLoad: [CompareMemberMemory] = [],
                restartedMember: String? = nil, restartSeconds: Double? = nil, error: String? = nil) {
        self.system = system
        self.keys = keys
        self.valueBytes = valueBytes
        self.loadSeconds = loadSeconds
        self.afterLoad = afterLoad
        self.restartedMember = restartedMember
        self.restartSeconds = restartSeconds
        self.error = error
    }

    /// The largest resident set of any member after loading.
    public var maxRSSBytes: Int? { afterLoad.compactMap(\.rssBytes).max() }
}

/// Where and with what the comparison ran.
public struct CompareMachine: Codable, Sendable, Equatable {
    /// UTC, ISO 8601.
    public var date: String
    /// `uname -srm`.
    public var system: String
    public var cpuModel: String
    public var cores: Int
    public var memoryBytes: Int?
    public var etcdVersion: String?
    public var synodCommit: String?

    public init(date: String, system: String, cpuModel: String, cores: Int, memoryBytes: Int?, etcdVersion: String?, synodCommit: String?) {
        self.date = date
        self.system = system
        self.cpuModel = cpuModel
        self.cores = cores
        self.memoryBytes = memoryBytes
        self.etcdVersion = etcdVersion
        self.synodCommit = synodCommit
    }
}

/// Everything a `compare` run measured: what results.json holds.
public struct CompareReport: Codable, Sendable, Equatable {
    public var machine: CompareMachine
    public var options: CompareOptions
    /// Every measurement of every round, in the order they ran.
    public var measurements: [CompareMeasurement]
    /// Per row: plaintext, and with `--tls` a TLS line right after it.
    public var summary: [CompareSummaryRow]
    /// With `--tls`: per row, TLS / plaintext for each system.
    public var tlsCost: [CompareTLSCostRow]
    public var baselines: CompareBaselines?
    /// Every member's memory at the end of the workloads (before the memory phase).
    public var members: [CompareMemberMemory]
    public var memoryPhases: [CompareMemoryPhase]
    /// Remarks printed under the table (methodology, skipped parts).
    public var notes: [String]

    public init(machine: CompareMachine, options: CompareOptions, measurements: [CompareMeasurement], baselines: CompareBaselines?,
                members: [CompareMemberMemory], memoryPhases: [CompareMemoryPhase], notes: [String]) {
        self.machine = machine
        self.options = options
        self.measurements = measurements
        self.summary = compareSummary(measurements, rows: options.rows, transports: options.transports)
        self.tlsCost = compareTLSCost(summary)
        self.baselines = baselines
        self.members = members
        self.memoryPhases = memoryPhases
        self.notes = notes
    }

    /// The largest peak resident set of `system`'s members.
    public func maxPeakRSSBytes(_ system: CompareSystem) -> Int? {
        members.filter { $0.system == system }.compactMap(\.peakRSSBytes).max()
    }

    public func memoryPhase(_ system: CompareSystem) -> CompareMemoryPhase? {
        memoryPhases.first { $0.system == system }
    }
}

/// The median of `values` (the mean of the two middle ones for an even count); nil when empty.
public func compareMedian(_ values: [Double]) -> Double? {
    guard !values.isEmpty else { return nil }
    let sorted = values.sorted()
    let middle = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

/// Per row and system, the median over rounds of throughput, p50 and p99 (each taken on its
/// own), over the measurements that produced a result with at least one operation.
public func compareSummary(_ measurements: [CompareMeasurement], rows: [CompareRow], transports: [Bool] = [false]) -> [CompareSummaryRow] {
    rows.flatMap { row in transports.map { tls in
        func figures(_ system: CompareSystem) -> CompareFigures? {
            let results = measurements.filter { $0.step.row == row && $0.step.system == system && $0.step.tls == tls }
                .compactMap(\.result).filter { $0.operations > 0 }
            guard let throughput = compareMedian(results.map(\.throughput)),
                  let p50 = compareMedian(results.map(\.latency.p50Micros)),
                  let p99 = compareMedian(results.map(\.latency.p99Micros))
            else { return nil }
            let errors = results.reduce(0) { $0 + $1.errors.values.reduce(0, +) }
            return CompareFigures(throughput: throughput, p50Micros: p50, p99Micros: p99, rounds: results.count, errors: errors)
        }
        return CompareSummaryRow(row: row, tls: tls, synod: figures(.synod), etcd: figures(.etcd))
    } }
}
