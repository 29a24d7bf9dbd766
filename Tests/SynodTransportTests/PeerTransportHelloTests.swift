import SynodCore
import SynodTransport
import XCTest

/// The hello a dialer sends first: layout, incremental decoding, and the acceptor's checks.
final class PeerTransportHelloTests: XCTestCase {
    func testEncodingLayoutAndRoundTrip() {
        let hello = PeerHello(clusterID: 0x0102_0304_0506_0708, sender: NodeID(0x0A0B_0C0D))
        let bytes = hello.encoded()
        XCTAssertEqual(bytes, [0x53, 0x59, 0x4E, 0x50, PeerFrameCodec.protocolVersion, 8, 7, 6, 5, 4, 3, 2, 1, 0x0D, 0x0C, 0x0B, 0x0A])
        XCTAssertEqual(bytes.count, PeerHello.encodedLength)
        XCTAssertEqual(PeerHello.decode(from: bytes), .hello(hello))
        XCTAssertEqual(PeerHello.decode(from: bytes + [0xFF, 0xFF]), .hello(hello), "bytes after the hello are frames")
    }

    func testEveryProperPrefixNeedsMoreBytes() {
        let bytes = PeerHello(clusterID: 9, sender: NodeID(3)).encoded()
        for length in 0..<bytes.count {
            XCTAssertEqual(PeerHello.decode(from: Array(bytes[..<length])), .needMoreBytes, "prefix of \(length)")
        }
    }

    func testBadMagicAndVersionAreRefusedAsSoonAsTheyArrive() {
        guard case .invalid(let reason) = PeerHello.decode(from: Array("G".utf8)) else {
            return XCTFail("one wrong byte must be enough")
        }
        XCTAssertTrue(reason.contains("magic"), reason)
        let other = PeerFrameCodec.protocolVersion &+ 1
        guard case .invalid(let version) = PeerHello.decode(from: PeerHello.magic + [other]) else {
            return XCTFail("the version byte must be enough")
        }
        XCTAssertTrue(version.contains("unsupported protocol version \(other)"), version)
        // A frame instead of a hello (a dialer that skipped it) is refused too.
        var frame: [UInt8] = []
        _ = PeerFrameCodec.encode([Envelope(from: NodeID(1), to: NodeID(2), message: .catchUpRequest(firstSlot: 1))], into: &frame)
        guard case .invalid = PeerHello.decode(from: frame) else { return XCTFail("a frame is not a hello") }
    }

    func testRejectionReasons() {
        let peers: Set<NodeID> = [NodeID(2), NodeID(3)]
        func reason(_ hello: PeerHello) -> String? {
            hello.rejectionReason(clusterID: 7, localID: NodeID(1), knownPeers: peers)
        }
        XCTAssertNil(reason(PeerHello(clusterID: 7, sender: NodeID(2))))
        XCTAssertEqual(reason(PeerHello(clusterID: 8, sender: NodeID(2))), "cluster id 8 differs from this node's cluster id 7")
        XCTAssertEqual(reason(PeerHello(clusterID: 7, sender: NodeID(4))), "unknown node id n4 (known peers: n2, n3)")
        XCTAssertEqual(reason(PeerHello(clusterID: 7, sender: NodeID(1))), "peer claims this node's own id n1")
        let other = PeerFrameCodec.protocolVersion &+ 1
        XCTAssertEqual(
            reason(PeerHello(version: other, clusterID: 7, sender: NodeID(2))),
            "unsupported protocol version \(other) (this build speaks version \(PeerFrameCodec.protocolVersion))")
    }

    func testReconnectDelayGrowsWithJitterAndIsCapped() {
        for failures in 0...40 {
            let delay = PeerTransport.reconnectDelay(afterFailures: failures)
            XCTAssertLessThanOrEqual(delay, PeerTransport.reconnectDelayMax)
            XCTAssertGreaterThanOrEqual(delay.nanoseconds, PeerTransport.reconnectDelayInitial.nanoseconds / 2)
        }
        XCTAssertLessThanOrEqual(PeerTransport.reconnectDelay(afterFailures: 1), PeerTransport.reconnectDelayInitial)
        XCTAssertGreaterThanOrEqual(
            PeerTransport.reconnectDelay(afterFailures: 20).nanoseconds, PeerTransport.reconnectDelayMax.nanoseconds / 2)
    }
}
