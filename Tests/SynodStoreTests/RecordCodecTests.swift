import SynodCore
import SynodStore
import XCTest

/// Builders and classifiers shared by the record codec tests.
enum RecordCodecFixtures {
    static func command(_ client: UInt64, _ sequence: UInt64, _ payload: [UInt8]) -> Command {
        Command(clientID: client, sequence: sequence, payload: payload)
    }

    /// One record of every kind and shape, including edge values.
    static let samples: [DurableRecord] = [
        .promised(Ballot(round: 1, node: NodeID(2))),
        .promised(.zero),
        .promised(Ballot(round: .max, node: NodeID(.max))),
        .accepted(slot: 1, ballot: Ballot(round: 3, node: NodeID(1)), value: .noop),
        .accepted(slot: 42, ballot: Ballot(round: 7, node: NodeID(3)), value: .batch([])),
        .accepted(slot: .max, ballot: Ballot(round: 9, node: NodeID(2)), value: .batch([
            command(1, 1, Array("put x 1".utf8)), command(2, 9, []), command(.max, .max, [0, 0xFF, 0xA5]),
        ])),
        .chosen(slot: 5, value: .noop),
        .chosen(slot: 6, value: .batch([command(4, 4, [1, 2, 3, 4, 5, 6, 7, 8, 9])])),
        .snapshot(Snapshot(slot: 0, data: [])),
        .snapshot(Snapshot(slot: 1000, data: Array("state".utf8))),
        .snapshot(Snapshot(slot: 77, data: [9], membership: membership)),
        .membership(membership),
        .chosen(slot: 8, value: .reconfigure(Reconfiguration(
            origin: NodeID(2), requestID: 99, change: .add(peerURLs: ["http://h:1"], isLearner: true, memberID: 5),
            membership: membership.latest, activeFrom: 40))),
        .repaired,
    ]

    /// A membership history with a learner and a pending change.
    static let membership: MembershipHistory = {
        let three = Configuration(members: [NodeID(1), NodeID(2), NodeID(3)]).initialMembership
        let four = Membership(members: three.members + [Member(id: NodeID(4), isLearner: true, name: "n4", peerURLs: ["http://h:1"], memberID: 5)])
        return MembershipHistory(epochs: [MembershipEpoch(chosenAt: 0, activeFrom: 1, membership: three),
                                          MembershipEpoch(chosenAt: 8, activeFrom: 40, membership: four)])
    }()

    /// `count` random bytes, eight per draw: byte-at-a-time generation dominates a debug build.
    static func randomBytes(_ count: Int, using random: inout SplitMix64) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var word: UInt64 = 0
        for index in 0..<count {
            if index % 8 == 0 { word = random.next() }
            bytes[index] = UInt8(truncatingIfNeeded: word >> UInt64(8 * (index % 8)))
        }
        return bytes
    }

    /// The framed encoding of `record`.
    static func frame(_ record: DurableRecord) -> [UInt8] {
        var bytes: [UInt8] = []
        RecordCodec.append(record, to: &bytes)
        return bytes
    }

    /// A frame built by hand, with a correct CRC unless `crc` is given.
    static func rawFrame(type: UInt8, payload: [UInt8], crc: UInt32? = nil, trailer: UInt8 = 0xA5) -> [UInt8] {
        var bytes = littleEndian(UInt32(payload.count))
        bytes += littleEndian(crc ?? CRC32C.checksum([type] + payload))
        bytes.append(type)
        bytes += payload
        bytes.append(trailer)
        return bytes
    }

    static func littleEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value.littleEndian) { Array($0) }
    }

    static func decode(_ bytes: [UInt8], at offset: Int = 0, payloadMax: Int = RecordCodec.payloadMaxDefault) -> FrameDecodeResult {
        bytes.withUnsafeBytes { RecordCodec.decodeFrame($0, at: offset, payloadMax: payloadMax) }
    }

    enum Kind: Equatable { case record, end, incomplete, corrupt }

    static func kind(_ result: FrameDecodeResult) -> Kind {
        switch result {
        case .record: return .record
        case .end: return .end
        case .incomplete: return .incomplete
        case .corrupt: return .corrupt
        }
    }

    static func reason(_ result: FrameDecodeResult) -> String {
        switch result {
        case .incomplete(let reason), .corrupt(let reason): return reason
        case .record, .end: return ""
        }
    }

    /// What decoding at `offset` must give once the frame's length field there has been
    /// changed (by a flip or overwrite) and nothing else in the buffer has: the rule
    /// `decodeFrame` documents, applied by hand. A complete frame whose trailer position holds
    /// 0xA5 fails its CRC (the checksum covers a different byte range than was written).
    static func kindAfterLengthChange(_ bytes: [UInt8], at offset: Int, payloadMax: Int = RecordCodec.payloadMaxDefault) -> Kind {
        let length = Int(bytes[offset]) | Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2]) << 16 | Int(bytes[offset + 3]) << 24
        if length > payloadMax { return .corrupt }
        let end = offset + RecordCodec.frameOverhead + length
        if end > bytes.count { return .incomplete }
        return bytes[end - 1] == 0 ? .incomplete : .corrupt
    }
}

final class RecordCodecTests: XCTestCase {
    typealias F = RecordCodecFixtures

    func testFrameLayoutIsStable() {
        // promised(b1.2): length 13, CRC over [type, payload], type 1, version 1, round, node, trailer.
        let payload: [UInt8] = [1, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0]
        let crc = F.littleEndian(CRC32C.checksum([1] + payload))
        XCTAssertEqual(crc, [0x63, 0xAD, 0xA8, 0x9C], "golden CRC: a change here is a format change")
        XCTAssertEqual(F.frame(.promised(Ballot(round: 1, node: NodeID(2)))), [13, 0, 0, 0] + crc + [1] + payload + [0xA5])
        XCTAssertEqual(F.frame(.chosen(slot: 2, value: .noop)).dropFirst(9).dropLast(), [1, 2, 0, 0, 0, 0, 0, 0, 0, 0])
        XCTAssertEqual(
            F.frame(.chosen(slot: 2, value: .batch([F.command(3, 4, [9])]))).dropFirst(9).dropLast(),
            [1, 2, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 9])
        XCTAssertEqual(
            F.frame(.snapshot(Snapshot(slot: 1, data: [7, 8]))).dropFirst(8),
            [4, 1, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 7, 8, 0xA5])
        XCTAssertEqual(RecordCodec.frameOverhead, 10)
        XCTAssertEqual(RecordCodec.payloadMaxDefault, 64 * 1024 * 1024)
    }

    func testEveryKindRoundTrips() {
        for record in F.samples {
            let bytes = F.frame(record)
            XCTAssertEqual(bytes.count, RecordCodec.frameLength(of: record), "\(record)")
            XCTAssertEqual(F.decode(bytes), .record(record, frameLength: bytes.count), "\(record)")
        }
    }

    func testBigPayloadsRoundTrip() {
        var random = SplitMix64(seed: 1)
        let big = F.randomBytes(3 << 20, using: &random)
        let many = (0..<10_000).map { F.command(UInt64($0), UInt64($0) * 3, Array(big[$0..<($0 + $0 % 50)])) }
        for record: DurableRecord in [
            .snapshot(Snapshot(slot: 77, data: big)),
            .accepted(slot: 3, ballot: Ballot(round: 2, node: NodeID(1)), value: .batch([F.command(1, 1, big)])),
            .chosen(slot: 4, value: .batch(many)),
        ] {
            let bytes = F.frame(record)
            XCTAssertEqual(F.decode(bytes), .record(record, frameLength: bytes.count))
        }
    }

    func testFramesConcatenateAndLengthsAccountForEveryByte() {
        var bytes: [UInt8] = [0xEE, 0xEE, 0xEE]  // Appending keeps what the buffer held.
        for record in F.samples { RecordCodec.append(record, to: &bytes) }
        let encodedEnd = bytes.count
        XCTAssertEqual(encodedEnd, 3 + F.samples.map(RecordCodec.frameLength(of:)).reduce(0, +))
        XCTAssertEqual(F.decode(bytes, at: encodedEnd), .end, "no bytes left is the end")
        bytes += [UInt8](repeating: 0, count: 4096)  // Preallocated space.
        var offset = 3
        for record in F.samples {
            guard case .record(let decoded, let frameLength) = F.decode(bytes, at: offset) else {
                return XCTFail("no record at \(offset): \(F.decode(bytes, at: offset))")
            }
            XCTAssertEqual(decoded, record)
            XCTAssertEqual(frameLength, RecordCodec.frameLength(of: record))
            offset += frameLength
        }
        XCTAssertEqual(offset, encodedEnd)
        XCTAssertEqual(F.decode(bytes, at: offset), .end)
        XCTAssertEqual(F.decode(Array(bytes[..<(encodedEnd + 5)]), at: encodedEnd), .end, "a short zero tail is the end too")
    }

    /// A frame cut anywhere runs past the end: `.incomplete`, unless what is left of the
    /// header is all zero, which is `.end` by definition.
    func testEveryTruncationIsIncomplete() {
        // A 256-byte payload has a zero low length byte: cut after it, the header is [0].
        let lowByteZero = DurableRecord.snapshot(Snapshot(slot: 9, data: [UInt8](repeating: 3, count: 256 - 17)))
        XCTAssertEqual(F.frame(lowByteZero)[0], 0)
        for record in F.samples + [lowByteZero] {
            let bytes = F.frame(record)
            XCTAssertEqual(F.decode([]), .end)
            for cut in 1..<bytes.count {
                let prefix = Array(bytes[..<cut])
                let expected: F.Kind = prefix.prefix(9).allSatisfy { $0 == 0 } ? .end : .incomplete
                XCTAssertEqual(F.kind(F.decode(prefix)), expected, "\(record) cut at \(cut)")
            }
        }
        XCTAssertEqual(F.decode(Array(F.frame(lowByteZero)[..<1])), .end)
    }

    /// A torn write: the frame's bytes from some point on never reached the (zeroed) disk.
    func testZeroSuffixIsIncompleteAndAZeroHeaderIsTheEnd() {
        for record in F.samples {
            let bytes = F.frame(record)
            for padding in [0, 1, 64] {
                for start in 0..<bytes.count {
                    let torn = Array(bytes[..<start]) + [UInt8](repeating: 0, count: bytes.count - start + padding)
                    let expected: F.Kind = torn.prefix(9).allSatisfy { $0 == 0 } ? .end : .incomplete
                    XCTAssertEqual(F.kind(F.decode(torn)), expected, "\(record) zeroed from \(start), padding \(padding)")
                }
            }
        }
        XCTAssertEqual(F.decode([UInt8](repeating: 0, count: 9) + [1, 2, 3]), .end, "only the header decides the end")
        XCTAssertEqual(F.decode([0, 0, 0, 0, 0, 0, 0, 0]), .end)
    }

    /// A flipped bit after the length field is always caught as corruption (CRC-32C detects
    /// every single-bit error; the trailer and type are covered by their own checks). A flip
    /// in the length field moves the frame's end: it is `.incomplete` exactly when the new
    /// end is past the buffer or lands on a zero byte, and `.corrupt` otherwise.
    func testEveryBitFlipInACompleteFrameIsCaught() {
        var buffer: [UInt8] = []
        var offsets: [Int] = []
        for record in F.samples {
            offsets.append(buffer.count)
            RecordCodec.append(record, to: &buffer)
        }
        offsets.append(buffer.count)
        buffer += [UInt8](repeating: 0, count: 32)
        var incompleteCount = 0
        for (index, record) in F.samples.enumerated() {
            let alone = F.frame(record)
            for (bytes, offset) in [(alone, 0), (buffer, offsets[index])] {
                for bit in 0..<(alone.count * 8) {
                    var flipped = bytes
                    flipped[offset + bit / 8] ^= 1 << UInt8(bit % 8)
                    let result = F.decode(flipped, at: offset)
                    let expected = bit < 32 ? F.kindAfterLengthChange(flipped, at: offset) : .corrupt
                    XCTAssertEqual(F.kind(result), expected, "\(record) at \(offset), bit \(bit): \(result)")
                    if expected == .incomplete { incompleteCount += 1 }
                }
            }
        }
        XCTAssertGreaterThan(incompleteCount, 0, "the length-field case is exercised")
    }

    func testHugeDeclaredLengthsAreCorruptWithoutAllocating() {
        let header = F.littleEndian(UInt32.max) + [1, 2, 3, 4, 1]
        XCTAssertEqual(F.kind(F.decode(header + [1, 0xA5])), .corrupt)
        XCTAssertTrue(F.reason(F.decode(header)).contains("exceeds the maximum"))
        let frame = F.frame(.snapshot(Snapshot(slot: 1, data: [UInt8](repeating: 1, count: 100))))
        XCTAssertEqual(F.kind(F.decode(frame, payloadMax: 116)), .corrupt, "payloadMax is the caller's")
        XCTAssertEqual(F.kind(F.decode(frame, payloadMax: 117)), .record)
        // With no bound, a huge length is a frame running past the end: nothing is allocated.
        XCTAssertEqual(F.kind(F.decode(header, payloadMax: .max)), .incomplete)

        // Hostile counts inside a frame whose CRC is right: each is checked before allocating.
        let ballot: [UInt8] = F.littleEndian(UInt64(1)) + F.littleEndian(UInt32(1))
        let slot: [UInt8] = F.littleEndian(UInt64(5))
        let hostile: [(UInt8, [UInt8])] = [
            (3, [1] + slot + [1] + F.littleEndian(UInt32.max)),
            (3, [1] + slot + [1] + F.littleEndian(UInt32(2)) + [UInt8](repeating: 0, count: 39)),
            (2, [1] + slot + ballot + [1, 1, 0, 0, 0] + [UInt8](repeating: 0, count: 16) + F.littleEndian(UInt32.max)),
            (4, [1] + slot + F.littleEndian(UInt64.max)),
            (4, [1] + slot + F.littleEndian(UInt64(Int.max) + 1) + [1, 2]),
            (4, [1] + slot + F.littleEndian(UInt64(3)) + [1, 2]),
        ]
        for (type, payload) in hostile {
            let result = F.decode(F.rawFrame(type: type, payload: payload))
            XCTAssertEqual(F.kind(result), .corrupt, "\(payload): \(result)")
        }
    }

    func testUnknownTypeVersionTagAndTrailerAreCorrupt() {
        let promisedPayload: [UInt8] = [1] + F.littleEndian(UInt64(1)) + F.littleEndian(UInt32(2))
        XCTAssertEqual(F.kind(F.decode(F.rawFrame(type: 1, payload: promisedPayload))), .record, "the hand-built frame is valid")
        let cases: [([UInt8], String)] = [
            (F.rawFrame(type: 7, payload: promisedPayload), "unknown record type 7"),
            (F.rawFrame(type: 5, payload: promisedPayload), "malformed membership data"),
            (F.rawFrame(type: 0, payload: promisedPayload), "unknown record type 0"),
            (F.rawFrame(type: 1, payload: [2] + promisedPayload.dropFirst()), "unknown format version 2"),
            (F.rawFrame(type: 1, payload: [0] + promisedPayload.dropFirst()), "unknown format version 0"),
            (F.rawFrame(type: 1, payload: promisedPayload, trailer: 0xA4), "trailer"),
            (F.rawFrame(type: 1, payload: promisedPayload, trailer: 0xFF), "trailer"),
            (F.rawFrame(type: 1, payload: promisedPayload, crc: 0x1234_5678), "CRC mismatch"),
            (F.rawFrame(type: 1, payload: promisedPayload + [0]), "1 trailing bytes"),
            (F.rawFrame(type: 1, payload: Array(promisedPayload.dropLast())), "truncated ballot node"),
            (F.rawFrame(type: 1, payload: []), "truncated format version"),
            (F.rawFrame(type: 3, payload: [1] + F.littleEndian(UInt64(1)) + [3]), "unknown value tag 3"),
            (F.rawFrame(type: 3, payload: [1] + F.littleEndian(UInt64(1)) + [2]), "truncated reconfiguration length"),
            (F.rawFrame(type: 3, payload: [1] + F.littleEndian(UInt64(1)) + [2] + F.littleEndian(UInt32(2)) + [1, 9]),
             "malformed membership data"),
            (F.rawFrame(type: 3, payload: [1] + F.littleEndian(UInt64(1)) + [0, 0]), "trailing"),
            (F.rawFrame(type: 3, payload: [1] + F.littleEndian(UInt64(1)) + [1, 0, 0, 0, 0, 0]), "trailing"),
        ]
        for (bytes, reason) in cases {
            let result = F.decode(bytes)
            XCTAssertEqual(F.kind(result), .corrupt, "\(bytes)")
            XCTAssertTrue(F.reason(result).contains(reason), "\(F.reason(result)) should mention \(reason)")
        }
    }

    /// The header decides `.end`; anything non-zero in it makes the frame at least suspect.
    func testNonZeroHeaderIsNeverTheEnd() {
        for index in 0..<9 {
            var header = [UInt8](repeating: 0, count: 9)
            header[index] = 1
            let result = F.decode(header + [UInt8](repeating: 0, count: 16))
            XCTAssertNotEqual(F.kind(result), .end, "byte \(index)")
            XCTAssertNotEqual(F.kind(result), .record, "byte \(index)")
        }
        XCTAssertEqual(F.kind(F.decode([0, 0, 1])), .incomplete, "a short non-zero header runs past the end")
    }
}
