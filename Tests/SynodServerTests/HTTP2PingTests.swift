import NIOCore
import NIOEmbedded
import NIOHTTP2
import XCTest
@testable import SynodServer

/// etcd's Go client (grpc-go) sends a PING per round trip while answers arrive, to size its
/// receive window. The client port must answer them all and keep the connection; with
/// swift-nio-http2's default control-frame rate limit it sent GOAWAY ENHANCE_YOUR_CALM after
/// 200 (found by the clientv3 load generator, Tools/goload).
final class HTTP2PingTests: XCTestCase {
    /// Frame types and flags written by the server, from its raw output.
    private struct Frame { var type: UInt8; var flags: UInt8; var payload: [UInt8] }

    /// Sends `count` PINGs; returns what the server wrote and the error that ended the
    /// connection, if one did.
    private func exchangePings(_ count: Int, configuration: NIOHTTP2Handler.ConnectionConfiguration) throws
        -> (frames: [Frame], error: (any Error)?) {
        let channel = EmbeddedChannel(handler: NIOHTTP2Handler(mode: .server, connectionConfiguration: configuration))
        defer { _ = try? channel.finish() }
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        var input = ByteBuffer(string: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        // An empty SETTINGS frame, as clientv3 sends.
        input.writeBytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
        try channel.writeInbound(input)
        var output: [UInt8] = []
        func drain() throws {
            while let buffer = try channel.readOutbound(as: ByteBuffer.self) { output += buffer.readableBytesView }
        }
        try drain()
        var failure: (any Error)?
        for i in 0..<count {
            var ping = ByteBuffer()
            ping.writeBytes([0, 0, 8, 6, 0, 0, 0, 0, 0])
            ping.writeInteger(UInt64(i))
            do {
                try channel.writeInbound(ping)
            } catch {
                failure = error
            }
            try drain()
            guard failure == nil, channel.isActive else { break }
        }
        var frames: [Frame] = []
        var at = 0
        while at + 9 <= output.count {
            let length = Int(output[at]) << 16 | Int(output[at + 1]) << 8 | Int(output[at + 2])
            guard at + 9 + length <= output.count else { break }
            frames.append(Frame(type: output[at + 3], flags: output[at + 4], payload: Array(output[(at + 9)..<(at + 9 + length)])))
            at += 9 + length
        }
        return (frames, failure)
    }

    func testTheClientPortAnswersAPingPerRoundTripAndKeepsTheConnection() throws {
        let (frames, error) = try exchangePings(3_000, configuration: FrameGRPCServerTransport.http2Configuration)
        XCTAssertNil(error)
        let acks = frames.filter { $0.type == 6 && $0.flags & 1 == 1 }
        XCTAssertEqual(acks.count, 3_000, "every PING answered")
        XCTAssertFalse(frames.contains { $0.type == 7 }, "no GOAWAY")
    }

    /// The negative control: swift-nio-http2's default limit, which the client port used to
    /// have, ends the connection with ENHANCE_YOUR_CALM (0xb) — so the check above can fail.
    func testTheLibraryDefaultWouldHangUpOnAGoClient() throws {
        let (frames, error) = try exchangePings(3_000, configuration: NIOHTTP2Handler.ConnectionConfiguration())
        XCTAssertNotNil(error, "the default limit raises an error in the pipeline")
        let goaway = try XCTUnwrap(frames.first { $0.type == 7 }, "the default limit sends GOAWAY")
        XCTAssertEqual(Array(goaway.payload[4..<8]), [0, 0, 0, 0xb])
        XCTAssertLessThan(frames.filter { $0.type == 6 && $0.flags & 1 == 1 }.count, 3_000)
    }
}
