/// Lowe's memoisation of visited configurations, strengthened to subsumption
/// for pending operations.
///
/// A configuration is the set of completed operations placed, the set of
/// pending (unknown-outcome) operations placed, and the register value. Lowe
/// prunes a configuration that was visited before. Here a configuration is
/// also pruned when a visited one has the same completed set and value but a
/// *subset* of its pending placements: leaving a pending operation unplaced
/// only keeps more options open, so the visited configuration can do anything
/// the new one can. Without this, timed-out operations placed and then
/// overwritten unobserved (or placed in pointless chains such as
/// write, delete, write) would each double the work.
///
/// Only configurations whose successors are unrestricted may be recorded:
/// one reached by placing a pending operation only explores successors
/// that use that operation (see `SearchPath.placement(of:)`), so it is
/// checked against the memo but never stands in for others.
///
/// Pruning against configurations still being explored (ancestors on the
/// search stack) is sound too: if a pruned configuration had a way to
/// complete, the dominating one would have an equally short one, so the
/// visited configuration closest to success can never have been pruned away.
struct ConfigurationMemo {
    private struct Key: Hashable {
        var completed: LinearizedSet
        var state: RegisterValue
    }

    /// For each completed set and value, the minimal pending sets visited.
    private var visited: [Key: [LinearizedSet]] = [:]

    /// Whether a visited configuration dominates this one.
    func isDominated(completed: LinearizedSet, pending: LinearizedSet, state: RegisterValue) -> Bool {
        visited[Key(completed: completed, state: state)]?.contains { $0.isSubset(of: pending) } ?? false
    }

    /// Records the configuration as visited unless a visited one dominates
    /// it; returns whether it was recorded (and so should be explored).
    mutating func visit(completed: LinearizedSet, pending: LinearizedSet, state: RegisterValue) -> Bool {
        // One hash lookup: the closure edits the stored array in place.
        func update(_ minimalSets: inout [LinearizedSet]) -> Bool {
            if minimalSets.contains(where: { $0.isSubset(of: pending) }) {
                return false
            }
            // Keep only minimal sets: any set containing the new one is now redundant.
            if !minimalSets.isEmpty {
                minimalSets.removeAll { pending.isSubset(of: $0) }
            }
            minimalSets.append(pending)
            return true
        }
        return update(&visited[Key(completed: completed, state: state), default: []])
    }
}
