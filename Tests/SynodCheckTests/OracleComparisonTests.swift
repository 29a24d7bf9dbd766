import SynodCheck
import XCTest

/// Cross-checks the checker against `BruteForceOracle` on many tiny random
/// histories with few distinct values, so that coincidences the checker
/// optimises around (repeated values, unobserved values, interchangeable
/// timed-out operations, edge-touching intervals) come up constantly.
final class OracleComparisonTests: XCTestCase {
    private func randomHistory(using random: inout SplitMix64) -> [HistoryOperation] {
        let values = ["a", "b", "c"]
        func randomValue() -> String? {
            Int.random(in: 0...3, using: &random) == 0 ? nil : values.randomElement(using: &random)
        }
        let count = Int.random(in: 1...8, using: &random)
        var operations: [HistoryOperation] = []
        for id in 0..<count {
            let start = UInt64.random(in: 0...20, using: &random)
            let end = start + UInt64.random(in: 0...8, using: &random)
            let unknown = Int.random(in: 0..<5, using: &random) == 0
            let operation: KVOperation
            let outcome: KVOutcome
            switch Int.random(in: 0..<4, using: &random) {
            case 0:
                operation = .read(key: "k")
                outcome = .read(randomValue())
            case 1:
                operation = .write(key: "k", value: values.randomElement(using: &random) ?? "a")
                outcome = .written
            case 2:
                operation = .compareAndSet(
                    key: "k", expected: randomValue(), new: values.randomElement(using: &random) ?? "a")
                outcome = .compareAndSet(Bool.random(using: &random))
            default:
                operation = .delete(key: "k")
                outcome = .written
            }
            operations.append(HistoryOperation(
                id: id, client: id, operation: operation, invokedAt: start,
                completedAt: unknown ? nil : end, outcome: unknown ? .unknown : outcome))
        }
        return operations
    }

    func testCheckerAgreesWithBruteForce() {
        var random = SplitMix64(seed: 42)
        var linearizableCount = 0
        let trials = 4000
        for trial in 0..<trials {
            let history = randomHistory(using: &random)
            let expected = BruteForceOracle.isLinearizable(history)
            let result = LinearizabilityChecker().check(history)
            let actual: Bool
            switch result {
            case .linearizable: actual = true
            case .violation: actual = false
            case .timedOut:
                XCTFail("trial \(trial) timed out")
                continue
            }
            if expected { linearizableCount += 1 }
            XCTAssertEqual(actual, expected, "trial \(trial): \(result)\n\(history.map { "\($0)" }.joined(separator: "\n"))")
        }
        // Both verdicts must be well represented for the comparison to mean anything.
        XCTAssertGreaterThan(linearizableCount, trials / 10)
        XCTAssertLessThan(linearizableCount, trials * 9 / 10)
    }

    func testCheckerAgreesWithBruteForceWithInitialValue() {
        var random = SplitMix64(seed: 7)
        for trial in 0..<1000 {
            let history = randomHistory(using: &random)
            let expected = BruteForceOracle.isLinearizable(history, initialValue: "a")
            let actual: Bool
            if case .linearizable = LinearizabilityChecker(initialValue: "a").check(history) {
                actual = true
            } else {
                actual = false
            }
            XCTAssertEqual(actual, expected, "trial \(trial)")
        }
    }

    /// Near-misses: linearizable-by-construction histories (unique values,
    /// many timed-out operations) with one random change, which may or may
    /// not break linearizability.
    func testCheckerAgreesWithBruteForceOnMutatedGeneratedHistories() {
        var generator = RandomHistoryGenerator()
        generator.keys = 1
        generator.clients = 3
        generator.operationCount = 12
        generator.unknownProbability = 0.3
        var random = SplitMix64(seed: 2718)
        var verdicts = Set<Bool>()
        for trial in 0..<1500 {
            var history = generator.generate(seed: UInt64(trial))
            mutate(&history, using: &random)
            let expected = BruteForceOracle.isLinearizable(history)
            verdicts.insert(expected)
            let actual: Bool
            if case .linearizable = LinearizabilityChecker().check(history) {
                actual = true
            } else {
                actual = false
            }
            XCTAssertEqual(actual, expected, "trial \(trial):\n\(history.map { "\($0)" }.joined(separator: "\n"))")
        }
        XCTAssertEqual(verdicts, [true, false])
    }

    private func mutate(_ history: inout [HistoryOperation], using random: inout SplitMix64) {
        guard let index = history.indices.randomElement(using: &random) else { return }
        let values: [String?] = [nil] + history.compactMap { operation in
            switch operation.operation {
            case .write(_, let value), .compareAndSet(_, _, let value): return value
            default: return nil
            }
        }
        switch history[index].outcome {
        case .read:
            history[index].outcome = .read(values.randomElement(using: &random) ?? nil)
        case .compareAndSet(let succeeded):
            history[index].outcome = .compareAndSet(!succeeded)
        case .written, .unknown:
            // Shift the invocation: later (shrinking the window) or earlier.
            let shift = UInt64.random(in: 0...30, using: &random)
            if Bool.random(using: &random) {
                history[index].invokedAt += shift
                if let completedAt = history[index].completedAt {
                    history[index].completedAt = max(completedAt, history[index].invokedAt)
                }
            } else {
                history[index].invokedAt -= min(shift, history[index].invokedAt)
            }
        }
    }
}
