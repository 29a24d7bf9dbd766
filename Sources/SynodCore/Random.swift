/// A small, seeded, deterministic pseudo-random generator (SplitMix64).
///
/// The core never touches a global random source; every replica owns one of these, seeded by
/// its driver, so the same seed and inputs always give the same outputs. It is also the
/// generator of everything else replayed from a seed (the simulator, chaos schedules,
/// benchmark key choices): its sequence must never change (RandomTests pins it).
public struct SplitMix64: RandomNumberGenerator, Sendable {
    @usableFromInline var state: UInt64

    public init(seed: UInt64) { self.state = seed }

    // Inlinable: load generators draw from it in their hottest loop, from other modules.
    @inlinable
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

// Helpers with exactly specified draws: unlike the standard library's `random(in:using:)`,
// whose algorithm may change between releases, each of these takes a documented number of
// values from the generator and maps them the same way forever, so seeded runs replay.
extension SplitMix64 {
    /// A uniform double in [0, 1): the top 53 bits of one value.
    @inlinable
    public mutating func unit() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    /// A uniform double in [low, high); `low` (drawing nothing) when the range is empty.
    public mutating func uniform(_ low: Double, _ high: Double) -> Double {
        high <= low ? low : low + (high - low) * unit()
    }

    /// An integer in 0..<bound by one value modulo `bound`; 0, drawing nothing, when
    /// `bound <= 1`. (The modulo bias is negligible for bounds far below 2^64.)
    public mutating func below(_ bound: Int) -> Int {
        bound <= 1 ? 0 : Int(next() % UInt64(bound))
    }

    /// True with probability `p`: one `unit()` draw below `p`.
    public mutating func chance(_ p: Double) -> Bool {
        unit() < p
    }
}
