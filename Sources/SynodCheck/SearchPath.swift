/// The search's current partial linearization and everything derived from it,
/// with O(1) extension and undo.
struct SearchPath {
    private struct Frame {
        var operation: Int
        /// The call entry lifted from the event list (`-1` for pending
        /// operations, which are not in the list).
        var callEntry: Int
        var stateBefore: RegisterValue
    }

    private let operations: [CompiledOperation]
    private let completedCount: Int
    /// The events of completed operations not yet placed.
    private(set) var list: EntryList
    private(set) var placedCompleted: LinearizedSet
    private(set) var placedPending: LinearizedSet
    /// How many members of each pending symmetry group are placed. Members
    /// are always placed in rank order, so this identifies which ones.
    private(set) var groupPlaced: [Int]
    /// The register value after the placed operations.
    private(set) var state: RegisterValue
    private(set) var unplacedCompleted: Int
    /// For each register value, how many unplaced operations test it.
    private var testsLeft: [Int]
    /// The placed operations in linearization order. Mirrors `frames` so a
    /// snapshot is a cheap copy-on-write copy rather than a mapping loop.
    private(set) var order: [Int] = []
    private var frames: [Frame] = []

    init(history: KeyHistory) {
        operations = history.operations
        completedCount = history.completedCount
        list = history.entries
        placedCompleted = LinearizedSet(capacity: history.completedCount)
        placedPending = LinearizedSet(capacity: history.pendingCount)
        groupPlaced = [Int](repeating: 0, count: history.groups.count)
        state = history.initialState
        unplacedCompleted = history.completedCount
        testsLeft = history.testCounts
    }

    /// Whether no unplaced operation tests `value` any more, so that from here
    /// on it behaves like every other value nobody tests. Once true it stays
    /// true for the rest of the path, which only places more operations.
    func isUnobservable(_ value: RegisterValue) -> Bool {
        testsLeft[value] == 0
    }

    var completedPlaced: Int { completedCount - unplacedCompleted }
    var pendingPlaced: Int { order.count - completedPlaced }

    /// The register value after placing operation `index` next, or `nil` if it
    /// cannot (or need not) be placed now. Real-time order is the caller's
    /// concern; this checks the register semantics and the pruning rules.
    ///
    /// Three rules skip placements that some shortest successful
    /// linearization (if one exists) avoids, so none can hide a success:
    /// - a pending operation that would leave the value unchanged is not
    ///   placed: leaving it unplaced is at least as flexible.
    /// - a pending operation must be *used* by the very next placement: that
    ///   operation must be one that would not fit without it. Otherwise the
    ///   next operation either overwrites its effect unseen (so it could be
    ///   dropped) or is a failed CAS that fits either way (so the pending
    ///   operation could move after it). A pending write or delete never
    ///   counts as using it (it overwrites it unseen), nor does a pending CAS
    ///   that restores the earlier value (the pair could be dropped). This
    ///   keeps the search from trying every timed-out operation, or chain of
    ///   them, at every point of the history.
    /// - members of a symmetry group (identical effects, no deadline) are
    ///   interchangeable, so only the earliest-invoked unplaced member is
    ///   tried. Any linearization can be rewritten to use members in
    ///   invocation order, so nothing is lost, while the otherwise exponential
    ///   choice of *which* timed-out write took effect disappears.
    func placement(of index: Int) -> RegisterValue? {
        let operation = operations[index]
        guard let newState = Self.fit(operation, in: state) else {
            return nil
        }
        if operation.isPending, groupPlaced[operation.group] != operation.rank {
            return nil
        }
        if let last = frames.last, operations[last.operation].isPending {
            if Self.fit(operation, in: last.stateBefore) != nil {
                return nil
            }
            if operation.isPending {
                if case .set = operation.step {
                    return nil
                }
                if newState == last.stateBefore {
                    return nil
                }
            }
        }
        return newState
    }

    /// Whether the most recent placement is a pending operation, whose
    /// successors are restricted (see `placement(of:)`).
    var endsWithPending: Bool {
        frames.last.map { operations[$0.operation].isPending } ?? false
    }

    /// The value after `operation` in `state`, or `nil` if its outcome is
    /// impossible there or, for a pending operation, it would change nothing.
    private static func fit(_ operation: CompiledOperation, in state: RegisterValue) -> RegisterValue? {
        guard let newState = operation.step.apply(to: state) else {
            return nil
        }
        if operation.isPending && newState == state {
            return nil
        }
        return newState
    }

    /// Places operation `index` (whose call entry is `callEntry`, or `-1` if
    /// pending), moving the register to `newState`.
    mutating func place(_ index: Int, callEntry: Int, newState: RegisterValue) {
        let operation = operations[index]
        frames.append(Frame(operation: index, callEntry: callEntry, stateBefore: state))
        order.append(index)
        state = newState
        if let tested = operation.step.testedValue {
            testsLeft[tested] -= 1
        }
        if operation.isPending {
            placedPending.insert(operation.slot)
            groupPlaced[operation.group] += 1
        } else {
            placedCompleted.insert(operation.slot)
            list.lift(call: callEntry)
            unplacedCompleted -= 1
        }
    }

    /// Undoes the most recent placement; returns the operation and its call
    /// entry, or `nil` if nothing is placed.
    mutating func undoLast() -> (operation: Int, callEntry: Int)? {
        guard let frame = frames.popLast() else {
            return nil
        }
        order.removeLast()
        state = frame.stateBefore
        let operation = operations[frame.operation]
        if let tested = operation.step.testedValue {
            testsLeft[tested] += 1
        }
        if operation.isPending {
            placedPending.remove(operation.slot)
            groupPlaced[operation.group] -= 1
        } else {
            placedCompleted.remove(operation.slot)
            list.unlift(call: frame.callEntry)
            unplacedCompleted += 1
        }
        return (frame.operation, frame.callEntry)
    }
}
