import XCTest
@testable import SynodStore

/// The block-wise zero scans agree with the obvious byte-by-byte definitions.
final class ZeroScanTests: XCTestCase {
    func testAgreesWithByteByByteScans() {
        var generator = SystemRandomNumberGenerator()
        for size in [0, 1, 4095, 4096, 4097, 3 * 4096 + 17, 70_000] {
            for _ in 0..<20 {
                var bytes = [UInt8](repeating: 0, count: size)
                for _ in 0..<Int.random(in: 0...3, using: &generator) where size > 0 {
                    bytes[Int.random(in: 0..<size, using: &generator)] = UInt8.random(in: 1...255, using: &generator)
                }
                XCTAssertEqual(ZeroScan.lastNonZero(bytes), bytes.lastIndex { $0 != 0 }, "size \(size)")
                for offset in [0, 1, size / 2, max(0, size - 1), size, size + 5] {
                    let expected = offset < size ? bytes[offset...].firstIndex { $0 != 0 } : nil
                    XCTAssertEqual(ZeroScan.firstNonZero(bytes, from: offset), expected, "size \(size) offset \(offset)")
                }
            }
        }
    }
}
