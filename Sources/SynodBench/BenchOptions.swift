/// What one `synod bench <workload>` run does. Everything here is plain data, so a run can be
/// described in JSON next to its result and repeated.
public enum BenchWorkload: String, Codable, CaseIterable, Sendable {
    /// Puts of `valueBytes`-byte values to random keys out of `keySpace`.
    case put
    /// Range requests for one random key (linearizable or serializable).
    case get
    /// Compare-and-set through Txn: compare the key's mod_revision with the last one seen, put on success.
    case txnCAS = "txn-cas"
    /// Gets with probability `readRatio`, puts otherwise.
    case mixed
    /// `watchers` watchers on one key range, one writer; latency is put-to-event fan-out time.
    case watch
}

public enum BenchConsistency: String, Codable, CaseIterable, Sendable {
    case linearizable
    case serializable
}

public enum BenchTarget: String, Codable, CaseIterable, Sendable {
    /// Every connection goes to the member that `Maintenance.Status` names as leader.
    case leader
    /// Connections are spread round-robin over all endpoints (at least one per endpoint).
    case all
}

/// Options of one load-generator run.
public struct BenchOptions: Codable, Sendable, Equatable {
    public var workload: BenchWorkload
    /// `host:port` or `http://host:port` of the etcd v3 gRPC endpoints.
    public var endpoints: [String]
    /// gRPC (HTTP/2) connections; clients are spread over them round-robin.
    public var conns: Int = 1
    /// Concurrent clients (closed loop: each has one request outstanding).
    public var clients: Int = 1
    /// Run length in seconds; used when `total` is nil.
    public var durationSeconds: Double = 10
    /// Stop after this many requests instead of after `durationSeconds`.
    public var total: Int?
    /// Open loop: requests per second over all clients, issued on schedule; latency is counted
    /// from the scheduled start (no coordinated omission). Nil means closed loop.
    ///
    /// Each client owns every `clients`-th slot of the schedule and has one request outstanding;
    /// a client that falls behind issues at once until it catches up (the wait counts as
    /// latency), so the achieved rate drops only when `clients` / latency is below `rate`.
    public var rate: Double?
    public var target: BenchTarget = .leader
    /// Number of distinct keys.
    public var keySpace: Int = 10_000
    public var keyPrefix: String = "bench/"
    public var valueBytes: Int = 256
    public var consistency: BenchConsistency = .linearizable
    /// Fraction of gets in the `mixed` workload.
    public var readRatio: Double = 0.9
    /// Watchers in the `watch` workload.
    public var watchers: Int = 100
    /// Seed of the key choice (runs with one seed touch the same key sequence).
    public var seed: UInt64 = 1
    /// TLS for every connection (`https://` endpoints need it); nil: plaintext.
    public var tls: BenchTLS?

    public init(workload: BenchWorkload, endpoints: [String]) {
        self.workload = workload
        self.endpoints = endpoints
    }
}

/// TLS of the load generator's connections (etcdctl's `--cacert`, `--cert`, `--key`): the CA
/// that verifies the servers and the client certificate for servers with `--client-cert-auth`.
/// Every connection (both client stacks and the leader discovery) negotiates HTTP/2 by ALPN.
public struct BenchTLS: Codable, Sendable, Equatable {
    /// PEM CA bundle that verifies the servers' certificates (nil: the system's roots).
    public var caFile: String?
    /// PEM client certificate (chain); nil: none is presented.
    public var certFile: String?
    /// PEM private key of `certFile`.
    public var keyFile: String?

    public init(caFile: String? = nil, certFile: String? = nil, keyFile: String? = nil) {
        self.caFile = caFile
        self.certFile = certFile
        self.keyFile = keyFile
    }
}

/// Latency distribution of the successful requests, in microseconds.
public struct LatencySummary: Codable, Sendable, Equatable {
    public var count: Int
    public var minMicros: Double
    public var meanMicros: Double
    public var p50Micros: Double
    public var p90Micros: Double
    public var p99Micros: Double
    public var p999Micros: Double
    public var maxMicros: Double

    public init(count: Int, minMicros: Double, meanMicros: Double, p50Micros: Double, p90Micros: Double, p99Micros: Double, p999Micros: Double, maxMicros: Double) {
        self.count = count
        self.minMicros = minMicros
        self.meanMicros = meanMicros
        self.p50Micros = p50Micros
        self.p90Micros = p90Micros
        self.p99Micros = p99Micros
        self.p999Micros = p999Micros
        self.maxMicros = maxMicros
    }
}

/// What one run measured.
public struct BenchResult: Codable, Sendable, Equatable {
    public var options: BenchOptions
    /// Endpoints the connections actually went to (after leader discovery).
    public var targets: [String]
    /// Successful requests (for `watch`: events received, summed over watchers).
    public var operations: Int
    /// Failed requests by gRPC status code name or error kind ("unavailable", "deadlineExceeded", ...).
    public var errors: [String: Int]
    /// Measured wall time in seconds (connection set-up and leader discovery excluded).
    public var seconds: Double
    /// operations / seconds.
    public var throughput: Double
    public var latency: LatencySummary
    /// `txn-cas` only: requests whose compare failed (another client changed the key first).
    /// They are counted in ``operations`` (the server answered them) but wrote nothing.
    public var casFailures: Int?

    public init(options: BenchOptions, targets: [String], operations: Int, errors: [String: Int], seconds: Double, throughput: Double, latency: LatencySummary, casFailures: Int? = nil) {
        self.options = options
        self.targets = targets
        self.operations = operations
        self.errors = errors
        self.seconds = seconds
        self.throughput = throughput
        self.latency = latency
        self.casFailures = casFailures
    }
}

/// A live reading, reported about four times a second while a run is going.
public struct BenchProgress: Sendable {
    public var elapsedSeconds: Double
    /// Planned run length (seconds) or nil when running to `total`.
    public var plannedSeconds: Double?
    public var completed: Int
    public var plannedTotal: Int?
    public var errors: Int
    /// Throughput over the last reading interval.
    public var recentThroughput: Double

    public init(elapsedSeconds: Double, plannedSeconds: Double?, completed: Int, plannedTotal: Int?, errors: Int, recentThroughput: Double) {
        self.elapsedSeconds = elapsedSeconds
        self.plannedSeconds = plannedSeconds
        self.completed = completed
        self.plannedTotal = plannedTotal
        self.errors = errors
        self.recentThroughput = recentThroughput
    }
}
