import SynodBytes
import XCTest

/// The shared little-endian codec: exact bytes of each primitive, and every way a reader
/// refuses bad input without reading past its window or allocating what the input cannot hold.
final class ByteCodingTests: XCTestCase {
    private func decode<T>(
        _ bytes: [UInt8], _ body: (inout LittleEndianReader) throws(ByteDecodingError) -> T
    ) -> Result<T, ByteDecodingError> {
        Result { () throws(ByteDecodingError) -> T in try LittleEndianReader.read(bytes, body) }
    }

    private func reason<T>(_ result: Result<T, ByteDecodingError>) -> String? {
        if case .failure(let error) = result { return error.reason }
        return nil
    }

    func testWriterLayout() {
        var writer = LittleEndianWriter(reservingCapacity: 64)
        writer.writeUInt8(0xAB)
        writer.writeUInt32(0x0102_0304)
        writer.writeUInt64(0x0102_0304_0506_0708)
        writer.writeInt64(-2)
        writer.writeBool(true)
        writer.writeBool(false)
        writer.writeCount(3)
        writer.writeBytes([9, 8])
        writer.writeString("é")
        XCTAssertEqual(writer.bytes, [0xAB, 4, 3, 2, 1, 8, 7, 6, 5, 4, 3, 2, 1]
            + [0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF] + [1, 0] + [3, 0, 0, 0]
            + [2, 0, 0, 0, 9, 8] + [2, 0, 0, 0, 0xC3, 0xA9])

        var buffer: [UInt8] = [7]
        LittleEndianWriter.append(UInt32(0x0A0B_0C0D), to: &buffer)
        LittleEndianWriter.append(UInt64(1), to: &buffer)
        XCTAssertEqual(buffer, [7, 0x0D, 0x0C, 0x0B, 0x0A, 1, 0, 0, 0, 0, 0, 0, 0])
    }

    func testReaderReadsWhatTheWriterWrote() throws {
        var writer = LittleEndianWriter()
        writer.writeUInt8(5)
        writer.writeUInt32(.max)
        writer.writeUInt64(.max - 1)
        writer.writeInt64(.min)
        writer.writeBool(true)
        writer.writeBytes([1, 2, 3])
        writer.writeString("synod ✓")
        let result = decode(writer.bytes) { (reader) throws(ByteDecodingError) in
            let small = try reader.readUInt8("small")
            let word = try reader.readUInt32("word")
            let long = try reader.readUInt64("long")
            let signed = try reader.readInt64("signed")
            let flag = try reader.readPresence("flag")
            let blob = try reader.readBytes("blob", limit: 3)
            let text = try reader.readString("text", limit: 64)
            XCTAssertEqual(reader.remaining, 0)
            return "\(small) \(word) \(long) \(signed) \(flag) \(blob) \(text)"
        }
        XCTAssertEqual(try result.get(), "5 4294967295 18446744073709551614 -9223372036854775808 true [1, 2, 3] synod ✓")
    }

    func testTruncatedFieldsNameTheField() {
        XCTAssertEqual(reason(decode([1, 2, 3]) { (r) throws(ByteDecodingError) in try r.readUInt32("slot") }),
                       "truncated slot: needs 4 bytes, 3 remain")
        XCTAssertEqual(reason(decode([]) { (r) throws(ByteDecodingError) in try r.readUInt8("tag") }),
                       "truncated tag: needs 1 bytes, 0 remain")
        XCTAssertEqual(reason(decode([0, 0, 0, 0, 0, 0, 0]) { (r) throws(ByteDecodingError) in try r.readInt64("revision") }),
                       "truncated revision: needs 8 bytes, 7 remain")
    }

    func testLengthsAndCountsAreCheckedBeforeAllocating() {
        let huge: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF]
        XCTAssertEqual(reason(decode(huge) { (r) throws(ByteDecodingError) in try r.readBytes("data", limit: 10) }),
                       "data of 4294967295 bytes exceeds the limit 10")
        XCTAssertEqual(reason(decode(huge + [1]) { (r) throws(ByteDecodingError) in try r.readBytes("data", limit: .max) }),
                       "data declares 4294967295 bytes, only 1 remain")
        XCTAssertEqual(reason(decode(huge) { (r) throws(ByteDecodingError) in try r.readString("name", limit: 4096) }),
                       "name of 4294967295 bytes exceeds the limit 4096")
        // One byte short, counted after the length field itself.
        XCTAssertEqual(reason(decode([3, 0, 0, 0, 0x61, 0x62]) { (r) throws(ByteDecodingError) in try r.readString("name", limit: 8) }),
                       "name declares 3 bytes, only 2 remain")
        XCTAssertEqual(reason(decode([3, 0, 0, 0, 1, 2]) { (r) throws(ByteDecodingError) in try r.readBytes("data", limit: 8) }),
                       "data declares 3 bytes, only 2 remain")
        XCTAssertEqual(reason(decode(huge) { (r) throws(ByteDecodingError) in try r.readCount("items", limit: 8, elementLengthMin: 1) }),
                       "items 4294967295 exceeds the limit 8")
        XCTAssertEqual(reason(decode([3, 0, 0, 0, 1, 2, 3, 4, 5]) { (r) throws(ByteDecodingError) in
            try r.readCount("items", limit: .max, elementLengthMin: 2)
        }), "items 3 cannot fit in the 5 remaining bytes")
        XCTAssertEqual(try decode([2, 0, 0, 0, 1, 2, 3, 4]) { (r) throws(ByteDecodingError) in
            try r.readCount("items", limit: 2, elementLengthMin: 2)
        }.get(), 2, "limits are inclusive")
        XCTAssertEqual(reason(decode([2]) { (r) throws(ByteDecodingError) in try r.readPresence("snapshot") }),
                       "snapshot: presence tag 2, expected 0 or 1")
    }

    func testStringsRepairInvalidUTF8() throws {
        let text = try decode([2, 0, 0, 0, 0xC3, 0x28]) { (r) throws(ByteDecodingError) in try r.readString("name", limit: 8) }.get()
        XCTAssertEqual(text, "\u{FFFD}(")
    }

    func testReaderWindowStaysInsideItsBounds() {
        let bytes: [UInt8] = [1, 2, 3, 4, 5, 6]
        bytes.withUnsafeBytes { raw in
            var reader = LittleEndianReader(raw, from: 1, to: 5)
            let word = try? reader.readUInt32("word")
            XCTAssertEqual(word, 0x0504_0302)
            XCTAssertEqual(reader.position, 5)
            let pastTheEnd = try? reader.readUInt8("past the end")
            XCTAssertNil(pastTheEnd, "the window ends at 5, before the buffer does")
        }
    }

    func testFixedOffsetReads() {
        let header: [UInt8] = [0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]
        XCTAssertEqual(LittleEndianReader.uint32(at: 1, of: header), 1)
        XCTAssertEqual(LittleEndianReader.uint64(at: 5, of: header), 2)
    }
}
