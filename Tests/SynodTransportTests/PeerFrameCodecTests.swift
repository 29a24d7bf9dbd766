import SynodCore
@testable import SynodTransport
import XCTest

/// Round trips, the exact byte layout, coalesced frames and partial reads.
final class PeerFrameCodecTests: XCTestCase {
    typealias F = PeerCodecFixtures

    func testEveryEdgeMessageRoundTrips() throws {
        for envelope in F.edgeEnvelopes {
            var bytes: [UInt8] = []
            try PeerFrameCodec.encode(envelope, into: &bytes)
            XCTAssertEqual(bytes.count, try PeerFrameCodec.frameLength(of: envelope), "\(envelope.message.kind)")
            XCTAssertEqual(PeerFrameCodec.decodeFrame(from: bytes), .frame(envelope, consumed: bytes.count), "\(envelope.message.kind)")
        }
    }

    func testEdgeMessagesCoverEveryCase() {
        let kinds = Set(F.edgeMessages.map(\.kind))
        XCTAssertEqual(kinds.count, PeerMessageType.allCases.count)
    }

    func testRandomMessagesRoundTrip() throws {
        var random = SplitMix64(seed: 0xC0DE_C0DE)
        for _ in 0..<5_000 {
            let envelope = F.randomEnvelope(using: &random)
            var bytes: [UInt8] = [0xEE]  // The frame need not start at offset 0.
            try PeerFrameCodec.encode(envelope, into: &bytes)
            XCTAssertEqual(PeerFrameCodec.decodeFrame(from: bytes, at: 1), .frame(envelope, consumed: bytes.count - 1))
        }
    }

    /// Pins the wire format: a change here breaks compatibility with deployed peers and needs a
    /// new protocol version.
    func testAcceptedFrameLayoutIsByteExact() throws {
        var bytes: [UInt8] = []
        let envelope = Envelope(from: NodeID(3), to: NodeID(0x0102_0304),
                                message: .accepted(ballot: Ballot(round: 0x1122_3344_5566_7788, node: NodeID(5)), slot: 9))
        try PeerFrameCodec.encode(envelope, into: &bytes)
        XCTAssertEqual(bytes, [
            30, 0, 0, 0,                                      // frame length: 10 header + 20 body
            PeerFrameCodec.protocolVersion,                      // protocol version
            4,                                                // type: accepted
            3, 0, 0, 0,                                       // sender
            0x04, 0x03, 0x02, 0x01,                           // receiver
            0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,   // ballot round
            5, 0, 0, 0,                                       // ballot node
            9, 0, 0, 0, 0, 0, 0, 0,                           // slot
        ])
    }

    func testReadIndexReplyAndValueLayoutIsByteExact() throws {
        var bytes: [UInt8] = []
        try PeerFrameCodec.encode(Envelope(from: NodeID(1), to: NodeID(2), message: .readIndexReply(readID: 6, index: 8)), into: &bytes)
        XCTAssertEqual(bytes, [27, 0, 0, 0, PeerFrameCodec.protocolVersion, 12, 1, 0, 0, 0, 2, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 1, 8, 0, 0, 0, 0, 0, 0, 0])
        bytes = []
        try PeerFrameCodec.encode(Envelope(from: NodeID(1), to: NodeID(2),
                                           message: .forward(commands: [Command(clientID: 1, sequence: 2, payload: [0xAB])])), into: &bytes)
        XCTAssertEqual(bytes, [35, 0, 0, 0, PeerFrameCodec.protocolVersion, 10, 1, 0, 0, 0, 2, 0, 0, 0,
                               1, 0, 0, 0,                  // command count
                               1, 0, 0, 0, 0, 0, 0, 0,      // client id
                               2, 0, 0, 0, 0, 0, 0, 0,      // sequence
                               1, 0, 0, 0, 0xAB])           // payload length, payload
    }

    func testCoalescedFramesDecodeInOrderAndLeaveThePartialLastFrame() {
        let bytes = F.encode(F.edgeEnvelopes)
        let whole = PeerFrameCodec.decodeFrames(from: bytes)
        XCTAssertEqual(whole.envelopes, F.edgeEnvelopes)
        XCTAssertEqual(whole.consumed, bytes.count)
        XCTAssertNil(whole.invalidReason)

        let partial = PeerFrameCodec.decodeFrames(from: Array(bytes.dropLast(3)))
        XCTAssertEqual(partial.envelopes, Array(F.edgeEnvelopes.dropLast()))
        XCTAssertNil(partial.invalidReason)
        // The caller keeps the unconsumed tail, reads more, and decodes on from there.
        XCTAssertEqual(PeerFrameCodec.decodeFrames(from: bytes, at: partial.consumed).envelopes, [F.edgeEnvelopes.last])
    }

    /// A reader sees a stream cut at arbitrary points; every prefix must decode to the frames it
    /// holds completely and then ask for more bytes, never call the valid stream invalid.
    func testEveryTruncationYieldsCompleteFramesThenNeedMoreBytes() {
        var random = SplitMix64(seed: 42)
        // Small frames for the exhaustive sweep (the big-payload fixtures would make it quadratic
        // in megabytes); the big ones are cut at a stride below.
        var envelopes = F.edgeEnvelopes.filter { ((try? PeerFrameCodec.frameLength(of: $0)) ?? .max) < 1_000 }
        envelopes += (0..<40).map { _ in F.randomEnvelope(using: &random) }
        assertTruncationsAreClean(envelopes) { bytes, _ in Array(0...bytes.count) }
        // For the big frames: every cut within 20 bytes of a frame boundary, and a stride.
        XCTAssertEqual(PeerFrameCodec.decodeFrames(from: F.encode(F.edgeEnvelopes)).envelopes, F.edgeEnvelopes)
        assertTruncationsAreClean(F.edgeEnvelopes, fromFrame: true) { bytes, frameEnds in
            let near = ([0] + frameEnds).flatMap { end in (end - 20)...(end + 20) }.filter { $0 >= 0 && $0 <= bytes.count }
            return Array(Set(near + Array(stride(from: 0, through: bytes.count, by: 7_919)))).sorted()
        }
    }

    private func assertTruncationsAreClean(_ envelopes: [Envelope], fromFrame: Bool = false, cuts: ([UInt8], [Int]) -> [Int],
                                           file: StaticString = #filePath, line: UInt = #line) {
        let bytes = F.encode(envelopes)
        var frameEnds: [Int] = []
        var position = 0
        for envelope in envelopes {
            position += (try? PeerFrameCodec.frameLength(of: envelope)) ?? 0
            frameEnds.append(position)
        }
        bytes.withUnsafeBytes { all in
            for cut in cuts(bytes, frameEnds) {
                let prefix = UnsafeRawBufferPointer(rebasing: all[0..<cut])
                let complete = frameEnds.prefix { $0 <= cut }.count
                // With `fromFrame`, decode from the start of the last complete frame: the frames
                // before it were checked on the whole buffer, and re-decoding megabytes of them
                // per cut would make the sweep quadratic.
                let first = fromFrame ? Swift.max(0, complete - 1) : 0
                let start = first == 0 ? 0 : frameEnds[first - 1]
                let batch = PeerFrameCodec.decodeFrames(from: prefix, at: start)
                XCTAssertNil(batch.invalidReason, "cut at \(cut)", file: file, line: line)
                XCTAssertEqual(batch.envelopes, Array(envelopes[first..<complete]), "cut at \(cut)", file: file, line: line)
                XCTAssertEqual(start + batch.consumed, complete == 0 ? 0 : frameEnds[complete - 1], "cut at \(cut)", file: file, line: line)
                if cut < bytes.count {
                    XCTAssertEqual(PeerFrameCodec.decodeFrame(from: prefix, at: start + batch.consumed), .needMoreBytes, "cut at \(cut)", file: file, line: line)
                }
            }
        }
    }

    func testEncodingManyAppendsAfterExistingBytes() throws {
        var bytes: [UInt8] = [1, 2, 3]
        XCTAssertTrue(PeerFrameCodec.encode(Array(F.edgeEnvelopes.prefix(5)), into: &bytes).isEmpty)
        XCTAssertEqual(Array(bytes.prefix(3)), [1, 2, 3])
        XCTAssertEqual(PeerFrameCodec.decodeFrames(from: bytes, at: 3).envelopes, Array(F.edgeEnvelopes.prefix(5)))
    }

    func testEmptyBufferNeedsMoreBytes() {
        XCTAssertEqual(PeerFrameCodec.decodeFrame(from: []), .needMoreBytes)
        XCTAssertEqual(PeerFrameCodec.decodeFrame(from: [14, 0, 0]), .needMoreBytes)
        XCTAssertEqual(PeerFrameCodec.decodeFrames(from: [1, 2, 3], at: 3), PeerFrameBatch())
    }
}
