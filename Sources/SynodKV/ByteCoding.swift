/// Why bytes from the log or a snapshot could not be decoded.
public enum KVDecodingError: Error, Hashable, Sendable {
    /// The bytes end before the value does.
    case truncated
    /// Bytes remain after a complete value.
    case trailingBytes
    /// The format version byte is not one this build reads.
    case unsupportedVersion(UInt8)
    /// An enum tag, bool or count that no encoder produces.
    case invalid
    /// Txns nested deeper than `KVCodec.nestingDepthMax`.
    case tooDeep
}

/// Little-endian, length-prefixed encoding shared by commands, responses and snapshots.
///
/// Layout primitives: integers are fixed-width little-endian, bools one byte (0/1), byte
/// strings and arrays a `UInt32` count followed by the elements.
struct ByteWriter {
    var bytes: [UInt8] = []

    mutating func u8(_ value: UInt8) { bytes.append(value) }

    mutating func u32(_ value: UInt32) {
        for shift in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }

    mutating func u64(_ value: UInt64) {
        for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }

    mutating func i64(_ value: Int64) { u64(UInt64(bitPattern: value)) }

    mutating func bool(_ value: Bool) { u8(value ? 1 : 0) }

    mutating func count(_ value: Int) { u32(UInt32(truncatingIfNeeded: value)) }

    mutating func data(_ value: [UInt8]) {
        count(value.count)
        bytes.append(contentsOf: value)
    }
}

/// Reads what `ByteWriter` wrote. Total: every malformed input is a thrown error, and no
/// allocation is larger than the input, because every count is checked against the bytes left.
struct ByteReader {
    let bytes: [UInt8]
    private(set) var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var remaining: Int { bytes.count - offset }

    mutating func u8() throws(KVDecodingError) -> UInt8 {
        guard offset < bytes.count else { throw .truncated }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func u32() throws(KVDecodingError) -> UInt32 {
        guard remaining >= 4 else { throw .truncated }
        var value: UInt32 = 0
        for i in 0..<4 { value |= UInt32(bytes[offset + i]) << UInt32(8 * i) }
        offset += 4
        return value
    }

    mutating func u64() throws(KVDecodingError) -> UInt64 {
        guard remaining >= 8 else { throw .truncated }
        var value: UInt64 = 0
        for i in 0..<8 { value |= UInt64(bytes[offset + i]) << UInt64(8 * i) }
        offset += 8
        return value
    }

    mutating func i64() throws(KVDecodingError) -> Int64 { Int64(bitPattern: try u64()) }

    mutating func bool() throws(KVDecodingError) -> Bool {
        switch try u8() {
        case 0: return false
        case 1: return true
        default: throw .invalid
        }
    }

    /// A count of elements that each take at least `elementBytesMin` bytes, so a hostile count
    /// cannot make the caller reserve more than the input could hold.
    mutating func count(elementBytesMin: Int = 1) throws(KVDecodingError) -> Int {
        let value = Int(try u32())
        guard value <= remaining / max(elementBytesMin, 1) else { throw .truncated }
        return value
    }

    mutating func data() throws(KVDecodingError) -> [UInt8] {
        let length = try count()
        defer { offset += length }
        return Array(bytes[offset..<offset + length])
    }

    func finish() throws(KVDecodingError) {
        if remaining != 0 { throw .trailingBytes }
    }
}

/// FNV-1a, 64 bit: a simple, stable hash of a canonical encoding (for `HashKV`-style checks).
public struct FNV1a64: Sendable {
    /// The hash of everything combined so far.
    public private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    public init() {}

    /// Folds `bytes` into the hash, in order.
    public mutating func combine(_ bytes: [UInt8]) {
        for byte in bytes {
            value ^= UInt64(byte)
            value = value &* 0x0000_0100_0000_01b3
        }
    }
}
