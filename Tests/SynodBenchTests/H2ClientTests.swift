import Foundation
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import Synchronization
import SynodEtcdAPI
import XCTest
@testable import SynodBench

/// What the fake server saw.
final class FakeServerStats: Sendable {
    let connections = Atomic<Int>(0)
    let maxOpenStreams = Atomic<Int>(0)
    let requests = Atomic<Int>(0)
}

/// A frame-level fake gRPC server whose behaviour is chosen by the request path:
/// - `/test/Echo`: answers with the request message, split into DATA frames of 3 bytes
///   (the 5-byte prefix too), then trailers with status 0;
/// - `/test/Delay`: the same 30 ms later;
/// - `/test/Error`: a trailers-only response, status 3 and a percent-encoded message;
/// - `/test/Close`: closes the connection;
/// - `/test/Hang`: never answers.
private final class FakeGRPCServerHandler: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    let stats: FakeServerStats
    var paths: [HTTP2StreamID: String] = [:]
    var bodies: [HTTP2StreamID: ByteBuffer] = [:]
    var open = 0

    init(stats: FakeServerStats) { self.stats = stats }

    func channelActive(context: ChannelHandlerContext) {
        stats.connections.wrappingAdd(1, ordering: .relaxed)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.payload {
        case .headers(let headers):
            paths[frame.streamID] = headers.headers.first(name: ":path") ?? ""
            open += 1
            let current = open
            while true {
                let seen = stats.maxOpenStreams.load(ordering: .relaxed)
                if current <= seen || stats.maxOpenStreams.compareExchange(
                    expected: seen, desired: current, ordering: .relaxed).exchanged { break }
            }
            if headers.endStream { respond(frame.streamID, context: context) }
        case .data(let data):
            if case .byteBuffer(var buffer) = data.data {
                if bodies[frame.streamID] == nil {
                    bodies[frame.streamID] = buffer
                } else {
                    bodies[frame.streamID]?.writeBuffer(&buffer)
                }
            }
            if data.endStream { respond(frame.streamID, context: context) }
        default:
            break
        }
    }

    private func respond(_ streamID: HTTP2StreamID, context: ChannelHandlerContext) {
        stats.requests.wrappingAdd(1, ordering: .relaxed)
        let path = paths.removeValue(forKey: streamID) ?? ""
        let body = bodies.removeValue(forKey: streamID) ?? ByteBuffer()
        switch path {
        case "/test/Echo":
            echo(streamID, body: body, context: context)
        case "/test/Delay":
            context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(30)) {
                self.echo(streamID, body: body, context: context)
            }
        case "/test/Error":
            let headers: HPACKHeaders = [
                ":status": "200", "content-type": "application/grpc", "grpc-status": "3",
                "grpc-message": "etcdserver: key is not provided %25 done",
            ]
            context.writeAndFlush(wrapOutboundOut(HTTP2Frame(streamID: streamID, payload: .headers(.init(headers: headers, endStream: true)))),
                                  promise: nil)
            open -= 1
        case "/test/Close":
            context.close(promise: nil)
        default:
            break  // /test/Hang
        }
    }

    private func echo(_ streamID: HTTP2StreamID, body: ByteBuffer, context: ChannelHandlerContext) {
        let headers: HPACKHeaders = [":status": "200", "content-type": "application/grpc"]
        context.write(wrapOutboundOut(HTTP2Frame(streamID: streamID, payload: .headers(.init(headers: headers)))), promise: nil)
        var rest = body
        while rest.readableBytes > 0, let piece = rest.readSlice(length: min(3, rest.readableBytes)) {
            context.write(wrapOutboundOut(HTTP2Frame(streamID: streamID, payload: .data(.init(data: .byteBuffer(piece))))),
                          promise: nil)
        }
        let trailers: HPACKHeaders = ["grpc-status": "0"]
        context.writeAndFlush(wrapOutboundOut(HTTP2Frame(streamID: streamID, payload: .headers(.init(headers: trailers, endStream: true)))),
                              promise: nil)
        open -= 1
    }
}

/// A fake server on a free local port.
private struct FakeServer {
    let channel: any Channel
    let stats: FakeServerStats
    var port: Int { channel.localAddress?.port ?? 0 }

    static func start(group: MultiThreadedEventLoopGroup, maxConcurrentStreams: Int = 100) async throws -> FakeServer {
        let stats = FakeServerStats()
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let settings = [
                        HTTP2Setting(parameter: .maxConcurrentStreams, value: maxConcurrentStreams),
                        HTTP2Setting(parameter: .initialWindowSize, value: 65_535),
                    ]
                    try channel.pipeline.syncOperations.addHandlers([
                        NIOHTTP2Handler(mode: .server, initialSettings: settings),
                        FakeGRPCServerHandler(stats: stats),
                    ])
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return FakeServer(channel: channel, stats: stats)
    }
}

/// Runs calls of one ``H2Connection`` from async tests.
private struct TestConnection: Sendable {
    let loop: any EventLoop
    let bound: NIOLoopBound<H2Connection>

    static func make(group: MultiThreadedEventLoopGroup, port: Int, configuration: H2ClientConfiguration = .init()) async throws
        -> TestConnection {
        let loop = group.next()
        let bound = try await loop.submit {
            NIOLoopBound(H2Connection(eventLoop: loop, host: "127.0.0.1", port: port, configuration: configuration), eventLoop: loop)
        }.get()
        return TestConnection(loop: loop, bound: bound)
    }

    /// `count` concurrent calls; their results in order.
    func calls(_ path: String, _ message: [UInt8], count: Int = 1, timeout: TimeAmount = .seconds(10)) async throws
        -> [Result<[UInt8], H2CallError>] {
        let bound = bound
        let loop = loop
        return try await loop.flatSubmit {
            let connection = bound.value
            let headers = connection.requestHeaders(path: path)
            var futures: [EventLoopFuture<Result<[UInt8], H2CallError>>] = []
            for _ in 0..<count {
                let promise = loop.makePromise(of: Result<[UInt8], H2CallError>.self)
                connection.unary(headers: headers, body: H2Framing.frame(message),
                                 deadlineNanos: monotonicNanos() + UInt64(timeout.nanoseconds)) { result in
                    promise.succeed(result.map { Array($0.readableBytesView) })
                }
                futures.append(promise.futureResult)
            }
            return EventLoopFuture.whenAllSucceed(futures, on: loop)
        }.get()
    }

    func call(_ path: String, _ message: [UInt8], timeout: TimeAmount = .seconds(10)) async throws -> Result<[UInt8], H2CallError> {
        try await calls(path, message, timeout: timeout)[0]
    }

    func close() async throws {
        let bound = bound
        try await loop.submit { bound.value.close() }.get()
    }
}

final class H2ClientTests: XCTestCase {
    private var group: MultiThreadedEventLoopGroup?

    override func setUp() {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    override func tearDown() {
        try? group?.syncShutdownGracefully()
        group = nil
    }

    private func loopGroup() throws -> MultiThreadedEventLoopGroup { try XCTUnwrap(group) }

    func testResponseSplitOverManyDataFrames() async throws {
        let group = try loopGroup()
        let server = try await FakeServer.start(group: group)
        defer { server.channel.close(promise: nil) }
        let connection = try await TestConnection.make(group: group, port: server.port)
        let message = Array(0..<200).map { UInt8($0) }
        let results = try await connection.calls("/test/Echo", message, count: 20)
        for result in results { XCTAssertEqual(try result.get(), message) }
        // An empty message is a message too (prefix only, split in two frames).
        let empty = try await connection.call("/test/Echo", [])
        XCTAssertEqual(try empty.get(), [])
        XCTAssertEqual(server.stats.connections.load(ordering: .relaxed), 1)
        try await connection.close()
    }

    func testTrailersOnlyErrorResponse() async throws {
        let group = try loopGroup()
        let server = try await FakeServer.start(group: group)
        defer { server.channel.close(promise: nil) }
        let connection = try await TestConnection.make(group: group, port: server.port)
        let result = try await connection.call("/test/Error", [1, 2, 3])
        XCTAssertEqual(result.failure, H2CallError(code: "invalidArgument", message: "etcdserver: key is not provided % done"))
        // The connection stays usable.
        let after = try await connection.call("/test/Echo", [7])
        XCTAssertEqual(try after.get(), [7])
        try await connection.close()
    }

    func testServerClosingMidCallFailsUnavailableAndTheNextCallReconnects() async throws {
        let group = try loopGroup()
        let server = try await FakeServer.start(group: group)
        defer { server.channel.close(promise: nil) }
        let connection = try await TestConnection.make(group: group, port: server.port)
        let first = try await connection.call("/test/Echo", [1])
        XCTAssertEqual(try first.get(), [1])
        // Two calls outstanding when the server closes the connection: both fail.
        async let hanging = connection.call("/test/Hang", [2])
        try await Task.sleep(nanoseconds: 50_000_000)
        let closing = try await connection.call("/test/Close", [3])
        XCTAssertEqual(closing.failure?.code, "unavailable")
        let hung = try await hanging
        XCTAssertEqual(hung.failure?.code, "unavailable")
        let next = try await connection.call("/test/Echo", [4])
        XCTAssertEqual(try next.get(), [4])
        XCTAssertEqual(server.stats.connections.load(ordering: .relaxed), 2, "the next call reconnected")
        try await connection.close()
    }

    func testDeadlineExpiry() async throws {
        let group = try loopGroup()
        let server = try await FakeServer.start(group: group)
        defer { server.channel.close(promise: nil) }
        var configuration = H2ClientConfiguration()
        configuration.deadlineSweep = .milliseconds(10)
        let connection = try await TestConnection.make(group: group, port: server.port, configuration: configuration)
        let start = monotonicNanos()
        let result = try await connection.call("/test/Hang", [1], timeout: .milliseconds(200))
        let elapsed = Double(monotonicNanos() - start) / 1e9
        XCTAssertEqual(result.failure?.code, "deadlineExceeded")
        // A deadline never fires early (a lower bound holds on any machine; no upper bound).
        XCTAssertGreaterThanOrEqual(elapsed, 0.2)
        // The stream was reset, the connection stays usable.
        let after = try await connection.call("/test/Echo", [5])
        XCTAssertEqual(try after.get(), [5])
        XCTAssertEqual(server.stats.connections.load(ordering: .relaxed), 1)
        try await connection.close()
    }

    func testUnreachableServerFailsUnavailable() async throws {
        let group = try loopGroup()
        var port = 1
        for candidate in 42_000..<42_100 where LoadTestCluster.portIsFree(candidate) {
            port = candidate
            break
        }
        let connection = try await TestConnection.make(group: group, port: port)
        let results = try await connection.calls("/test/Echo", [1], count: 3)
        for result in results {
            XCTAssertEqual(result.failure?.code, "unavailable")
            XCTAssertTrue(result.failure?.message.lowercased().contains("refused") == true, "\(result)")
        }
    }

    func testServerStreamLimitIsRespected() async throws {
        let group = try loopGroup()
        let server = try await FakeServer.start(group: group, maxConcurrentStreams: 3)
        defer { server.channel.close(promise: nil) }
        let connection = try await TestConnection.make(group: group, port: server.port)
        // Let the server's SETTINGS arrive first.
        let first = try await connection.call("/test/Echo", [0])
        XCTAssertEqual(try first.get(), [0])
        let results = try await connection.calls("/test/Delay", [9, 9], count: 20)
        for result in results { XCTAssertEqual(try result.get(), [9, 9]) }
        XCTAssertLessThanOrEqual(server.stats.maxOpenStreams.load(ordering: .relaxed), 3)
        XCTAssertEqual(server.stats.requests.load(ordering: .relaxed), 21)
        try await connection.close()
    }

    func testKeyedRequestTemplateMatchesFullEncoding() throws {
        var options = BenchOptions(workload: .put, endpoints: ["127.0.0.1:2379"])
        options.keySpace = 1000
        options.valueBytes = 300
        let requests = H2KVRequests(keys: options.keyBytes(), value: options.valueData(), serializable: true)
        XCTAssertNotNil(requests.put)
        XCTAssertNotNil(requests.range)
        for index in [0, 7, 999] {
            var put = Etcdserverpb_PutRequest()
            put.key = Data(requests.keys[index])
            put.value = options.valueData()
            XCTAssertEqual(requests.putBody(key: index), H2KVRequests.frame(put))
            var range = Etcdserverpb_RangeRequest()
            range.key = Data(requests.keys[index])
            range.serializable = true
            XCTAssertEqual(requests.rangeBody(key: index), H2KVRequests.frame(range))
        }
    }
}

extension Result {
    var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
