// The membership part of the nemesis schedule: which change comes next. Like the rest of the
// schedule it derives only from the seed; who leads and which members exist are resolved when
// a step runs (and the runner re-checks the voter bounds against the real member list, since
// a step may fail at run time).

/// Which voter a planned removal targets, resolved against the membership when the step runs.
public enum MembershipVictim: Sendable, Hashable, CustomStringConvertible {
    /// Whichever voter leads.
    case leader
    /// The `pick % count`-th voter, in node order.
    case voter(pick: Int)
    /// Original node `index` (0-based), if it still votes.
    case original(Int)
    /// The voter with the lowest node index that is not an original one.
    case oldestAdded

    public var description: String {
        switch self {
        case .leader: return "the leader"
        case .voter(let pick): return "voter #\(pick)"
        case .original(let index): return "n\(index + 1)"
        case .oldestAdded: return "the oldest added voter"
        }
    }
}

/// One planned membership change.
public enum MembershipStep: Sendable, Hashable, CustomStringConvertible {
    /// MemberAdd a fresh node as a learner, start it with `--initial-cluster-state existing`,
    /// promote it once it has caught up.
    case add
    /// MemberRemove a voter; the removed process must exit by itself.
    case remove(MembershipVictim)
    /// MoveLeader to the `pick % count`-th voter other than the leader.
    case moveLeader(pick: Int)

    public var description: String {
        switch self {
        case .add: return "add a member"
        case .remove(let victim): return "remove \(victim)"
        case .moveLeader(let pick): return "move the leader (pick \(pick))"
        }
    }
}

/// Plans membership steps while keeping the planned voter count within
/// ``votersMin``...``votersMax`` and the nodes ever started within ``nodesMax``.
public struct MembershipPlanner: Sendable, Hashable {
    /// Fewer voters than this and a single failure could stop the cluster under the other
    /// faults of a run; the nemesis never removes below it.
    public static let votersMin = 3
    public static let votersMax = 5
    /// Nodes (original and added) one run can start: what the network layers prepare.
    public static let nodesMax = 12
    /// The node counts a membership nemesis accepts.
    public static let nodesAccepted = votersMin...votersMax

    /// Voters if every planned step succeeds.
    public private(set) var voters: Int
    /// Nodes started so far (original and added) if every planned step succeeds.
    public private(set) var nodesUsed: Int

    public init(nodes: Int) {
        self.voters = nodes
        self.nodesUsed = nodes
    }

    /// Whether `step` keeps the bounds from here.
    public func allows(_ step: MembershipStep) -> Bool {
        switch step {
        case .add: return voters < Self.votersMax && nodesUsed < Self.nodesMax
        case .remove: return voters > Self.votersMin
        case .moveLeader: return voters >= 2
        }
    }

    /// Records a planned step.
    public mutating func apply(_ step: MembershipStep) {
        switch step {
        case .add:
            voters += 1
            nodesUsed += 1
        case .remove:
            voters -= 1
        case .moveLeader:
            break
        }
    }

    /// The next random step that keeps the bounds (a leader move when nothing else does).
    public mutating func randomStep(random: inout ChaosRandom) -> MembershipStep {
        let roll = random.below(100)
        let pick = random.below(1_000)
        let victim: MembershipVictim = random.chance(0.4) ? .leader : .voter(pick: pick)
        var candidates: [MembershipStep] = []
        if roll < 40 { candidates = [.add, .remove(victim)] } else if roll < 75 { candidates = [.remove(victim), .add] }
        candidates.append(.moveLeader(pick: pick))
        let step = candidates.first { allows($0) } ?? .moveLeader(pick: pick)
        apply(step)
        return step
    }

    /// The rolling replacement of `nodes` original members (3 to 5): add members until there
    /// are 5 voters, then for every original member remove it and add a fresh one, then remove
    /// the oldest added members until 3 voters remain. None of the final members is original.
    public static func replacementProgram(nodes: Int) -> [MembershipStep] {
        guard nodesAccepted.contains(nodes) else { return [] }
        var steps: [MembershipStep] = Array(repeating: .add, count: votersMax - nodes)
        for original in 0..<nodes {
            steps.append(.remove(.original(original)))
            steps.append(.add)
        }
        steps += Array(repeating: .remove(.oldestAdded), count: votersMax - votersMin)
        return steps
    }

    /// The nodes a schedule may start: the originals plus one per planned add.
    public static func nodesNeeded(nodes: Int, plan: [PlannedFault]) -> Int {
        let adds = plan.filter { $0.action == .membership(.add) }.count
        return min(nodes + adds, max(nodes, nodesMax))
    }

    /// The voter count after each step of `steps`, starting from `nodes`, if every step
    /// succeeds (for tests and the plan printout).
    public static func voterCounts(nodes: Int, steps: [MembershipStep]) -> [Int] {
        var planner = MembershipPlanner(nodes: nodes)
        return steps.map { step in
            planner.apply(step)
            return planner.voters
        }
    }
}
