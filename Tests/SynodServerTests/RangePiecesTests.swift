import GRPCCore
import Logging
import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2
import SynodCore
import SynodEtcdAPI
import SynodKV
import XCTest
@testable import SynodServer

/// Stands for the socket below the gRPC handler: DATA frames pass on, but their write promises
/// complete only when the test says the bytes left (`release`), as a client reading slowly
/// would make them.
private final class SlowSocket: ChannelOutboundHandler, @unchecked Sendable {
    typealias OutboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    var held: [EventLoopPromise<Void>] = []
    /// The most DATA frames written but not yet released at any moment.
    var heldHighWater = 0

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let frame = unwrapOutboundIn(data)
        guard case .data = frame.payload, let promise else {
            context.write(data, promise: promise)
            return
        }
        held.append(promise)
        heldHighWater = max(heldHighWater, held.count)
        context.write(data, promise: nil)
    }

    /// The oldest held piece reached the client.
    func releaseOne() -> Bool {
        guard !held.isEmpty else { return false }
        held.removeFirst().succeed()
        return true
    }
}

/// A range answer larger than `RangeResponseEncoder.streamedBytesMin` leaves in pieces, each
/// encoded only once the one before has left: a client that reads slowly holds the member at
/// a few pieces, not a second copy of the answer.
final class RangePiecesTests: XCTestCase {
    private func response(keys: Int, valueBytes: Int) -> RangeResponse {
        var kvs: [KeyValue] = []
        for index in 0..<keys {
            let value = [UInt8](repeating: UInt8(index % 251), count: valueBytes)
            let revision = Int64(index + 1)
            kvs.append(KeyValue(key: Array("big/\(index)".utf8), createRevision: revision, modRevision: revision,
                                version: 1, value: value, lease: 0))
        }
        return RangeResponse(revision: Int64(keys + 1), kvs: kvs, more: false, count: Int64(keys))
    }

    private struct Sent {
        var dataFrames = 0
        var bytes: [UInt8] = []
        var status: String?
    }

    /// Answers stream 1 with `answer`'s pieces through a handler that may queue
    /// `piecesInFlightMax` of them, releasing one piece at a time; stops early after
    /// `resetAfter` releases with a client reset.
    private func send(_ answer: RangeResponse, piecesInFlightMax: Int, resetAfter: Int? = nil) throws -> (Sent, SlowSocket) {
        let (rpcs, continuation) = AsyncStream<FrameGRPCServerTransport.IncomingRPC>.makeStream()
        defer { withExtendedLifetime(rpcs) {} }
        let socket = SlowSocket()
        let handler = FrameGRPCHandler(maxMessageBytes: 1024, fastPath: nil, rpcs: continuation, remotePeer: "test",
                                       localPeer: "test", logger: Logger(label: "test"), piecesInFlightMax: piecesInFlightMax)
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(socket)
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        _ = try channel.readOutbound(as: HTTP2Frame.self)  // the connection's WINDOW_UPDATE
        let headers = HPACKHeaders([(":method", "POST"), (":scheme", "http"), (":path", "/etcdserverpb.KV/Range"),
                                    (":authority", "localhost"), ("content-type", "application/grpc")])
        try channel.writeInbound(HTTP2Frame(streamID: 1, payload: .headers(.init(headers: headers))))
        handler.answerUnary(1, .success(.pieces(try RangeResponseEncoder.Pieces(answer, header: Etcdserverpb_ResponseHeader()))))
        var sent = Sent()
        var releases = 0
        repeat {
            channel.embeddedEventLoop.run()
            while let frame = try channel.readOutbound(as: HTTP2Frame.self) {
                switch frame.payload {
                case .data(let data):
                    guard case .byteBuffer(let buffer) = data.data else { continue }
                    sent.dataFrames += 1
                    sent.bytes += buffer.readableBytesView
                case .headers(let headers) where headers.endStream:
                    sent.status = headers.headers.first(name: "grpc-status")
                default:
                    break
                }
            }
            if releases == resetAfter {
                try channel.writeInbound(HTTP2Frame(streamID: 1, payload: .rstStream(.cancel)))
            }
            releases += 1
        } while socket.releaseOne()
        return (sent, socket)
    }

    func testALargeAnswerLeavesInPiecesAsTheEarlierOnesLeave() throws {
        let answer = response(keys: 24, valueBytes: 300_000)
        var whole = try RangeResponseEncoder.framed(answer, header: Etcdserverpb_ResponseHeader(), allocator: ByteBufferAllocator())
        let (sent, socket) = try send(answer, piecesInFlightMax: 2)
        XCTAssertEqual(sent.status, "0")
        XCTAssertEqual(sent.bytes, whole.readBytes(length: whole.readableBytes))
        XCTAssertGreaterThan(sent.dataFrames, 4, "the answer left in pieces")
        XCTAssertEqual(socket.heldHighWater, 2, "never more than two pieces waited for the socket")
        let decoded = try Etcdserverpb_RangeResponse(serializedBytes: Array(sent.bytes.dropFirst(5)))
        XCTAssertEqual(decoded.kvs.count, 24)
        XCTAssertEqual(decoded.kvs[23].value, Data(repeating: 23, count: 300_000))
    }

    /// The negative control: a handler that queues every piece at once (as writing the answer
    /// in one buffer does) is caught by the same measurement.
    func testTheMeasurementCatchesAHandlerThatQueuesEverything() throws {
        let (sent, socket) = try send(response(keys: 24, valueBytes: 300_000), piecesInFlightMax: .max)
        XCTAssertEqual(sent.status, "0")
        XCTAssertEqual(socket.heldHighWater, sent.dataFrames)
        XCTAssertGreaterThan(socket.heldHighWater, 2)
    }

    func testAClientResetStopsTheRestOfTheAnswer() throws {
        let answer = response(keys: 24, valueBytes: 300_000)
        let whole = try RangeResponseEncoder.framed(answer, header: Etcdserverpb_ResponseHeader(), allocator: ByteBufferAllocator())
        let (sent, _) = try send(answer, piecesInFlightMax: 2, resetAfter: 1)
        XCTAssertNil(sent.status, "no trailers after the reset")
        XCTAssertLessThanOrEqual(sent.dataFrames, 3)
        XCTAssertLessThan(sent.bytes.count, whole.readableBytes / 2)
    }
}
