import Foundation
import GRPCCore
import Logging
import NIOPosix
import Synchronization
@testable import SynodClient
import SynodCore
import SynodEtcdAPI
import SynodTransport
import XCTest
@testable import SynodServer

/// Free TCP ports on 127.0.0.1 (bound to port 0, then released).
func freePorts(_ count: Int) -> [Int] {
    var ports: [Int] = []
    var sockets: [Int32] = []
    while ports.count < count {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        let port = Int(UInt16(bigEndian: address.sin_port))
        sockets.append(fd)
        if !ports.contains(port) { ports.append(port) }
    }
    sockets.forEach { close($0) }
    return ports
}

/// A cluster of `SynodNodeServer`s in this process, on loopback.
final class InProcessCluster: @unchecked Sendable {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    let root: String
    var configurations: [ServeConfiguration] = []
    var servers: [SynodNodeServer?]
    var tasks: [Task<Void, any Error>?]
    /// Failpoints per node index (tests of the integrity check).
    var failpoints: [Int: Failpoints] = [:]
    /// Overrides the integrity check interval when set.
    var integrityCheckMilliseconds: Int?
    /// Overrides the client API's gRPC transport when set.
    var grpcTransport: GRPCTransportKind?
    /// Overrides the peer frame limits when set (on every node, joiners included).
    var peerCodecLimits: PeerCodecLimits?
    /// Enables the live page's isolate/heal control on the members started from now on.
    var uiControlToken: String?
    /// Nodes whose server reported their own removal from the cluster (`NodeOptions.onRemoved`).
    let removedNodes = RemovedNodes()
    /// Why each node halted on a safety violation (`NodeOptions.onSafetyHalt`), by index.
    let haltReasons = HaltReasons()

    init(nodes: Int, snapshotCount: Int = 10_000) throws {
        root = NSTemporaryDirectory() + "synod-inprocess-\(UUID().uuidString)"
        let ports = freePorts(nodes * 3)
        let cluster = (0..<nodes).map { "n\($0 + 1)=http://127.0.0.1:\(ports[$0 * 3 + 1])" }.joined(separator: ",")
        for i in 0..<nodes {
            var c = ServeConfiguration()
            c.name = "n\(i + 1)"
            c.dataDir = "\(root)/n\(i + 1)"
            c.listenClientURLs = "http://127.0.0.1:\(ports[i * 3])"
            c.listenPeerURLs = "http://127.0.0.1:\(ports[i * 3 + 1])"
            c.listenMetricsURLs = "http://127.0.0.1:\(ports[i * 3 + 2])"
            c.initialCluster = cluster
            c.snapshotCount = snapshotCount
            configurations.append(c)
        }
        servers = Array(repeating: nil, count: nodes)
        tasks = Array(repeating: nil, count: nodes)
    }

    var endpoints: [String] { configurations.map(\.listenClientURLs) }

    func start(_ i: Int) throws {
        var logger = Logger(label: "test.n\(i + 1)")
        logger.logLevel = InProcessCluster.logLevel
        var options = try configurations[i].validate()
        if let failpoints = failpoints[i] { options.failpoints = failpoints }
        if let integrityCheckMilliseconds { options.integrityCheckMilliseconds = integrityCheckMilliseconds }
        if let grpcTransport { options.grpcTransport = grpcTransport }
        if let peerCodecLimits { options.peerCodecLimits = peerCodecLimits }
        options.uiControlToken = uiControlToken
        options.onRemoved = { [removedNodes] in removedNodes.insert(i) }
        options.onSafetyHalt = { [haltReasons] reason in haltReasons.set(i, reason) }
        let server = try SynodNodeServer(options: options, logger: logger, group: group)
        servers[i] = server
        tasks[i] = Task { try await server.run() }
    }

    /// Adds the configuration of a spare node (fresh ports) that joins the running cluster with
    /// `--initial-cluster-state existing`; `members` (default: all but the spare) are listed in
    /// its `--initial-cluster` with it. Returns its index. It still needs MemberAdd and `join`.
    func addSpare(members: [Int]? = nil) -> Int {
        let i = configurations.count
        let ports = freePorts(3)
        var c = configurations[0]
        c.name = "n\(i + 1)"
        c.dataDir = "\(root)/n\(i + 1)"
        c.listenClientURLs = "http://127.0.0.1:\(ports[0])"
        c.listenPeerURLs = "http://127.0.0.1:\(ports[1])"
        c.listenMetricsURLs = "http://127.0.0.1:\(ports[2])"
        c.initialClusterState = "existing"
        let listed = (members ?? Array(configurations.indices)).map { "\(configurations[$0].name)=\(configurations[$0].listenPeerURLs)" }
        c.initialCluster = (listed + ["\(c.name)=\(c.listenPeerURLs)"]).joined(separator: ",")
        configurations.append(c)
        servers.append(nil)
        tasks.append(nil)
        return i
    }

    /// Starts node `i` through `SynodNodeServer.make` (discovery for `existing`).
    func join(_ i: Int) async throws {
        var logger = Logger(label: "test.n\(i + 1)")
        logger.logLevel = InProcessCluster.logLevel
        var options = try configurations[i].validate()
        if let peerCodecLimits { options.peerCodecLimits = peerCodecLimits }
        options.onRemoved = { [removedNodes] in removedNodes.insert(i) }
        let server = try await SynodNodeServer.make(options: options, logger: logger, group: group)
        servers[i] = server
        tasks[i] = Task { try await server.run() }
    }

    /// Log level of the nodes: `SYNOD_TEST_LOG_LEVEL` (e.g. info, debug), default warning.
    static var logLevel: Logger.Level {
        ProcessInfo.processInfo.environment["SYNOD_TEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
    }

    func wasRemoved(_ i: Int) -> Bool { removedNodes.contains(i) }

    func stop(_ i: Int) async {
        tasks[i]?.cancel()
        _ = try? await tasks[i]?.value
        tasks[i] = nil
        servers[i] = nil
    }

    func stopAll() async {
        for i in servers.indices { await stop(i) }
        try? await group.shutdownGracefully()
        try? FileManager.default.removeItem(atPath: root)
    }

    func client(_ indexes: [Int]? = nil) throws -> SynodClient {
        let chosen = indexes.map { $0.map { endpoints[$0] } } ?? endpoints
        return try SynodClient(configuration: SynodClientConfiguration(endpoints: chosen))
    }
}

/// Why nodes halted, by index (any thread).
final class HaltReasons: Sendable {
    private let reasons = Mutex<[Int: String]>([:])
    func set(_ i: Int, _ reason: String) { reasons.withLock { $0[i] = reason } }
    func reason(_ i: Int) -> String? { reasons.withLock { $0[i] } }
}

/// Indexes of nodes that reported their removal (any thread).
final class RemovedNodes: Sendable {
    private let nodes = Mutex<Set<Int>>([])
    func insert(_ i: Int) { nodes.withLock { _ = $0.insert(i) } }
    func contains(_ i: Int) -> Bool { nodes.withLock { $0.contains(i) } }
}

final class InProcessClusterTests: XCTestCase {
    func testWritesSurviveAFollowerRestartThroughSnapshotsAndReplicasAgree() async throws {
        let cluster = try InProcessCluster(nodes: 3, snapshotCount: 100)
        for i in 0..<3 { try cluster.start(i) }
        do {
            try await withClient(try cluster.client([0, 1])) { client in
                for k in 0..<150 { _ = try await eventually { try await client.put("k\(k)", "v\(k)") } }
                await cluster.stop(2)
                for k in 150..<400 { _ = try await eventually { try await client.put("k\(k)", "v\(k)") } }
            }
            try cluster.start(2)
            // The restarted member catches up (snapshot install or log catch-up) and serves it.
            try await withClient(try cluster.client([2])) { client in
                let last = try await eventually {
                    let response = try await client.get("k399", serializable: true)
                    guard let kv = response.kvs.first else { throw SynodClientError.invalidArgument("not yet") }
                    return kv
                }
                XCTAssertEqual(String(decoding: last.value, as: UTF8.self), "v399")
                let count = try await client.get("k", prefix: true, countOnly: true)
                XCTAssertEqual(count.count, 400)
            }
            // Every replica reports the same HashKV at the same revision. That revision is read
            // linearizably, not assumed to be 401: a put the client retried after an attempt
            // timed out may have applied twice (documented, as with etcd).
            let revision = try await withClient(try cluster.client()) { client in
                try await eventually { try await client.get("k399").header.revision }
            }
            XCTAssertGreaterThanOrEqual(revision, 401)
            var hashes: Set<UInt32> = []
            for i in 0..<3 {
                try await withClient(try cluster.client([i])) { client in
                    let hash = try await eventually(60) {
                        let status = try await client.status(endpoint: cluster.endpoints[i])
                        guard status.raftAppliedIndex >= status.raftIndex, status.header.revision >= revision else {
                            throw SynodClientError.invalidArgument(
                                "n\(i + 1) catching up: applied \(status.raftAppliedIndex), chosen \(status.raftIndex), revision \(status.header.revision)")
                        }
                        return try await client.hashKV(endpoint: cluster.endpoints[i], revision: revision)
                    }
                    hashes.insert(hash.hash)
                }
            }
            XCTAssertEqual(hashes.count, 1, "replicas disagree: \(hashes)")
            let snapshots = try FileManager.default.contentsOfDirectory(atPath: cluster.root + "/n1/snap")
            XCTAssertFalse(snapshots.isEmpty, "snapshots were taken")
        } catch {
            await cluster.stopAll()
            throw error
        }
        await cluster.stopAll()
    }

    /// A range whose response is larger than gRPC's customary 4 MiB reaches the client whole
    /// (etcd's clients accept up to 2 GiB); a client configured with a smaller limit gets an
    /// error naming it rather than a partial answer.
    func testARangeOverMoreThanFourMebibytesReachesTheClient() async throws {
        let cluster = try InProcessCluster(nodes: 1)
        try cluster.start(0)
        do {
            // Each value names its key, so a piece of the streamed answer (see
            // `RangeResponseEncoder.Pieces`) lost, repeated or out of order would show.
            func value(_ k: Int) -> String { String(repeating: "v\(k % 10)", count: 50_000) }
            try await withClient(try cluster.client()) { client in
                for k in 0..<60 { _ = try await eventually { try await client.put(String(format: "big/%02d", k), value(k)) } }
                let response = try await client.get("big/", prefix: true)
                XCTAssertEqual(response.kvs.count, 60)
                XCTAssertEqual(response.kvs.reduce(0) { $0 + $1.value.count }, 6_000_000)
                for (k, kv) in response.kvs.enumerated() {
                    XCTAssertEqual(String(decoding: kv.key, as: UTF8.self), String(format: "big/%02d", k))
                    XCTAssertEqual(String(decoding: kv.value, as: UTF8.self), value(k))
                }
            }
            let small = try SynodClient(configuration: SynodClientConfiguration(endpoints: cluster.endpoints, maxResponseBytes: 1 << 20))
            try await withClient(small) { client in
                do {
                    _ = try await client.get("big/", prefix: true)
                    XCTFail("a 6 MB response passed a 1 MiB limit")
                } catch {
                    XCTAssertTrue("\(error)".contains("maximum payload size"), "\(error)")
                }
            }
        } catch {
            await cluster.stopAll()
            throw error
        }
        await cluster.stopAll()
    }

    func testADataDirectoryOfAnotherClusterIsRefusedWithOneLine() async throws {
        let first = try InProcessCluster(nodes: 1)
        try first.start(0)
        try await withClient(try first.client()) { client in
            _ = try await eventually { try await client.put("a", "1") }
        }
        await first.stop(0)
        // Same directory, another cluster token: a different cluster id.
        var other = first.configurations[0]
        other.initialClusterToken = "someone-else"
        do {
            _ = try SynodNodeServer(options: try other.validate(), logger: Logger(label: "t"), group: first.group)
            XCTFail("opened another cluster's data directory")
        } catch {
            let message = "\(error)"
            XCTAssertTrue(message.hasPrefix("cannot open data directory \(first.root)/n1:"), message)
            XCTAssertTrue(message.contains("cluster"), message)
            XCTAssertFalse(message.contains("\n"), "one line: \(message)")
        }
        await first.stopAll()
    }
}

extension XCTestCase {
    /// Runs `body` with a raw gRPC client of `endpoint` (errors come back as the server sent
    /// them, no failover), whose connections run in a child task.
    func withRaw<T: Sendable>(_ endpoint: String, _ body: (GRPCClient<SynodClient.Transport>) async throws -> T) async throws -> T {
        let grpc = GRPCClient(transport: try SynodEndpoint(parsing: endpoint).makeTransport(maxBackoff: .milliseconds(300)))
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await grpc.runConnections() }
            defer {
                grpc.beginGracefulShutdown()
                group.cancelAll()
            }
            return try await body(grpc)
        }
    }

    /// Runs `body` with a client whose connections run in a child task.
    func withClient<T: Sendable>(_ client: SynodClient, _ body: (SynodClient) async throws -> T) async throws -> T {
        let runner = Task { try await client.run() }
        defer { client.close(); runner.cancel() }
        return try await body(client)
    }

    /// Puts `k0`...`k<count-1>` (values `v0`...) through the cluster, then waits until member
    /// `member` has applied the last of them (so it holds them all when it stops).
    func putKeys(_ count: Int, into cluster: InProcessCluster, appliedAt member: Int) async throws {
        try await withClient(try cluster.client()) { client in
            for i in 0..<count { _ = try await eventually { try await client.put("k\(i)", "v\(i)") } }
        }
        try await withClient(try cluster.client([member])) { client in
            try await eventually {
                guard try await client.get("k\(count - 1)", serializable: true).kvs.count == 1 else { throw NodeError.timedOut }
            }
        }
    }

    /// Retries `body` until it succeeds or `seconds` pass (elections, catch-up).
    func eventually<T>(_ seconds: Double = 15, _ body: () async throws -> T) async throws -> T {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            do {
                return try await body()
            } catch {
                if Date() > deadline { throw error }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }
}
