import SynodCheck
import XCTest

/// Time ties, malformed input, and the step budget.
final class EdgeCaseTests: XCTestCase {
    func testInvocationAtAnotherCompletionTimeCountsAsConcurrent() {
        var touching = HistoryBuilder()
        touching.write("k", "a", client: 1, 0, 10)
        touching.read("k", nil, client: 2, 10, 20)
        assertLinearizable(touching.operations)

        var strictlyAfter = HistoryBuilder()
        strictlyAfter.write("k", "a", client: 1, 0, 10)
        let read = strictlyAfter.read("k", nil, client: 2, 11, 20)
        assertViolation(strictlyAfter.operations, key: "k", including: read)
    }

    func testZeroLengthIntervals() {
        var h = HistoryBuilder()
        h.write("k", "a", client: 1, 5, 5)
        h.read("k", "a", client: 2, 5, 5)
        h.write("k", "b", client: 1, 6, 6)
        h.read("k", "b", client: 2, 7, 7)
        assertLinearizable(h.operations)
    }

    func testOutcomeThatDoesNotFitTheOperation() {
        var h = HistoryBuilder()
        let odd = h.add(.read(key: "k"), .written, client: 1, 0, 10)
        let violation = assertViolation(h.operations, key: "k", including: odd)
        XCTAssertTrue(violation?.explanation.contains("is not a possible result of read(k)") ?? false,
                      "\(String(describing: violation))")
    }

    func testCompletionBeforeInvocation() {
        var h = HistoryBuilder()
        h.write("k", "a", client: 1, 0, 10)
        let inverted = h.read("k", "a", client: 2, 30, 20)
        assertViolation(h.operations, key: "k", including: inverted)
    }

    func testCompletedOperationWithoutCompletionTimeMustStillTakeEffect() {
        var h = HistoryBuilder()
        h.add(.write(key: "k", value: "a"), .written, client: 1, 0, nil)
        h.read("k", nil, client: 2, 10, 20)
        h.read("k", "a", client: 2, 30, 40)
        assertLinearizable(h.operations)

        var never = HistoryBuilder()
        never.add(.compareAndSet(key: "k", expected: "zzz", new: "a"), .compareAndSet(true), client: 1, 0, nil)
        never.read("k", nil, client: 2, 10, 20)
        assertViolation(never.operations, key: "k")
    }

    func testStepBudgetReportsTimeout() {
        let history = RandomHistoryGenerator().generate(seed: 5)
        let firstKey = Set(history.map(\.operation.key)).min() ?? ""
        guard case .timedOut(let key) = LinearizabilityChecker(searchStepsMax: 10).check(history) else {
            XCTFail("expected a timeout")
            return
        }
        XCTAssertEqual(key, firstKey)
        assertLinearizable(history, checker: LinearizabilityChecker(searchStepsMax: 1_000_000))
    }

    func testViolationWinsOverTimeout() {
        // Key "a" is checked first and times out; key "b" still gets checked.
        var h = HistoryBuilder()
        for index in 0..<50 {
            h.write("a", "v\(index)", client: 1, UInt64(index) * 10, UInt64(index) * 10 + 5)
        }
        h.write("b", "x", client: 2, 0, 5)
        let stale = h.read("b", nil, client: 3, 10, 15)
        assertViolation(h.operations, key: "b", including: stale, checker: LinearizabilityChecker(searchStepsMax: 20))
    }
}
