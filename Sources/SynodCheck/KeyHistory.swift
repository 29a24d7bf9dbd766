/// One operation of a key's sub-history, compiled for the search. Plain
/// integers only, so the hot loop copies it without reference counting; the
/// recorded operation lives in `KeyHistory.sources` at the same index.
struct CompiledOperation {
    /// Its effect on the register, outcome included.
    var step: RegisterStep
    /// The outcome is unknown: the operation may be placed anywhere after its
    /// invocation, or never (it has no return event and no deadline).
    var isPending: Bool
    /// Pending operations with identical steps form a symmetry group; this is
    /// the group's index (`-1` for completed operations).
    var group: Int
    /// Position within `group` in invocation order.
    var rank: Int
    /// Dense index among the completed operations, or among the pending ones,
    /// for the placed-operation bitsets.
    var slot: Int
    /// Position of the call event in the time order of all events.
    var callOrder: Int
}

/// A single key's sub-history, prepared for the Wing–Gong–Lowe search.
///
/// Completed operations live in the event list. Pending ones have no return
/// event and are never forced, so they are kept apart, bucketed by symmetry
/// group: scanning past dozens of long-pending calls at every search step
/// would otherwise dominate the running time.
struct KeyHistory {
    let key: String
    /// Operations sorted by invocation time (then id).
    let operations: [CompiledOperation]
    /// The recorded operations, at the same indices as `operations`.
    let sources: [HistoryOperation]
    /// The register value before any operation.
    let initialState: RegisterValue
    /// Actual initial value, for reports.
    let initialValue: String?
    /// Number of operations that must be placed (those with a known outcome).
    let completedCount: Int
    /// Number of operations with an unknown outcome.
    let pendingCount: Int
    /// The pending symmetry groups.
    let groups: PendingGroupIndex
    /// For each register value, how many operations test it (see
    /// `RegisterStep.testedValue`).
    let testCounts: [Int]
    /// The call/return events of completed operations, in time order.
    let entries: EntryList

    /// Compiles `history`, whose operations must all touch `key`, must satisfy
    /// `invokedAt <= completedAt`, and must not be reads with unknown outcome.
    init(key: String, history: [HistoryOperation], initialValue: String?) {
        self.key = key
        self.initialValue = initialValue
        let sorted = history.sorted { ($0.invokedAt, $0.id) < ($1.invokedAt, $1.id) }

        var values = ValueTable()
        for operation in sorted {
            switch (operation.operation, operation.outcome) {
            case (.read, .read(let value)):
                values.observe(value)
            case (.compareAndSet(_, let expected, _), _):
                values.observe(expected)
            default:
                break
            }
        }
        initialState = values.id(of: initialValue)

        var compiled: [CompiledOperation] = []
        compiled.reserveCapacity(sorted.count)
        var groupOfStep: [RegisterStep: Int] = [:]
        var groups: [[Int]] = []
        var completedCount = 0
        var pendingCount = 0
        for (index, operation) in sorted.enumerated() {
            let step = Self.step(for: operation, values: values)
            let isPending = operation.outcome == .unknown
            var group = -1
            var rank = 0
            let slot: Int
            if isPending {
                group = groupOfStep[step] ?? groups.count
                if group == groups.count {
                    groupOfStep[step] = group
                    groups.append([])
                }
                rank = groups[group].count
                groups[group].append(index)
                slot = pendingCount
                pendingCount += 1
            } else {
                slot = completedCount
                completedCount += 1
            }
            compiled.append(CompiledOperation(
                step: step, isPending: isPending,
                group: group, rank: rank, slot: slot, callOrder: 0))
        }

        let events = Self.events(of: compiled, sources: sorted)
        var listed: [(operation: Int, isCall: Bool, order: Int)] = []
        for (order, event) in events.enumerated() {
            if event.isCall {
                compiled[event.operation].callOrder = order
            }
            if !compiled[event.operation].isPending {
                listed.append((operation: event.operation, isCall: event.isCall, order: order))
            }
        }
        operations = compiled
        sources = sorted
        self.groups = PendingGroupIndex(members: groups, operations: compiled)
        var testCounts = [Int](repeating: 0, count: values.count)
        for operation in compiled {
            if let tested = operation.step.testedValue {
                testCounts[tested] += 1
            }
        }
        self.testCounts = testCounts
        self.completedCount = completedCount
        self.pendingCount = pendingCount
        entries = EntryList(sortedEvents: listed)
    }

    /// Call and return events ordered by time. At equal times calls come before
    /// returns, so an operation invoked exactly when another completes counts
    /// as concurrent with it: the order is only enforced when strictly earlier.
    /// A completed operation without a completion time returns "at infinity",
    /// after every finite event.
    private static func events(
        of operations: [CompiledOperation], sources: [HistoryOperation]
    ) -> [(operation: Int, isCall: Bool)] {
        struct Event {
            var time: UInt64
            var kind: Int  // 0 call, 1 return, 2 return at infinity
            var operation: Int
        }
        var events: [Event] = []
        events.reserveCapacity(operations.count * 2)
        for (index, operation) in operations.enumerated() {
            events.append(Event(time: sources[index].invokedAt, kind: 0, operation: index))
            guard !operation.isPending else { continue }
            if let completedAt = sources[index].completedAt {
                events.append(Event(time: completedAt, kind: 1, operation: index))
            } else {
                events.append(Event(time: UInt64.max, kind: 2, operation: index))
            }
        }
        events.sort { ($0.time, $0.kind, $0.operation) < ($1.time, $1.kind, $1.operation) }
        return events.map { (operation: $0.operation, isCall: $0.kind == 0) }
    }

    private static func step(for operation: HistoryOperation, values: ValueTable) -> RegisterStep {
        switch (operation.operation, operation.outcome) {
        case (.read, .read(let value)):
            return .read(values.id(of: value))
        case (.write(_, let value), .written), (.write(_, let value), .unknown):
            return .set(values.id(of: value))
        case (.delete, .written), (.delete, .unknown):
            return .set(values.id(of: nil))
        case (.compareAndSet(_, let expected, let new), .compareAndSet(true)):
            return .casSucceeded(expected: values.id(of: expected), new: values.id(of: new))
        case (.compareAndSet(_, let expected, _), .compareAndSet(false)):
            return .casFailed(expected: values.id(of: expected))
        case (.compareAndSet(_, let expected, let new), .unknown):
            return .casUnknown(expected: values.id(of: expected), new: values.id(of: new))
        default:
            return .malformed
        }
    }
}
