import SynodBytes
import XCTest
@testable import SynodServer

/// Pins the FNV-1a 64 hash: cluster and member ids derive from `stableHash64`, and existing
/// data directories and peers know those ids, so the values must never change.
final class StableHashTests: XCTestCase {
    func testStableHashIsFNV1a64() {
        // The published FNV-1a 64 test vectors.
        XCTAssertEqual(stableHash64(""), 0xCBF2_9CE4_8422_2325)
        XCTAssertEqual(stableHash64("a"), 0xAF63_DC4C_8601_EC8C)
        XCTAssertEqual(stableHash64("foobar"), 0x8594_4171_F739_67E8)
        XCTAssertEqual(stableHash64("synod-cluster/tok/a=http://127.0.0.1:2380"), 0x6A66_94AB_A8FE_5FB3)
        var hash = FNV1a64()
        hash.combine(Array("foo".utf8))
        hash.combine(Array("bar".utf8))
        XCTAssertEqual(hash.value, 0x8594_4171_F739_67E8)
    }
}
