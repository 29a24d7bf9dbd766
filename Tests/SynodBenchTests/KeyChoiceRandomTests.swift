import SynodCore
import XCTest
@testable import SynodBench

/// Pins the load generator's key choice: `--seed` replays the same keys in the same order,
/// so `index(below:)` must keep drawing exactly as it did (RandomTests pins the generator).
final class KeyChoiceRandomTests: XCTestCase {
    func testIndexDrawsOneValueEvenForABoundOfOne() {
        var random = SplitMix64(seed: 7)
        for _ in 0..<4 { _ = random.next() }
        XCTAssertEqual(random.index(below: 1000), 674)
        // Unlike `below`, a bound of 1 still draws a value.
        XCTAssertEqual(random.index(below: 1), 0)
        XCTAssertEqual(random.next(), 0x77CB_C4A1_33C2_D0F6)
    }
}
