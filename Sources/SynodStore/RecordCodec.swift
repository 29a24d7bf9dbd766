import SynodBytes
import SynodCore

/// The framing of one write-ahead-log record around the payload encoding of a `DurableRecord`.
///
/// Frame layout (all integers little-endian):
///
///     offset  size  field
///     0       4     payloadLength: UInt32   bytes of `payload`
///     4       4     crc32c: UInt32          CRC-32C over `type` and `payload`
///     8       1     type: UInt8             1 promised, 2 accepted, 3 chosen, 4 snapshot
///     9       n     payload                 starts with the format version byte (1); see
///                                           RecordCodec+Payload.swift for each type's layout
///     9 + n   1     trailer: UInt8 = 0xA5
///
/// Why the pieces are there:
/// - The length comes first so a reader knows where the frame ends before trusting anything
///   else; it is bounded by `payloadMax` so a damaged length is rejected, not followed.
/// - The CRC covers the type, so a flipped type byte cannot turn one record kind into another.
/// - Segments are preallocated with zeros, so an all-zero header is the clean end of the log.
/// - The trailer is non-zero, so a complete frame never ends in a zero byte. A torn write
///   (the tail of a frame never reached the disk) leaves zeros through the trailer position;
///   a complete frame that fails its checks was damaged after it was written. That difference
///   is what lets recovery truncate a torn tail but refuse to start on corruption.
///
/// - Important: Decoding is total: every input, however hostile, yields a `FrameDecodeResult`
///   without trapping, reading outside the buffer, or allocating more than the frame holds.
public enum RecordCodec {
    /// Bytes a frame adds around its payload: length, CRC, type, trailer.
    public static let frameOverhead: Int = 4 + 4 + 1 + 1

    /// Default upper bound for a payload, enforced on decode (and a precondition on encode).
    ///
    /// A bound far below `UInt32.max` means a bit flip in a length field is usually caught as
    /// corruption rather than read as a frame running to the end of the segment.
    public static let payloadMaxDefault: Int = 64 << 20

    /// Length of the frame header: payload length, CRC, type.
    static let headerLength = 4 + 4 + 1

    /// The last byte of every frame; non-zero by design (see the type documentation).
    static let trailer: UInt8 = 0xA5

    /// The number of bytes `append(record, to:)` adds.
    public static func frameLength(of record: DurableRecord) -> Int {
        frameOverhead + payloadLength(of: record)
    }

    /// Appends one framed record to `buffer`.
    ///
    /// - Precondition: The payload is at most `payloadMaxDefault` bytes (a record that large is
    ///   a programming error: snapshots and batches are bounded well below it).
    public static func append(_ record: DurableRecord, to buffer: inout [UInt8]) {
        let payloadLength = payloadLength(of: record)
        precondition(payloadLength <= payloadMaxDefault, "record payload of \(payloadLength) bytes exceeds \(payloadMaxDefault)")
        let start = buffer.count
        let needed = start + frameOverhead + payloadLength
        // Grow geometrically: reserving exactly `needed` on every call would copy the whole
        // buffer once per record when a caller appends many records.
        if buffer.capacity < needed {
            buffer.reserveCapacity(Swift.max(needed, 2 * buffer.capacity))
        }
        LittleEndianWriter.append(UInt32(payloadLength), to: &buffer)
        LittleEndianWriter.append(UInt32(0), to: &buffer)  // CRC, filled in below.
        buffer.append(recordType(of: record).rawValue)
        appendPayload(of: record, to: &buffer)
        assert(buffer.count == start + headerLength + payloadLength, "payloadLength(of:) disagrees with appendPayload")
        let crc = buffer.withUnsafeBytes { bytes in
            CRC32C.update(0, UnsafeRawBufferPointer(rebasing: bytes[(start + 8)..<buffer.count]))
        }
        buffer.withUnsafeMutableBytes { bytes in
            bytes.storeBytes(of: crc.littleEndian, toByteOffset: start + 4, as: UInt32.self)
        }
        buffer.append(trailer)
    }

    /// Decodes the frame that starts at `offset` in `bytes` (never reads outside `bytes`).
    ///
    /// The checks run in this order, and the first that applies decides:
    /// 1. the header (9 bytes, or all remaining if fewer, or none at `offset == bytes.count`)
    ///    is all zero: `.end`;
    /// 2. fewer than 4 bytes remain: `.incomplete`;
    /// 3. the declared payload length exceeds `payloadMax`: `.corrupt`;
    /// 4. the frame runs past the end of `bytes`: `.incomplete`;
    /// 5. the trailer position holds zero: `.incomplete` (a torn write: the zero run that ends
    ///    at the trailer position is where the write stopped);
    /// 6. a trailer other than 0xA5, a CRC mismatch, an unknown type, or a payload that does
    ///    not parse: `.corrupt`;
    /// 7. otherwise `.record`.
    ///
    /// - Important: `.incomplete` says only that the bytes look like a torn write. A damaged
    ///   length field can look the same (the frame then seems to run past the end, or onto a
    ///   zero byte), so the caller tells a torn tail from corruption by what follows it.
    /// - Precondition: `0 <= offset <= bytes.count`.
    public static func decodeFrame(
        _ bytes: UnsafeRawBufferPointer, at offset: Int, payloadMax: Int = payloadMaxDefault
    ) -> FrameDecodeResult {
        precondition(offset >= 0 && offset <= bytes.count, "frame offset \(offset) outside buffer of \(bytes.count) bytes")
        let available = bytes.count - offset
        var headerIsZero = true
        for index in offset..<(offset + Swift.min(headerLength, available)) where bytes[index] != 0 {
            headerIsZero = false
            break
        }
        if headerIsZero { return .end }
        guard available >= 4 else {
            return .incomplete(reason: "frame header truncated: \(available) of \(headerLength) bytes")
        }

        let declaredLength = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
        guard declaredLength <= payloadMax else {
            return .corrupt(reason: "declared payload length \(declaredLength) exceeds the maximum \(payloadMax)")
        }
        // `declaredLength <= payloadMax`, so it fits in Int; the sum is checked because
        // `payloadMax` is the caller's and could be near Int.max on a 32-bit platform.
        let (frameLength, lengthOverflow) = frameOverhead.addingReportingOverflow(Int(declaredLength))
        guard !lengthOverflow, frameLength <= available else {
            return .incomplete(reason: "frame with a \(declaredLength)-byte payload runs past the end (\(available) bytes available)")
        }

        let trailerIndex = offset + frameLength - 1
        let trailerByte = bytes[trailerIndex]
        if trailerByte == 0 {
            var zeroStart = trailerIndex
            while zeroStart > offset && bytes[zeroStart - 1] == 0 { zeroStart -= 1 }
            return .incomplete(reason: "trailer missing: the frame of \(frameLength) bytes ends in \(trailerIndex + 1 - zeroStart) zero bytes")
        }
        guard trailerByte == trailer else {
            return .corrupt(reason: "trailer byte is 0x\(String(trailerByte, radix: 16)), expected 0xa5")
        }

        let storedCRC = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self))
        let computedCRC = CRC32C.update(0, UnsafeRawBufferPointer(rebasing: bytes[(offset + 8)..<trailerIndex]))
        guard storedCRC == computedCRC else {
            return .corrupt(reason: "CRC mismatch: stored 0x\(String(storedCRC, radix: 16)), computed 0x\(String(computedCRC, radix: 16))")
        }
        let typeByte = bytes[offset + 8]
        guard let type = RecordType(rawValue: typeByte) else {
            return .corrupt(reason: "unknown record type \(typeByte)")
        }

        var reader = LittleEndianReader(bytes, from: offset + headerLength, to: trailerIndex)
        do {
            let record = try decodePayload(type: type, from: &reader)
            return .record(record, frameLength: frameLength)
        } catch {
            return .corrupt(reason: "\(type) payload: \(error.reason)")
        }
    }
}

/// The outcome of decoding one frame with `RecordCodec.decodeFrame`.
public enum FrameDecodeResult: Hashable, Sendable {
    /// A valid record, and the number of bytes its frame occupies.
    case record(DurableRecord, frameLength: Int)
    /// The frame header (the first 9 bytes, or all remaining bytes if fewer) is all zero: the
    /// clean end of the log (preallocated space).
    case end
    /// What a torn write leaves: the frame runs past the end of the bytes, or its trailer
    /// position holds zero (the write stopped inside a zero run reaching the trailer) — with a
    /// non-zero header. The WAL decides whether this is a torn tail (nothing valid after it) or
    /// corruption.
    case incomplete(reason: String)
    /// Anything else that is not a valid frame: a complete frame with a bad CRC, an unknown
    /// type, a wrong trailer byte, a length over `payloadMax`, or a payload that does not parse
    /// (bad version byte, counts that exceed the remaining bytes, trailing garbage).
    case corrupt(reason: String)
}
