/// Appends fixed-width integers in little-endian byte order, the order of every on-disk
/// integer in the write-ahead log.
///
/// Concrete overloads rather than one generic function: the generic version was left
/// unspecialized in release builds and looked up type metadata on every call.
enum LittleEndianWriter {
    static func append(_ value: UInt32, to buffer: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { buffer.append(contentsOf: $0) }
    }

    static func append(_ value: UInt64, to buffer: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { buffer.append(contentsOf: $0) }
    }
}

/// Why bytes read from disk could not be decoded; becomes the reason of a `.corrupt` result.
struct ByteDecodingError: Error {
    var reason: String

    init(_ reason: String) { self.reason = reason }
}

/// Reads little-endian fields from a window `[position, end)` of a raw buffer.
///
/// Every read first checks that the window still holds the bytes it needs, so a reader over
/// hostile bytes fails with a `ByteDecodingError` and never reads outside the window, traps
/// on overflow, or allocates more than the window could hold.
struct LittleEndianReader {
    private let bytes: UnsafeRawBufferPointer
    private(set) var position: Int
    let end: Int

    /// - Precondition: `0 <= start <= end <= bytes.count`.
    init(_ bytes: UnsafeRawBufferPointer, from start: Int, to end: Int) {
        precondition(0 <= start && start <= end && end <= bytes.count, "reader window outside the buffer")
        self.bytes = bytes
        self.position = start
        self.end = end
    }

    /// Bytes left in the window.
    var remaining: Int { end - position }

    // One concrete function per width, for the reason given on `LittleEndianWriter`.
    // `field` names the field in the error.

    mutating func readUInt8(_ field: StaticString) throws(ByteDecodingError) -> UInt8 {
        try checkRemaining(1, field)
        let value = bytes[position]
        position += 1
        return value
    }

    mutating func readUInt32(_ field: StaticString) throws(ByteDecodingError) -> UInt32 {
        try checkRemaining(4, field)
        let value = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: position, as: UInt32.self))
        position += 4
        return value
    }

    mutating func readUInt64(_ field: StaticString) throws(ByteDecodingError) -> UInt64 {
        try checkRemaining(8, field)
        let value = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: position, as: UInt64.self))
        position += 8
        return value
    }

    private func checkRemaining(_ size: Int, _ field: StaticString) throws(ByteDecodingError) {
        guard remaining >= size else {
            throw ByteDecodingError("truncated \(field): needs \(size) bytes, \(remaining) remain")
        }
    }

    /// Copies `count` bytes out of the window. The count is checked against the bytes remaining
    /// before anything is allocated: a damaged length must never allocate gigabytes.
    mutating func readBytes(count: UInt64, _ field: StaticString) throws(ByteDecodingError) -> [UInt8] {
        guard count <= UInt64(remaining) else {
            throw ByteDecodingError("\(field) declares \(count) bytes, only \(remaining) remain")
        }
        let length = Int(count)  // <= remaining, so it fits in Int.
        let copy = [UInt8](UnsafeRawBufferPointer(rebasing: bytes[position..<(position + length)]))
        position += length
        return copy
    }
}
