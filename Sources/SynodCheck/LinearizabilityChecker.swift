/// Checks key-value histories for linearizability.
///
/// Each key is an independent register, so a history is linearizable exactly
/// when every key's sub-history is (P-compositionality); keys are checked one
/// at a time with Wing and Gong's search as improved by Lowe (just-in-time
/// linearization plus memoisation of visited configurations).
///
/// Semantics:
/// - every key starts at `initialValue` (by default absent);
/// - a completed operation whose `completedAt` is strictly less than another's
///   `invokedAt` must take effect first; equal times count as concurrent;
/// - an operation with outcome `.unknown` may take effect at any point after
///   its invocation, or never; an unknown read constrains nothing and is
///   ignored;
/// - a completed operation without `completedAt` may take effect at any point
///   after its invocation but must take effect;
/// - an outcome that does not fit its operation (e.g. a read acknowledged as
///   `.written`) can never be linearized, nor can an operation that completes
///   before it is invoked.
public struct LinearizabilityChecker: Sendable {
    /// The value every key holds before the history starts (`nil` = absent).
    public var initialValue: String?
    /// The search gives up on a key (`.timedOut`) after this many steps.
    public var searchStepsMax: Int

    /// Creates a checker.
    /// - Parameters:
    ///   - initialValue: The value of every key before the history (`nil` = absent).
    ///   - searchStepsMax: Per-key bound on search steps, so that pathological
    ///     histories end in `.timedOut` instead of running for hours.
    public init(initialValue: String? = nil, searchStepsMax: Int = 50_000_000) {
        self.initialValue = initialValue
        self.searchStepsMax = searchStepsMax
    }

    /// Checks `history` (in any order) for linearizability.
    ///
    /// Keys are checked in sorted order. The first violation found is
    /// returned; a key that exhausts the step budget is reported as
    /// `.timedOut` only if no other key has a violation.
    public func check(_ history: [HistoryOperation]) -> CheckResult {
        var byKey: [String: [HistoryOperation]] = [:]
        for operation in history {
            if case .read = operation.operation, operation.outcome == .unknown {
                continue
            }
            byKey[operation.operation.key, default: []].append(operation)
        }

        var timedOutKey: String?
        for key in byKey.keys.sorted() {
            switch check(key: key, history: byKey[key] ?? []) {
            case .linearizable:
                continue
            case .violation(let violation):
                return .violation(violation)
            case .timedOut:
                timedOutKey = timedOutKey ?? key
            }
        }
        if let timedOutKey {
            return .timedOut(key: timedOutKey)
        }
        return .linearizable
    }

    /// Checks one key's sub-history.
    private func check(key: String, history: [HistoryOperation]) -> CheckResult {
        // An inverted interval would put a return event before its call and
        // break the event-list invariants, so it is rejected up front.
        let inverted = history.filter { operation in
            operation.outcome != .unknown && operation.completedAt.map { $0 < operation.invokedAt } == true
        }
        if let first = inverted.min(by: { ($0.invokedAt, $0.id) < ($1.invokedAt, $1.id) }) {
            return .violation(ViolationExplainer.invertedInterval(first))
        }

        let keyHistory = KeyHistory(key: key, history: history, initialValue: initialValue)
        switch KeySearch(history: keyHistory, stepBudget: searchStepsMax).run() {
        case .linearizable:
            return .linearizable
        case .notLinearizable(let deepest):
            return .violation(ViolationExplainer.explain(deepest, in: keyHistory))
        case .budgetExhausted:
            return .timedOut(key: key)
        }
    }
}
