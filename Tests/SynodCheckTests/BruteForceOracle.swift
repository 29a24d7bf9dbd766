import SynodCheck

/// A deliberately naive linearizability decision procedure for tiny
/// single-key histories, used to cross-check the real checker: it tries
/// every order (and, for unknown outcomes, every choice of taking effect or
/// not) that respects real time, with none of the checker's prunings.
enum BruteForceOracle {
    static func isLinearizable(_ history: [HistoryOperation], initialValue: String? = nil) -> Bool {
        // Unknown reads constrain nothing.
        let operations = history.filter { operation in
            if case .read = operation.operation, operation.outcome == .unknown { return false }
            return true
        }
        precondition(operations.count <= 16, "the oracle is exponential")
        let mustPlace = operations.indices.filter { operations[$0].outcome != .unknown }
            .reduce(0) { $0 | (1 << $1) }
        var failed = Set<Failure>()
        return search(operations, placed: 0, value: initialValue, mustPlace: mustPlace, failed: &failed)
    }

    private struct Failure: Hashable {
        var placed: Int
        var value: String?
    }

    private static func search(
        _ operations: [HistoryOperation], placed: Int, value: String?, mustPlace: Int, failed: inout Set<Failure>
    ) -> Bool {
        if placed & mustPlace == mustPlace {
            return true
        }
        if failed.contains(Failure(placed: placed, value: value)) {
            return false
        }
        for (index, operation) in operations.enumerated() where placed & (1 << index) == 0 {
            // Every completed operation that returned strictly before this
            // one was invoked must already be placed.
            let blocked = operations.indices.contains { other in
                placed & (1 << other) == 0 && operations[other].outcome != .unknown
                    && (operations[other].completedAt ?? .max) < operation.invokedAt
            }
            if blocked { continue }
            for next in outcomes(of: operation, from: value)
            where search(operations, placed: placed | (1 << index), value: next, mustPlace: mustPlace, failed: &failed) {
                return true
            }
        }
        failed.insert(Failure(placed: placed, value: value))
        return false
    }

    /// The possible register values after `operation` takes effect on `value`
    /// (empty if its recorded outcome is impossible there).
    private static func outcomes(of operation: HistoryOperation, from value: String?) -> [String?] {
        switch (operation.operation, operation.outcome) {
        case (.read, .read(let observed)):
            return observed == value ? [value] : []
        case (.write(_, let new), .written), (.write(_, let new), .unknown):
            return [new]
        case (.delete, .written), (.delete, .unknown):
            return [nil]
        case (.compareAndSet(_, let expected, let new), .compareAndSet(true)):
            return expected == value ? [new] : []
        case (.compareAndSet(_, let expected, _), .compareAndSet(false)):
            return expected == value ? [] : [value]
        case (.compareAndSet(_, let expected, let new), .unknown):
            return [expected == value ? new : value]
        default:
            return []
        }
    }
}
