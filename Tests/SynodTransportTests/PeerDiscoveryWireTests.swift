import SynodCore
import SynodTransport
import XCTest

/// The discovery request and reply layouts, incremental decoding, limits, and hostile input.
final class PeerDiscoveryWireTests: XCTestCase {
    private func decodeRequest(_ bytes: [UInt8]) -> PeerDiscoveryRequestDecodeResult {
        bytes.withUnsafeBytes { PeerDiscovery.decodeRequest(from: $0) }
    }

    private func decodeReply(_ bytes: [UInt8], limits: PeerCodecLimits = .standard) -> PeerDiscoveryReplyDecodeResult {
        bytes.withUnsafeBytes { PeerDiscovery.decodeReply(from: $0, limits: limits) }
    }

    func testRequestLayoutAndRoundTrip() throws {
        let bytes = try XCTUnwrap(PeerDiscovery.encodeRequest(peerURL: "http://é"))
        XCTAssertEqual(bytes, [0x53, 0x59, 0x4E, 0x44, 1, 9, 0, 0, 0] + Array("http://é".utf8))
        XCTAssertEqual(decodeRequest(bytes), .request(peerURL: "http://é", length: bytes.count))
        XCTAssertEqual(decodeRequest(bytes + [0xFF]), .request(peerURL: "http://é", length: bytes.count))
        for length in 0..<bytes.count {
            XCTAssertEqual(decodeRequest(Array(bytes[..<length])), .needMoreBytes, "prefix of \(length)")
        }
        XCTAssertNil(PeerDiscovery.encodeRequest(peerURL: ""))
        XCTAssertNil(PeerDiscovery.encodeRequest(peerURL: String(repeating: "u", count: PeerDiscovery.peerURLBytesMax + 1)))
        XCTAssertNotNil(PeerDiscovery.encodeRequest(peerURL: String(repeating: "u", count: PeerDiscovery.peerURLBytesMax)))
    }

    func testAnOlderAcceptorRefusesARequestAsABadHello() throws {
        // Byte compatibility both ways: a build without discovery closes the connection
        // instead of misreading the request, and the hello is unchanged (PeerTransportHelloTests).
        let request = try XCTUnwrap(PeerDiscovery.encodeRequest(peerURL: "http://n4:2380"))
        guard case .invalid(let reason) = PeerHello.decode(from: request) else { return XCTFail("a request is not a hello") }
        XCTAssertTrue(reason.contains("magic"), reason)
        guard case .invalid = decodeRequest(PeerHello(clusterID: 7, sender: NodeID(2)).encoded()) else {
            return XCTFail("a hello is not a request")
        }
    }

    func testBadRequestsAreInvalidAsSoonAsTheyShow() {
        let magic = PeerDiscovery.magic
        func reason(_ bytes: [UInt8]) -> String? {
            if case .invalid(let reason) = decodeRequest(bytes) { return reason }
            return nil
        }
        XCTAssertEqual(reason(magic + [2]), "unsupported discovery version 2 (this build speaks version 1)")
        XCTAssertEqual(reason(magic + [1, 0xFF, 0xFF, 0xFF, 0xFF]), "discovery request peer URL of 4294967295 bytes exceeds the limit 1024")
        XCTAssertEqual(reason(magic + [1, 0, 0, 0, 0]), "discovery request with an empty peer URL")
        XCTAssertEqual(reason(magic + [1, 1, 0, 0, 0, 0xFF]), "discovery request peer URL is not UTF-8")
        XCTAssertEqual(reason(Array("GET ".utf8)), "not a Synod discovery message (bad magic)")
    }

    func testReplyLayoutAndRoundTrip() {
        let known = PeerDiscovery.encodeReply(.known(payload: [0xAA, 0xBB]))
        XCTAssertEqual(known, [0x53, 0x59, 0x4E, 0x44, 1, 0, 2, 0, 0, 0, 0xAA, 0xBB])
        XCTAssertEqual(decodeReply(known), .reply(.known(payload: [0xAA, 0xBB])))
        let refused = PeerDiscovery.encodeReply(.refused(reason: "no"))
        XCTAssertEqual(refused, [0x53, 0x59, 0x4E, 0x44, 1, 1, 2, 0, 0, 0, 0x6E, 0x6F])
        XCTAssertEqual(decodeReply(refused), .reply(.refused(reason: "no")))
        for length in 0..<known.count {
            XCTAssertEqual(decodeReply(Array(known[..<length])), .needMoreBytes, "prefix of \(length)")
        }
    }

    func testReplyLimits() {
        // A long reason is cut at a character boundary to the limit.
        let reason = String(repeating: "é", count: PeerDiscovery.reasonBytesMax)
        guard case .reply(.refused(let decoded)) = decodeReply(PeerDiscovery.encodeReply(.refused(reason: reason))) else {
            return XCTFail("a truncated reason still decodes")
        }
        XCTAssertEqual(decoded.utf8.count, PeerDiscovery.reasonBytesMax)
        XCTAssertTrue(reason.hasPrefix(decoded))
        // Payload lengths are checked against the frame limit, reasons against their own.
        let small = PeerCodecLimits(frameBytesMax: 4)
        XCTAssertEqual(decodeReply(PeerDiscovery.encodeReply(.known(payload: [1, 2, 3, 4])), limits: small), .reply(.known(payload: [1, 2, 3, 4])))
        guard case .invalid = decodeReply(PeerDiscovery.magic + [1, 0, 5, 0, 0, 0], limits: small) else {
            return XCTFail("a payload over frameBytesMax is refused on its header")
        }
        guard case .invalid = decodeReply(PeerDiscovery.magic + [1, 1, 0x01, 0x04, 0, 0]) else {
            return XCTFail("a reason over reasonBytesMax is refused on its header")
        }
        guard case .invalid(let status) = decodeReply(PeerDiscovery.magic + [1, 7, 0, 0, 0, 0]) else {
            return XCTFail("an unknown status is refused")
        }
        XCTAssertEqual(status, "unknown discovery reply status 7")
    }

    func testRandomBytesNeverTrap() {
        var generator = SplitMix64(seed: 0x5EED)
        let valid = (PeerDiscovery.encodeRequest(peerURL: "http://n4:2380") ?? [])
            + PeerDiscovery.encodeReply(.known(payload: [1, 2, 3]))
        for round in 0..<20_000 {
            var bytes: [UInt8]
            if round % 2 == 0 {
                bytes = (0..<Int(generator.next() % 40)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
                if round % 4 == 0 { bytes = PeerDiscovery.magic + [1] + bytes }
            } else {
                bytes = valid
                let flips = 1 + Int(generator.next() % 4)
                for _ in 0..<flips {
                    bytes[Int(generator.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: generator.next())
                }
                bytes = Array(bytes.prefix(Int(generator.next() % UInt64(bytes.count + 1))))
            }
            if case .request(_, let length) = decodeRequest(bytes) { XCTAssertLessThanOrEqual(length, bytes.count) }
            _ = decodeReply(bytes)
        }
    }
}

/// A small deterministic generator for the fuzz loop (the tests never use a global random source).
private struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
