import Foundation
import SynodCore

// The nemesis schedule of `synod chaos`: which fault, on which node, when and for how long.
// It derives only from the seed, so a run's faults can be replayed; which node is the leader
// is the one thing resolved while running (a fault may target "the leader").

/// The chaos generator: SynodCore's seeded `SplitMix64` with its `unit`, `uniform`, `below`
/// and `chance` helpers, so a schedule replays from its seed on every platform.
public typealias ChaosRandom = SplitMix64

/// The kinds of fault `--nemesis` can enable.
public enum NemesisKind: String, Sendable, CaseIterable, Codable {
    case kill, pause, partition
    /// Stall a node (the leader 3 times in 4): cut its peer links, SIGSTOP it for the hold,
    /// SIGCONT it while its peer links stay cut for another 1–2 s (clients reach it, its peers
    /// do not), then heal. A woken leader must not answer reads from a lease it lost.
    case stall
    case crashAll = "crash-all"
    /// Every member at once tears its next WAL write (only some of the write's sectors reach
    /// the file, an earlier one missing where a later one landed) and exits — a power loss on
    /// disks that reorder writes; members that write nothing within 2 s are SIGKILLed. All
    /// restart with no `synod recover`. Every member runs with SYNOD_FAILPOINTS=tear-on-signal.
    case crashAllTorn = "crash-all-torn"
    case failpoints
    /// Membership changes at random: add a member (as a learner, promoted once caught up),
    /// remove a voter (sometimes the leader), move the leader. Needs 3 to 5 nodes.
    case membership
    /// Rolling replacement: grow to 5 voters, replace every original member by a fresh one,
    /// shrink to 3 (see ``MembershipPlanner/replacementProgram(nodes:)``). Needs 3 to 5 nodes.
    case replace

    /// The default set: kill, pause, partition, stall.
    public static let defaults: [NemesisKind] = [.kill, .pause, .partition, .stall]

    /// What `all` means: every fault kind that works with any node count (membership changes
    /// are asked for by name).
    public static let all: [NemesisKind] = [.kill, .pause, .partition, .stall, .crashAll, .crashAllTorn, .failpoints]

    /// Whether the kind changes the membership (and so needs 3 to 5 nodes).
    public var changesMembership: Bool { self == .membership || self == .replace }

    /// Parses `kill,pause,partition`, `none` (no faults) or `all` (``all``).
    public static func parseList(_ text: String) throws(ChaosOptionsError) -> [NemesisKind] {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed == "none" || trimmed.isEmpty { return [] }
        if trimmed == "all" { return NemesisKind.all }
        var kinds: [NemesisKind] = []
        for part in trimmed.split(separator: ",") {
            let name = part.trimmingCharacters(in: .whitespaces)
            guard let kind = NemesisKind(rawValue: name) else {
                let known = NemesisKind.allCases.map(\.rawValue).joined(separator: ", ")
                throw ChaosOptionsError("--nemesis: unknown kind '\(name)' (known: \(known), none, all)")
            }
            if !kinds.contains(kind) { kinds.append(kind) }
        }
        return kinds
    }
}

/// A node a fault acts on: a fixed one, or whichever node leads when the fault starts.
public enum NemesisTarget: Sendable, Hashable, CustomStringConvertible {
    case node(Int)
    case leader

    public var description: String {
        switch self {
        case .node(let index): return "n\(index + 1)"
        case .leader: return "leader"
        }
    }
}

/// What one planned fault does.
public enum NemesisAction: Sendable, Hashable {
    /// SIGKILL the node; restart it when the fault ends.
    case kill(NemesisTarget)
    /// SIGSTOP the node; SIGCONT it when the fault ends.
    case pause(NemesisTarget)
    /// Cut the node's peer links both ways, SIGSTOP it for the hold, SIGCONT it, keep the links
    /// cut for `aloneMilliseconds` more, then heal.
    case stall(NemesisTarget, aloneMilliseconds: Int)
    /// Cut both directions between the node and every other node.
    case isolate(NemesisTarget)
    /// Cut every link between `minority` and the rest.
    case split(minority: [Int])
    /// Cut one direction only: from `from` to each of `to` (empty `to` = every other node).
    case oneWay(from: NemesisTarget, to: [Int])
    /// Delay and drop what the node sends.
    case netem(NemesisTarget, delayMilliseconds: Int, jitterMilliseconds: Int, lossPercent: Double)
    /// SIGKILL every node; restart them all when the fault ends.
    case crashAll
    /// SIGUSR2 every node (tear-on-signal: each tears its next WAL write and exits), SIGKILL
    /// the ones still running after 2 s; restart them all when the fault ends.
    case crashAllTorn
    /// Restart the node with SYNOD_FAILPOINTS set for the window, then without.
    case failpoint(node: Int, spec: String)
    /// A membership change (no hold: the step takes as long as it takes).
    case membership(MembershipStep)
}

/// One fault of the schedule. Times are offsets from the start of the run.
public struct PlannedFault: Sendable, Hashable {
    public var index: Int
    public var kind: NemesisKind
    public var action: NemesisAction
    public var startNanos: UInt64
    public var holdNanos: UInt64
}

/// The failpoint settings the `failpoints` nemesis picks from.
public let chaosFailpointSpecs = [
    "fsync-delay=200ms", "crash-before-sync=3%", "crash-after-sync=3%", "crash-in-snapshot=50%", "drop-outgoing=20%",
    "tear-wal-write=3%",
]

public enum NemesisSchedule {
    /// The whole schedule of a run: faults one after another (never overlapping), each starting
    /// a jittered `interval` after the previous one healed, each held 1 s to 1.5 × interval,
    /// all ending at least one second before `duration`.
    ///
    /// Node indices in the plan are positions among the members when the fault starts (the
    /// same thing as node indices while the membership does not change). With `.replace`, the
    /// whole ``MembershipPlanner/replacementProgram(nodes:)`` is scheduled: its steps are
    /// spread over the slots (a slot goes to the program with the chance that leaves it enough
    /// slots); steps that still do not fit are appended at `duration - 1 s` (the runner
    /// finishes them before healing).
    public static func plan(seed: UInt64, kinds: [NemesisKind], nodes: Int, durationSeconds: Double,
                            intervalSeconds: Double) -> [PlannedFault] {
        guard !kinds.isEmpty, nodes > 0, durationSeconds > 0 else { return [] }
        var random = ChaosRandom(seed: seed ^ 0x6E65_6D65_7369_7321)
        let interval = max(0.2, intervalSeconds)
        var membership = MembershipPlanner(nodes: nodes)
        var program = kinds.contains(.replace) ? MembershipPlanner.replacementProgram(nodes: nodes)[...] : []
        let others = kinds.filter { $0 != .replace }
        // The mean length of one slot (gap plus hold), to tell when the program must hurry.
        let slotSeconds = interval + (1.0 + max(1.5, 1.5 * interval)) / 2
        var faults: [PlannedFault] = []
        var t = 0.0
        while true {
            t += random.uniform(0.5 * interval, 1.5 * interval)
            let hold = random.uniform(1.0, max(1.5, 1.5 * interval))
            guard t + hold <= durationSeconds - 1.0 else { break }
            let kind: NemesisKind
            if let next = program.first {
                // Spread the program over the run: a step takes this slot with the chance that
                // leaves it enough slots (at least its fair share among the kinds).
                let slotsLeft = Double(Int((durationSeconds - 1.0 - t) / slotSeconds) + 1)
                let chance = max(Double(program.count) / slotsLeft, 1.0 / Double(kinds.count))
                if others.isEmpty || random.chance(chance) {
                    kind = .replace
                } else {
                    kind = others[random.below(others.count)]
                }
                if kind == .replace {
                    program.removeFirst()
                    membership.apply(next)
                    faults.append(PlannedFault(index: faults.count, kind: .replace, action: .membership(next),
                                               startNanos: UInt64(t * 1e9), holdNanos: UInt64(hold * 1e9)))
                    t += hold
                    continue
                }
            } else if others.isEmpty {
                break
            } else if others.count != kinds.count {
                kind = others[random.below(others.count)]
            } else {
                kind = kinds[random.below(kinds.count)]
            }
            let action: NemesisAction
            if kind == .membership {
                action = .membership(membership.randomStep(random: &random))
            } else {
                action = Self.action(kind, nodes: nodes, random: &random)
            }
            faults.append(PlannedFault(index: faults.count, kind: kind, action: action,
                                       startNanos: UInt64(t * 1e9), holdNanos: UInt64(hold * 1e9)))
            t += hold
        }
        let late = UInt64(max(0, durationSeconds - 1.0) * 1e9)
        for step in program {
            membership.apply(step)
            faults.append(PlannedFault(index: faults.count, kind: .replace, action: .membership(step),
                                       startNanos: max(late, faults.last.map { $0.startNanos } ?? 0), holdNanos: 0))
        }
        return faults
    }

    static func action(_ kind: NemesisKind, nodes: Int, random: inout ChaosRandom) -> NemesisAction {
        func target() -> NemesisTarget {
            random.chance(0.5) ? .leader : .node(random.below(nodes))
        }
        switch kind {
        case .kill:
            return .kill(target())
        case .pause:
            return .pause(target())
        case .stall:
            let victim: NemesisTarget = random.chance(0.75) ? .leader : .node(random.below(nodes))
            return .stall(victim, aloneMilliseconds: 1_000 + random.below(1_000))
        case .crashAll:
            return .crashAll
        case .crashAllTorn:
            return .crashAllTorn
        case .membership, .replace:
            var planner = MembershipPlanner(nodes: nodes)
            return .membership(planner.randomStep(random: &random))
        case .failpoints:
            let node = random.below(nodes)
            return .failpoint(node: node, spec: chaosFailpointSpecs[random.below(chaosFailpointSpecs.count)])
        case .partition:
            guard nodes > 1 else { return .netem(.node(0), delayMilliseconds: 50, jitterMilliseconds: 20, lossPercent: 5) }
            let shape = random.below(10)
            switch shape {
            case 0..<3:
                return .isolate(target())
            case 3..<6:
                var order = Array(0..<nodes)
                for i in stride(from: order.count - 1, to: 0, by: -1) {
                    order.swapAt(i, random.below(i + 1))
                }
                let minoritySize = max(1, (nodes - 1) / 2)
                return .split(minority: Array(order.prefix(minoritySize)).sorted())
            case 6..<8:
                if random.chance(0.5) {
                    return .oneWay(from: .leader, to: [])
                }
                let from = random.below(nodes)
                var to = random.below(nodes - 1)
                if to >= from { to += 1 }
                return .oneWay(from: .node(from), to: [to])
            default:
                let delay = 20 + random.below(180)
                let jitter = delay / 4
                let loss = Double(random.below(20))
                return .netem(target(), delayMilliseconds: delay, jitterMilliseconds: jitter, lossPercent: loss)
            }
        }
    }
}

/// A bad `synod chaos` setting, as one line naming the flag.
public struct ChaosOptionsError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
