/// Wing and Gong's event list: the call and return events of a key's
/// completed operations in time order, kept as a doubly linked list over
/// arrays. (Pending operations have no return event and are handled apart.)
///
/// Placing an operation in the linearization removes ("lifts") its call and
/// return events; backtracking puts them back. Because lifts are undone in
/// strict LIFO order, each neighbour link still remembers where an entry
/// belongs, so both directions are O(1) (the "dancing links" trick).
struct EntryList {
    /// Sentinel before the first event.
    static let head = 0
    /// Sentinel after the last event.
    let tail: Int
    /// Successor of each entry in the current list.
    private(set) var next: [Int]
    /// Predecessor of each entry in the current list.
    private(set) var prev: [Int]
    /// The operation index of each entry (`-1` for the sentinels).
    let operation: [Int]
    /// Whether each entry is a call event (sentinels are not).
    let isCall: [Bool]
    /// For a call entry, its operation's return entry; `-1` if the operation
    /// has no return event or the entry is not a call.
    let matchingReturn: [Int]
    /// Each entry's position in the time order of all events of the key,
    /// including those not in this list (`Int.max` for the tail).
    let order: [Int]

    /// Builds the list from events already sorted in time order.
    init(sortedEvents: [(operation: Int, isCall: Bool, order: Int)]) {
        let count = sortedEvents.count
        tail = count + 1
        next = Array(1...(count + 1)) + [count + 1]
        prev = [0] + Array(0...count)
        var operation = [-1]
        var isCall = [false]
        var order = [-1]
        var matchingReturn = [Int](repeating: -1, count: count + 2)
        let operationCount = (sortedEvents.map(\.operation).max() ?? -1) + 1
        var callEntryOfOperation = [Int](repeating: -1, count: operationCount)
        for (offset, event) in sortedEvents.enumerated() {
            let entry = offset + 1
            operation.append(event.operation)
            isCall.append(event.isCall)
            order.append(event.order)
            if event.isCall {
                callEntryOfOperation[event.operation] = entry
            } else if callEntryOfOperation[event.operation] >= 0 {
                matchingReturn[callEntryOfOperation[event.operation]] = entry
            }
        }
        operation.append(-1)
        isCall.append(false)
        order.append(Int.max)
        self.operation = operation
        self.order = order
        self.isCall = isCall
        self.matchingReturn = matchingReturn
    }

    /// Removes a call entry and its return entry (if any).
    mutating func lift(call entry: Int) {
        unlink(entry)
        let returnEntry = matchingReturn[entry]
        if returnEntry >= 0 {
            unlink(returnEntry)
        }
    }

    /// Restores the entries removed by the most recent `lift(call:)` of `entry`.
    mutating func unlift(call entry: Int) {
        let returnEntry = matchingReturn[entry]
        if returnEntry >= 0 {
            relink(returnEntry)
        }
        relink(entry)
    }

    private mutating func unlink(_ entry: Int) {
        next[prev[entry]] = next[entry]
        prev[next[entry]] = prev[entry]
    }

    private mutating func relink(_ entry: Int) {
        next[prev[entry]] = entry
        prev[next[entry]] = entry
    }
}
