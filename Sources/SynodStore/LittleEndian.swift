/// Little-endian integers at fixed offsets of small file headers (identity, segment and
/// snapshot headers), whose lengths the callers check first. Writing goes through
/// `LittleEndianWriter`; variable-length decoding through `LittleEndianReader`.
enum LittleEndian {
    /// - Precondition: `offset + 4 <= bytes.count`.
    static func read32(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        var value: UInt32 = 0
        for index in (0..<4).reversed() { value = value << 8 | UInt32(bytes[offset + index]) }
        return value
    }

    /// - Precondition: `offset + 8 <= bytes.count`.
    static func read64(_ bytes: [UInt8], at offset: Int) -> UInt64 {
        var value: UInt64 = 0
        for index in (0..<8).reversed() { value = value << 8 | UInt64(bytes[offset + index]) }
        return value
    }
}
