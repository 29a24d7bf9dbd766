/// The pending (unknown-outcome) operations of a key, bucketed into symmetry
/// groups and indexed by the value each group would leave in the register.
///
/// A pending operation is only worth placing right before an operation that
/// uses its value (see `SearchPath.placement(of:)`). The index turns the
/// values wanted by the operations in flight into the few groups that could
/// supply them, instead of trying every timed-out operation at every step.
struct PendingGroupIndex {
    /// Members (operation indices) of each group, in invocation order.
    let members: [[Int]]
    /// For groups of blind writes (writes and deletes), the value written.
    let blindValue: [RegisterValue?]
    /// For groups of CASes, the expected value.
    let casExpected: [RegisterValue?]
    /// Groups by the value they leave in the register, ascending.
    private let groupsByEffect: [RegisterValue: [Int]]
    /// For pending CASes: expected values by new value. Placing such a CAS
    /// needs its expected value first, which may come from another group.
    private let expectedByNew: [RegisterValue: [RegisterValue]]

    init(members: [[Int]], operations: [CompiledOperation]) {
        self.members = members
        var groupsByEffect: [RegisterValue: [Int]] = [:]
        var expectedByNew: [RegisterValue: [RegisterValue]] = [:]
        var blindValue = [RegisterValue?](repeating: nil, count: members.count)
        var casExpected = [RegisterValue?](repeating: nil, count: members.count)
        for (group, groupMembers) in members.enumerated() {
            guard let first = groupMembers.first else { continue }
            switch operations[first].step {
            case .set(let value):
                groupsByEffect[value, default: []].append(group)
                blindValue[group] = value
            case .casUnknown(let expected, let new):
                groupsByEffect[new, default: []].append(group)
                expectedByNew[new, default: []].append(expected)
                casExpected[group] = expected
            default:
                break
            }
        }
        self.blindValue = blindValue
        self.casExpected = casExpected
        self.groupsByEffect = groupsByEffect
        self.expectedByNew = expectedByNew
    }

    var count: Int { members.count }

    /// The groups, ascending, that could supply one of `wanted`, directly or
    /// through a chain of pending CASes; every group when `wanted` is `nil`.
    func candidates(supplying wanted: Set<RegisterValue>?) -> [Int] {
        guard var wanted else {
            return Array(members.indices)
        }
        var frontier = Array(wanted)
        while let value = frontier.popLast() {
            for expected in expectedByNew[value] ?? [] where wanted.insert(expected).inserted {
                frontier.append(expected)
            }
        }
        return wanted.flatMap { groupsByEffect[$0] ?? [] }.sorted()
    }
}
