/// FNV-1a, 64 bit: a simple hash that never changes between builds or platforms (unlike
/// `Hasher`, which is seeded per process). Synod derives persistent identifiers from it
/// (cluster and member ids) and compares it across replicas (state hashes), so its values
/// are part of the on-disk and on-wire formats.
public struct FNV1a64: Hashable, Sendable {
    /// The hash of everything combined so far.
    public private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    public init() {}

    /// Folds `bytes` into the hash, in order.
    public mutating func combine(_ bytes: [UInt8]) {
        for byte in bytes { combine(byte: byte) }
    }

    /// Folds the UTF-8 bytes of `text` into the hash, in order.
    public mutating func combine(utf8 text: String) {
        for byte in text.utf8 { combine(byte: byte) }
    }

    @inline(__always)
    private mutating func combine(byte: UInt8) {
        value ^= UInt64(byte)
        value = value &* 0x0000_0100_0000_01b3
    }
}
