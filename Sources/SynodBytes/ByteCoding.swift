/// Appends fixed-width integers in little-endian byte order: the order of every integer in
/// Synod's files (write-ahead log, snapshots, the key-value state) and on its peer wire.
///
/// Two ways to use it. The static `append(_:to:)` functions add to a caller's buffer, for
/// codecs that frame many records into one buffer. An instance collects `bytes` field by
/// field, for codecs that build one value at a time; its layout primitives are: integers
/// fixed-width, a bool one byte (0 or 1), byte strings and strings a UInt32 length followed
/// by the bytes (strings as UTF-8), a count a UInt32.
///
/// Concrete overloads rather than one generic function: the generic version was left
/// unspecialized in release builds and looked up type metadata on every call. The instance
/// methods are inlinable because snapshot encoders call them millions of times.
public struct LittleEndianWriter {
    /// Everything written so far.
    public var bytes: [UInt8]

    public init() { self.bytes = [] }

    /// Starts with room for `capacity` bytes, for an encoder that knows roughly how much it
    /// writes (growing by doubling would hold the old and the new buffer at once).
    public init(reservingCapacity capacity: Int) {
        self.bytes = []
        bytes.reserveCapacity(capacity)
    }

    public static func append(_ value: UInt32, to buffer: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { buffer.append(contentsOf: $0) }
    }

    public static func append(_ value: UInt64, to buffer: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { buffer.append(contentsOf: $0) }
    }

    @inlinable
    public mutating func writeUInt8(_ value: UInt8) { bytes.append(value) }

    @inlinable
    public mutating func writeUInt32(_ value: UInt32) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    @inlinable
    public mutating func writeUInt64(_ value: UInt64) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// Two's complement, as `UInt64(bitPattern:)`.
    @inlinable
    public mutating func writeInt64(_ value: Int64) { writeUInt64(UInt64(bitPattern: value)) }

    @inlinable
    public mutating func writeBool(_ value: Bool) { bytes.append(value ? 1 : 0) }

    /// A UInt32 element count. The callers' formats bound their counts far below 2^32; the
    /// value is truncated, not checked, as every encoder of these formats always did.
    @inlinable
    public mutating func writeCount(_ count: Int) { writeUInt32(UInt32(truncatingIfNeeded: count)) }

    /// A UInt32 length, then the bytes.
    @inlinable
    public mutating func writeBytes(_ value: [UInt8]) {
        writeCount(value.count)
        bytes.append(contentsOf: value)
    }

    /// A UInt32 length, then the string's UTF-8 bytes.
    @inlinable
    public mutating func writeString(_ value: String) {
        writeCount(value.utf8.count)
        bytes.append(contentsOf: value.utf8)
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

    /// Runs `body` with a reader over all of `bytes`, for decoders of a whole array. The reader
    /// is valid only inside `body` (it points into the array's storage).
    public static func read<Value, Failure: Error>(
        _ bytes: [UInt8], _ body: (inout LittleEndianReader) throws(Failure) -> Value
    ) throws(Failure) -> Value {
        // `withUnsafeBytes` rethrows untyped errors, so the typed error travels in a `Result`.
        let outcome = bytes.withUnsafeBytes { raw in
            var reader = LittleEndianReader(raw, from: 0, to: raw.count)
            return Result { () throws(Failure) -> Value in try body(&reader) }
        }
        return try outcome.get()
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

    /// Two's complement, as written by `writeInt64`.
    public mutating func readInt64(_ field: StaticString) throws(ByteDecodingError) -> Int64 {
        Int64(bitPattern: try readUInt64(field))
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
        guard UInt64(count) <= UInt64(Swift.max(limit, 0)) else {
            throw ByteDecodingError("\(field) \(count) exceeds the limit \(limit)")
        }
        guard UInt64(count) * UInt64(Swift.max(elementLengthMin, 0)) <= UInt64(remaining) else {
            throw ByteDecodingError("\(field) \(count) cannot fit in the \(remaining) remaining bytes")
        }
        return Int(count)  // <= limit, an Int.
    }

    /// Reads a UInt32 length followed by that many bytes, checking the length against `limit`
    /// and the bytes left before copying.
    public mutating func readBytes(_ field: StaticString, limit: Int) throws(ByteDecodingError) -> [UInt8] {
        let count = try readUInt32(field)
        return try readBytes(count: UInt64(count), field, limit: limit)
    }

    /// Copies `count` bytes out of the window. The count is checked against `limit` and the
    /// bytes remaining before anything is allocated: a damaged length must never allocate
    /// gigabytes.
    public mutating func readBytes(
        count: UInt64, _ field: StaticString, limit: Int = .max
    ) throws(ByteDecodingError) -> [UInt8] {
        let length = try checkLength(count, field, limit: limit)
        let copy = [UInt8](UnsafeRawBufferPointer(rebasing: bytes[position..<(position + length)]))
        position += length
        return copy
    }

    /// Reads a string written by `writeString`, at most `limit` UTF-8 bytes. Invalid UTF-8 is
    /// repaired (each bad sequence becomes U+FFFD), as Synod's formats have always read text;
    /// a format that must refuse it reads the bytes and validates them itself.
    public mutating func readString(_ field: StaticString, limit: Int) throws(ByteDecodingError) -> String {
        // Read into a local first: as an argument, the read would run after `self` (and so
        // `remaining`) had been captured for the non-mutating check.
        let count = try readUInt32(field)
        let length = try checkLength(UInt64(count), field, limit: limit)
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[position..<(position + length)]), as: UTF8.self)
        position += length
        return text
    }

    /// `count` as an Int, once it is known to be within `limit` and the bytes left.
    private func checkLength(_ count: UInt64, _ field: StaticString, limit: Int) throws(ByteDecodingError) -> Int {
        guard count <= UInt64(Swift.max(limit, 0)) else {
            throw ByteDecodingError("\(field) of \(count) bytes exceeds the limit \(limit)")
        }
        guard count <= UInt64(remaining) else {
            throw ByteDecodingError("\(field) declares \(count) bytes, only \(remaining) remain")
        }
        return Int(count)  // <= remaining, so it fits in Int.
    }

    private func checkRemaining(_ size: Int, _ field: StaticString) throws(ByteDecodingError) {
        guard remaining >= size else {
            throw ByteDecodingError("truncated \(field): needs \(size) bytes, \(remaining) remain")
        }
    }
}

/// Fixed-offset reads for headers of a known size (segment, snapshot and identity headers),
/// whose length the caller has already checked; variable-length data goes through a reader.
extension LittleEndianReader {
    /// - Precondition: `0 <= offset` and `offset + 4 <= bytes.count`.
    public static func uint32(at offset: Int, of bytes: [UInt8]) -> UInt32 {
        precondition(offset >= 0 && offset <= bytes.count - 4, "UInt32 at \(offset) outside \(bytes.count) bytes")
        return bytes.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }
    }

    /// - Precondition: `0 <= offset` and `offset + 8 <= bytes.count`.
    public static func uint64(at offset: Int, of bytes: [UInt8]) -> UInt64 {
        precondition(offset >= 0 && offset <= bytes.count - 8, "UInt64 at \(offset) outside \(bytes.count) bytes")
        return bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: UInt64.self)) }
    }
}
