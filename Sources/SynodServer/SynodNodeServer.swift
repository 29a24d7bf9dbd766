import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization
import SynodCore
import SynodStore
import SynodTransport

/// A startup failure, as one line for the operator.
public struct ServerStartError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// `SynodNodeServer.run` ends this way once the member applied its own removal from the cluster.
public struct MemberRemovedError: Error, CustomStringConvertible, Sendable {
    public init() {}
    public var description: String { "the member has been permanently removed from the cluster" }
}

/// One `synod serve` process: node, peer transport, etcd gRPC API and HTTP status endpoints.
/// Runs as a swift-service-lifecycle `Service`: `run()` serves until graceful shutdown.
public final class SynodNodeServer: Service, Sendable {
    public let options: NodeOptions
    let logger: Logger
    let group: MultiThreadedEventLoopGroup
    public let metrics: SynodMetrics
    public let node: Node
    let transport: PeerTransport
    let http: HTTPStatusServer?
    let api: ClientAPIServer
    /// The live cluster page's data side (served on the client port and the metrics listener).
    public let live: LiveUI
    /// Set once the node stopped because this member was removed from the cluster.
    private let removed = Atomic<Bool>(false)

    /// Builds a server; with `--initial-cluster-state existing` it first asks the cluster who
    /// this member is (`JoinDiscovery.resolve`), which `init` cannot do.
    public static func make(options: NodeOptions, logger: Logger, group: MultiThreadedEventLoopGroup) async throws
        -> SynodNodeServer {
        let resolved = try await JoinDiscovery.resolve(try secured(options, logger: logger), group: group, logger: logger)
        return try SynodNodeServer(options: resolved, logger: logger, group: group)
    }

    /// Loads the TLS files of both listeners (making `--auto-tls` certificates first); one
    /// line naming the file on failure.
    static func secured(_ options: NodeOptions, logger: Logger) throws -> NodeOptions {
        var options = options
        do {
            if let settings = options.peerTLS, options.peerSecurity == nil {
                let source = try TLSContextSource.make(
                    settings: settings, dataDirectory: options.dataDirectory, role: "peer",
                    hosts: [options.peerListen.host] + options.members.map(\.peerAddress.host), alpn: [], logger: logger)
                options.peerSecurity = .tls(source: source, logger: logger)
            }
            if let settings = options.clientTLS, options.clientTLSSource == nil {
                options.clientTLSSource = try TLSContextSource.make(
                    settings: settings, dataDirectory: options.dataDirectory, role: "client",
                    hosts: [options.clientListen.host], alpn: ["h2", "http/1.1"], logger: logger)
            }
        } catch {
            throw ServerStartError("TLS: \(error)")
        }
        return options
    }

    /// Opens storage (recovery happens here) and builds every part; nothing listens yet.
    /// A member joining a running cluster (`existing`, no data yet) needs `make`.
    public init(options: NodeOptions, logger: Logger, group: MultiThreadedEventLoopGroup) throws {
        let options = try Self.secured(options, logger: logger)
        self.options = options
        self.logger = logger
        self.group = group
        let metrics = SynodMetrics()
        self.metrics = metrics
        if options.joinExisting && options.join == nil && !Self.hasData(options.dataDirectory) {
            throw ServerStartError(
                "--initial-cluster-state existing: \(options.dataDirectory) holds no data; joining a running cluster starts through SynodNodeServer.make")
        }
        let node: Node
        do {
            node = try Node(options: options, loop: group.next(), logger: logger, metrics: metrics)
        } catch let error as StorageError {
            throw ServerStartError("cannot open data directory \(options.dataDirectory): \(error)")
        }
        if let halt = Node.recordedHalt(in: options.dataDirectory) {
            throw ServerStartError(
                "this member halted on a safety violation and does not start again on its data directory \(options.dataDirectory) (\(halt)); keep the directory for analysis and replace the member (see README: A member halted)")
        }
        if node.wasRemoved {
            throw ServerStartError(
                "the member has been permanently removed from the cluster: its data directory \(options.dataDirectory) cannot be used again (remove it, then run member add and start with --initial-cluster-state existing)")
        }
        self.node = node
        transport = PeerTransport(
            group: group, localID: node.nodeID, clusterID: node.clusterID, listen: options.peerListen,
            peers: node.peerAddresses(), limits: options.peerCodecLimits, logger: logger,
            onReceive: { [node] envelopes in node.receive(envelopes) },
            onPeerStateChange: { [node] peer, up in
                let name = node.latestMembership?.member(peer)?.name ?? ""
                metrics.peerConnected(name.isEmpty ? "\(peer)" : name).set(to: up ? 1 : 0)
            },
            onDiscovery: { [node] peerURL in JoinDiscovery.answer(node: node, peerURL: peerURL) },
            security: options.peerSecurity)
        let context = ServiceContext(node: node, metrics: metrics)
        // As etcd: gRPC accepts max-request-bytes plus overhead, so an oversized request gets
        // etcd's "request is too large" from the server rather than a transport error.
        let maxMessageBytes = options.maxRequestBytes + (512 << 10)
        let services: [any RegistrableRPCService] = [
            KVService(context: context), WatchService(context: context), LeaseService(context: context),
            ClusterService(context: context), MaintenanceService(context: context), AuthService(context: context),
            LockService(context: context), ElectionService(context: context),
        ]
        let live = LiveUI(node: node, stats: metrics.live, group: group, controlToken: options.uiControlToken)
        self.live = live
        var statusRoutes = HTTPStatusRoutes(health: { [node] in await Self.health(node) }, metrics: { metrics.exposition() })
        statusRoutes.live = live
        // The client port's HTTP/1.1 side also serves etcd's JSON gateway.
        var clientRoutes = statusRoutes
        var gateway = EtcdGateway(context: context)
        gateway.messageMax = maxMessageBytes
        clientRoutes.gateway = gateway
        // Bytes travel as base64 in JSON (4/3 larger): the body may be larger than the message.
        clientRoutes.gatewayBodyMax = maxMessageBytes / 3 * 4 + (64 << 10)
        switch options.grpcTransport {
        case .frames:
            let server = GRPCServer(
                transport: FrameGRPCServerTransport(
                    host: options.clientListen.host, port: options.clientListen.port, group: group,
                    maxMessageBytes: maxMessageBytes, fastPath: KVPipeline(context: context), logger: logger,
                    tls: options.clientTLSSource, http1Routes: clientRoutes),
                services: services)
            api = ClientAPIServer(serve: { try await server.serve() }, beginShutdown: { server.beginGracefulShutdown() })
        case .grpcSwift:
            var config = HTTP2ServerTransport.Posix.Config.defaults
            config.rpc.maxRequestPayloadSize = maxMessageBytes
            let server = GRPCServer(
                transport: .http2NIOPosix(
                    address: .ipv4(host: options.clientListen.host, port: options.clientListen.port),
                    transportSecurity: .plaintext, config: config, eventLoopGroup: group),
                services: services)
            api = ClientAPIServer(serve: { try await server.serve() }, beginShutdown: { server.beginGracefulShutdown() })
        }
        if let metricsListen = options.metricsListen {
            http = HTTPStatusServer(
                group: group, host: metricsListen.host, port: metricsListen.port, logger: logger,
                health: { [node] in await Self.health(node) },
                metrics: { metrics.exposition() }, live: live)
        } else {
            http = nil
        }
    }

    static func hasData(_ directory: String) -> Bool {
        let wal = (try? FileManager.default.contentsOfDirectory(atPath: directory + "/wal")) ?? []
        return !wal.isEmpty
    }

    /// etcd's /health: healthy when a leader is known and a linearizable read succeeds (at a
    /// learner too: then it has applied what the leader had chosen). A joining member is
    /// unhealthy until a snapshot from the cluster gave it a membership, and a member repairing
    /// damaged records until it votes again.
    static func health(_ node: Node) async -> HealthReport {
        // Decoding a snapshot of a large state takes seconds, and everything that reads the
        // state waits for it: say so at once rather than after the decode.
        if node.isDecodingSnapshot {
            return HealthReport(healthy: false, reason: "decoding a snapshot: the member serves once its state is loaded")
        }
        do {
            let status = try await node.withState { $0.status }
            if let failure = status.storageFailure { return HealthReport(healthy: false, reason: "storage failed: \(failure)") }
            switch node.role {
            case .joining: return HealthReport(healthy: false, reason: "joining the cluster: waiting for a snapshot")
            case .removed: return HealthReport(healthy: false, reason: "removed from the cluster")
            case .voter, .learner: break
            }
            if status.isRepairing {
                // It follows and serves, but votes in no quorum until every other voter has
                // answered it: the cluster tolerates one failure fewer meanwhile.
                return HealthReport(healthy: false, reason: "repairing damaged log records from the other members")
            }
            guard status.leader != nil else { return HealthReport(healthy: false, reason: "RAFT NO LEADER") }
            let alarms = try await node.withState { $0.kv.alarms.sorted() }
            if let alarm = alarms.first {
                // etcd reports an unhealthy member while any alarm is raised.
                return HealthReport(healthy: false, reason: "ALARM \(alarm.alarm.name)")
            }
            try await node.internalReadBarrier()
            return .healthy
        } catch {
            return HealthReport(healthy: false, reason: "\(error)")
        }
    }

    public func run() async throws {
        do {
            try await transport.start()
        } catch {
            throw ServerStartError("\(error)")
        }
        try await node.loop.submit { [node, transport] in
            node.start(transport: transport, onRemoved: { [weak self] in
                guard let self else { return }
                self.removed.store(true, ordering: .sequentiallyConsistent)
                self.logger.info("stopping the client API: the member was removed")
                self.api.beginShutdown()
            })
        }.get()
        if let http {
            do {
                try await http.start()
            } catch {
                await shutdownParts()
                throw ServerStartError("\(error)")
            }
        }
        logger.info("serving", metadata: [
            "name": "\(options.name)", "node": "\(node.nodeID)", "member-id": "\(String(node.memberID, radix: 16))",
            "cluster-id": "\(String(node.clusterID, radix: 16))",
            "clients": "\(options.clientListen)", "peers": "\(options.peerListen)",
            "metrics": "\(options.metricsListen.map { "\($0)" } ?? "off")",
            "members": "\(options.members.map { "\($0.name)=\($0.peerURL)" }.joined(separator: ","))",
        ])
        try await withGracefulShutdownHandler {
            do {
                try await api.serve()
            } catch {
                await shutdownParts()
                throw ServerStartError("cannot serve clients on \(options.clientListen): \(error)")
            }
        } onGracefulShutdown: { [api] in
            api.beginShutdown()
        }
        await shutdownParts()
        logger.info("stopped", metadata: ["name": "\(options.name)"])
        if removed.load(ordering: .sequentiallyConsistent) { throw MemberRemovedError() }
    }

    private func shutdownParts() async {
        try? await node.loop.submit { [node] in node.stop() }.get()
        await transport.shutdown()
        await http?.shutdown()
    }
}

/// The client API server, whichever transport it runs on.
struct ClientAPIServer: Sendable {
    let serve: @Sendable () async throws -> Void
    let beginShutdown: @Sendable () -> Void
}
