/// FNV-1a over the run's events: two runs of one seed must produce the same value.
struct TraceHasher: Hashable, Sendable {
    private(set) var value: UInt64 = 0xCBF2_9CE4_8422_2325

    mutating func mix(_ number: UInt64) {
        var remaining = number
        for _ in 0..<8 {
            value ^= remaining & 0xFF
            value &*= 0x0000_0100_0000_01B3
            remaining >>= 8
        }
    }

    mutating func mix(string: String) {
        for byte in string.utf8 {
            value ^= UInt64(byte)
            value &*= 0x0000_0100_0000_01B3
        }
        mix(0xFF)
    }
}
