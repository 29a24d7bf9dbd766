import SynodBytes

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
    /// A snapshot's file could not be read.
    case unreadable
}

// Commands, responses and snapshots are written with SynodBytes' `LittleEndianWriter`:
// integers fixed-width little-endian, bools one byte (0/1), byte strings and arrays a UInt32
// count followed by the elements.

/// The KV decoders read through SynodBytes' `LittleEndianReader`, which does the bounds and
/// allocation checks; these wrappers report its failures as the `KVDecodingError` cases that
/// callers match on (the KV formats name no fields in their errors). A count is checked
/// against the bytes left, given the smallest encoding of one element, before the caller
/// reserves anything.
extension LittleEndianReader {
    mutating func u8() throws(KVDecodingError) -> UInt8 {
        do { return try readUInt8("byte") } catch { throw .truncated }
    }

    mutating func u64() throws(KVDecodingError) -> UInt64 {
        do { return try readUInt64("integer") } catch { throw .truncated }
    }

    mutating func i64() throws(KVDecodingError) -> Int64 {
        do { return try readInt64("integer") } catch { throw .truncated }
    }

    /// 0 or 1; a missing byte is `.truncated`, any other byte `.invalid`.
    mutating func bool() throws(KVDecodingError) -> Bool {
        switch try u8() {
        case 0: return false
        case 1: return true
        default: throw .invalid
        }
    }

    mutating func count(elementBytesMin: Int = 1) throws(KVDecodingError) -> Int {
        do {
            return try readCount("count", limit: Int(UInt32.max), elementLengthMin: Swift.max(elementBytesMin, 1))
        } catch {
            throw .truncated
        }
    }

    mutating func data() throws(KVDecodingError) -> [UInt8] {
        do { return try readBytes("bytes", limit: .max) } catch { throw .truncated }
    }

    func finish() throws(KVDecodingError) {
        if remaining != 0 { throw .trailingBytes }
    }
}
