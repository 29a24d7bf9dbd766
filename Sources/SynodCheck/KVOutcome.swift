/// What a client observed when one of its operations finished (or failed to).
public enum KVOutcome: Hashable, Sendable {
    /// A read completed and observed this value (`nil` = the key was absent).
    case read(String?)
    /// A write or delete was acknowledged.
    case written
    /// A compare-and-set was acknowledged with this success flag.
    case compareAndSet(Bool)
    /// The operation timed out or its result is otherwise indeterminate: it may
    /// have taken effect at any time after its invocation, or never.
    case unknown
}
