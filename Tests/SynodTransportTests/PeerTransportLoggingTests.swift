import Foundation
import Logging
import NIOCore
import NIOPosix
import SynodCore
@testable import SynodTransport
import XCTest

/// Log records kept in memory, for tests that assert what an operator would read.
final class CapturedLog: @unchecked Sendable {
    struct Record {
        var level: Logger.Level
        var message: String
        var metadata: Logger.Metadata
    }

    private let lock = NSLock()
    private var storage: [Record] = []

    var records: [Record] { lock.withLock { storage } }

    func append(_ record: Record) { lock.withLock { storage.append(record) } }

    func logger(label: String = "test") -> Logger {
        Logger(label: label) { _ in Handler(log: self) }
    }

    struct Handler: LogHandler {
        let log: CapturedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            log.append(Record(level: event.level, message: "\(event.message)", metadata: metadata.merging(event.metadata ?? [:]) { $1 }))
        }
    }
}

/// What an operator reads when a peer cannot be reached, and the socket options the links use.
final class PeerTransportLoggingTests: XCTestCase {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    override func tearDown() async throws {
        try await group.shutdownGracefully()
    }

    /// A peer that refuses connections: one warning, with the reason, once the failures have
    /// lasted `connectFailureWarningDelay`; the redials after it only at debug level.
    func testUnreachablePeerIsReportedOnceWithTheReason() async throws {
        let ports = try await PeerTransportTestSupport.freePorts(2, group: group)
        let log = CapturedLog()
        let transport = PeerTransport(
            group: group, localID: NodeID(1), clusterID: 7, listen: PeerAddress(host: "127.0.0.1", port: ports[1] ?? 0),
            peers: [NodeID(2): PeerAddress(host: "127.0.0.1", port: ports[2] ?? 0)], logger: log.logger(),
            onReceive: { _ in })
        try await transport.start()
        func warnings() -> [CapturedLog.Record] {
            log.records.filter { $0.level == .warning && $0.message == "cannot connect to peer" }
        }
        try await PeerTransportTestSupport.eventually("a warning", timeout: .seconds(15), file: #filePath, line: #line) {
            !warnings().isEmpty
        }
        // Several more redials happen (backoff of at most 2 s), none of them warned.
        try await Task.sleep(for: .seconds(3))
        await transport.shutdown()
        XCTAssertEqual(warnings().count, 1)
        let reason = "\(warnings().first?.metadata["error"] ?? "")"
        XCTAssertTrue(reason.contains("refused"), reason)
        XCTAssertGreaterThan(log.records.filter { $0.level == .debug && $0.message == "cannot connect to peer" }.count, 0)
        XCTAssertTrue(transport.statistics().peers[NodeID(2)]?.lastError?.contains("refused") == true)
    }

    /// The links set TCP_NODELAY at the TCP level and nothing at the socket level that needs
    /// privileges: SO_DEBUG (SOL_SOCKET option 1, which is what `.socketOption(.tcp_nodelay)`
    /// asked for) stays off. As root the old code turned socket debugging on; as a normal user
    /// it failed every connection.
    func testLinksUseTCPOptionsAndNoSocketDebugging() async throws {
        let ports = try await PeerTransportTestSupport.freePorts(2, group: group)
        let nodes = (1...2).map {
            PeerTransportTestSupport.Node(group: group, id: NodeID(UInt32($0)), ports: ports, clusterID: 7, sendQueueBytesMax: 1 << 20)
        }
        for node in nodes { try await node.transport.start() }
        try await PeerTransportTestSupport.eventually("connected", timeout: .seconds(10), file: #filePath, line: #line) {
            nodes.allSatisfy { $0.transport.connectedPeers().count == 1 }
        }
        let channel = try XCTUnwrap(nodes[0].transport.linkChannel(to: NodeID(2)))
        let debug = try await channel.getOption(ChannelOptions.Types.SocketOption(level: .socket, name: NIOBSDSocket.Option(rawValue: SO_DEBUG))).get()
        let noDelay = try await channel.getOption(.tcpOption(.tcp_nodelay)).get()
        XCTAssertEqual(debug, 0, "SO_DEBUG must stay off")
        XCTAssertNotEqual(noDelay, 0, "TCP_NODELAY must be on")
        for node in nodes { await node.transport.shutdown() }
    }
}
