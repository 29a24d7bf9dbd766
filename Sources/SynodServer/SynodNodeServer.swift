import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import SynodCore
import SynodStore
import SynodTransport

/// A startup failure, as one line for the operator.
public struct ServerStartError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
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

    /// Opens storage (recovery happens here) and builds every part; nothing listens yet.
    public init(options: NodeOptions, logger: Logger, group: MultiThreadedEventLoopGroup) throws {
        self.options = options
        self.logger = logger
        self.group = group
        let metrics = SynodMetrics()
        self.metrics = metrics
        if options.joinExisting && !Self.hasData(options.dataDirectory) {
            throw ServerStartError(
                "--initial-cluster-state existing: \(options.dataDirectory) holds no data for this member; joining a running cluster needs membership changes, which are not supported yet")
        }
        let node: Node
        do {
            node = try Node(options: options, loop: group.next(), logger: logger, metrics: metrics)
        } catch let error as StorageError {
            throw ServerStartError("cannot open data directory \(options.dataDirectory): \(error)")
        }
        self.node = node
        let local = options.local
        var peers: [NodeID: PeerAddress] = [:]
        for member in options.members where member.nodeID != local.nodeID { peers[member.nodeID] = member.peerAddress }
        let names = Dictionary(uniqueKeysWithValues: options.members.map { ($0.nodeID, $0.name) })
        transport = PeerTransport(
            group: group, localID: local.nodeID, clusterID: options.clusterID, listen: options.peerListen,
            peers: peers, logger: logger,
            onReceive: { [node] envelopes in node.receive(envelopes) },
            onPeerStateChange: { peer, up in
                metrics.peerConnected(names[peer] ?? "\(peer)").set(to: up ? 1 : 0)
            })
        let context = ServiceContext(node: node, metrics: metrics)
        // As etcd: gRPC accepts max-request-bytes plus overhead, so an oversized request gets
        // etcd's "request is too large" from the server rather than a transport error.
        let maxMessageBytes = options.maxRequestBytes + (512 << 10)
        let services: [any RegistrableRPCService] = [
            KVService(context: context), WatchService(context: context), LeaseService(context: context),
            ClusterService(context: context), MaintenanceService(context: context),
        ]
        switch options.grpcTransport {
        case .frames:
            let server = GRPCServer(
                transport: FrameGRPCServerTransport(
                    host: options.clientListen.host, port: options.clientListen.port, group: group,
                    maxMessageBytes: maxMessageBytes, fastPath: FrameGRPCFastPath(context: context), logger: logger),
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
                metrics: { metrics.exposition() })
        } else {
            http = nil
        }
    }

    static func hasData(_ directory: String) -> Bool {
        let wal = (try? FileManager.default.contentsOfDirectory(atPath: directory + "/wal")) ?? []
        return !wal.isEmpty
    }

    /// etcd's /health: healthy when a leader is known and a linearizable read succeeds.
    static func health(_ node: Node) async -> HealthReport {
        do {
            let status = try await node.withState { $0.status }
            if let failure = status.storageFailure { return HealthReport(healthy: false, reason: "storage failed: \(failure)") }
            guard status.leader != nil else { return HealthReport(healthy: false, reason: "RAFT NO LEADER") }
            let alarms = try await node.withState { $0.kv.alarms.sorted() }
            if let alarm = alarms.first {
                // etcd reports an unhealthy member while any alarm is raised.
                return HealthReport(healthy: false, reason: "ALARM \(alarm.alarm.name)")
            }
            try await node.readBarrier(.linearizable)
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
        try await node.loop.submit { [node, transport] in node.start(transport: transport) }.get()
        if let http {
            do {
                try await http.start()
            } catch {
                await shutdownParts()
                throw ServerStartError("\(error)")
            }
        }
        logger.info("serving", metadata: [
            "name": "\(options.name)", "clients": "\(options.clientListen)", "peers": "\(options.peerListen)",
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
