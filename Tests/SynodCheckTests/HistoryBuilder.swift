import SynodCheck
import XCTest

/// Builds hand-written histories with unique ids; each method returns the
/// operation it added so tests can assert that a report names it.
struct HistoryBuilder {
    private(set) var operations: [HistoryOperation] = []

    @discardableResult
    mutating func add(
        _ operation: KVOperation, _ outcome: KVOutcome, client: Int, _ start: UInt64, _ end: UInt64?
    ) -> HistoryOperation {
        let recorded = HistoryOperation(
            id: operations.count + 1, client: client, operation: operation,
            invokedAt: start, completedAt: end, outcome: outcome)
        operations.append(recorded)
        return recorded
    }

    @discardableResult
    mutating func write(_ key: String, _ value: String, client: Int, _ start: UInt64, _ end: UInt64) -> HistoryOperation {
        add(.write(key: key, value: value), .written, client: client, start, end)
    }

    @discardableResult
    mutating func read(_ key: String, _ value: String?, client: Int, _ start: UInt64, _ end: UInt64) -> HistoryOperation {
        add(.read(key: key), .read(value), client: client, start, end)
    }

    @discardableResult
    mutating func cas(
        _ key: String, _ expected: String?, _ new: String, succeeded: Bool, client: Int, _ start: UInt64, _ end: UInt64
    ) -> HistoryOperation {
        add(.compareAndSet(key: key, expected: expected, new: new), .compareAndSet(succeeded), client: client, start, end)
    }

    @discardableResult
    mutating func delete(_ key: String, client: Int, _ start: UInt64, _ end: UInt64) -> HistoryOperation {
        add(.delete(key: key), .written, client: client, start, end)
    }

    /// An operation that timed out: invoked at `start`, outcome unknown.
    @discardableResult
    mutating func timedOut(_ operation: KVOperation, client: Int, _ start: UInt64) -> HistoryOperation {
        add(operation, .unknown, client: client, start, nil)
    }
}

func assertLinearizable(
    _ history: [HistoryOperation],
    checker: LinearizabilityChecker = LinearizabilityChecker(),
    file: StaticString = #filePath, line: UInt = #line
) {
    switch checker.check(history) {
    case .linearizable:
        break
    case .violation(let violation):
        XCTFail("expected linearizable, got:\n\(violation)", file: file, line: line)
    case .timedOut(let key):
        XCTFail("expected linearizable, timed out on key \(key)", file: file, line: line)
    }
}

/// Asserts a violation on `key` whose report includes `offending`; returns it.
@discardableResult
func assertViolation(
    _ history: [HistoryOperation],
    key: String,
    including offending: HistoryOperation? = nil,
    checker: LinearizabilityChecker = LinearizabilityChecker(),
    file: StaticString = #filePath, line: UInt = #line
) -> LinearizabilityViolation? {
    switch checker.check(history) {
    case .linearizable:
        XCTFail("expected a violation on \(key), got linearizable", file: file, line: line)
        return nil
    case .timedOut(let timedOutKey):
        XCTFail("expected a violation on \(key), timed out on \(timedOutKey)", file: file, line: line)
        return nil
    case .violation(let violation):
        XCTAssertEqual(violation.key, key, "\(violation)", file: file, line: line)
        if let offending {
            XCTAssertTrue(
                violation.operations.contains(offending),
                "report does not include \(offending):\n\(violation)", file: file, line: line)
        }
        return violation
    }
}
