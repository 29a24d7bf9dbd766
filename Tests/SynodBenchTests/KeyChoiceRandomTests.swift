import SynodCore
import XCTest
@testable import SynodBench

/// Pins the load generator's key-choice sequence: `--seed` replays the same keys in the
/// same order, so the generator's values must not change.
final class KeyChoiceRandomTests: XCTestCase {
    func testSequenceAndHelpersArePinned() {
        var random = SplitMix64(seed: 42)
        XCTAssertEqual((0..<3).map { _ in random.next() }, [0xBDD7_3226_2FEB_6E95, 0x28EF_E333_B266_F103, 0x4752_6757_130F_9F52])
        random = SplitMix64(seed: 7)
        XCTAssertEqual(random.unit(), 0.3898297483912715)
        _ = random.next()
        _ = random.next()
        _ = random.next()
        XCTAssertEqual(random.index(below: 1000), 674)
        // Unlike the chaos helper `below`, a bound of 1 still draws a value.
        XCTAssertEqual(random.index(below: 1), 0)
        XCTAssertEqual(random.next(), 0x77CB_C4A1_33C2_D0F6)
    }
}
