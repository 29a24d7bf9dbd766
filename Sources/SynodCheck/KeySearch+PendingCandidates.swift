// Choosing which pending (unknown-outcome) operations are worth trying.
//
// A pending operation is only placed right before an operation that uses its
// value (see `SearchPath.placement(of:)`), and only in-flight operations can
// come next. So rather than trying every timed-out operation at every dead
// end, the search asks which values the in-flight operations need.

extension KeySearch {
    /// The pending groups worth trying in the current configuration: those
    /// that could supply a value some in-flight completed operation needs.
    /// (A pending operation must be used by the next placement, and only an
    /// in-flight operation, possibly via pending CASes, can be next.) A failed
    /// CAS that does not fit needs merely *some* other value, so then any
    /// group may do (see `anyValueGroups`).
    func pendingGroups(for path: SearchPath, deadline: Int) -> [Int] {
        let list = path.list
        var wanted = Set<RegisterValue>()
        var entry = list.next[EntryList.head]
        while entry != deadline && entry != list.tail {
            if list.isCall[entry] {
                switch history.operations[list.operation[entry]].step {
                case .read(let value), .casSucceeded(let value, _):
                    wanted.insert(value)
                case .casFailed(let expected) where expected == path.state:
                    return anyValueGroups(for: path, deadline: deadline)
                default:
                    break
                }
            }
            entry = list.next[entry]
        }
        return history.groups.candidates(supplying: wanted)
    }

    /// Every pending group, except that blind writes of values no unplaced
    /// operation can observe any more are interchangeable: any of them just
    /// leaves "some value nobody looks at". Only the earliest-invoked
    /// available one is tried; a linearization using another can use that
    /// one instead, and the other later. Without this, a failed CAS in a
    /// history with many long-timed-out writes branches on each of them.
    func anyValueGroups(for path: SearchPath, deadline: Int) -> [Int] {
        let groups = history.groups
        var result: [Int] = []
        var earliestSpent: (group: Int, member: Int)?
        for group in 0..<groups.count {
            if let expected = groups.casExpected[group], expected != path.state {
                continue  // it could not take effect now
            }
            guard let value = groups.blindValue[group], path.isUnobservable(value) else {
                result.append(group)
                continue
            }
            let placed = path.groupPlaced[group]
            guard value != path.state, placed < groups.members[group].count else {
                continue
            }
            let member = groups.members[group][placed]
            if history.operations[member].callOrder < path.list.order[deadline],
               earliestSpent.map({ member < $0.member }) ?? true {
                earliestSpent = (group, member)
            }
        }
        if let earliestSpent {
            result.append(earliestSpent.group)
            result.sort()
        }
        return result
    }
}
