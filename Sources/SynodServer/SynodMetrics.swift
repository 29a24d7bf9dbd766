import Prometheus

/// The metrics of one Synod node, kept in a registry of its own.
///
/// The global `MetricsSystem` is deliberately left alone: several nodes may run in one process
/// (tests, `synod` demos), and each must expose only its own numbers on its `/metrics` endpoint.
/// The handles are thread-safe (atomics inside swift-prometheus), so a `SynodMetrics` value can
/// be copied freely into the driver, the storage thread and the gRPC services.
public struct SynodMetrics: Sendable {
    /// The registry that owns every metric below; `exposition()` renders it.
    /// Client throughput and latency for the live page (recorded only while watched).
    public let live = LiveClientStats()
    public let registry: PrometheusCollectorRegistry

    /// Commands proposed by this node while it led (`synod_proposals_total`).
    public let proposals: Prometheus.Counter
    /// Commands applied to the state machine (`synod_commits_total`).
    public let commits: Prometheus.Counter
    /// The highest log index applied to the state machine (`synod_applied_index`).
    public let appliedIndex: Prometheus.Gauge
    /// The highest log index known chosen (`synod_chosen_index`).
    public let chosenIndex: Prometheus.Gauge
    /// Times this node saw the leader change (`synod_leader_changes_total`).
    public let leaderChanges: Prometheus.Counter
    /// 1 while this node is the leader, else 0 (`synod_is_leader`).
    public let isLeader: Prometheus.Gauge
    /// The round of the highest ballot this node has seen (`synod_ballot_round`).
    public let ballotRound: Prometheus.Gauge
    /// Time spent in fsync of the write-ahead log (`synod_fsync_duration_seconds`).
    public let fsyncDuration: DurationHistogram
    /// Records made durable per fsync (`synod_fsync_batch_records`).
    public let fsyncBatchRecords: ValueHistogram
    /// The MVCC store's current revision (`synod_kv_revision`).
    public let kvRevision: Prometheus.Gauge
    /// Live keys in the MVCC store (`synod_kv_keys`).
    public let kvKeys: Prometheus.Gauge
    /// Integrity checks applied, and those that found this replica's state different.
    public let integrityChecks: Prometheus.Counter
    public let integrityMismatches: Prometheus.Counter
    /// 1 while any member has raised the CORRUPT alarm, else 0.
    public let corruptAlarm: Prometheus.Gauge
    /// Snapshot chunks sent to and received from peers, snapshots applied (from a peer or at start), and
    /// received snapshots refused because their bytes did not match the sender's checksum.
    public let snapshotChunksSent: Prometheus.Counter
    public let snapshotChunksReceived: Prometheus.Counter
    public let snapshotsInstalled: Prometheus.Counter
    public let snapshotChecksumFailures: Prometheus.Gauge
    public let snapshotMemoryBytes: Prometheus.Gauge
    public let snapshotsSpooled: Prometheus.Gauge
    public let snapshotSpoolFailures: Prometheus.Gauge
    /// 1 while this member encodes its own snapshot into its file (off the loop), else 0
    /// (`synod_snapshot_in_progress`): what `bench compare` reads to tell puts made during a
    /// snapshot from the others. (Storage then completes the file with one short sync.)
    public let snapshotInProgress: Prometheus.Gauge
    public let snapshotDecoding: Prometheus.Gauge
    /// 1 while this member repairs damaged synced log records from its peers and does not
    /// vote (`synod_repairing`), else 0.
    public let repairing: Prometheus.Gauge
    /// The `code="OK"` request counters of the hot methods, made once: looking a labelled
    /// counter up in the registry takes a lock and builds its label set, too much per request.
    private let okCounters: [String: Prometheus.Counter]

    /// Upper bounds of the fsync latency buckets: 100 µs to 1 s.
    public static let fsyncDurationBuckets: [Duration] = [
        .microseconds(100), .microseconds(250), .microseconds(500),
        .milliseconds(1), .microseconds(2500), .milliseconds(5),
        .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500),
        .seconds(1),
    ]

    /// Upper bounds of the fsync batch size buckets: 1 to 4096 records.
    public static let fsyncBatchBuckets: [Double] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]

    private static let peerConnectedHelp = "1 while the peer connection to the named member is up, else 0."
    private static let grpcRequestsHelp = "etcd v3 API requests handled, by method and gRPC status code."

    /// Creates the metrics in `registry` (a fresh registry by default).
    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        self.proposals = registry.makeCounter(
            descriptor: Self.descriptor("proposals", unit: "total", help: "Commands proposed by this node as leader.")
        )
        self.commits = registry.makeCounter(
            descriptor: Self.descriptor("commits", unit: "total", help: "Commands applied to the state machine.")
        )
        self.appliedIndex = registry.makeGauge(
            descriptor: Self.descriptor("applied_index", help: "Highest log index applied to the state machine.")
        )
        self.chosenIndex = registry.makeGauge(
            descriptor: Self.descriptor("chosen_index", help: "Highest log index known to be chosen.")
        )
        self.leaderChanges = registry.makeCounter(
            descriptor: Self.descriptor("leader_changes", unit: "total", help: "Leader changes seen by this node.")
        )
        self.isLeader = registry.makeGauge(
            descriptor: Self.descriptor("is_leader", help: "1 while this node is the leader, else 0.")
        )
        self.ballotRound = registry.makeGauge(
            descriptor: Self.descriptor("ballot_round", help: "Round of the highest ballot this node has seen.")
        )
        self.fsyncDuration = registry.makeDurationHistogram(
            descriptor: Self.descriptor("fsync_duration", unit: "seconds", help: "Write-ahead log fsync latency."),
            buckets: Self.fsyncDurationBuckets
        )
        self.fsyncBatchRecords = registry.makeValueHistogram(
            descriptor: Self.descriptor("fsync_batch_records", help: "Records made durable per fsync."),
            buckets: Self.fsyncBatchBuckets
        )
        self.kvRevision = registry.makeGauge(
            descriptor: Self.descriptor("kv_revision", help: "Current revision of the key-value store.")
        )
        self.kvKeys = registry.makeGauge(
            descriptor: Self.descriptor("kv_keys", help: "Live keys in the key-value store.")
        )
        self.integrityChecks = registry.makeCounter(
            descriptor: Self.descriptor("integrity_checks", unit: "total", help: "Replicated integrity checks applied.")
        )
        self.integrityMismatches = registry.makeCounter(
            descriptor: Self.descriptor("integrity_mismatches", unit: "total",
                                        help: "Integrity checks that found this replica's state hash different from the leader's.")
        )
        self.snapshotChunksSent = registry.makeCounter(
            descriptor: Self.descriptor("snapshot_chunks_sent", unit: "total", help: "Snapshot chunks sent to peers.")
        )
        self.snapshotChunksReceived = registry.makeCounter(
            descriptor: Self.descriptor("snapshot_chunks_received", unit: "total", help: "Snapshot chunks received from peers.")
        )
        self.snapshotsInstalled = registry.makeCounter(
            descriptor: Self.descriptor("snapshots_installed", unit: "total", help: "Snapshots applied to the key-value state (received from a peer, or restored at start).")
        )
        self.snapshotMemoryBytes = registry.makeGauge(
            descriptor: Self.descriptor("snapshot_memory", unit: "bytes",
                                        help: "Bytes of the member's latest snapshot held in memory: 0 once its file is durable and chunks are read from it.")
        )
        self.snapshotsSpooled = registry.makeGauge(
            descriptor: Self.descriptor("snapshots_spooled",
                                        help: "Snapshots received in chunks and written to a file as they arrived, since the member started.")
        )
        self.snapshotSpoolFailures = registry.makeGauge(
            descriptor: Self.descriptor("snapshot_spool_failures",
                                        help: "Snapshot transfers dropped because their chunks could not be written to a file, since the member started.")
        )
        self.snapshotInProgress = registry.makeGauge(
            descriptor: Self.descriptor("snapshot_in_progress",
                                        help: "1 while the member encodes its own snapshot into its file, else 0.")
        )
        self.snapshotDecoding = registry.makeGauge(
            descriptor: Self.descriptor("snapshot_decoding",
                                        help: "1 while the member decodes a received or recovered snapshot into its state (reads wait for it), else 0.")
        )
        self.repairing = registry.makeGauge(
            descriptor: Self.descriptor("repairing",
                                        help: "1 while the member repairs damaged synced log records from the other members and does not vote, else 0.")
        )
        self.snapshotChecksumFailures = registry.makeGauge(
            descriptor: Self.descriptor("snapshot_checksum_failures",
                                        help: "Snapshots received in chunks whose bytes did not match their checksum, since the member started.")
        )
        self.corruptAlarm = registry.makeGauge(
            descriptor: Self.descriptor("alarm_corrupt", help: "1 while a CORRUPT alarm is raised in the cluster, else 0.")
        )
        var okCounters: [String: Prometheus.Counter] = [:]
        for method in ["Range", "Put", "DeleteRange", "Txn", "LeaseKeepAlive", "Status"] {
            okCounters[method] = registry.makeCounter(
                descriptor: Self.descriptor("grpc_requests", unit: "total", help: Self.grpcRequestsHelp),
                labels: [("method", method), ("code", "OK")])
        }
        self.okCounters = okCounters
    }

    /// The connection-state gauge of one peer (`synod_peer_connected{peer="n2"}`): 1 up, 0 down.
    /// Calling it again with the same name returns the same gauge.
    public func peerConnected(_ name: String) -> Prometheus.Gauge {
        registry.makeGauge(
            descriptor: Self.descriptor("peer_connected", help: Self.peerConnectedHelp),
            labels: [("peer", name)]
        )
    }

    /// The request counter for one etcd v3 API method and gRPC status code
    /// (`synod_grpc_requests_total{method="Range",code="OK"}`).
    /// Calling it again with the same pair returns the same counter.
    public func grpcRequests(method: String, code: String) -> Prometheus.Counter {
        if code == "OK", let counter = okCounters[method] { return counter }
        return registry.makeCounter(
            descriptor: Self.descriptor("grpc_requests", unit: "total", help: Self.grpcRequestsHelp),
            labels: [("method", method), ("code", code)]
        )
    }

    /// Every metric in the Prometheus text exposition format (version 0.0.4).
    public func exposition() -> String {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(4096)
        registry.emit(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }

    private static func descriptor(_ name: String, unit: String = "", help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "synod", metricName: name, unitName: unit, helpText: help)
    }
}
