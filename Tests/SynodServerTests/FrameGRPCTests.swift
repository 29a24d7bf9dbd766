import GRPCCore
import Logging
import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2
import XCTest
@testable import SynodServer

/// The frame-level gRPC transport on its own: HTTP/2 frames in, HTTP/2 frames out, through
/// an embedded channel. Every hostile or unsupported request gets a gRPC status and the
/// connection lives on. (The fast path with a real node is covered by every in-process
/// cluster test and the etcdctl suite, which go through this transport.)
final class FrameGRPCTests: XCTestCase {
    private typealias Incoming = FrameGRPCServerTransport.IncomingRPC

    private func makeChannel(maxMessageBytes: Int = 1024) throws
        -> (EmbeddedChannel, AsyncStream<Incoming>) {
        let (rpcs, continuation) = AsyncStream<Incoming>.makeStream()
        let handler = FrameGRPCHandler(maxMessageBytes: maxMessageBytes, fastPath: nil, rpcs: continuation,
                                       remotePeer: "test", localPeer: "test", logger: Logger(label: "test"))
        let channel = EmbeddedChannel(handler: handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        // The connection window is opened once at start.
        let opening = try XCTUnwrap(try channel.readOutbound(as: HTTP2Frame.self))
        guard case .windowUpdate(let increment) = opening.payload else { XCTFail("expected WINDOW_UPDATE"); return (channel, rpcs) }
        XCTAssertEqual(opening.streamID, .rootStream)
        XCTAssertEqual(increment, FrameGRPCHandler.connectionWindow - 65_535)
        return (channel, rpcs)
    }

    /// The same connection on `NIOAsyncTestingChannel`, for tests where an async task (a
    /// response writer) hops onto the loop: `EmbeddedEventLoop` may only be used from one
    /// thread, and a writer on another thread corrupted it (a crash in CI).
    private func makeAsyncChannel(maxMessageBytes: Int = 1024) async throws
        -> (NIOAsyncTestingChannel, AsyncStream<Incoming>) {
        let (rpcs, continuation) = AsyncStream<Incoming>.makeStream()
        let channel = try await NIOAsyncTestingChannel { channel in
            let handler = FrameGRPCHandler(maxMessageBytes: maxMessageBytes, fastPath: nil, rpcs: continuation,
                                           remotePeer: "test", localPeer: "test", logger: Logger(label: "test"))
            try channel.pipeline.syncOperations.addHandler(handler)
        }
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).get()
        let opening = try await channel.waitForOutboundWrite(as: HTTP2Frame.self)
        XCTAssertEqual(opening.streamID, .rootStream)
        return (channel, rpcs)
    }

    private func send(_ channel: NIOAsyncTestingChannel, _ id: Int, headers: HPACKHeaders, endStream: Bool = false) async throws {
        try await channel.writeInbound(HTTP2Frame(streamID: HTTP2StreamID(id), payload: .headers(.init(headers: headers, endStream: endStream))))
    }

    private func send(_ channel: NIOAsyncTestingChannel, _ id: Int, data: ByteBuffer, endStream: Bool) async throws {
        try await channel.writeInbound(HTTP2Frame(streamID: HTTP2StreamID(id), payload: .data(.init(data: .byteBuffer(data), endStream: endStream))))
    }

    private func requestHeaders(path: String = "/test.Echo/Say", method: String = "POST",
                                contentType: String = "application/grpc", extra: [(String, String)] = []) -> HPACKHeaders {
        var headers = HPACKHeaders([(":method", method), (":scheme", "http"), (":path", path),
                                    (":authority", "localhost"), ("content-type", contentType), ("te", "trailers")])
        for (name, value) in extra { headers.add(name: name, value: value) }
        return headers
    }

    private func message(_ bytes: [UInt8], compressed: Bool = false, declaredLength: Int? = nil) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt8(compressed ? 1 : 0))
        buffer.writeInteger(UInt32(declaredLength ?? bytes.count))
        buffer.writeBytes(bytes)
        return buffer
    }

    private func send(_ channel: EmbeddedChannel, _ id: Int, headers: HPACKHeaders, endStream: Bool = false) throws {
        try channel.writeInbound(HTTP2Frame(streamID: HTTP2StreamID(id), payload: .headers(.init(headers: headers, endStream: endStream))))
    }

    private func send(_ channel: EmbeddedChannel, _ id: Int, data: ByteBuffer, endStream: Bool) throws {
        try channel.writeInbound(HTTP2Frame(streamID: HTTP2StreamID(id), payload: .data(.init(data: .byteBuffer(data), endStream: endStream))))
    }

    /// The status the server ended stream `id` with (trailers), reading every frame written so far.
    private func finalStatus(_ channel: EmbeddedChannel, _ id: Int) throws -> (code: Int, message: String)? {
        channel.embeddedEventLoop.run()
        var result: (Int, String)?
        while let frame = try channel.readOutbound(as: HTTP2Frame.self) {
            guard frame.streamID == HTTP2StreamID(id), case .headers(let headers) = frame.payload, headers.endStream,
                  let code = headers.headers.first(name: "grpc-status").flatMap({ Int($0) }) else { continue }
            result = (code, headers.headers.first(name: "grpc-message") ?? "")
        }
        return result
    }

    func testUnsupportedRequestsGetAGRPCStatusAndTheConnectionStays() throws {
        let (channel, rpcs) = try makeChannel()
        defer { withExtendedLifetime(rpcs) {} }
        try send(channel, 1, headers: requestHeaders(method: "GET"), endStream: true)
        XCTAssertEqual(try finalStatus(channel, 1)?.code, RPCError.Code.unimplemented.rawValue)
        try send(channel, 3, headers: requestHeaders(contentType: "text/plain"), endStream: true)
        XCTAssertEqual(try finalStatus(channel, 3)?.code, RPCError.Code.unknown.rawValue)
        try send(channel, 5, headers: requestHeaders(extra: [("grpc-encoding", "gzip")]), endStream: true)
        XCTAssertEqual(try finalStatus(channel, 5)?.code, RPCError.Code.unimplemented.rawValue)
        try send(channel, 7, headers: requestHeaders(path: "no-slashes"), endStream: true)
        XCTAssertEqual(try finalStatus(channel, 7)?.code, RPCError.Code.unimplemented.rawValue)
        XCTAssertTrue(channel.isActive)
    }

    func testOversizedCompressedAndTruncatedMessagesAreRejected() throws {
        let (channel, rpcs) = try makeChannel(maxMessageBytes: 1024)
        defer { withExtendedLifetime(rpcs) {} }
        try send(channel, 1, headers: requestHeaders())
        // Only the 5-byte prefix is needed to refuse: the declared length is over the limit.
        try send(channel, 1, data: message([1, 2, 3], declaredLength: 4096), endStream: false)
        let oversized = try XCTUnwrap(try finalStatus(channel, 1))
        XCTAssertEqual(oversized.code, RPCError.Code.resourceExhausted.rawValue)
        XCTAssertTrue(oversized.message.contains("4096"), oversized.message)

        try send(channel, 3, headers: requestHeaders())
        try send(channel, 3, data: message([1, 2, 3], compressed: true), endStream: true)
        XCTAssertEqual(try finalStatus(channel, 3)?.code, RPCError.Code.unimplemented.rawValue)

        try send(channel, 5, headers: requestHeaders())
        try send(channel, 5, data: message([1, 2, 3], declaredLength: 10), endStream: true)
        XCTAssertEqual(try finalStatus(channel, 5)?.code, RPCError.Code.internalError.rawValue)
        XCTAssertTrue(channel.isActive)
    }

    /// A generic call: metadata and messages (split across DATA frames) reach the handler in
    /// order, and its response parts come back as HEADERS, DATA and trailers.
    func testGenericCallRoundTrip() async throws {
        let (channel, rpcs) = try await makeAsyncChannel()
        try await send(channel, 1, headers: requestHeaders(extra: [("x-token", "abc"), ("x-blob-bin", "AQID")]))
        var whole = message([10, 11, 12, 13])
        whole.writeImmutableBuffer(message([20]))
        let first = whole.getSlice(at: 0, length: 3) ?? ByteBuffer()
        let rest = whole.getSlice(at: 3, length: whole.readableBytes - 3) ?? ByteBuffer()
        try await send(channel, 1, data: first, endStream: false)
        try await send(channel, 1, data: rest, endStream: true)

        var iterator = rpcs.makeAsyncIterator()
        let next = await iterator.next()
        let rpc = try XCTUnwrap(next)
        XCTAssertEqual(rpc.stream.descriptor, MethodDescriptor(fullyQualifiedService: "test.Echo", method: "Say"))
        var parts: [RPCRequestPart<[UInt8]>] = []
        for try await part in rpc.stream.inbound { parts.append(part) }
        guard parts.count == 3, case .metadata(let metadata) = parts[0], case .message(let one) = parts[1],
              case .message(let two) = parts[2] else {
            return XCTFail("unexpected parts \(parts)")
        }
        XCTAssertEqual(Array(metadata[stringValues: "x-token"]), ["abc"])
        XCTAssertEqual(Array(metadata[binaryValues: "x-blob-bin"]), [[1, 2, 3]])
        XCTAssertEqual(one, [10, 11, 12, 13])
        XCTAssertEqual(two, [20])

        let writer = rpc.stream.outbound
        async let written: Void = {
            try await writer.write(.metadata([:]))
            try await writer.write(.message([7, 8]))
            try await writer.write(.status(Status(code: .notFound, message: "nope 100%"), [:]))
        }()
        // The writes hop onto the testing loop, which runs them as they are submitted.
        try await written
        var frames: [HTTP2Frame] = []
        while let frame = try await channel.readOutbound(as: HTTP2Frame.self) { frames.append(frame) }
        XCTAssertEqual(frames.count, 3)
        guard frames.count == 3, case .headers(let head) = frames[0].payload, case .data(let data) = frames[1].payload,
              case .headers(let trailers) = frames[2].payload, case .byteBuffer(let body) = data.data else {
            return XCTFail("unexpected frames \(frames)")
        }
        XCTAssertEqual(head.headers.first(name: ":status"), "200")
        XCTAssertEqual(Array(body.readableBytesView), [0, 0, 0, 0, 2, 7, 8])
        XCTAssertTrue(trailers.endStream)
        XCTAssertEqual(trailers.headers.first(name: "grpc-status"), String(Status.Code.notFound.rawValue))
        XCTAssertEqual(trailers.headers.first(name: "grpc-message"), "nope 100%25")
    }

    func testAClientResetFinishesTheHandlersInboundWithAnError() async throws {
        let (channel, rpcs) = try await makeAsyncChannel()
        try await send(channel, 1, headers: requestHeaders())
        try await channel.writeInbound(HTTP2Frame(streamID: 1, payload: .rstStream(.cancel)))
        var iterator = rpcs.makeAsyncIterator()
        let next = await iterator.next()
        let rpc = try XCTUnwrap(next)
        var sawError = false
        do {
            for try await _ in rpc.stream.inbound {}
        } catch {
            sawError = true
        }
        XCTAssertTrue(sawError)
        XCTAssertTrue(rpc.context.cancellation.isCancelled)
    }

    func testPercentAndBase64Encoding() {
        XCTAssertEqual(FrameGRPCHandler.percentEncode("etcdserver: key not found"), "etcdserver: key not found")
        XCTAssertEqual(FrameGRPCHandler.percentEncode("a%b\nü"), "a%25b%0A%C3%BC")
        for length in 0..<10 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 200) }
            XCTAssertEqual(FrameGRPCHandler.base64Decode(FrameGRPCHandler.base64Encode(bytes)), bytes)
        }
        XCTAssertEqual(FrameGRPCHandler.base64Encode([1, 2, 3]), "AQID")
        XCTAssertEqual(FrameGRPCHandler.base64Decode("AQI="), [1, 2])
        XCTAssertNil(FrameGRPCHandler.base64Decode("A"))
        XCTAssertNil(FrameGRPCHandler.base64Decode("*"))
    }
}
