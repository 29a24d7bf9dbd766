/// The verdict of `LinearizabilityChecker.check(_:)`.
public enum CheckResult: Sendable {
    /// Every key's sub-history has a valid linearization.
    case linearizable
    /// Some key's sub-history has no valid linearization.
    case violation(LinearizabilityViolation)
    /// The search for this key exceeded the step budget before reaching a verdict.
    /// Other keys may still be unchecked; no violation was found in those that were.
    case timedOut(key: String)
}
