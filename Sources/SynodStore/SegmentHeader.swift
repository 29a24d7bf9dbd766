import SynodBytes
/// The header at the start of every WAL segment file (`<data>/wal/%020d.wal`).
///
/// Layout (32 bytes, little-endian): `"SYNODWAL"` (8) | format version (1) = 2 |
/// reserved (3) = 0 | segment sequence (8) | CRC-32C of the preceding 20 bytes (4) |
/// reserved (8) = 0. Writes follow from byte 32, each a `WriteMark` and then frames (see
/// `RecordCodec`); the rest of the preallocated file is zero.
///
/// Version 1 segments (frames without write marks) are still read, with the rules they were
/// written under; new segments are always version 2, and recovery never appends to a version 1
/// segment.
struct SegmentHeader: Hashable {
    static let formatVersion: UInt8 = 2
    /// The versions recovery reads.
    static let readableVersions: ClosedRange<UInt8> = 1...2
    static let magic: [UInt8] = Array("SYNODWAL".utf8)
    static let size = 32

    var sequence: UInt64
    /// The format the segment was written in.
    var version: UInt8 = formatVersion

    /// Whether every write in the segment starts with a `WriteMark`.
    var hasWriteMarks: Bool { version >= 2 }

    func encoded() -> [UInt8] {
        var bytes = Self.magic
        bytes.append(version)
        bytes.append(contentsOf: [0, 0, 0])
        LittleEndianWriter.append(sequence, to: &bytes)
        LittleEndianWriter.append(CRC32C.checksum(bytes), to: &bytes)
        bytes.append(contentsOf: [UInt8](repeating: 0, count: 8))
        return bytes
    }

    enum Decoded {
        case valid(SegmentHeader)
        /// All zero or too short: a segment whose creation a crash interrupted.
        case blank
        case invalid(String)
        case incompatible(UInt8)
    }

    static func decode(_ bytes: [UInt8]) -> Decoded {
        let header = bytes.prefix(size)
        if header.allSatisfy({ $0 == 0 }) { return .blank }
        guard header.count == size else { return .invalid("segment shorter than its header") }
        guard Array(header.prefix(8)) == magic else { return .invalid("not a WAL segment") }
        guard bytes[9..<12].allSatisfy({ $0 == 0 }), bytes[24..<32].allSatisfy({ $0 == 0 }) else {
            return .invalid("reserved header bytes are not zero")
        }
        guard LittleEndianReader.uint32(at: 20, of: bytes) == CRC32C.checksum(bytes[0..<20]) else {
            return .invalid("segment header checksum mismatch")
        }
        guard readableVersions.contains(bytes[8]) else { return .incompatible(bytes[8]) }
        return .valid(SegmentHeader(sequence: LittleEndianReader.uint64(at: 12, of: bytes), version: bytes[8]))
    }

    static func fileName(sequence: UInt64) -> String {
        let digits = String(sequence)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".wal"
    }

    static func sequence(ofFileName name: String) -> UInt64? {
        guard name.hasSuffix(".wal"), name.count == 24 else { return nil }
        return UInt64(name.prefix(20))
    }
}
