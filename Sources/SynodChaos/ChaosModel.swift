import Foundation

// The shared vocabulary of `synod chaos`: what a run records (operations, nemesis events,
// the verdict) and the interface every network fault layer implements. The runner fills
// these in; the report writer turns them into files; the network layers cut links.

/// The kind of a client operation.
public enum ChaosOperationKind: String, Codable, Sendable, CaseIterable {
    case read, write, cas, delete
}

/// How an operation ended, as the client saw it.
public enum ChaosOperationStatus: String, Codable, Sendable, CaseIterable {
    /// Acknowledged with a result.
    case ok
    /// Definitely had no effect (e.g. a read that failed, or a write refused before it was sent).
    case fail
    /// Timed out or failed ambiguously: a write may or may not have taken effect.
    case unknown
}

/// One client operation in a chaos history. Times are nanoseconds since the run started.
public struct ChaosOperation: Codable, Sendable, Hashable {
    public var id: Int
    public var client: Int
    public var kind: ChaosOperationKind
    public var key: String
    /// The value written (write, cas).
    public var value: String?
    /// The value a cas expects (nil = the key must be absent).
    public var expected: String?
    public var invokedNanos: UInt64
    /// Nil while running and for `unknown` outcomes.
    public var completedNanos: UInt64?
    public var status: ChaosOperationStatus
    /// What a read observed (nil = absent); only for `ok` reads.
    public var readValue: String?
    /// Whether a cas succeeded; only for `ok` cas.
    public var casSucceeded: Bool?
    /// The store revision in the response header (`ok` only).
    public var revision: Int64?
    /// The key's mod_revision a read observed (`ok` reads of a present key).
    public var modRevision: Int64?
    /// The endpoint the client was configured to prefer.
    public var endpoint: String?
    /// The error text for `fail` and `unknown`.
    public var error: String?
    /// True for the final reads done after healing.
    public var final: Bool

    public init(id: Int, client: Int, kind: ChaosOperationKind, key: String, value: String? = nil,
                expected: String? = nil, invokedNanos: UInt64, completedNanos: UInt64? = nil,
                status: ChaosOperationStatus = .unknown, readValue: String? = nil, casSucceeded: Bool? = nil,
                revision: Int64? = nil, modRevision: Int64? = nil, endpoint: String? = nil,
                error: String? = nil, final: Bool = false) {
        self.id = id
        self.client = client
        self.kind = kind
        self.key = key
        self.value = value
        self.expected = expected
        self.invokedNanos = invokedNanos
        self.completedNanos = completedNanos
        self.status = status
        self.readValue = readValue
        self.casSucceeded = casSucceeded
        self.revision = revision
        self.modRevision = modRevision
        self.endpoint = endpoint
        self.error = error
        self.final = final
    }
}

/// One fault window (or instant action) of the nemesis. Times are nanoseconds since start.
public struct NemesisEvent: Codable, Sendable, Hashable {
    public var id: Int
    /// kill, pause, stall, partition-isolate, partition-split, partition-oneway, crash-all, crash-all-torn, failpoint,
    /// netem (delay/loss), heal, restart...
    public var kind: String
    /// 0-based indices of the nodes affected.
    public var nodes: [Int]
    /// Human-readable detail, e.g. "n1 -> n3 cut" or "SYNOD_FAILPOINTS=crash-after-sync=2%".
    public var detail: String
    public var startNanos: UInt64
    /// When the fault was healed; nil for an instant action or a fault never healed.
    public var endNanos: UInt64?

    public init(id: Int, kind: String, nodes: [Int], detail: String, startNanos: UInt64, endNanos: UInt64? = nil) {
        self.id = id
        self.kind = kind
        self.nodes = nodes
        self.detail = detail
        self.startNanos = startNanos
        self.endNanos = endNanos
    }
}

/// The end result of a run.
public struct ChaosVerdict: Codable, Sendable, Hashable {
    /// nil when the checker gave up (step budget) without finding a violation.
    public var linearizable: Bool?
    /// Keys the checker could not finish (step budget).
    public var checkTimedOutKeys: [String]
    /// A human-readable explanation of the violation, if any.
    public var violation: String?
    /// Operation ids the violation involves (highlighted in the HTML report).
    public var violationOperationIDs: [Int]
    public var lostAcknowledgedWrites: Int
    /// Ids of the acknowledged writes found lost.
    public var lostOperationIDs: [Int]
    public var replicaHashesEqual: Bool
    /// The revision the replica hashes were compared at, and each node's hash (by node name).
    public var hashRevision: Int64
    public var replicaHashes: [String: UInt32]
    /// Alarms any member reported at the end (e.g. "CORRUPT on n2").
    public var alarms: [String]
    /// Operation counts by kind then status, e.g. ["write": ["ok": 10, "unknown": 1]].
    public var operationCounts: [String: [String: Int]]
    /// Nemesis event counts by kind.
    public var nemesisCounts: [String: Int]
    public var durationSeconds: Double
    public var seed: UInt64
    /// Runs that change the membership: the members at the end (node names), in node order.
    public var finalMembers: [String]?
    /// Runs that change the membership: succeeded/attempted changes by kind, e.g.
    /// `add 3/3, promote 3/3, remove 3/3, move-leader 2/2`.
    public var membership: String?
    /// What went wrong with the membership (e.g. a rolling replacement that did not finish);
    /// a failure of the run.
    public var membershipProblem: String?
    /// The one-line verdict printed last (`linearizable: true, lost acknowledged writes: 0, ...`).
    public var line: String
    /// True when any check failed (the process exits non-zero).
    public var failed: Bool

    public init(linearizable: Bool?, checkTimedOutKeys: [String] = [], violation: String? = nil,
                violationOperationIDs: [Int] = [], lostAcknowledgedWrites: Int = 0, lostOperationIDs: [Int] = [],
                replicaHashesEqual: Bool, hashRevision: Int64 = 0, replicaHashes: [String: UInt32] = [:],
                alarms: [String] = [], operationCounts: [String: [String: Int]] = [:],
                nemesisCounts: [String: Int] = [:], durationSeconds: Double = 0, seed: UInt64 = 0,
                line: String = "", failed: Bool = false) {
        self.linearizable = linearizable
        self.checkTimedOutKeys = checkTimedOutKeys
        self.violation = violation
        self.violationOperationIDs = violationOperationIDs
        self.lostAcknowledgedWrites = lostAcknowledgedWrites
        self.lostOperationIDs = lostOperationIDs
        self.replicaHashesEqual = replicaHashesEqual
        self.hashRevision = hashRevision
        self.replicaHashes = replicaHashes
        self.alarms = alarms
        self.operationCounts = operationCounts
        self.nemesisCounts = nemesisCounts
        self.durationSeconds = durationSeconds
        self.seed = seed
        self.line = line
        self.failed = failed
    }
}

/// Where one node listens and how others reach it. URLs are `http://host:port`.
public struct ChaosNodeAddresses: Sendable, Hashable {
    /// 0-based index; the node's name is `n<index+1>`.
    public var index: Int
    public var name: String { "n\(index + 1)" }
    /// What the node binds for clients (`--listen-client-urls`).
    public var listenClientURL: String
    /// What the harness's clients dial (`--advertise-client-urls`).
    public var clientURL: String
    /// What the node binds for peers (`--listen-peer-urls`).
    public var listenPeerURL: String
    /// What the node advertises and other nodes dial (`--initial-advertise-peer-urls` and its
    /// `--initial-cluster` entry). With the proxy this is the proxy's port, not the node's.
    public var advertisePeerURL: String
    /// `--listen-metrics-urls` (also what the harness dials for /health).
    public var metricsURL: String

    public init(index: Int, listenClientURL: String, clientURL: String, listenPeerURL: String,
                advertisePeerURL: String, metricsURL: String) {
        self.index = index
        self.listenClientURL = listenClientURL
        self.clientURL = clientURL
        self.listenPeerURL = listenPeerURL
        self.advertisePeerURL = advertisePeerURL
        self.metricsURL = metricsURL
    }
}

/// A way to cut and degrade the links between nodes. Links are directed: the peer transport
/// opens one TCP connection per ordered pair (i -> j), and only i sends on it, so cutting
/// (i -> j) drops exactly the messages i sends to j.
///
/// Client traffic (harness -> node) is never cut.
public protocol ChaosNetwork: AnyObject, Sendable {
    /// `proxy` or `netns`.
    var name: String { get }
    /// Sets up the network for `nodeCount` nodes and returns their addresses. Called once.
    func prepare(nodeCount: Int) async throws -> [ChaosNodeAddresses]
    /// The argv prefix that launches node `index` inside its network (e.g.
    /// `["ip", "netns", "exec", "synod-c1-n1"]`); empty when no wrapper is needed.
    func launchPrefix(node index: Int) -> [String]
    /// Drops every message from node `from` to node `to` (one direction) until `heal()`.
    func cut(from: Int, to: Int) async throws
    /// Adds delay (with jitter) and random loss to everything node `index` sends to peers,
    /// until `heal()`.
    func degrade(node index: Int, delayMilliseconds: Int, jitterMilliseconds: Int, lossPercent: Double) async throws
    /// Restores every link to normal.
    func heal() async throws
    /// Releases everything `prepare` created (namespaces, rules, listeners). Idempotent.
    func teardown() async
    /// Node `index` is about to join the cluster (added at run time, so its peer id is not
    /// known in advance); called before it starts. Node indices at or above the first `index`
    /// ever given here are nodes added at run time.
    func expectJoin(node index: Int)
}

extension ChaosNetwork {
    /// Network layers that tell nodes apart by address need nothing here.
    public func expectJoin(node index: Int) {}
}

/// A network-layer failure with a one-line message.
public struct ChaosNetworkError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
