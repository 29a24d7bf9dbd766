import SynodBytes

/// The run's fingerprint: FNV-1a (SynodBytes) over its events, numbers as 8 little-endian
/// bytes, strings as UTF-8 and a 0xFF terminator. Two runs of one seed give the same value.
struct TraceHasher: Sendable {
    private var hash = FNV1a64()

    var value: UInt64 { hash.value }

    mutating func mix(_ number: UInt64) {
        withUnsafeBytes(of: number.littleEndian) { hash.combine(Array($0)) }
    }

    mutating func mix(string: String) {
        hash.combine(utf8: string)
        mix(0xFF)
    }
}
