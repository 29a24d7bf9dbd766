/// A register value as seen by the search: a small integer standing for a string.
///
/// Only values that some operation *observes* (a read's result or any CAS's
/// expected value) get their own id. Every other value shares `opaqueValue`:
/// no operation can tell two unobserved values apart, so merging them loses
/// nothing and lets the memo table recognise more configurations as equal.
typealias RegisterValue = Int

/// Stands for every value that no operation in the key's history observes.
let opaqueValue: RegisterValue = 0

/// Assigns `RegisterValue` ids to the values a key's history observes.
struct ValueTable {
    private var ids: [String?: RegisterValue] = [:]

    /// Records that `value` is observed by some operation.
    mutating func observe(_ value: String?) {
        if ids[value] == nil {
            ids[value] = ids.count + 1
        }
    }

    /// The id of `value`, or `opaqueValue` when nothing observes it.
    func id(of value: String?) -> RegisterValue {
        ids[value] ?? opaqueValue
    }

    /// Number of distinct ids, `opaqueValue` included; ids are `0..<count`.
    var count: Int { ids.count + 1 }
}

/// The effect of one history operation on a single register, with the outcome
/// the client observed folded in.
enum RegisterStep: Hashable {
    /// A completed read that returned this value.
    case read(RegisterValue)
    /// A write or delete (completed or not): sets the value unconditionally.
    case set(RegisterValue)
    /// A CAS that reported success: the value must equal `expected`.
    case casSucceeded(expected: RegisterValue, new: RegisterValue)
    /// A CAS that reported failure: the value must differ from `expected`.
    case casFailed(expected: RegisterValue)
    /// A CAS with an unknown outcome. The search only places it where it
    /// succeeds; placing it where it would fail is the same as dropping it.
    case casUnknown(expected: RegisterValue, new: RegisterValue)
    /// The outcome does not fit the operation (e.g. a read acknowledged as
    /// `.written`); such an operation can never be placed.
    case malformed

    /// The value whose presence this step tests, if any: a read's result or
    /// a CAS's expected value. Once every step testing a value has been
    /// placed, nothing can tell that value from any other unobserved one.
    var testedValue: RegisterValue? {
        switch self {
        case .read(let value), .casSucceeded(let value, _), .casFailed(let value), .casUnknown(let value, _):
            return value
        case .set, .malformed:
            return nil
        }
    }

    /// The register value after this step, or `nil` if the step's observed
    /// outcome is impossible in `state`.
    func apply(to state: RegisterValue) -> RegisterValue? {
        switch self {
        case .read(let value):
            return value == state ? state : nil
        case .set(let value):
            return value
        case .casSucceeded(let expected, let new):
            return expected == state ? new : nil
        case .casFailed(let expected):
            return expected == state ? nil : state
        case .casUnknown(let expected, let new):
            return expected == state ? new : state
        case .malformed:
            return nil
        }
    }
}
