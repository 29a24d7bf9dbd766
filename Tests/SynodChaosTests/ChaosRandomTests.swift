import XCTest
@testable import SynodChaos

/// Pins the chaos generator's sequence and helpers: a run's nemesis schedule and client
/// operations are replayed from its seed, so they must not change with the generator's code.
final class ChaosRandomTests: XCTestCase {
    func testSequenceAndHelpersArePinned() {
        var random = ChaosRandom(seed: 42)
        XCTAssertEqual((0..<3).map { _ in random.next() }, [0xBDD7_3226_2FEB_6E95, 0x28EF_E333_B266_F103, 0x4752_6757_130F_9F52])
        random = ChaosRandom(seed: 7)
        XCTAssertEqual(random.unit(), 0.3898297483912715)
        XCTAssertEqual(random.uniform(2, 5), 2.0503648835844683)
        XCTAssertEqual(random.below(10), 6)
        // A bound of 1 (or less) draws nothing: the next value is unchanged by it.
        XCTAssertEqual(random.below(1), 0)
        XCTAssertFalse(random.chance(0.5))
    }
}
