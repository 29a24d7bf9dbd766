import SynodBytes

/// The mark at the start of every write to a version-2 WAL segment: which write of the segment
/// this is and how many bytes of frames follow it.
///
/// Layout (24 bytes, little-endian): `"SYNW"` (4) | write number (8) | length of the frames
/// that follow (4) | reserved (4) = 0 | CRC-32C of the preceding 20 bytes (4).
///
/// Why: the log is written one write at a time, and the next write starts only after the
/// previous one's fdatasync returned (`DurableStorage` runs `beginSync`/`completeSync` one at a
/// time). So after a crash at most one write — the last — can be incomplete, and a disk may
/// have kept any subset of its sectors: a later sector of the write on disk and an earlier one
/// not. Frames alone cannot tell that apart from damage to acknowledged records, because the
/// frames after a lost sector still decode. The marks let recovery walk the log write by write:
/// it knows where each write ends, whether anything follows the damaged one (then that write
/// was synced before the next began, and the damage is real corruption), and which sectors of
/// the last write are missing.
struct WriteMark: Hashable {
    static let size = 24
    static let magic: [UInt8] = Array("SYNW".utf8)

    /// 1 for the first write of a segment (the header's promise, or the first batch).
    var number: UInt64
    /// Bytes of frames after the mark.
    var length: UInt32

    /// Writes the mark into `buffer[offset ..< offset + size]`.
    func store(into buffer: inout [UInt8], at offset: Int) {
        var bytes = Self.magic
        LittleEndianWriter.append(number, to: &bytes)
        LittleEndianWriter.append(length, to: &bytes)
        LittleEndianWriter.append(UInt32(0), to: &bytes)
        LittleEndianWriter.append(CRC32C.checksum(bytes), to: &bytes)
        buffer.replaceSubrange(offset..<(offset + Self.size), with: bytes)
    }

    /// The mark at `offset`, or nil when the bytes there are not a valid mark (too short, wrong
    /// magic, non-zero reserved bytes, checksum mismatch).
    static func decode(_ bytes: [UInt8], at offset: Int) -> WriteMark? {
        guard offset >= 0, offset + size <= bytes.count,
              bytes[offset..<(offset + 4)].elementsEqual(magic),
              LittleEndianReader.uint32(at: offset + 16, of: bytes) == 0,
              LittleEndianReader.uint32(at: offset + 20, of: bytes) == CRC32C.checksum(bytes[offset..<(offset + 20)])
        else { return nil }
        return WriteMark(number: LittleEndianReader.uint64(at: offset + 4, of: bytes),
                         length: LittleEndianReader.uint32(at: offset + 12, of: bytes))
    }
}

/// Where the writes of a version-2 segment lie, for fault injection (the simulator loses or
/// misplaces whole writes the way a disk's firmware can).
public enum WALLayout {
    /// The byte ranges of the intact writes at the start of `segment`, mark included, in order.
    public static func writes(in segment: [UInt8]) -> [Range<Int>] {
        guard case .valid(let header) = SegmentHeader.decode(segment), header.hasWriteMarks else { return [] }
        var ranges: [Range<Int>] = []
        var offset = SegmentHeader.size
        var number: UInt64 = 1
        while let mark = WriteMark.decode(segment, at: offset), mark.number == number {
            let end = offset + WriteMark.size + Int(mark.length)
            guard end <= segment.count else { break }
            ranges.append(offset..<end)
            offset = end
            number += 1
        }
        return ranges
    }
}
