/// A single-key operation on the key-value store, as issued by a client.
///
/// Every operation touches exactly one key, which is what lets the checker
/// verify each key's sub-history independently (P-compositionality).
public enum KVOperation: Hashable, Sendable {
    /// Reads the current value of `key`.
    case read(key: String)
    /// Sets `key` to `value` unconditionally.
    case write(key: String, value: String)
    /// Sets `key` to `new` if and only if its current value equals `expected`.
    /// An `expected` of `nil` means "the key must be absent".
    case compareAndSet(key: String, expected: String?, new: String)
    /// Makes `key` absent.
    case delete(key: String)

    /// The key this operation touches.
    public var key: String {
        switch self {
        case .read(let key),
             .write(let key, _),
             .compareAndSet(let key, _, _),
             .delete(let key):
            return key
        }
    }
}
