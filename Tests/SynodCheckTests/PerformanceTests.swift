import SynodCheck
import XCTest

/// Measures a realistically sized check. Timing is printed, never asserted.
final class PerformanceTests: XCTestCase {
    func testTenThousandOperationsOverTenKeysWithEightClients() {
        var generator = RandomHistoryGenerator()
        generator.clients = 8
        generator.keys = 10
        generator.operationCount = 10_000
        generator.unknownProbability = 0.02
        let history = generator.generate(seed: 2024)

        let clock = ContinuousClock()
        var result: CheckResult = .linearizable
        let elapsed = clock.measure {
            result = LinearizabilityChecker().check(history)
        }
        print("SynodCheck: checked \(history.count) operations over 10 keys (8 clients) in \(elapsed)")
        guard case .linearizable = result else {
            XCTFail("expected linearizable, got \(result)")
            return
        }
    }

    func testTenThousandOperationsWithViolationNearTheEnd() {
        var generator = RandomHistoryGenerator()
        generator.clients = 8
        generator.keys = 10
        generator.operationCount = 10_000
        generator.unknownProbability = 0.02
        var history = generator.generate(seed: 99)
        guard let target = history.indices.last(where: { index in
            if case .read = history[index].outcome { return true }
            return false
        }) else {
            XCTFail("no completed read")
            return
        }
        history[target].outcome = .read("never-written")

        let clock = ContinuousClock()
        var result: CheckResult = .linearizable
        let elapsed = clock.measure {
            result = LinearizabilityChecker().check(history)
        }
        print("SynodCheck: found a violation in \(history.count) operations in \(elapsed)")
        guard case .violation(let violation) = result else {
            XCTFail("expected a violation, got \(result)")
            return
        }
        XCTAssertEqual(violation.key, history[target].operation.key)
        XCTAssertTrue(violation.operations.contains(history[target]), "\(violation)")
    }
}
