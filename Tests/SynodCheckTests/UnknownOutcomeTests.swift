import SynodCheck
import XCTest

/// Operations with an unknown outcome may take effect at any time after their
/// invocation, or never.
final class UnknownOutcomeTests: XCTestCase {
    func testUnknownWriteThatTookEffect() {
        var h = HistoryBuilder()
        h.timedOut(.write(key: "k", value: "a"), client: 1, 0)
        h.read("k", "a", client: 2, 50, 60)
        assertLinearizable(h.operations)
    }

    func testUnknownWriteThatNeverTookEffect() {
        var h = HistoryBuilder()
        h.timedOut(.write(key: "k", value: "a"), client: 1, 0)
        for step in UInt64(1)...20 {
            h.read("k", nil, client: 2, step * 10, step * 10 + 5)
        }
        assertLinearizable(h.operations)
    }

    func testUnknownWriteObservedMuchLater() {
        var h = HistoryBuilder()
        h.timedOut(.write(key: "k", value: "late"), client: 1, 0)
        h.read("k", nil, client: 2, 10, 20)
        h.write("k", "b", client: 2, 30, 40)
        h.read("k", "b", client: 3, 50, 60)
        h.read("k", "late", client: 3, 10_000, 10_010)
        assertLinearizable(h.operations)
    }

    func testUnknownWriteCannotTakeEffectBeforeItsInvocation() {
        var h = HistoryBuilder()
        h.timedOut(.write(key: "k", value: "a"), client: 1, 100)
        let early = h.read("k", "a", client: 2, 0, 50)
        assertViolation(h.operations, key: "k", including: early)
    }

    func testUnknownWriteTakesEffectAtMostOnce() {
        var h = HistoryBuilder()
        h.timedOut(.write(key: "k", value: "a"), client: 1, 0)
        h.read("k", "a", client: 2, 10, 20)
        h.write("k", "b", client: 2, 30, 40)
        let again = h.read("k", "a", client: 3, 50, 60)
        assertViolation(h.operations, key: "k", including: again)
    }

    func testManyPendingOperationsBeforeFewCompletedOnes() {
        var h = HistoryBuilder()
        for index in 0..<6 {
            h.timedOut(.write(key: "k", value: "w\(index)"), client: index, UInt64(index))
        }
        h.read("k", "w3", client: 9, 10, 20)
        h.read("k", "w1", client: 9, 30, 40)
        assertLinearizable(h.operations)
        let back = h.read("k", "w3", client: 9, 50, 60)
        assertViolation(h.operations, key: "k", including: back)
    }

    func testUnknownReadIsIgnored() {
        var h = HistoryBuilder()
        h.write("k", "a", client: 1, 0, 10)
        h.timedOut(.read(key: "k"), client: 2, 20)
        h.read("k", "a", client: 3, 30, 40)
        assertLinearizable(h.operations)
    }

    func testUnknownCompareAndSetEitherWay() {
        var tookEffect = HistoryBuilder()
        tookEffect.write("k", "a", client: 1, 0, 10)
        tookEffect.timedOut(.compareAndSet(key: "k", expected: "a", new: "b"), client: 2, 20)
        tookEffect.read("k", "b", client: 3, 30, 40)
        assertLinearizable(tookEffect.operations)

        var didNot = HistoryBuilder()
        didNot.write("k", "a", client: 1, 0, 10)
        didNot.timedOut(.compareAndSet(key: "k", expected: "a", new: "b"), client: 2, 20)
        didNot.read("k", "a", client: 3, 30, 40)
        assertLinearizable(didNot.operations)

        // It can only succeed from its expected value.
        var impossible = HistoryBuilder()
        impossible.write("k", "z", client: 1, 0, 10)
        impossible.timedOut(.compareAndSet(key: "k", expected: "a", new: "b"), client: 2, 20)
        let read = impossible.read("k", "b", client: 3, 30, 40)
        assertViolation(impossible.operations, key: "k", including: read)
    }

    func testUnknownDeleteThatTookEffect() {
        var h = HistoryBuilder()
        h.write("k", "a", client: 1, 0, 10)
        h.timedOut(.delete(key: "k"), client: 2, 20)
        h.read("k", nil, client: 3, 30, 40)
        assertLinearizable(h.operations)
    }

    func testUnobservedUnknownWriteExplainsFailedCompareAndSet() {
        // Nobody reads "x", yet its taking effect is what makes the CAS fail.
        var h = HistoryBuilder()
        h.write("k", "a", client: 1, 0, 10)
        h.timedOut(.write(key: "k", value: "x"), client: 2, 15)
        h.cas("k", "a", "b", succeeded: false, client: 3, 20, 30)
        assertLinearizable(h.operations)

        var without = HistoryBuilder()
        without.write("k", "a", client: 1, 0, 10)
        let failed = without.cas("k", "a", "b", succeeded: false, client: 3, 20, 30)
        assertViolation(without.operations, key: "k", including: failed)
    }

    func testManyTimedOutWritesDoNotExplodeTheSearch() {
        // 30 writes time out up front; later, each failed CAS needs one of them
        // to have taken effect just before it. Which 15 of the 30 did is an
        // exponential choice unless the search treats them as interchangeable.
        var h = HistoryBuilder()
        for index in 0..<30 {
            h.timedOut(.write(key: "k", value: "lost\(index)"), client: 1 + index % 5, UInt64(index))
        }
        var time: UInt64 = 100
        for index in 0..<15 {
            h.write("k", "w\(index)", client: 10, time, time + 3)
            h.read("k", "w\(index)", client: 11, time + 4, time + 6)
            h.cas("k", "w\(index)", "c\(index)", succeeded: false, client: 12, time + 7, time + 9)
            time += 10
        }
        let checker = LinearizabilityChecker(searchStepsMax: 200_000)
        assertLinearizable(h.operations, checker: checker)

        // A final impossible read forces the search to exhaust every way of
        // placing the timed-out writes before reporting the violation.
        let impossible = h.read("k", "w0", client: 13, time + 100, time + 110)
        assertViolation(h.operations, key: "k", including: impossible, checker: checker)
    }

    func testTimedOutWritesOverwrittenUnseenDoNotExplodeTheSearch() {
        // 20 distinct timed-out writes, each of which may have taken effect
        // and been overwritten before anyone looked: 2^20 combinations that
        // all lead to the same register values, unless the search notices
        // that "took effect, then overwritten" is no better than "never".
        var h = HistoryBuilder()
        for index in 0..<20 {
            h.timedOut(.write(key: "k", value: "x\(index)"), client: 1 + index % 5, UInt64(index))
        }
        var time: UInt64 = 100
        for index in 0..<20 {
            h.write("k", "w\(index)", client: 10, time, time + 3)
            h.read("k", "w\(index)", client: 11, time + 4, time + 6)
            time += 10
        }
        // Failed CASes make every timed-out value observed, so none of them
        // collapses into the shared "unobserved value".
        for index in 0..<20 {
            h.cas("k", "x\(index)", "y\(index)", succeeded: false, client: 12, time, time + 1)
            time += 2
        }
        let checker = LinearizabilityChecker(searchStepsMax: 200_000)
        assertLinearizable(h.operations, checker: checker)

        let impossible = h.read("k", "never", client: 13, time + 100, time + 110)
        assertViolation(h.operations, key: "k", including: impossible, checker: checker)
    }
}
