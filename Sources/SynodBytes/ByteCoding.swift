/// Appends fixed-width integers in little-endian byte order: the order of every integer in
/// Synod's files (write-ahead log) and on its peer wire.
///
/// Concrete overloads rather than one generic function: the generic version was left
/// unspecialized in release builds and looked up type metadata on every call.
public enum LittleEndianWriter {
    public static func append(_ value: UInt32, to buffer: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { buffer.append(contentsOf: $0) }
    }

    public static func append(_ value: UInt64, to buffer: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { buffer.append(contentsOf: $0) }
    }
}

/// Why bytes (from disk or the network) could not be decoded; callers turn the reason into
/// their own result (a corrupt record, an invalid frame).
public struct ByteDecodingError: Error, Sendable {
    public var reason: String

    public init(_ reason: String) { self.reason = reason }
}

/// Reads little-endian fields from a window `[position, end)` of a raw buffer.
///
/// Every read first checks that the window still holds the bytes it needs, so a reader over
/// hostile bytes fails with a `ByteDecodingError` and never reads outside the window, traps
/// on overflow, or allocates more than the window could hold.
public struct LittleEndianReader {
    private let bytes: UnsafeRawBufferPointer
    public private(set) var position: Int
    public let end: Int

    /// - Precondition: `0 <= start <= end <= bytes.count`.
    public init(_ bytes: UnsafeRawBufferPointer, from start: Int, to end: Int) {
        precondition(0 <= start && start <= end && end <= bytes.count, "reader window outside the buffer")
        self.bytes = bytes
        self.position = start
        self.end = end
    }

    /// Bytes left in the window.
    public var remaining: Int { end - position }

    // One concrete function per width, for the reason given on `LittleEndianWriter`.
    // `field` names the field in the error.

    public mutating func readUInt8(_ field: StaticString) throws(ByteDecodingError) -> UInt8 {
        try checkRemaining(1, field)
        let value = bytes[position]
        position += 1
        return value
    }

    public mutating func readUInt32(_ field: StaticString) throws(ByteDecodingError) -> UInt32 {
        try checkRemaining(4, field)
        let value = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: position, as: UInt32.self))
        position += 4
        return value
    }

    public mutating func readUInt64(_ field: StaticString) throws(ByteDecodingError) -> UInt64 {
        try checkRemaining(8, field)
        let value = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: position, as: UInt64.self))
        position += 8
        return value
    }

    /// Reads a presence tag: 0 absent, 1 present. Any other byte is invalid, so every
    /// optional has exactly one encoding.
    public mutating func readPresence(_ field: StaticString) throws(ByteDecodingError) -> Bool {
        let tag = try readUInt8(field)
        switch tag {
        case 0: return false
        case 1: return true
        default: throw ByteDecodingError("\(field): presence tag \(tag), expected 0 or 1")
        }
    }

    /// Reads a UInt32 element count and checks it against `limit` and against the bytes left,
    /// given that each element takes at least `elementLengthMin` bytes. Both checks run before
    /// the caller reserves anything: a hostile count must not allocate more than the frame holds.
    public mutating func readCount(
        _ field: StaticString, limit: Int, elementLengthMin: Int
    ) throws(ByteDecodingError) -> Int {
        let count = try readUInt32(field)
        guard UInt64(count) <= UInt64(limit) else {
            throw ByteDecodingError("\(field) \(count) exceeds the limit \(limit)")
        }
        guard UInt64(count) * UInt64(elementLengthMin) <= UInt64(remaining) else {
            throw ByteDecodingError("\(field) \(count) cannot fit in the \(remaining) remaining bytes")
        }
        return Int(count)  // <= limit, an Int.
    }

    /// Reads a UInt32 length followed by that many bytes, checking the length against `limit`
    /// and the bytes left before copying.
    public mutating func readBytes(_ field: StaticString, limit: Int) throws(ByteDecodingError) -> [UInt8] {
        let count = try readUInt32(field)
        guard UInt64(count) <= UInt64(limit) else {
            throw ByteDecodingError("\(field) of \(count) bytes exceeds the limit \(limit)")
        }
        guard UInt64(count) <= UInt64(remaining) else {
            throw ByteDecodingError("\(field) declares \(count) bytes, only \(remaining) remain")
        }
        let length = Int(count)  // <= remaining, so it fits in Int.
        let copy = [UInt8](UnsafeRawBufferPointer(rebasing: bytes[position..<(position + length)]))
        position += length
        return copy
    }

    private func checkRemaining(_ size: Int, _ field: StaticString) throws(ByteDecodingError) {
        guard remaining >= size else {
            throw ByteDecodingError("truncated \(field): needs \(size) bytes, \(remaining) remain")
        }
    }

    /// Copies `count` bytes out of the window. The count is checked against the bytes remaining
    /// before anything is allocated: a damaged length must never allocate gigabytes.
    public mutating func readBytes(count: UInt64, _ field: StaticString) throws(ByteDecodingError) -> [UInt8] {
        guard count <= UInt64(remaining) else {
            throw ByteDecodingError("\(field) declares \(count) bytes, only \(remaining) remain")
        }
        let length = Int(count)  // <= remaining, so it fits in Int.
        let copy = [UInt8](UnsafeRawBufferPointer(rebasing: bytes[position..<(position + length)]))
        position += length
        return copy
    }
}
