import SynodBytes
import SynodCore
import SynodNode
import SynodTransport

/// One member of the cluster as every node derives it from `--initial-cluster`.
public struct MemberInfo: Hashable, Sendable {
    public var name: String
    /// The protocol's id: the member's 1-based position in the name-sorted member list.
    public var nodeID: NodeID
    /// etcd's 64-bit member id (shown by `member list`): a hash of cluster token and name.
    public var memberID: UInt64
    public var peerURL: String
    public var peerAddress: PeerAddress
    /// Client URLs are only known for the local member (and in `synod cluster`).
    public var clientURLs: [String]

    public init(name: String, nodeID: NodeID, memberID: UInt64, peerURL: String, peerAddress: PeerAddress,
                clientURLs: [String] = []) {
        self.name = name
        self.nodeID = nodeID
        self.memberID = memberID
        self.peerURL = peerURL
        self.peerAddress = peerAddress
        self.clientURLs = clientURLs
    }
}

/// Everything a node needs to run, validated (see `ServeConfiguration` for the flags).
public struct NodeOptions: Sendable {
    public var name: String
    public var dataDirectory: String
    public var members: [MemberInfo]
    public var clusterID: UInt64
    public var clientListen: PeerAddress
    public var advertiseClientURLs: [String]
    public var peerListen: PeerAddress
    public var metricsListen: PeerAddress?
    /// Enables the live page's isolate/heal control (`POST /ui/control/...`) with this token;
    /// nil or empty: those paths do not exist. `synod serve` takes it from
    /// `SYNOD_UI_CONTROL_TOKEN`.
    public var uiControlToken: String?
    /// Milliseconds per protocol tick.
    public var tickMilliseconds: Int = 10
    public var heartbeatMilliseconds: Int = 100
    public var electionTimeoutMilliseconds: Int = 1000
    public var readMode: ReadMode = .lease
    /// Ask the voters before campaigning (pre-vote); off only to compare.
    public var preVote = true
    /// etcd's `--max-request-bytes` (default 1.5 MiB).
    public var maxRequestBytes: Int = 1_572_864
    /// How the etcd gRPC API is served: from HTTP/2 frames with the KV fast path (default),
    /// or through grpc-swift's own HTTP/2 transport (kept for comparison).
    public var grpcTransport: GRPCTransportKind = .frames
    /// Event-loop threads of the server process; 0 = one per core, at least 2.
    public var eventLoopThreads: Int = 0
    /// Applied slots between snapshots.
    public var snapshotEverySlots: Int = 10_000
    /// How long a client request waits for its outcome before it fails with "request timed out".
    public var requestTimeoutMilliseconds: Int = 5_000
    /// `--initial-cluster-state existing`: this member joins a running cluster (an empty data
    /// directory; it must have been added with MemberAdd first) or restarts from its data.
    /// Its identity then comes from the cluster (`SynodNodeServer.make` fills `join`).
    public var joinExisting = false
    /// TLS on the client port, nil for plaintext (see `TLSSettings`).
    public var clientTLS: TLSSettings?
    /// TLS between members, nil for plaintext.
    public var peerTLS: TLSSettings?
    /// How peer connections are secured, built from `peerTLS` by `SynodNodeServer.secured`.
    public var peerSecurity: PeerSecurity?
    /// The client port's TLS contexts, built from `clientTLS` by `SynodNodeServer.secured`.
    public var clientTLSSource: TLSContextSource?
    /// Seconds an Authenticate token stays valid.
    public var authTokenTTLSeconds = 300
    /// Cost of new password hashes (`--bcrypt-cost`; scrypt N = 2^(cost+4)).
    public var bcryptCost = 10
    /// Who this member is in a running cluster, as discovery or the data directory told it
    /// (`--initial-cluster-state existing`); nil for members of a new cluster, whose ids
    /// derive from `--initial-cluster`.
    public var join: JoinIdentity?
    /// How long `existing` keeps trying to reach a member of the cluster for discovery.
    public var joinDiscoveryTimeoutMilliseconds: Int = 15_000
    /// Called once when this member has applied its own removal from the cluster and stopped
    /// (etcd: "the member has been permanently removed from the cluster"). `SynodNodeServer.run`
    /// then returns by throwing `MemberRemovedError`; in-process tests may observe it here.
    public var onRemoved: (@Sendable () -> Void)?
    /// Called once when storage fails (a failed fsync, a full disk): the node has already
    /// stopped serving. `synod serve` exits the process here, as the design requires (a
    /// failed fsync is never retried); in-process tests leave it nil.
    public var onStorageFailure: (@Sendable (String) -> Void)?
    /// Called once when the replica found its own safety broken and halted (see
    /// `Output.halted`): the node has already stopped serving and written the reason into
    /// `synod.halted` in the data directory. `synod serve` exits the process here (status
    /// `SynodNodeServer.safetyHaltExitStatus`); in-process tests observe it.
    public var onSafetyHalt: (@Sendable (String) -> Void)?
    /// Interval of watch progress notifications (etcd's default: 10 minutes).
    public var watchProgressNotifyMilliseconds: Int = 600_000
    /// What one peer frame may hold. Snapshots travel in chunks of at most a quarter of its
    /// frame and snapshot limits, and catch-up replies stop adding entries at an eighth of its
    /// frame, so state of any size passes these limits. Tests lower them to prove it.
    public var peerCodecLimits = PeerCodecLimits.standard
    /// Fault injection (tests and `synod chaos` only); all off by default.
    public var failpoints = Failpoints()
    /// How often the leader starts a replicated integrity check (etcd's
    /// `--experimental-corrupt-check-time`); 0 turns the checks off.
    public var integrityCheckMilliseconds: Int = 5_000

    public init(name: String, dataDirectory: String, members: [MemberInfo], clusterID: UInt64,
                clientListen: PeerAddress, advertiseClientURLs: [String], peerListen: PeerAddress) {
        self.name = name
        self.dataDirectory = dataDirectory
        self.members = members
        self.clusterID = clusterID
        self.clientListen = clientListen
        self.advertiseClientURLs = advertiseClientURLs
        self.peerListen = peerListen
    }

    /// The local member.
    public var local: MemberInfo {
        // `ServeConfiguration` guarantees the local name is in the member list.
        members.first { $0.name == name } ?? members[0]
    }

    /// The protocol configuration these timings give, with `voters` (default: every member
    /// of `--initial-cluster`) as the members of a new cluster.
    public func protocolConfiguration(voters: [NodeID]? = nil) -> Configuration {
        var configuration = Configuration(members: voters ?? members.map(\.nodeID))
        let tick = max(1, tickMilliseconds)
        configuration.tickNanoseconds = UInt64(tick) * 1_000_000
        configuration.heartbeatIntervalTicks = max(1, heartbeatMilliseconds / tick)
        configuration.electionTimeoutTicks = max(configuration.heartbeatIntervalTicks + 2, electionTimeoutMilliseconds / tick)
        configuration.maxClockDriftTicks = max(1, configuration.electionTimeoutTicks / 10)
        configuration.leaseTicks = configuration.electionTimeoutTicks * 6 / 10
        configuration.retransmitTicks = max(4, configuration.heartbeatIntervalTicks / 2)
        configuration.catchUpRetryTicks = max(4, configuration.heartbeatIntervalTicks / 2)
        configuration.readTimeoutTicks = max(20, configuration.electionTimeoutTicks * 2)
        configuration.readMode = readMode
        configuration.preVote = preVote
        configuration.batchBytesMax = max(configuration.batchBytesMax, maxRequestBytes + 4096)
        configuration.snapshotChunkBytes = max(1, min(configuration.snapshotChunkBytes,
                                                      peerCodecLimits.snapshotBytesMax / 4, peerCodecLimits.frameBytesMax / 4))
        configuration.catchUpBytesMax = max(1, min(configuration.catchUpBytesMax, peerCodecLimits.frameBytesMax / 8))
        // A hand-off needs the target caught up and then one election round.
        configuration.transferTimeoutTicks = max(configuration.transferTimeoutTicks, configuration.electionTimeoutTicks * 2)
        return configuration
    }
}

extension NodeOptions {
    /// The driver's settings for this member (its etcd member id is known only once storage
    /// and discovery told who it is).
    func driverSettings(memberID: UInt64) -> DriverSettings {
        var settings = DriverSettings(name: name, advertiseClientURLs: advertiseClientURLs, memberID: memberID)
        let milliseconds: UInt64 = 1_000_000
        settings.requestTimeoutNanoseconds = UInt64(max(1, requestTimeoutMilliseconds)) * milliseconds
        settings.retryAfterNanoseconds = UInt64(max(electionTimeoutMilliseconds, 200)) * milliseconds
        settings.snapshotEverySlots = UInt64(max(1, snapshotEverySlots))
        settings.integrityCheckNanoseconds = UInt64(max(0, integrityCheckMilliseconds)) * milliseconds
        settings.orphanQuietNanoseconds = UInt64(max(1_500, electionTimeoutMilliseconds * 2)) * milliseconds
        settings.removalGraceNanoseconds = UInt64(max(3_000, electionTimeoutMilliseconds * 3)) * milliseconds
        return settings
    }
}

/// A member's identity in a running cluster (see `NodeOptions.join`).
public struct JoinIdentity: Hashable, Sendable {
    public var clusterID: UInt64
    public var nodeID: NodeID
    /// etcd's member id; 0 when only the data directory was read (the membership says it).
    public var memberID: UInt64
    /// The cluster's latest membership as discovery reported it (nil without an answer):
    /// whom a joining replica asks for the snapshot, and where they listen.
    public var membership: Membership?

    public init(clusterID: UInt64, nodeID: NodeID, memberID: UInt64, membership: Membership?) {
        self.clusterID = clusterID
        self.nodeID = nodeID
        self.memberID = memberID
        self.membership = membership
    }
}

/// A stable 64-bit FNV-1a hash of the UTF-8 text (member and cluster ids, which data
/// directories and peers remember: the values must never change).
public func stableHash64(_ text: String) -> UInt64 {
    var hash = FNV1a64()
    hash.combine(utf8: text)
    return hash.value
}

/// See `NodeOptions.grpcTransport`.
public enum GRPCTransportKind: String, Sendable, CaseIterable {
    /// `FrameGRPCServerTransport`: hot KV calls answered from event-loop callbacks.
    case frames
    /// grpc-swift-nio-transport's `HTTP2ServerTransport.Posix`.
    case grpcSwift = "grpc-swift"
}
