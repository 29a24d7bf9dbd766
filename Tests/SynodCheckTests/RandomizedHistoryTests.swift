import SynodCheck
import XCTest

/// Randomized histories: linearizable by construction, then mutated in ways
/// that are guaranteed to break linearizability.
final class RandomizedHistoryTests: XCTestCase {
    private let seeds: ClosedRange<UInt64> = 1...40

    /// A varied configuration per seed: 1–4 keys, 2–8 clients, some timeouts.
    private func generator(for seed: UInt64) -> RandomHistoryGenerator {
        var generator = RandomHistoryGenerator()
        generator.keys = 1 + Int(seed % 4)
        generator.clients = 2 + Int(seed % 7)
        generator.operationCount = 100 + Int(seed % 5) * 50
        generator.unknownProbability = [0, 0.05, 0.15][Int(seed % 3)]
        return generator
    }

    func testGeneratedHistoriesAreLinearizable() {
        var unknownCount = 0
        var casOutcomes = Set<Bool>()
        for seed in seeds {
            let history = generator(for: seed).generate(seed: seed)
            for operation in history {
                if operation.outcome == .unknown { unknownCount += 1 }
                if case .compareAndSet(let succeeded) = operation.outcome { casOutcomes.insert(succeeded) }
            }
            assertLinearizable(history)
        }
        // Guard against a generator that only produces trivial histories.
        XCTAssertGreaterThan(unknownCount, 50)
        XCTAssertEqual(casOutcomes, [true, false])
    }

    func testShuffledGeneratedHistoriesAreLinearizable() {
        for seed in seeds.prefix(10) {
            var random = SplitMix64(seed: seed &* 31)
            assertLinearizable(generator(for: seed).generate(seed: seed).shuffled(using: &random))
        }
    }

    func testReadOfNeverWrittenValueIsFlagged() {
        for seed in seeds {
            var history = generator(for: seed).generate(seed: seed)
            var random = SplitMix64(seed: seed &+ 1000)
            let reads = history.indices.filter { index in
                if case .read = history[index].outcome { return true }
                return false
            }
            guard let target = reads.randomElement(using: &random) else {
                XCTFail("seed \(seed): no completed read to mutate")
                continue
            }
            history[target].outcome = .read("never-written")
            assertViolation(history, key: history[target].operation.key, including: history[target])
        }
    }

    func testStaleReadIsFlagged() {
        var mutated = 0
        for seed in seeds {
            var history = generator(for: seed).generate(seed: seed)
            guard let (target, staleValue) = staleReadMutation(in: history) else { continue }
            history[target].outcome = .read(staleValue)
            assertViolation(history, key: history[target].operation.key, including: history[target])
            mutated += 1
        }
        XCTAssertGreaterThan(mutated, 20, "too few histories admitted a stale-read mutation")
    }

    /// Finds a completed read R and completed value-setting operations W1, W2 on
    /// R's key with W1 → W2 → R in real time. Making R return W1's (unique)
    /// value is then impossible in every linearization.
    private func staleReadMutation(in history: [HistoryOperation]) -> (index: Int, value: String)? {
        func setsValue(_ operation: HistoryOperation) -> Bool {
            switch (operation.operation, operation.outcome) {
            case (.write, .written), (.delete, .written), (.compareAndSet, .compareAndSet(true)): return true
            default: return false
            }
        }
        func nonNilValue(_ operation: HistoryOperation) -> String? {
            switch (operation.operation, operation.outcome) {
            case (.write(_, let value), .written): return value
            case (.compareAndSet(_, _, let new), .compareAndSet(true)): return new
            default: return nil
            }
        }
        let setters = history.filter(setsValue)
        for (index, read) in history.enumerated().reversed() {
            guard case .read = read.outcome, case .read(let key) = read.operation else { continue }
            let earlier = setters.filter { $0.operation.key == key && ($0.completedAt ?? .max) < read.invokedAt }
            for second in earlier {
                let first = earlier.first { candidate in
                    nonNilValue(candidate) != nil && (candidate.completedAt ?? .max) < second.invokedAt
                }
                if let first, let value = nonNilValue(first) {
                    return (index, value)
                }
            }
        }
        return nil
    }
}
