import SynodCore
import SynodTransport
import XCTest

/// Frames the decoder must refuse (and messages the encoder must refuse), each with a reason.
final class PeerFrameRejectionTests: XCTestCase {
    typealias F = PeerCodecFixtures

    /// A frame with a hand-written body; `length` overrides the frame length field.
    private func frame(type: UInt8, body: [UInt8], version: UInt8 = PeerFrameCodec.protocolVersion, length: UInt32? = nil) -> [UInt8] {
        F.littleEndian(length ?? UInt32(10 + body.count)) + [version, type] + F.littleEndian(UInt32(1)) + F.littleEndian(UInt32(2)) + body
    }

    private func assertInvalid(_ bytes: [UInt8], limits: PeerCodecLimits = .standard, mentioning word: String,
                               file: StaticString = #filePath, line: UInt = #line) {
        guard case .invalid(let reason) = PeerFrameCodec.decodeFrame(from: bytes, limits: limits) else {
            return XCTFail("expected .invalid, got \(PeerFrameCodec.decodeFrame(from: bytes, limits: limits))", file: file, line: line)
        }
        XCTAssertTrue(reason.contains(word), "reason \"\(reason)\" should mention \"\(word)\"", file: file, line: line)
        // The batch decoder reports the same reason.
        XCTAssertEqual(PeerFrameCodec.decodeFrames(from: bytes, limits: limits).invalidReason, reason, file: file, line: line)
    }

    func testOverLimitFrameLengthIsInvalidAsSoonAsTheLengthArrives() {
        assertInvalid(F.littleEndian(UInt32.max), mentioning: "exceeds the limit")
        assertInvalid(F.littleEndian(UInt32(PeerCodecLimits.frameBytesMaxDefault + 1)), mentioning: "exceeds the limit")
        // At the limit, the decoder waits for the bytes.
        XCTAssertEqual(PeerFrameCodec.decodeFrame(from: F.littleEndian(UInt32(PeerCodecLimits.frameBytesMaxDefault)) + [PeerFrameCodec.protocolVersion, 4]), .needMoreBytes)
        let small = PeerCodecLimits(frameBytesMax: 40)
        assertInvalid(F.littleEndian(UInt32(41)), limits: small, mentioning: "exceeds the limit 40")
    }

    func testFrameLengthBelowTheHeaderIsInvalid() {
        for length: UInt32 in [0, 1, 9] {
            assertInvalid(F.littleEndian(length), mentioning: "below the header length")
        }
    }

    func testUnknownVersionIsInvalidAsSoonAsItsByteArrives() {
        for version: UInt8 in [0, PeerFrameCodec.protocolVersion &+ 1, 255] {
            assertInvalid(F.littleEndian(UInt32(30)) + [version], mentioning: "unknown protocol version \(version)")
            assertInvalid(frame(type: 4, body: [UInt8](repeating: 0, count: 20), version: version), mentioning: "protocol version")
        }
    }

    func testUnknownMessageTypeIsInvalid() {
        for type: UInt8 in [0, 24, 255] {  // 24: one past the last type
            assertInvalid(F.littleEndian(UInt32(30)) + [PeerFrameCodec.protocolVersion, type], mentioning: "unknown message type \(type)")
            assertInvalid(frame(type: type, body: [UInt8](repeating: 0, count: 20)), mentioning: "unknown message type")
        }
    }

    func testTrailingBytesInABodyAreInvalid() throws {
        for envelope in F.edgeEnvelopes {
            var bytes: [UInt8] = []
            try PeerFrameCodec.encode(envelope, into: &bytes)
            bytes.append(0)
            bytes.replaceSubrange(0..<4, with: F.littleEndian(UInt32(bytes.count - 4)))
            assertInvalid(bytes, mentioning: "1 trailing bytes")
        }
    }

    func testTruncatedBodyInsideACompleteFrameIsInvalid() {
        // The frame is complete per its length, but the body ends mid-field.
        assertInvalid(frame(type: 4, body: [UInt8](repeating: 0, count: 19)), mentioning: "truncated slot")
        assertInvalid(frame(type: 8, body: []), mentioning: "truncated first slot")
    }

    /// Hostile counts and lengths are refused before anything is reserved: with the limit
    /// raised to UInt32.max the count is refused because the body cannot hold it.
    func testHugeCountsWithTinyBodiesAreInvalidWithoutAllocating() {
        let huge = F.littleEndian(UInt32.max)
        let ballotAndSlot = [UInt8](repeating: 1, count: 12 + 8)
        assertInvalid(frame(type: 10, body: huge), mentioning: "command count 4294967295 exceeds the limit")
        assertInvalid(frame(type: 2, body: ballotAndSlot + huge), mentioning: "promised entry count 4294967295 exceeds")
        assertInvalid(frame(type: 9, body: [0] + huge + [UInt8](repeating: 0, count: 8)), mentioning: "chosen entry count 4294967295 exceeds")
        assertInvalid(frame(type: 3, body: ballotAndSlot + [1] + huge + [UInt8](repeating: 0, count: 8)), mentioning: "command count")

        let unlimited = PeerCodecLimits(frameBytesMax: Int(UInt32.max), commandsPerValueMax: Int(UInt32.max),
                                        entriesPerMessageMax: Int(UInt32.max), payloadBytesMax: Int(UInt32.max),
                                        snapshotBytesMax: Int(UInt32.max))
        assertInvalid(frame(type: 10, body: huge), limits: unlimited, mentioning: "cannot fit in the 0 remaining bytes")
        assertInvalid(frame(type: 2, body: ballotAndSlot + huge + [0, 0]), limits: unlimited, mentioning: "cannot fit in the 2 remaining")
        // Payload and snapshot lengths.
        let oneCommandHeader = F.littleEndian(UInt32(1)) + [UInt8](repeating: 0, count: 16)
        assertInvalid(frame(type: 10, body: oneCommandHeader + huge), mentioning: "command payload of 4294967295 bytes exceeds")
        assertInvalid(frame(type: 10, body: oneCommandHeader + huge + [7]), limits: unlimited, mentioning: "only 1 remain")
        assertInvalid(frame(type: 9, body: [1] + F.littleEndian(UInt64(5)) + huge), mentioning: "snapshot data of 4294967295 bytes exceeds")
        assertInvalid(frame(type: 9, body: [1] + F.littleEndian(UInt64(5)) + huge), limits: unlimited, mentioning: "only 0 remain")
    }

    /// Pre-votes and safety alarms: a flag byte other than 0/1, an alarm reason over its
    /// limit or not UTF-8 are refused like any other malformed body.
    func testPreVoteAndSafetyAlarmBodiesAreChecked() {
        let ballot = F.littleEndian(UInt64(3)) + F.littleEndian(UInt32(2))
        assertInvalid(frame(type: 18, body: ballot + [2] + ballot), mentioning: "pre-vote granted flag")
        assertInvalid(frame(type: 17, body: ballot + [0]), mentioning: "trailing bytes")
        let tooLong = UInt32(Message.safetyAlarmReasonBytesMax + 1)
        assertInvalid(frame(type: 19, body: F.littleEndian(tooLong) + [UInt8](repeating: 0x61, count: Int(tooLong))),
                      mentioning: "safety alarm reason of \(tooLong) bytes exceeds")
        assertInvalid(frame(type: 19, body: F.littleEndian(UInt32(2)) + [0xC3, 0x28]), mentioning: "not UTF-8")
        // Encoding refuses what decoding would refuse.
        let long = Envelope(from: NodeID(1), to: NodeID(2), message: .safetyAlarm(reason: String(repeating: "y", count: Int(tooLong))))
        var buffer: [UInt8] = []
        XCTAssertThrowsError(try PeerFrameCodec.encode(long, into: &buffer))
        XCTAssertEqual(buffer, [])
    }

    func testLimitsAreInclusiveOnDecode() throws {
        let limits = PeerCodecLimits(commandsPerValueMax: 2, entriesPerMessageMax: 1, payloadBytesMax: 3, snapshotBytesMax: 4)
        let fits = Envelope(from: NodeID(1), to: NodeID(2), message: .catchUpReply(
            snapshot: Snapshot(slot: 1, data: [1, 2, 3, 4]),
            entries: [ChosenEntry(slot: 2, value: .batch([F.maxCommand, F.emptyCommand]))], chosenThrough: 2))
        let bytes = F.encode([fits], limits: limits)
        XCTAssertEqual(PeerFrameCodec.decodeFrame(from: bytes, limits: limits), .frame(fits, consumed: bytes.count))

        let tighter: [(PeerCodecLimits, String)] = [
            (PeerCodecLimits(commandsPerValueMax: 1, entriesPerMessageMax: 1, payloadBytesMax: 3, snapshotBytesMax: 4), "command count 2"),
            (PeerCodecLimits(commandsPerValueMax: 2, entriesPerMessageMax: 0, payloadBytesMax: 3, snapshotBytesMax: 4), "chosen entry count 1"),
            (PeerCodecLimits(commandsPerValueMax: 2, entriesPerMessageMax: 1, payloadBytesMax: 2, snapshotBytesMax: 4), "command payload of 3"),
            (PeerCodecLimits(commandsPerValueMax: 2, entriesPerMessageMax: 1, payloadBytesMax: 3, snapshotBytesMax: 3), "snapshot data of 4"),
            (PeerCodecLimits(frameBytesMax: bytes.count - 5), "frame length \(bytes.count - 4)"),
        ]
        for (limits, word) in tighter { assertInvalid(bytes, limits: limits, mentioning: word) }
    }

    func testBadTagsAreInvalid() {
        let ballotAndSlot = [UInt8](repeating: 1, count: 12 + 8)
        assertInvalid(frame(type: 12, body: [UInt8](repeating: 0, count: 8) + [2]), mentioning: "read index: presence tag 2")
        assertInvalid(frame(type: 9, body: [7]), mentioning: "snapshot: presence tag 7")
        // Tag 3: one past the last value tag (2, reconfigure).
        assertInvalid(frame(type: 3, body: ballotAndSlot + [3] + [UInt8](repeating: 0, count: 8)), mentioning: "unknown value tag 3")
        assertInvalid(frame(type: 2, body: ballotAndSlot + F.littleEndian(UInt32(1)) + [UInt8](repeating: 0, count: 8) + [9, 0]),
                      mentioning: "promised entry ballot: presence tag 9")
    }

    func testEncodeRefusesMessagesOverTheLimitsAndLeavesTheBufferUnchanged() {
        let limits = PeerCodecLimits(frameBytesMax: 100, commandsPerValueMax: 2, entriesPerMessageMax: 1, payloadBytesMax: 3, snapshotBytesMax: 4)
        let command = Command(clientID: 1, sequence: 1, payload: [])
        let over: [Message] = [
            .forward(commands: [command, command, command]),
            .accept(ballot: .zero, slot: 1, value: .batch([Command(clientID: 1, sequence: 1, payload: [1, 2, 3, 4])]), chosenThrough: 0),
            .promise(ballot: .zero, chosenThrough: 0, entries: [PromisedEntry(slot: 1, ballot: nil, value: .noop),
                                                                PromisedEntry(slot: 2, ballot: nil, value: .noop)]),
            .catchUpReply(snapshot: Snapshot(slot: 1, data: [1, 2, 3, 4, 5]), entries: [], chosenThrough: 1),
        ]
        for message in over {
            var bytes: [UInt8] = [9]
            XCTAssertThrowsError(try PeerFrameCodec.encode(Envelope(from: NodeID(1), to: NodeID(2), message: message), into: &bytes, limits: limits))
            XCTAssertEqual(bytes, [9], "\(message.kind)")
        }
        // Within every count and length limit, but a 60-byte frame.
        let forward = Envelope(from: NodeID(1), to: NodeID(2), message: .forward(commands: [
            Command(clientID: 1, sequence: 1, payload: [1, 2, 3]), Command(clientID: 2, sequence: 2, payload: [4, 5, 6]),
        ]))
        var frameBytes: [UInt8] = []
        XCTAssertThrowsError(try PeerFrameCodec.encode(forward, into: &frameBytes, limits: PeerCodecLimits(frameBytesMax: 59)))
        XCTAssertEqual(frameBytes, [])
        XCTAssertNoThrow(try PeerFrameCodec.encode(forward, into: &frameBytes, limits: PeerCodecLimits(frameBytesMax: 60)))
        XCTAssertEqual(frameBytes.count, 64)
        // The batch encoder skips just the offending envelope.
        let good = Envelope(from: NodeID(1), to: NodeID(2), message: .catchUpRequest(firstSlot: 1))
        let bad = Envelope(from: NodeID(1), to: NodeID(2), message: over[0])
        var bytes: [UInt8] = []
        let skipped = PeerFrameCodec.encode([good, bad, good], into: &bytes, limits: limits)
        XCTAssertEqual(skipped.map(\.index), [1])
        XCTAssertEqual(PeerFrameCodec.decodeFrames(from: bytes, limits: limits).envelopes, [good, good])
    }
}
