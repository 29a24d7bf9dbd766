/// The two systems `synod bench compare` measures.
public enum CompareSystem: String, Codable, CaseIterable, Sendable {
    case synod
    case etcd
}

/// One row of the comparison table: a workload at one client count.
///
/// The names are the load generator's workloads plus `sget` (a serializable get); for `watch`,
/// `clients` is the number of watchers (one writer).
public struct CompareRow: Codable, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Codable, CaseIterable, Sendable {
        case put
        /// Linearizable get.
        case get
        /// Serializable get (answered by the member asked, possibly stale).
        case sget
        case txnCAS = "txn-cas"
        case mixed
        case watch
    }

    public var kind: Kind
    public var clients: Int

    public init(_ kind: Kind, clients: Int) {
        self.kind = kind
        self.clients = clients
    }

    public var description: String { "\(kind.rawValue)@\(clients)" }

    /// The client counts measured for `kind` when `--clients` is not given.
    public static func defaultClients(_ kind: Kind) -> [Int] {
        switch kind {
        case .put: [1, 64, 256]
        case .get: [64, 256]
        case .sget: [256]
        case .txnCAS: [64]
        case .mixed: [64]
        case .watch: [100]
        }
    }

    /// The default rows: put at 1, 64, 256; get at 64, 256; sget at 256; txn-cas, mixed at 64; watch with 100 watchers.
    public static var defaults: [CompareRow] {
        Kind.allCases.flatMap { kind in defaultClients(kind).map { CompareRow(kind, clients: $0) } }
    }

    /// Parses `--workloads`: comma-separated items `name` or `name@clients`; a plain name gets
    /// `clients` when given, else its default client counts. Duplicates are dropped, order kept.
    public static func parseList(_ text: String, clients: [Int]?) throws(CompareError) -> [CompareRow] {
        var rows: [CompareRow] = []
        for item in text.split(separator: ",").map({ String($0.filter { !$0.isWhitespace }) }) where !item.isEmpty {
            let parts = item.split(separator: "@", maxSplits: 1).map(String.init)
            guard let kind = Kind(rawValue: parts[0]) else {
                let names = Kind.allCases.map(\.rawValue).joined(separator: ", ")
                throw CompareError("--workloads: unknown workload '\(parts[0])' (one of \(names), optionally name@clients)")
            }
            var counts = clients ?? defaultClients(kind)
            if parts.count == 2 {
                guard let count = Int(parts[1]) else { throw CompareError("--workloads: '\(item)' is not name@clients") }
                counts = [count]
            }
            for count in counts {
                guard (1...100_000).contains(count) else { throw CompareError("--workloads: client count \(count) is not in 1...100000") }
                let row = CompareRow(kind, clients: count)
                if !rows.contains(row) { rows.append(row) }
            }
        }
        guard !rows.isEmpty else { throw CompareError("--workloads: no workload given") }
        return rows
    }

    /// The load generator's options for this row against `endpoints`.
    public func benchOptions(endpoints: [String], durationSeconds: Double, conns: Int, valueBytes: Int, keySpace: Int, tls: BenchTLS? = nil) -> BenchOptions {
        let workload: BenchWorkload = switch kind {
        case .put: .put
        case .get, .sget: .get
        case .txnCAS: .txnCAS
        case .mixed: .mixed
        case .watch: .watch
        }
        var options = BenchOptions(workload: workload, endpoints: endpoints)
        options.durationSeconds = durationSeconds
        options.conns = max(1, min(conns, clients))
        options.clients = clients
        options.valueBytes = valueBytes
        options.keySpace = keySpace
        options.tls = tls
        if kind == .sget {
            options.consistency = .serializable
            // A serializable read is answered where it lands: spread over all members, as
            // clients of a real cluster would be.
            options.target = .all
            options.conns = max(conns, min(3, clients))
        }
        if kind == .watch {
            options.watchers = clients
            options.clients = 1
            options.conns = max(1, conns)
        }
        return options
    }
}

/// Everything one `synod bench compare` run does.
public struct CompareOptions: Codable, Sendable, Equatable {
    public var rows: [CompareRow] = CompareRow.defaults
    /// Rounds; each round measures every row on Synod, then on etcd.
    public var rounds: Int = 3
    /// Seconds per measurement.
    public var durationSeconds: Double = 5
    /// gRPC connections per measurement (the load generator spreads clients over them).
    public var conns: Int = 8
    public var valueBytes: Int = 256
    /// Keys the workloads touch (the load generator writes them all before each get and mixed run).
    public var keySpace: Int = 10_000
    /// Results, logs and (unless deleted) the members' data directories go under here.
    public var outDirectory: String = "bench-results"
    public var synodBinary: String = ""
    public var etcdBinary: String = "/usr/bin/etcd"
    public var keepData: Bool = false
    public var skipEtcd: Bool = false
    /// Measure etcd only (for state sizes at which both clusters would not fit in memory at once).
    public var skipSynod: Bool = false
    /// Ports: etcd clients base+1...base+3, etcd peers base+11..., Synod clients base+21...,
    /// Synod peers base+31..., Synod metrics base+41....
    public var basePort: Int = 23790
    /// Distinct keys loaded in the memory and restart phase (0 skips it).
    public var memoryKeys: Int = 0
    /// After the memory phase, add a fourth member as a learner while writers put, and time
    /// its catch-up (needs `memoryKeys` > 0).
    public var join: Bool = false
    /// Concurrent writers during the join.
    public var joinWriters: Int = 16
    /// After the range of the memory phase: seconds of puts through the leader while it
    /// snapshots the loaded state (`CompareSnapshotWrites`; 0 skips it).
    public var snapshotWritesSeconds: Double = 30
    /// Seconds per row of the write-ahead-log baseline (0 skips both baselines).
    public var walSeconds: Double = 2
    /// Commands through the pure core for its baseline.
    public var coreCommands: Int = 200_000
    /// How long a restarted member may take to serve its first read.
    public var restartTimeoutSeconds: Double = 300
    /// Seconds to wait for a leader after start.
    public var startTimeoutSeconds: Double = 60
    /// Also run each system with mutual TLS on its client and peer ports (a second cluster per
    /// system, certificates under `<out>/pki`) and measure every row on it right after the
    /// plaintext one: rows "put@1" and "put@1 tls".
    public var tls: Bool = false

    public init() {}

    public var systems: [CompareSystem] { (skipSynod ? [] : [.synod]) + (skipEtcd ? [] : [.etcd]) }
    /// Plaintext, and with ``tls`` TLS too (`true`).
    public var transports: [Bool] { tls ? [false, true] : [false] }

    public func validate() throws(CompareError) {
        guard (1...100).contains(rounds) else { throw CompareError("--rounds must be in 1...100") }
        guard durationSeconds > 0, durationSeconds <= 3_600 else { throw CompareError("--duration must be in (0, 3600] seconds") }
        guard (1...1_024).contains(conns) else { throw CompareError("--conns must be in 1...1024") }
        guard (0...1 << 20).contains(valueBytes) else { throw CompareError("--value-size must be in 0...1048576") }
        guard (1...10_000_000).contains(keySpace) else { throw CompareError("--key-space must be in 1...10000000") }
        guard (1_024...65_000).contains(basePort) else { throw CompareError("--base-port must be in 1024...65000") }
        guard (0...100_000_000).contains(memoryKeys) else { throw CompareError("--memory-keys must be in 0...100000000") }
        guard !join || memoryKeys > 0 else { throw CompareError("--join needs --memory-keys: the joining member catches up to the keys loaded there") }
        guard (1...1_024).contains(joinWriters) else { throw CompareError("--join-writers must be in 1...1024") }
        guard snapshotWritesSeconds >= 0, snapshotWritesSeconds <= 3_600 else { throw CompareError("--snapshot-writes-seconds must be in [0, 3600]") }
        guard walSeconds >= 0, walSeconds <= 600 else { throw CompareError("--wal-seconds must be in [0, 600]") }
        guard coreCommands >= 1 else { throw CompareError("--core-commands must be at least 1") }
        guard !rows.isEmpty else { throw CompareError("--workloads: no workload given") }
        guard !(skipEtcd && skipSynod) else { throw CompareError("--skip-etcd and --skip-synod together leave nothing to measure") }
        guard !synodBinary.isEmpty else { throw CompareError("--synod-bin: no synod executable") }
    }
}

/// One measurement in the order `compare` runs them.
public struct CompareStep: Codable, Sendable, Equatable {
    public var round: Int
    public var row: CompareRow
    public var system: CompareSystem
    /// Measured on the system's cluster with mutual TLS (`--tls`).
    public var tls: Bool

    public init(round: Int, row: CompareRow, system: CompareSystem, tls: Bool = false) {
        self.round = round
        self.row = row
        self.system = system
        self.tls = tls
    }

    private enum CodingKeys: String, CodingKey { case round, row, system, tls }

    /// Results written before `--tls` existed have no `tls`: plaintext.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        round = try container.decode(Int.self, forKey: .round)
        row = try container.decode(CompareRow.self, forKey: .row)
        system = try container.decode(CompareSystem.self, forKey: .system)
        tls = try container.decodeIfPresent(Bool.self, forKey: .tls) ?? false
    }

    /// "synod", "etcd tls", ...
    public var label: String { system.rawValue + (tls ? " tls" : "") }
}

/// The measurement order: round by round, row by row, and each row on every system back to
/// back (Synod, then etcd), so slow drifts of the machine (thermal, page cache, neighbours)
/// hit both systems alike. With `transports` [false, true] (`--tls`) each system measures the
/// row in plaintext and then with TLS, back to back, so the cost of TLS is read from neighbours.
public func compareSchedule(rounds: Int, rows: [CompareRow], systems: [CompareSystem], transports: [Bool] = [false]) -> [CompareStep] {
    guard rounds >= 1 else { return [] }
    var steps: [CompareStep] = []
    for round in 1...rounds {
        for row in rows {
            for system in systems {
                for tls in transports { steps.append(CompareStep(round: round, row: row, system: system, tls: tls)) }
            }
        }
    }
    return steps
}

/// A `compare` failure as one line.
public struct CompareError: Error, CustomStringConvertible, Sendable, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
