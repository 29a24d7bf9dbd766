import SynodCore
import XCTest

/// Pins `SplitMix64`'s sequence. Simulator runs, chaos schedules and benchmark key choices are
/// replayed from a seed, so a change to the generator silently changes every recorded run.
final class RandomTests: XCTestCase {
    func testSequenceMatchesTheReferenceSplitMix64() {
        // Seed 0: the first outputs of Vigna's reference splitmix64.c.
        var zero = SplitMix64(seed: 0)
        XCTAssertEqual((0..<3).map { _ in zero.next() }, [0xE220_A839_7B1D_CDAF, 0x6E78_9E6A_A1B9_65F4, 0x06C4_5D18_8009_454F])
        var other = SplitMix64(seed: 42)
        XCTAssertEqual((0..<3).map { _ in other.next() }, [0xBDD7_3226_2FEB_6E95, 0x28EF_E333_B266_F103, 0x4752_6757_130F_9F52])
    }
}
