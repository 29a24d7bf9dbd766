import SynodCheck
import XCTest

/// Hand-made histories that have a valid linearization.
final class LinearizableHistoryTests: XCTestCase {
    func testEmptyHistory() {
        assertLinearizable([])
    }

    func testSequentialHistory() {
        var h = HistoryBuilder()
        h.read("k", nil, client: 1, 0, 1)
        h.write("k", "a", client: 1, 2, 3)
        h.read("k", "a", client: 2, 4, 5)
        h.write("k", "b", client: 2, 6, 7)
        h.read("k", "b", client: 1, 8, 9)
        h.delete("k", client: 1, 10, 11)
        h.read("k", nil, client: 2, 12, 13)
        assertLinearizable(h.operations)
    }

    func testOverlappingWritesWithReadsObservingEitherOrder() {
        // Two concurrent writes; concurrent readers may see them in either order,
        // as long as everyone agrees on a single order overall.
        var h = HistoryBuilder()
        h.write("k", "a", client: 1, 0, 100)
        h.write("k", "b", client: 2, 10, 90)
        h.read("k", "b", client: 3, 20, 30)
        h.read("k", "a", client: 3, 40, 50)
        assertLinearizable(h.operations)

        var reversed = HistoryBuilder()
        reversed.write("k", "a", client: 1, 0, 100)
        reversed.write("k", "b", client: 2, 10, 90)
        reversed.read("k", "a", client: 3, 20, 30)
        reversed.read("k", "b", client: 3, 40, 50)
        assertLinearizable(reversed.operations)
    }

    func testReadConcurrentWithWriteMaySeeOldOrNewValue() {
        for observed in [nil, "a"] as [String?] {
            var h = HistoryBuilder()
            h.write("k", "a", client: 1, 0, 10)
            h.read("k", observed, client: 2, 5, 8)
            assertLinearizable(h.operations)
        }
    }

    func testCompareAndSetSuccessAndFailure() {
        var h = HistoryBuilder()
        h.cas("k", nil, "a", succeeded: true, client: 1, 0, 1)
        h.cas("k", nil, "b", succeeded: false, client: 2, 2, 3)
        h.cas("k", "a", "c", succeeded: true, client: 2, 4, 5)
        h.cas("k", "a", "d", succeeded: false, client: 1, 6, 7)
        h.read("k", "c", client: 3, 8, 9)
        assertLinearizable(h.operations)
    }

    func testConcurrentCompareAndSetsOnlyOneWins() {
        var h = HistoryBuilder()
        h.cas("k", nil, "a", succeeded: false, client: 1, 0, 10)
        h.cas("k", nil, "b", succeeded: true, client: 2, 0, 10)
        h.read("k", "b", client: 3, 11, 12)
        assertLinearizable(h.operations)
    }

    func testDeleteThenCompareAndSetOnAbsentKey() {
        var h = HistoryBuilder()
        h.write("k", "a", client: 1, 0, 1)
        h.delete("k", client: 2, 2, 3)
        h.cas("k", nil, "b", succeeded: true, client: 1, 4, 5)
        h.read("k", "b", client: 2, 6, 7)
        assertLinearizable(h.operations)
    }

    func testKeysAreIndependent() {
        // Per key each sub-history is fine; a global order must interleave them.
        var h = HistoryBuilder()
        h.write("x", "1", client: 1, 0, 10)
        h.write("y", "1", client: 2, 0, 10)
        h.read("x", "1", client: 3, 5, 6)
        h.read("y", nil, client: 4, 5, 6)
        assertLinearizable(h.operations)
    }

    func testInputOrderDoesNotMatter() {
        var h = HistoryBuilder()
        h.write("k", "a", client: 1, 0, 10)
        h.write("k", "b", client: 2, 20, 30)
        h.read("k", "b", client: 3, 40, 50)
        h.cas("k", "b", "c", succeeded: true, client: 1, 60, 70)
        h.read("k", "c", client: 2, 80, 90)
        assertLinearizable(h.operations.reversed())
        var generator = SplitMix64(seed: 7)
        assertLinearizable(h.operations.shuffled(using: &generator))
    }

    func testCustomInitialValue() {
        var h = HistoryBuilder()
        h.read("k", "init", client: 1, 0, 1)
        h.cas("k", "init", "a", succeeded: true, client: 1, 2, 3)
        assertLinearizable(h.operations, checker: LinearizabilityChecker(initialValue: "init"))
        assertViolation(h.operations, key: "k")
    }
}
