import SynodCore
import SynodTransport
import XCTest

/// Prints encode and decode throughput for a typical replication stream. A measurement, not a
/// check: no timing assertions (debug builds and shared machines make them flaky); run in
/// release (`swift test -c release --filter PeerCodecThroughputTests`) for meaningful numbers.
final class PeerCodecThroughputTests: XCTestCase {
    func testPrintThroughput() throws {
        // Accepts carrying 8 commands of 100 bytes, coalesced 64 frames per write.
        let commands = (0..<8).map { Command(clientID: UInt64($0), sequence: 1, payload: [UInt8](repeating: 0x5A, count: 100)) }
        let envelopes = (0..<64).map { index in
            Envelope(from: NodeID(1), to: NodeID(2), message: .accept(
                ballot: Ballot(round: 3, node: NodeID(1)), slot: Slot(index + 1), value: .batch(commands), chosenThrough: Slot(index)))
        }
        let writes = 200
        let clock = ContinuousClock()

        var bytes: [UInt8] = []
        let encodeTime = clock.measure {
            for _ in 0..<writes {
                bytes.removeAll(keepingCapacity: true)
                XCTAssertTrue(PeerFrameCodec.encode(envelopes, into: &bytes).isEmpty)
            }
        }
        var decoded = 0
        let decodeTime = clock.measure {
            for _ in 0..<writes { decoded += PeerFrameCodec.decodeFrames(from: bytes).envelopes.count }
        }
        XCTAssertEqual(decoded, writes * envelopes.count)

        let frames = Double(writes * envelopes.count)
        let megabytes = Double(writes * bytes.count) / 1_048_576
        for (name, duration) in [("encode", encodeTime), ("decode", decodeTime)] {
            let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
            print("peer codec \(name): \(Int(frames / seconds)) frames/s, \(Int(megabytes / seconds)) MiB/s (\(bytes.count / envelopes.count)-byte frames)")
        }
    }
}
