import SynodCore
import SynodStore
import XCTest

/// Seeded random inputs for `RecordCodec.decodeFrame`: it must never trap, the frame-by-frame
/// loop must always advance or stop, every record it returns must re-encode to exactly the
/// bytes it came from, and frames the damage did not reach must decode to what was written.
///
/// A failure names the seed and iteration; the libFuzzer target in Fuzz/ explores further.
final class RecordCodecFuzzTests: XCTestCase {
    typealias F = RecordCodecFixtures

    static let seed: UInt64 = 0x5EED_C0DEC
    static let randomBufferCount = 200_000
    static let mutationCount = 200_000

    func testRandomBuffersNeverTrapAndAlwaysStop() {
        var random = SplitMix64(seed: Self.seed)
        var outcomes: [F.Kind: Int] = [:]
        for iteration in 0..<Self.randomBufferCount {
            var bytes = F.randomBytes(Int.random(in: 0...96, using: &random), using: &random)
            // Small declared lengths and valid trailers reach the checks past the length bound.
            if bytes.count >= 4, Bool.random(using: &random) {
                let length = UInt32.random(in: 0...UInt32(bytes.count), using: &random)
                bytes.replaceSubrange(0..<4, with: F.littleEndian(length))
                let end = Int(length) + RecordCodec.frameOverhead
                if end <= bytes.count, Bool.random(using: &random) { bytes[end - 1] = 0xA5 }
            }
            let stop = decodeAll(bytes, context: "random buffer \(iteration)").stop
            outcomes[stop, default: 0] += 1
        }
        XCTAssertGreaterThan(outcomes[.end, default: 0], 0)
        XCTAssertGreaterThan(outcomes[.incomplete, default: 0], 0)
        XCTAssertGreaterThan(outcomes[.corrupt, default: 0], 0)
    }

    func testMutatedLogsNeverTrapAndKeepEveryUndamagedFrame() {
        var random = SplitMix64(seed: Self.seed ^ 0xFFFF)
        var stops: [F.Kind: Int] = [:]
        for iteration in 0..<Self.mutationCount {
            let records = (0..<Int.random(in: 1...5, using: &random)).map { _ in Self.randomRecord(using: &random) }
            var original: [UInt8] = []
            var frameEnds: [Int] = []
            for record in records {
                RecordCodec.append(record, to: &original)
                frameEnds.append(original.count)
            }
            if Bool.random(using: &random) {
                original += [UInt8](repeating: 0, count: Int.random(in: 1...32, using: &random))
            }
            var mutated = original
            for _ in 0..<Int.random(in: 1...3, using: &random) {
                Self.mutate(&mutated, frameEnds: frameEnds, using: &random)
            }

            let (decoded, stop) = decodeAll(mutated, context: "mutation \(iteration)")
            stops[stop, default: 0] += 1
            // Bytes before the first difference are the original's, so every frame that ends
            // there decodes exactly as written.
            let common = Swift.min(original.count, mutated.count)
            let firstDifference = (0..<common).first { original[$0] != mutated[$0] } ?? common
            let intact = frameEnds.filter { $0 <= firstDifference }.count
            guard decoded.count >= intact, Array(decoded.prefix(intact)) == Array(records.prefix(intact)) else {
                return XCTFail("mutation \(iteration): \(intact) intact frames, decoded \(decoded.count), seed \(Self.seed)")
            }
            if mutated == original, !(decoded == records && stop == .end) {
                return XCTFail("mutation \(iteration): the unmutated log did not decode to its records then .end")
            }
        }
        XCTAssertGreaterThan(stops[.end, default: 0], 0)
        XCTAssertGreaterThan(stops[.incomplete, default: 0], 0)
        XCTAssertGreaterThan(stops[.corrupt, default: 0], 0)
    }

    /// Decodes frame after frame from offset 0 until a non-record result, checking that each
    /// step advances within the buffer and that each record re-encodes to its frame's bytes.
    private func decodeAll(_ bytes: [UInt8], context: @autoclosure () -> String) -> (records: [DurableRecord], stop: F.Kind) {
        var records: [DurableRecord] = []
        var offset = 0
        return bytes.withUnsafeBytes { raw in
            // A frame is at least 11 bytes, so more steps than this means the loop is stuck.
            for _ in 0...(raw.count / (RecordCodec.frameOverhead + 1)) {
                let result = RecordCodec.decodeFrame(raw, at: offset)
                guard case .record(let record, let frameLength) = result else { return (records, F.kind(result)) }
                guard frameLength > RecordCodec.frameOverhead, frameLength <= raw.count - offset else {
                    XCTFail("\(context()): frame length \(frameLength) at \(offset) of \(raw.count)")
                    return (records, .corrupt)
                }
                var reencoded: [UInt8] = []
                RecordCodec.append(record, to: &reencoded)
                if !reencoded.elementsEqual(raw[offset..<(offset + frameLength)]) {
                    XCTFail("\(context()): \(record) at \(offset) does not re-encode to its frame")
                }
                records.append(record)
                offset += frameLength
            }
            XCTFail("\(context()): the decode loop did not stop")
            return (records, .corrupt)
        }
    }

    static func randomRecord(using random: inout SplitMix64) -> DurableRecord {
        // Mostly small numbers (so bytes are often zero, like real logs), sometimes any value.
        func number(_ random: inout SplitMix64) -> UInt64 {
            Bool.random(using: &random) ? UInt64.random(in: 0...300, using: &random) : random.next()
        }
        func bytes(_ random: inout SplitMix64, max: Int) -> [UInt8] {
            F.randomBytes(Int.random(in: 0...max, using: &random), using: &random)
        }
        func ballot(_ random: inout SplitMix64) -> Ballot {
            Ballot(round: number(&random), node: NodeID(UInt32(truncatingIfNeeded: number(&random))))
        }
        func value(_ random: inout SplitMix64) -> Value {
            if Int.random(in: 0..<4, using: &random) == 0 { return .noop }
            return .batch((0..<Int.random(in: 0...3, using: &random)).map { _ in
                Command(clientID: number(&random), sequence: number(&random), payload: bytes(&random, max: 24))
            })
        }
        switch Int.random(in: 0..<4, using: &random) {
        case 0: return .promised(ballot(&random))
        case 1: return .accepted(slot: number(&random), ballot: ballot(&random), value: value(&random))
        case 2: return .chosen(slot: number(&random), value: value(&random))
        default: return .snapshot(Snapshot(slot: number(&random), data: bytes(&random, max: 48)))
        }
    }

    /// One damage of the kinds disks and crashes cause, plus some no disk would, to reach
    /// every check: bit flips, truncations, zeroed suffixes (torn writes), splices, inserted
    /// and deleted bytes, and overwritten length fields.
    static func mutate(_ bytes: inout [UInt8], frameEnds: [Int], using random: inout SplitMix64) {
        guard !bytes.isEmpty else { return bytes = [UInt8.random(in: .min ... .max, using: &random)] }
        let position = Int.random(in: 0..<bytes.count, using: &random)
        switch Int.random(in: 0..<8, using: &random) {
        case 0:
            bytes[position] ^= 1 << UInt8.random(in: 0..<8, using: &random)
        case 1:
            bytes.removeSubrange(position...)
        case 2:
            for index in position..<bytes.count { bytes[index] = 0 }
        case 3:
            let source = Int.random(in: 0..<bytes.count, using: &random)
            let count = Int.random(in: 1...Swift.min(32, bytes.count - Swift.max(position, source)), using: &random)
            bytes.replaceSubrange(position..<(position + count), with: Array(bytes[source..<(source + count)]))
        case 4:
            bytes.insert(contentsOf: F.randomBytes(Int.random(in: 1...8, using: &random), using: &random), at: position)
        case 5:
            bytes.removeSubrange(position..<Swift.min(bytes.count, position + Int.random(in: 1...8, using: &random)))
        case 6:
            bytes[position] = UInt8.random(in: .min ... .max, using: &random)
        default:
            let start = ([0] + frameEnds.dropLast()).randomElement(using: &random) ?? 0
            guard start + 4 <= bytes.count else { return }
            let old = UInt32(bytes[start]) | UInt32(bytes[start + 1]) << 8 | UInt32(bytes[start + 2]) << 16 | UInt32(bytes[start + 3]) << 24
            let length: UInt32
            switch Int.random(in: 0..<3, using: &random) {
            case 0: length = old &+ UInt32(bitPattern: Int32.random(in: -12...12, using: &random))
            case 1: length = UInt32.random(in: 0...UInt32(bytes.count), using: &random)
            default: length = UInt32(truncatingIfNeeded: random.next())
            }
            bytes.replaceSubrange(start..<(start + 4), with: F.littleEndian(length))
        }
    }
}
