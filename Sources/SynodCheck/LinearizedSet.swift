/// A set of placed operations (by slot), as a bitset with an incrementally
/// maintained fingerprint so that memo lookups do not rehash every word.
struct LinearizedSet: Hashable {
    private var words: [UInt64]
    /// XOR of a per-slot random-looking constant over all members.
    private var fingerprint: UInt64 = 0

    init(capacity: Int) {
        words = [UInt64](repeating: 0, count: (capacity + 63) / 64)
    }

    mutating func insert(_ member: Int) {
        words[member >> 6] |= 1 << UInt64(member & 63)
        fingerprint ^= Self.scramble(member)
    }

    mutating func remove(_ member: Int) {
        words[member >> 6] &= ~(1 << UInt64(member & 63))
        fingerprint ^= Self.scramble(member)
    }

    /// Whether every member of `self` is also in `other` (same capacity).
    func isSubset(of other: LinearizedSet) -> Bool {
        var index = 0
        while index < words.count {
            if words[index] & ~other.words[index] != 0 {
                return false
            }
            index += 1
        }
        return true
    }

    static func == (lhs: LinearizedSet, rhs: LinearizedSet) -> Bool {
        lhs.fingerprint == rhs.fingerprint && lhs.words == rhs.words
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(fingerprint)
    }

    /// SplitMix64's finaliser: spreads slots over all 64 bits so that
    /// XOR-combining them rarely collides.
    private static func scramble(_ member: Int) -> UInt64 {
        var z = UInt64(truncatingIfNeeded: member) &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
