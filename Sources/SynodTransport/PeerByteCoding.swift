/// Appends fixed-width integers in little-endian byte order, the order of every integer on
/// the peer wire.
///
/// Concrete overloads rather than one generic function, so that debug and unspecialized
/// builds do not look up type metadata per field.
enum PeerByteWriter {
    static func append(_ value: UInt32, to buffer: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { buffer.append(contentsOf: $0) }
    }

    static func append(_ value: UInt64, to buffer: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { buffer.append(contentsOf: $0) }
    }
}

/// Why the body of a frame could not be decoded; becomes the reason of an `.invalid` result.
struct PeerDecodingError: Error {
    var reason: String

    init(_ reason: String) { self.reason = reason }
}

/// Reads little-endian fields from a window `[position, end)` of a raw buffer.
///
/// Every read first checks that the window still holds the bytes it needs, so a reader over
/// hostile bytes fails with a `PeerDecodingError` and never reads outside the window, traps
/// on overflow, or allocates more than the window could hold. (SynodStore has its own twin of
/// this type; the transport does not depend on the storage module.)
struct PeerByteReader {
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

    // `field` names the field in the error, so a closed connection logs what was wrong.

    mutating func readUInt8(_ field: StaticString) throws(PeerDecodingError) -> UInt8 {
        try checkRemaining(1, field)
        let value = bytes[position]
        position += 1
        return value
    }

    mutating func readUInt32(_ field: StaticString) throws(PeerDecodingError) -> UInt32 {
        try checkRemaining(4, field)
        let value = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: position, as: UInt32.self))
        position += 4
        return value
    }

    mutating func readUInt64(_ field: StaticString) throws(PeerDecodingError) -> UInt64 {
        try checkRemaining(8, field)
        let value = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: position, as: UInt64.self))
        position += 8
        return value
    }

    /// Reads a presence tag: 0 absent, 1 present. Any other byte is invalid, so every
    /// optional has exactly one encoding.
    mutating func readPresence(_ field: StaticString) throws(PeerDecodingError) -> Bool {
        let tag = try readUInt8(field)
        switch tag {
        case 0: return false
        case 1: return true
        default: throw PeerDecodingError("\(field): presence tag \(tag), expected 0 or 1")
        }
    }

    /// Reads a UInt32 element count and checks it against `limit` and against the bytes left,
    /// given that each element takes at least `elementLengthMin` bytes. Both checks run before
    /// the caller reserves anything: a hostile count must not allocate more than the frame holds.
    mutating func readCount(
        _ field: StaticString, limit: Int, elementLengthMin: Int
    ) throws(PeerDecodingError) -> Int {
        let count = try readUInt32(field)
        guard UInt64(count) <= UInt64(limit) else {
            throw PeerDecodingError("\(field) \(count) exceeds the limit \(limit)")
        }
        guard UInt64(count) * UInt64(elementLengthMin) <= UInt64(remaining) else {
            throw PeerDecodingError("\(field) \(count) cannot fit in the \(remaining) remaining bytes")
        }
        return Int(count)  // <= limit, an Int.
    }

    /// Reads a UInt32 length followed by that many bytes, checking the length against `limit`
    /// and the bytes left before copying.
    mutating func readBytes(_ field: StaticString, limit: Int) throws(PeerDecodingError) -> [UInt8] {
        let count = try readUInt32(field)
        guard UInt64(count) <= UInt64(limit) else {
            throw PeerDecodingError("\(field) of \(count) bytes exceeds the limit \(limit)")
        }
        guard UInt64(count) <= UInt64(remaining) else {
            throw PeerDecodingError("\(field) declares \(count) bytes, only \(remaining) remain")
        }
        let length = Int(count)  // <= remaining, so it fits in Int.
        let copy = [UInt8](UnsafeRawBufferPointer(rebasing: bytes[position..<(position + length)]))
        position += length
        return copy
    }

    private func checkRemaining(_ size: Int, _ field: StaticString) throws(PeerDecodingError) {
        guard remaining >= size else {
            throw PeerDecodingError("truncated \(field): needs \(size) bytes, \(remaining) remain")
        }
    }
}
