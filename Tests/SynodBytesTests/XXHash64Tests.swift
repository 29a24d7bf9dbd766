import SynodBytes
import XCTest

final class XXHash64Tests: XCTestCase {
    /// `(i * 7 + 3) % 256` for i in 0..<n: every length class (under 4, 4, 8, a remainder after
    /// whole stripes, exactly one and two stripes).
    private static func pattern(_ count: Int) -> [UInt8] { (0..<count).map { UInt8(($0 * 7 + 3) % 256) } }

    /// Values printed by the reference implementation, `xxhsum -H64` (Debian's xxhash 0.8.1),
    /// for the same bytes.
    func testMatchesTheReferenceImplementation() {
        let expected: [(Int, UInt64)] = [
            (0, 0xef46_db37_51d8_e999), (1, 0x1f25_c8d0_bc1f_4bb6), (3, 0x31d2_363f_52e5_64c9),
            (4, 0x9bb6_4b7d_66ee_9fda), (7, 0x9a7b_1499_59ce_60d8), (8, 0xdab9_9d95_c6f9_0092),
            (9, 0x170b_b6bf_975b_4c02), (15, 0x1b47_cb82_43cc_8e32), (31, 0xa2aa_5f33_cc4a_6119),
            (32, 0x23c3_c17e_f790_fd97), (33, 0x50a7_cfc7_ba58_8784), (63, 0x5e3e_54b4_31c7_493c),
            (64, 0x0eb6_4b3e_f6ee_b01f), (100, 0xa61f_8d4c_170f_e531), (1000, 0x5f23_5fa0_33f1_a3fb),
        ]
        for (count, value) in expected {
            var hash = XXHash64()
            hash.combine(Self.pattern(count))
            XCTAssertEqual(hash.value, value, "\(count) bytes")
        }
        var abc = XXHash64()
        abc.combine(Array("abc".utf8))
        XCTAssertEqual(abc.value, 0x44bc_2cf5_ad77_0999)
    }

    /// Pieces of any size give the one-shot value: a transfer folds chunks as they arrive.
    func testAnySplitIntoPiecesGivesTheSameValue() {
        let bytes = Self.pattern(1000)
        var whole = XXHash64()
        whole.combine(bytes)
        for first in [0, 1, 5, 31, 32, 33, 64, 100, 999, 1000] {
            for second in [0, 1, 7, 32, 40] where first + second <= bytes.count {
                var pieces = XXHash64()
                pieces.combine(Array(bytes[..<first]))
                pieces.combine(Array(bytes[first..<(first + second)]))
                pieces.combine(Array(bytes[(first + second)...]))
                XCTAssertEqual(pieces.value, whole.value, "pieces \(first), \(second), rest")
            }
        }
        var byteAtATime = XXHash64()
        for byte in bytes { byteAtATime.combine([byte]) }
        XCTAssertEqual(byteAtATime.value, whole.value)
        // Reading the value does not consume anything.
        XCTAssertEqual(whole.value, whole.value)
    }

    /// A checksum that misses a flipped bit, or a swapped pair of stripes, is no checksum.
    func testEverySingleBitFlipAndAStripeSwapChangeTheValue() {
        var bytes = Self.pattern(80)
        var original = XXHash64()
        original.combine(bytes)
        for bit in 0..<(bytes.count * 8) {
            bytes[bit / 8] ^= 1 << UInt8(bit % 8)
            var flipped = XXHash64()
            flipped.combine(bytes)
            XCTAssertNotEqual(flipped.value, original.value, "bit \(bit)")
            bytes[bit / 8] ^= 1 << UInt8(bit % 8)
        }
        let swapped = Array(bytes[32..<64] + bytes[0..<32] + bytes[64...])
        var swappedHash = XXHash64()
        swappedHash.combine(swapped)
        XCTAssertNotEqual(swappedHash.value, original.value)
    }
}
