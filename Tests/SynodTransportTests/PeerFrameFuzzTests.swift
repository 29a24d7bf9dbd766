import SynodCore
import SynodTransport
import XCTest

/// Seeded random inputs for `PeerFrameCodec.decodeFrame`: it must never trap, the frame loop
/// must always advance or stop, every frame it returns must re-encode to exactly the bytes it
/// came from, and frames the damage did not reach must decode to what was sent.
///
/// A failure names the seed and iteration; the libFuzzer target in Fuzz/ explores further.
final class PeerFrameFuzzTests: XCTestCase {
    typealias F = PeerCodecFixtures

    static let seed: UInt64 = 0x5EED_9EE2
    static let randomBufferCount = 100_000
    static let mutationCount = 100_000

    enum Stop: Hashable { case needMoreBytes, invalid }

    func testRandomBuffersNeverTrapAndAlwaysStop() {
        var random = SplitMix64(seed: Self.seed)
        var stops: [Stop: Int] = [:]
        var frames = 0
        for iteration in 0..<Self.randomBufferCount {
            var bytes = F.randomBytes(Int.random(in: 0...64, using: &random), using: &random)
            // Plausible headers get past the length, version and type checks into the bodies.
            if bytes.count >= 6, Bool.random(using: &random) {
                let length = UInt32.random(in: 10...UInt32(Swift.max(10, bytes.count - 4)), using: &random)
                bytes.replaceSubrange(0..<6, with: F.littleEndian(length) + [PeerFrameCodec.protocolVersion, UInt8.random(in: 1...12, using: &random)])
            }
            let (decoded, stop) = decodeAll(bytes, context: "random buffer \(iteration)")
            stops[stop, default: 0] += 1
            frames += decoded.count
        }
        XCTAssertGreaterThan(stops[.needMoreBytes, default: 0], 0)
        XCTAssertGreaterThan(stops[.invalid, default: 0], 0)
        XCTAssertGreaterThan(frames, 0, "random bodies should sometimes parse")
    }

    func testMutatedStreamsNeverTrapAndKeepEveryUndamagedFrame() {
        var random = SplitMix64(seed: Self.seed ^ 0xFFFF)
        var stops: [Stop: Int] = [:]
        var intactFrames = 0
        for iteration in 0..<Self.mutationCount {
            let envelopes = (0..<Int.random(in: 1...4, using: &random)).map { _ in F.randomEnvelope(using: &random) }
            let original = F.encode(envelopes)
            var frameEnds: [Int] = []
            for envelope in envelopes {
                frameEnds.append((frameEnds.last ?? 0) + ((try? PeerFrameCodec.frameLength(of: envelope)) ?? 0))
            }
            var mutated = original
            for _ in 0..<Int.random(in: 1...3, using: &random) {
                Self.mutate(&mutated, frameEnds: frameEnds, using: &random)
            }

            let (decoded, stop) = decodeAll(mutated, context: "mutation \(iteration)")
            stops[stop, default: 0] += 1
            // Bytes before the first difference are the original's, so every frame that ends
            // there decodes exactly as sent.
            let common = Swift.min(original.count, mutated.count)
            let firstDifference = (0..<common).first { original[$0] != mutated[$0] } ?? common
            let intact = frameEnds.prefix { $0 <= firstDifference }.count
            guard decoded.count >= intact, Array(decoded.prefix(intact)) == Array(envelopes.prefix(intact)) else {
                return XCTFail("mutation \(iteration): \(intact) undamaged frames, decoded \(decoded.count)")
            }
            intactFrames += intact
        }
        XCTAssertGreaterThan(intactFrames, Self.mutationCount / 4, "many mutations should leave earlier frames intact")
        XCTAssertGreaterThan(stops[.needMoreBytes, default: 0], 0)
        XCTAssertGreaterThan(stops[.invalid, default: 0], 0)
    }

    /// Decodes frame after frame; checks that each frame advances, stays inside the buffer and
    /// re-encodes to its own bytes, and that `decodeFrames` agrees.
    private func decodeAll(_ bytes: [UInt8], context: String) -> ([Envelope], Stop) {
        var decoded: [Envelope] = []
        var offset = 0
        // Every frame is at least 14 bytes, so more steps than this means the loop is stuck.
        for _ in 0...(bytes.count / 14 + 1) {
            switch PeerFrameCodec.decodeFrame(from: bytes, at: offset) {
            case .frame(let envelope, let consumed):
                guard consumed >= 14, consumed <= bytes.count - offset else {
                    XCTFail("\(context): frame of \(consumed) bytes at \(offset) of \(bytes.count)")
                    return (decoded, .invalid)
                }
                var reencoded: [UInt8] = []
                XCTAssertNoThrow(try PeerFrameCodec.encode(envelope, into: &reencoded), context)
                XCTAssertEqual(reencoded[...], bytes[offset..<(offset + consumed)], "\(context): frame at \(offset) does not re-encode to its bytes")
                decoded.append(envelope)
                offset += consumed
            case .needMoreBytes:
                checkBatch(bytes, decoded, offset, nil, context)
                return (decoded, .needMoreBytes)
            case .invalid(let reason):
                XCTAssertFalse(reason.isEmpty, context)
                checkBatch(bytes, decoded, offset, reason, context)
                return (decoded, .invalid)
            }
        }
        XCTFail("\(context): the decode loop did not stop")
        return (decoded, .invalid)
    }

    private func checkBatch(_ bytes: [UInt8], _ decoded: [Envelope], _ consumed: Int, _ reason: String?, _ context: String) {
        let batch = PeerFrameCodec.decodeFrames(from: bytes)
        if batch.envelopes != decoded || batch.consumed != consumed || batch.invalidReason != reason {
            XCTFail("\(context): decodeFrames disagrees with decodeFrame")
        }
    }

    /// One random damage: bit flips, truncation, overwritten or extreme length fields, a
    /// changed version or type byte, inserted or deleted bytes.
    static func mutate<R: RandomNumberGenerator>(_ bytes: inout [UInt8], frameEnds: [Int], using random: inout R) {
        guard !bytes.isEmpty else { return }
        let frameStarts = [0] + frameEnds.dropLast().filter { $0 + 6 <= bytes.count }
        let start = frameStarts.randomElement(using: &random) ?? 0
        switch UInt8.random(in: 0..<7, using: &random) {
        case 0:
            bytes[Int.random(in: 0..<bytes.count, using: &random)] ^= 1 << UInt8.random(in: 0..<8, using: &random)
        case 1:
            bytes.removeLast(Int.random(in: 1...bytes.count, using: &random))
        case 2 where start + 4 <= bytes.count:
            let lengths: [UInt32] = [0, 9, 10, .max, UInt32(PeerCodecLimits.frameBytesMaxDefault) + 1,
                                     UInt32.random(in: 0...200, using: &random)]
            bytes.replaceSubrange(start..<(start + 4), with: F.littleEndian(lengths.randomElement(using: &random) ?? 0))
        case 3 where start + 6 <= bytes.count:
            bytes[start + Int.random(in: 4...5, using: &random)] = UInt8.random(in: 0...14, using: &random)
        case 4:
            bytes.insert(contentsOf: F.randomBytes(Int.random(in: 1...8, using: &random), using: &random),
                         at: Int.random(in: 0...bytes.count, using: &random))
        case 5:
            let index = Int.random(in: 0..<bytes.count, using: &random)
            bytes.removeSubrange(index..<Swift.min(bytes.count, index + Int.random(in: 1...8, using: &random)))
        default:
            // Counts and lengths inside bodies are 4-byte fields at unknown offsets: overwrite
            // a random aligned-or-not window with an extreme value.
            guard bytes.count >= 4 else { return }
            let index = Int.random(in: 0...(bytes.count - 4), using: &random)
            let values: [UInt32] = [0, 1, .max, 0x8000_0000, UInt32.random(in: 0...64, using: &random)]
            bytes.replaceSubrange(index..<(index + 4), with: F.littleEndian(values.randomElement(using: &random) ?? 0))
        }
    }
}
