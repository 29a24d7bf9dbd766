import SynodCore
import Foundation
@testable import SynodStore
import XCTest

final class CRC32CTests: XCTestCase {
    // Published CRC-32C check values (RFC 3720 appendix B.4 and the iSCSI test vectors).
    func testKnownVectors() {
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0, count: 32)), 0x8A91_36AA)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)), 0x62A8_AB43)
        XCTAssertEqual(CRC32C.checksum([UInt8]((0...31).map { UInt8($0) })), 0x46DD_794E)
        XCTAssertEqual(CRC32C.checksum([UInt8]((0...31).reversed().map { UInt8($0) })), 0x113F_DB5C)
        XCTAssertEqual(CRC32C.checksum([UInt8]()), 0)
    }

    func testNonContiguousCollectionMatchesArray() {
        let bytes = Array("123456789".utf8)
        XCTAssertEqual(CRC32C.checksum("123456789".utf8), 0xE306_9283, "String.UTF8View")
        XCTAssertEqual(CRC32C.checksum(bytes.lazy.map { $0 }), 0xE306_9283, "a lazy, non-contiguous view")
        XCTAssertEqual(CRC32C.checksum(bytes[2...]), CRC32C.checksum(Array(bytes[2...])), "an ArraySlice")
    }

    /// The slicing-by-8 loop against the textbook bit-at-a-time definition, over every length
    /// and alignment that exercises the 8-byte loop, its remainder loop, and both together.
    func testMatchesBitwiseReferenceAtEveryLengthAndAlignment() {
        var random = SplitMix64(seed: 0xC0FFEE)
        let bytes = (0..<300).map { _ in UInt8.random(in: .min ... .max, using: &random) }
        for start in 0..<9 {
            for end in start...bytes.count {
                let slice = Array(bytes[start..<end])
                XCTAssertEqual(CRC32C.checksum(slice), Self.bitwiseReference(slice), "bytes \(start)..<\(end)")
            }
        }
    }

    /// Both paths, the CPU's instruction (where `update` uses it) and the software loop, against
    /// the definition; and the dispatch really picks the instruction on a CPU that has it.
    func testHardwareAndSoftwarePathsAgreeWithTheDefinition() throws {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        #if arch(x86_64)
        XCTAssertEqual(CRC32C.usesHardware, cpuinfo.contains(" sse4_2"), "SSE4.2 in /proc/cpuinfo")
        #else
        XCTAssertFalse(CRC32C.usesHardware)
        #endif
        var random = SplitMix64(seed: 0xC4C)
        let bytes = (0..<200).map { _ in UInt8.random(in: .min ... .max, using: &random) }
        bytes.withUnsafeBytes { raw in
            for start in 0..<9 {
                for end in stride(from: start, through: raw.count, by: 1) {
                    let piece = UnsafeRawBufferPointer(rebasing: raw[start..<end])
                    let expected = Self.bitwiseReference(Array(piece))
                    XCTAssertEqual(CRC32C.softwareUpdate(0, piece), expected, "software, bytes \(start)..<\(end)")
                    XCTAssertEqual(CRC32C.update(0, piece), expected, "dispatched, bytes \(start)..<\(end)")
                    // Continuing from a non-zero checksum, the way pieces of a snapshot are folded.
                    let seed = CRC32C.softwareUpdate(0, UnsafeRawBufferPointer(rebasing: raw[0..<start]))
                    XCTAssertEqual(CRC32C.update(seed, piece), CRC32C.softwareUpdate(seed, piece))
                }
            }
        }
    }

    func testIncrementalEqualsOneShotAtEverySplit() {
        var random = SplitMix64(seed: 7)
        let bytes = (0..<100).map { _ in UInt8.random(in: .min ... .max, using: &random) }
        let oneShot = CRC32C.checksum(bytes)
        bytes.withUnsafeBytes { raw in
            for split in 0...raw.count {
                let first = CRC32C.update(0, UnsafeRawBufferPointer(rebasing: raw[..<split]))
                let both = CRC32C.update(first, UnsafeRawBufferPointer(rebasing: raw[split...]))
                XCTAssertEqual(both, oneShot, "split at \(split)")
            }
            // Three pieces, one of them empty.
            let a = CRC32C.update(0, UnsafeRawBufferPointer(rebasing: raw[..<13]))
            let b = CRC32C.update(a, UnsafeRawBufferPointer(rebasing: raw[13..<13]))
            XCTAssertEqual(CRC32C.update(b, UnsafeRawBufferPointer(rebasing: raw[13...])), oneShot)
        }
    }

    func testEverySingleBitFlipChangesTheChecksum() {
        var bytes = Array("the write-ahead log guards every record with CRC-32C".utf8)
        let original = CRC32C.checksum(bytes)
        for bit in 0..<(bytes.count * 8) {
            bytes[bit / 8] ^= 1 << UInt8(bit % 8)
            XCTAssertNotEqual(CRC32C.checksum(bytes), original, "bit \(bit)")
            bytes[bit / 8] ^= 1 << UInt8(bit % 8)
        }
    }

    /// Bit-at-a-time CRC-32C, straight from the definition.
    static func bitwiseReference(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        }
        return ~crc
    }
}
