/// etcd's `key` + `range_end` convention, resolved once (also used by the server's watches).
public enum KeyRange: Hashable, Sendable {
    /// `range_end` empty: just `key`.
    case single([UInt8])
    /// `[lower, upper)`; `upper == nil` means no upper bound (`range_end == "\0"`).
    case interval(lower: [UInt8], upper: [UInt8]?)

    public init(key: [UInt8], rangeEnd: [UInt8]) {
        if rangeEnd.isEmpty {
            self = .single(key)
        } else if rangeEnd == [0] {
            // `key == "\0"` with `range_end == "\0"` is "all keys" and falls out of this case too.
            self = .interval(lower: key, upper: nil)
        } else {
            self = .interval(lower: key, upper: rangeEnd)
        }
    }

    public func contains(_ key: [UInt8]) -> Bool {
        switch self {
        case .single(let only): return key == only
        case .interval(let lower, let upper):
            if key.lexicographicallyPrecedes(lower) { return false }
            guard let upper else { return true }
            return key.lexicographicallyPrecedes(upper)
        }
    }
}
