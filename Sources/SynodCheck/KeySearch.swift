/// The furthest point a failed search reached, kept to explain the failure.
struct DeepestPoint {
    /// Completed operations placed at that point.
    var completedPlaced: Int
    /// Pending (unknown-outcome) operations placed at that point; among equally
    /// deep points the one assuming fewer pending effects explains best.
    var pendingPlaced: Int
    /// The completed operation whose return event was reached while it was
    /// still unplaced: it had to take effect by then and could not.
    var stuckOperation: Int
    /// The operations placed, in linearization order.
    var linearization: [Int]
    /// Completed operations invoked but unplaced before the stuck operation
    /// returned: the alternatives that could not go next either.
    var inFlight: [Int]
    /// Pending operations invoked but unplaced before the stuck operation returned.
    var inFlightPending: [Int]
}

/// The verdict for one key.
enum KeySearchResult {
    case linearizable
    case notLinearizable(DeepestPoint)
    case budgetExhausted
}

/// Wing and Gong's linearizability search with Lowe's improvements, for one key.
///
/// At each configuration the candidates are the unplaced operations invoked
/// before the earliest unplaced return event ("just-in-time" linearization).
/// The search places the first candidate whose outcome fits the register and
/// whose resulting configuration is not dominated by a visited one (see
/// `ConfigurationMemo`), then starts over from the new configuration. When no
/// candidate works, the earliest unplaced operation's deadline cannot be met:
/// the configuration fails and the search backtracks over the most recent
/// placement.
///
/// Completed candidates are tried by walking the event list up to its first
/// return event; pending ones (unknown outcome, no deadline) afterwards, one
/// per symmetry group and only from groups that could supply a value an
/// in-flight operation needs (see `KeySearch+PendingCandidates.swift`).
/// Exploring "it has not taken effect (yet)" first lets `ConfigurationMemo`
/// prune the "it took effect, unobserved" branch later.
/// Nothing forces a pending operation to be placed: the search succeeds once
/// every completed operation is, and unplaced pending operations never took
/// effect.
struct KeySearch {
    let history: KeyHistory
    /// Maximum number of loop iterations before giving up.
    let stepBudget: Int

    /// Where the scan over the current configuration's candidates is.
    private enum Cursor {
        /// At this entry of the event list, looking for completed candidates.
        case entry(Int)
        /// At `groups[position]` of the pending groups worth trying;
        /// `deadline` is the first return entry.
        case pending(position: Int, groups: [Int], deadline: Int)
    }

    func run() -> KeySearchResult {
        // Local copies: in unoptimised builds, reaching through `history` on
        // every step copies the whole struct.
        let operations = history.operations
        let groups = history.groups
        var path = SearchPath(history: history)
        var memo = ConfigurationMemo()
        _ = memo.visit(completed: path.placedCompleted, pending: path.placedPending, state: path.state)
        var deepest: DeepestPoint?
        var steps = 0
        var cursor = Cursor.entry(path.list.next[EntryList.head])

        search: while path.unplacedCompleted > 0 {
            steps += 1
            if steps > stepBudget {
                return .budgetExhausted
            }
            switch cursor {
            case .entry(let entry):
                if !path.list.isCall[entry] {
                    let worthTrying = groups.count == 0 ? [] : pendingGroups(for: path, deadline: entry)
                    cursor = .pending(position: 0, groups: worthTrying, deadline: entry)
                } else if tryPlacing(path.list.operation[entry], callEntry: entry, on: &path, memo: &memo) {
                    cursor = .entry(path.list.next[EntryList.head])
                } else {
                    cursor = .entry(path.list.next[entry])
                }

            case .pending(let position, let worthTrying, let deadline) where position < worthTrying.count:
                let group = worthTrying[position]
                let members = groups.members[group]
                let next = path.groupPlaced[group]
                if next < members.count,
                   operations[members[next]].callOrder < path.list.order[deadline],
                   tryPlacing(members[next], callEntry: -1, on: &path, memo: &memo) {
                    cursor = .entry(path.list.next[EntryList.head])
                } else {
                    cursor = .pending(position: position + 1, groups: worthTrying, deadline: deadline)
                }

            case .pending(_, _, let deadline):
                // No candidate works: this configuration fails.
                if deadline != path.list.tail, isDeeper(path, than: deepest) {
                    deepest = snapshot(of: path, deadline: deadline)
                }
                guard let undone = path.undoLast() else {
                    break search
                }
                // Resume the parent's scan just after the undone candidate.
                // Undoing a pending placement leaves the event list, and so
                // the deadline, unchanged.
                let operation = operations[undone.operation]
                if operation.isPending {
                    let worthTrying = pendingGroups(for: path, deadline: deadline)
                    let position = worthTrying.firstIndex { $0 > operation.group } ?? worthTrying.count
                    cursor = .pending(position: position, groups: worthTrying, deadline: deadline)
                } else {
                    cursor = .entry(path.list.next[undone.callEntry])
                }
            }
        }
        if path.unplacedCompleted == 0 {
            return .linearizable
        }
        guard let deepest else {
            // Unreachable: the search only ends unsuccessfully at a dead end.
            return .notLinearizable(DeepestPoint(
                completedPlaced: 0, pendingPlaced: 0, stuckOperation: 0,
                linearization: [], inFlight: [], inFlightPending: []))
        }
        return .notLinearizable(deepest)
    }

    /// Places `index` next if it fits and leads to a configuration not
    /// dominated by one already visited.
    private func tryPlacing(
        _ index: Int, callEntry: Int, on path: inout SearchPath, memo: inout ConfigurationMemo
    ) -> Bool {
        guard let newState = path.placement(of: index) else {
            return false
        }
        path.place(index, callEntry: callEntry, newState: newState)
        let isNew = path.endsWithPending
            ? !memo.isDominated(completed: path.placedCompleted, pending: path.placedPending, state: path.state)
            : memo.visit(completed: path.placedCompleted, pending: path.placedPending, state: path.state)
        if isNew {
            return true
        }
        _ = path.undoLast()
        return false
    }

    /// More completed operations placed is deeper; at equal depth, fewer
    /// assumed pending effects makes the clearer explanation.
    private func isDeeper(_ path: SearchPath, than deepest: DeepestPoint?) -> Bool {
        guard let deepest else {
            return true
        }
        return path.completedPlaced > deepest.completedPlaced
            || (path.completedPlaced == deepest.completedPlaced && path.pendingPlaced < deepest.pendingPlaced)
    }

    private func snapshot(of path: SearchPath, deadline: Int) -> DeepestPoint {
        let list = path.list
        var inFlight: [Int] = []
        var entry = list.next[EntryList.head]
        while entry != deadline && entry != list.tail {
            if list.isCall[entry] {
                inFlight.append(list.operation[entry])
            }
            entry = list.next[entry]
        }
        var inFlightPending: [Int] = []
        for (group, members) in history.groups.members.enumerated() {
            for member in members.dropFirst(path.groupPlaced[group])
            where history.operations[member].callOrder < list.order[deadline] {
                inFlightPending.append(member)
            }
        }
        return DeepestPoint(
            completedPlaced: path.completedPlaced,
            pendingPlaced: path.pendingPlaced,
            stuckOperation: list.operation[deadline],
            linearization: path.order,
            inFlight: inFlight,
            inFlightPending: inFlightPending.sorted())
    }
}
