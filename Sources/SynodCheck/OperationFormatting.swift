// Compact, single-line renderings of operations for violation reports.

extension Optional where Wrapped == String {
    /// A value as it appears in reports: quoted, or `absent` for `nil`.
    var reportText: String {
        switch self {
        case .some(let value): return value.debugDescription
        case .none: return "absent"
        }
    }
}

extension KVOperation {
    /// E.g. `write(k1, "v2")`, `cas(k1, absent -> "v1")`.
    var summary: String {
        switch self {
        case .read(let key):
            return "read(\(key))"
        case .write(let key, let value):
            return "write(\(key), \(value.debugDescription))"
        case .compareAndSet(let key, let expected, let new):
            return "cas(\(key), \(expected.reportText) -> \(new.debugDescription))"
        case .delete(let key):
            return "delete(\(key))"
        }
    }
}

extension KVOutcome {
    /// E.g. `"v3"`, `absent`, `ok`, `true`, `?`.
    var summary: String {
        switch self {
        case .read(let value): return value.reportText
        case .written: return "ok"
        case .compareAndSet(let succeeded): return succeeded ? "true" : "false"
        case .unknown: return "?"
        }
    }
}

extension HistoryOperation {
    /// E.g. `op #7 read(k1) -> "v3" by client 2 at [120, 140]`; an operation
    /// with no completion time is shown as `[120, ?]`.
    var summary: String {
        let end = completedAt.map { String($0) } ?? "?"
        return "op #\(id) \(operation.summary) -> \(outcome.summary) by client \(client) at [\(invokedAt), \(end)]"
    }
}
