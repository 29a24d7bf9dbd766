/// Turns the deepest point of a failed search into a short, readable report.
///
/// At the deepest point no in-flight completed operation could be applied to
/// the register (otherwise the search would have gone deeper), so the stuck
/// operation's requirement versus the register value there is the clearest
/// account of the failure available.
enum ViolationExplainer {
    /// How many in-flight operations to name; more are only counted.
    static let inFlightShown = 4
    /// How many of the latest value-setting operations to include.
    static let settersShown = 2

    static func explain(_ point: DeepestPoint, in history: KeyHistory) -> LinearizabilityViolation {
        let sources = history.sources
        let valid = { (index: Int) in sources.indices.contains(index) }
        guard valid(point.stuckOperation) else {
            return LinearizabilityViolation(key: history.key, operations: [], explanation: "no linearization exists")
        }
        let stuck = sources[point.stuckOperation]

        // Replay the partial linearization with real values, remembering who set them.
        var value = history.initialValue
        var setters: [HistoryOperation] = []
        for index in point.linearization where valid(index) {
            if let newValue = writtenValue(of: sources[index]) {
                value = newValue
                setters.append(sources[index])
            }
        }

        var text = "\(stuck.summary) cannot be linearized: "
        text += requirement(of: stuck, step: history.operations[point.stuckOperation].step, given: value)
        text += " in the furthest partial linearization found (\(point.linearization.count) operations placed)"
        if let lastSetter = setters.last {
            text += ", where it was last set by \(lastSetter.summary)."
        } else {
            text += ", where it still has its initial value."
        }

        // Completed operations in flight, plus the pending ones that could
        // have supplied the value the stuck operation needed. Other pending
        // operations are typically long-timed-out noise and are only counted.
        let needed = neededValue(of: stuck)
        let pending = point.inFlightPending.filter(valid).map { sources[$0] }
        let helpful = pending.filter { candidate in
            guard let needed else { return false }
            return writtenValue(of: candidate) == .some(needed)
        }
        let inFlight = point.inFlight
            .filter { $0 != point.stuckOperation && valid($0) }
            .map { sources[$0] } + helpful
        if inFlight.isEmpty {
            text += " No other completed operation was in flight."
        } else {
            let named = inFlight.prefix(inFlightShown).map(\.summary).joined(separator: "; ")
            let more = inFlight.count > inFlightShown ? " (and \(inFlight.count - inFlightShown) more)" : ""
            text += " In flight with it: \(named)\(more); no order of these lets it take effect."
        }
        let otherPending = pending.count - helpful.count
        if otherPending == 1 {
            text += " 1 timed-out operation that may still take effect does not help either."
        } else if otherPending > 1 {
            text += " \(otherPending) timed-out operations that may still take effect do not help either."
        }

        var involved = Array(setters.suffix(settersShown))
        involved.append(stuck)
        involved += inFlight.prefix(inFlightShown)
        return LinearizabilityViolation(key: history.key, operations: ordered(involved), explanation: text)
    }

    /// Report for an operation that claims to complete before it was invoked.
    static func invertedInterval(_ operation: HistoryOperation) -> LinearizabilityViolation {
        LinearizabilityViolation(
            key: operation.operation.key,
            operations: [operation],
            explanation: "\(operation.summary) cannot be linearized: it completes before it is invoked.")
    }

    /// Why `operation` could not be applied to `value`, phrased to be
    /// followed by "in the furthest partial linearization found".
    private static func requirement(of operation: HistoryOperation, step: RegisterStep, given value: String?) -> String {
        switch (step, operation.operation, operation.outcome) {
        case (.read, _, .read(let observed)):
            return "it returned \(observed.reportText), but the value is \(value.reportText)"
        case (.casSucceeded, .compareAndSet(_, let expected, _), _):
            return "it succeeded, which needs the value \(expected.reportText), but the value is \(value.reportText)"
        case (.casFailed, .compareAndSet(_, let expected, _), _):
            return "it failed, which needs a value other than \(expected.reportText), but the value is \(value.reportText)"
        case (.malformed, let requested, let outcome):
            return "outcome \(outcome.summary) is not a possible result of \(requested.summary); the value is \(value.reportText)"
        default:
            return "no order of the operations around it lets it take effect; the value is \(value.reportText)"
        }
    }

    /// The value the stuck operation needed the register to hold, if one.
    private static func neededValue(of operation: HistoryOperation) -> String?? {
        switch (operation.operation, operation.outcome) {
        case (.read, .read(let observed)):
            return .some(observed)
        case (.compareAndSet(_, let expected, _), .compareAndSet(true)):
            return .some(expected)
        default:
            return nil
        }
    }

    /// The value `operation` leaves in the register when it takes effect, or
    /// `nil` if it leaves it unchanged. A pending CAS counts as succeeding:
    /// the search only ever places one where it succeeds.
    private static func writtenValue(of operation: HistoryOperation) -> String?? {
        switch (operation.operation, operation.outcome) {
        case (.write(_, let value), .written), (.write(_, let value), .unknown):
            return .some(value)
        case (.delete, .written), (.delete, .unknown):
            return .some(nil)
        case (.compareAndSet(_, _, let new), .compareAndSet(true)), (.compareAndSet(_, _, let new), .unknown):
            return .some(new)
        default:
            return nil
        }
    }

    /// Invocation order, without duplicates.
    private static func ordered(_ operations: [HistoryOperation]) -> [HistoryOperation] {
        var seen = Set<HistoryOperation>()
        return operations
            .sorted { ($0.invokedAt, $0.id) < ($1.invokedAt, $1.id) }
            .filter { seen.insert($0).inserted }
    }
}
