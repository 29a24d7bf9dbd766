/// Evidence that one key's sub-history cannot be linearized.
public struct LinearizabilityViolation: Sendable, CustomStringConvertible {
    /// The key whose sub-history is not linearizable.
    public var key: String
    /// A small explanatory subset of the key's operations, ordered by invocation:
    /// the operation that could not be placed, the operations in flight with it,
    /// and the most recent value-setting operations that had to precede it.
    public var operations: [HistoryOperation]
    /// Human-readable account of which operation could not be placed and why.
    public var explanation: String

    /// Creates a violation report.
    public init(key: String, operations: [HistoryOperation], explanation: String) {
        self.key = key
        self.operations = operations
        self.explanation = explanation
    }

    /// Multi-line report: the explanation followed by the operations involved.
    public var description: String {
        var lines = ["Linearizability violation on key \(key.debugDescription): \(explanation)"]
        if !operations.isEmpty {
            lines.append("Operations involved:")
            for operation in operations {
                lines.append("  " + operation.summary)
            }
        }
        return lines.joined(separator: "\n")
    }
}
