/// One client operation as recorded in a history: what was asked, when, and
/// what the client saw.
public struct HistoryOperation: Hashable, Sendable {
    /// Identifier, unique within the history; used only to name operations in reports.
    public var id: Int
    /// The client that issued the operation.
    public var client: Int
    /// The requested operation.
    public var operation: KVOperation
    /// When the operation was invoked (any monotonic time unit).
    public var invokedAt: UInt64
    /// When the operation completed; `nil` when the outcome is `.unknown`.
    ///
    /// An operation whose `completedAt` equals another's `invokedAt` is treated
    /// as concurrent with it, not as preceding it.
    public var completedAt: UInt64?
    /// What the client observed.
    public var outcome: KVOutcome

    /// Creates a recorded operation.
    public init(
        id: Int,
        client: Int,
        operation: KVOperation,
        invokedAt: UInt64,
        completedAt: UInt64?,
        outcome: KVOutcome
    ) {
        self.id = id
        self.client = client
        self.operation = operation
        self.invokedAt = invokedAt
        self.completedAt = completedAt
        self.outcome = outcome
    }
}
