import Foundation
import Synchronization
import SynodClient

/// The nemesis events of a run, plus the fault in force (for progress lines).
final class NemesisLog: Sendable {
    private struct State {
        var events: [NemesisEvent] = []
        var current: String?
    }

    private let state = Mutex(State())

    /// Records an event; returns its id.
    @discardableResult
    func begin(kind: String, nodes: [Int], detail: String, at nanos: UInt64, current: Bool = true) -> Int {
        state.withLock { state in
            let id = state.events.count
            state.events.append(NemesisEvent(id: id, kind: kind, nodes: nodes, detail: detail, startNanos: nanos))
            if current { state.current = "\(kind) \(detail)" }
            return id
        }
    }

    func end(_ id: Int, at nanos: UInt64, detail: String? = nil) {
        state.withLock { state in
            guard state.events.indices.contains(id) else { return }
            state.events[id].endNanos = nanos
            if let detail { state.events[id].detail = detail }
            state.current = nil
        }
    }

    func instant(kind: String, nodes: [Int], detail: String, at nanos: UInt64) {
        state.withLock { state in
            let id = state.events.count
            state.events.append(NemesisEvent(id: id, kind: kind, nodes: nodes, detail: detail, startNanos: nanos,
                                             endNanos: nanos))
        }
    }

    var events: [NemesisEvent] { state.withLock { $0.events } }
    var current: String? { state.withLock { $0.current } }
}

/// Finds the current leader through the members' status.
struct LeaderFinder: Sendable {
    var admin: ChaosAdmin
    var members: ChaosMembership

    func leader() async -> Int? {
        guard let client = try? admin.client() else { return nil }
        let indexByMemberID = members.indexByMemberID
        var votes: [Int: (count: Int, term: UInt64)] = [:]
        for (_, result) in await client.statusAll() {
            guard case .success(let status) = result, status.leader != 0,
                  let index = indexByMemberID[status.leader] else { continue }
            let previous = votes[index] ?? (0, 0)
            votes[index] = (previous.count + 1, max(previous.term, status.raftTerm))
        }
        return votes.max { ($0.value.term, $0.value.count, -$0.key) < ($1.value.term, $1.value.count, -$1.key) }?.key
    }
}

/// Applies the planned faults to the running cluster, one at a time.
///
/// Node indices in the plan are positions among the current members (voters and learners, in
/// node order), which are the node indices themselves while the membership does not change.
struct NemesisRunner: Sendable {
    var plan: [PlannedFault]
    var processes: ClusterProcesses
    var network: any ChaosNetwork
    var leaders: LeaderFinder
    var members: ChaosMembership
    var membership: MembershipNemesis
    var clock: ChaosClock
    var events: NemesisLog
    /// Set when the run's duration is over: the fault in force ends now, later faults are
    /// skipped, except the steps of a rolling replacement, which run back to back.
    var windDown: ChaosStopFlag
    var log: @Sendable (String) -> Void

    func name(_ index: Int) -> String { "n\(index + 1)" }

    /// The current members; falls back to every active node when the list is empty.
    func current() -> [Int] {
        let list = members.members
        return list.isEmpty ? processes.activeIndices() : list
    }

    /// The node at `position` among the current members.
    func member(at position: Int) -> Int {
        let list = current()
        guard !list.isEmpty else { return position }
        return list[((position % list.count) + list.count) % list.count]
    }

    func resolve(_ target: NemesisTarget, fault: PlannedFault) async -> (index: Int, text: String) {
        switch target {
        case .node(let position):
            let index = member(at: position)
            return (index, name(index))
        case .leader:
            if let leader = await leaders.leader() { return (leader, "\(name(leader)) (leader)") }
            let fallback = member(at: fault.index)
            return (fallback, "\(name(fallback)) (no leader known)")
        }
    }

    /// Runs the plan; returns early (after undoing the current fault) when cancelled.
    func run() async {
        for fault in plan {
            if Task.isCancelled { return }
            if windDown.isSet {
                guard fault.kind == .replace else { continue }
            } else {
                await sleepUntil(fault.startNanos)
                if Task.isCancelled { return }
                if windDown.isSet && fault.kind != .replace { continue }
            }
            await apply(fault)
        }
    }

    /// Sleeps until `nanos`, waking early on wind-down or cancellation.
    private func sleepUntil(_ nanos: UInt64) async {
        while clock.nanos() < nanos && !windDown.isSet && !Task.isCancelled {
            let left = nanos - clock.nanos()
            try? await Task.sleep(for: .nanoseconds(Int64(min(left, 50_000_000))))
        }
    }

    private func hold(_ fault: PlannedFault) async {
        await sleepUntil(clock.nanos() + fault.holdNanos)
    }

    private func attempt(_ what: String, _ body: () async throws -> Void) async {
        do {
            try await body()
        } catch {
            log("nemesis: \(what) failed: \(error)")
        }
    }

    func apply(_ fault: PlannedFault) async {
        let currentMembers = current()
        switch fault.action {
        case .membership(let step):
            // Not interrupted by cancellation: a change half done (a member added but never
            // started) would leave the cluster in a state the final checks cannot judge.
            let membership = self.membership
            await Task { await membership.run(step, fault: fault) }.value

        case .kill(let target):
            let (index, text) = await resolve(target, fault: fault)
            let id = events.begin(kind: "kill", nodes: [index], detail: "\(text) SIGKILL", at: clock.nanos())
            await processes.kill(index, reason: "killed by nemesis (SIGKILL)")
            await hold(fault)
            await attempt("restart \(name(index))") { try processes.start(index, reason: "restarted after kill") }
            events.end(id, at: clock.nanos(), detail: "\(text) SIGKILL, restarted")

        case .pause(let target):
            let (index, text) = await resolve(target, fault: fault)
            let id = events.begin(kind: "pause", nodes: [index], detail: "\(text) SIGSTOP", at: clock.nanos())
            processes.pause(index)
            await hold(fault)
            processes.resume(index)
            events.end(id, at: clock.nanos(), detail: "\(text) SIGSTOP, SIGCONT")

        case .stall(let target, let aloneMilliseconds):
            let (index, text) = await resolve(target, fault: fault)
            let detail = "\(text) peer links cut, SIGSTOP"
            let id = events.begin(kind: "stall", nodes: [index], detail: detail, at: clock.nanos())
            await attempt("cut \(name(index))'s peer links") {
                for other in currentMembers where other != index {
                    try await network.cut(from: index, to: other)
                    try await network.cut(from: other, to: index)
                }
            }
            processes.pause(index)
            await hold(fault)
            // Awake but still alone: clients reach it, its peers do not.
            processes.resume(index)
            await sleepUntil(clock.nanos() + UInt64(aloneMilliseconds) * 1_000_000)
            await attempt("heal") { try await network.heal() }
            events.end(id, at: clock.nanos(), detail: "\(text) peer links cut, SIGSTOP, SIGCONT, alone \(aloneMilliseconds) ms, healed")

        case .isolate(let target):
            let (index, text) = await resolve(target, fault: fault)
            let id = events.begin(kind: "partition-isolate", nodes: [index], detail: "\(text) isolated", at: clock.nanos())
            await attempt("isolate \(name(index))") {
                for other in currentMembers where other != index {
                    try await network.cut(from: index, to: other)
                    try await network.cut(from: other, to: index)
                }
            }
            await hold(fault)
            await attempt("heal") { try await network.heal() }
            events.end(id, at: clock.nanos())

        case .split(let plannedMinority):
            let minority = Self.minority(plannedMinority.map(member(at:)), members: currentMembers)
            let majority = currentMembers.filter { !minority.contains($0) }
            let detail = "{\(minority.map(name).joined(separator: ","))} | {\(majority.map(name).joined(separator: ","))}"
            let id = events.begin(kind: "partition-split", nodes: minority, detail: detail, at: clock.nanos())
            await attempt("split") {
                for a in minority {
                    for b in majority {
                        try await network.cut(from: a, to: b)
                        try await network.cut(from: b, to: a)
                    }
                }
            }
            await hold(fault)
            await attempt("heal") { try await network.heal() }
            events.end(id, at: clock.nanos())

        case .oneWay(let from, let to):
            let (index, text) = await resolve(from, fault: fault)
            let targets = to.isEmpty ? currentMembers.filter { $0 != index } : to.map(member(at:)).filter { $0 != index }
            let detail = "\(text) -> {\(targets.map(name).joined(separator: ","))} cut (one way)"
            let id = events.begin(kind: "partition-oneway", nodes: [index] + targets, detail: detail, at: clock.nanos())
            await attempt("one-way cut") {
                for other in targets { try await network.cut(from: index, to: other) }
            }
            await hold(fault)
            await attempt("heal") { try await network.heal() }
            events.end(id, at: clock.nanos())

        case .netem(let target, let plannedDelay, let plannedJitter, let plannedLoss):
            let (index, text) = await resolve(target, fault: fault)
            // A kernel without netem (network namespaces only) gets the loss part alone.
            let noDelay = (network as? NamespaceNetwork)?.supportsDelay == false
            let delay = noDelay ? 0 : plannedDelay
            let jitter = noDelay ? 0 : plannedJitter
            let loss = noDelay ? max(plannedLoss, 10) : plannedLoss
            let detail = "\(text) sends with \(delay)±\(jitter) ms delay, \(loss)% loss"
            let id = events.begin(kind: "netem", nodes: [index], detail: detail, at: clock.nanos())
            await attempt("degrade") {
                try await network.degrade(node: index, delayMilliseconds: delay, jitterMilliseconds: jitter,
                                          lossPercent: loss)
            }
            await hold(fault)
            await attempt("heal") { try await network.heal() }
            events.end(id, at: clock.nanos())

        case .crashAll:
            let all = currentMembers
            let id = events.begin(kind: "crash-all", nodes: all, detail: "every node SIGKILL", at: clock.nanos())
            await withTaskGroup(of: Void.self) { group in
                for index in all {
                    group.addTask { await processes.kill(index, reason: "killed by nemesis (crash-all)") }
                }
            }
            await hold(fault)
            for index in all {
                await attempt("restart \(name(index))") { try processes.start(index, reason: "restarted after crash-all") }
            }
            events.end(id, at: clock.nanos(), detail: "every node SIGKILL, all restarted")

        case .crashAllTorn:
            let all = currentMembers
            let id = events.begin(kind: "crash-all-torn", nodes: all, detail: "every node tears its next WAL write and exits",
                                  at: clock.nanos())
            for index in all { processes.signal(index, SIGUSR2, reason: "SIGUSR2: tear the next WAL write and exit", expectExit: true) }
            var torn: [Int] = []
            let deadline = ContinuousClock.now + .seconds(2)
            while ContinuousClock.now < deadline && torn.count < all.count {
                try? await Task.sleep(for: .milliseconds(20))
                torn = all.filter { processes.exitStatus($0) == 86 }
            }
            await withTaskGroup(of: Void.self) { group in
                for index in all {
                    group.addTask { await processes.kill(index, reason: "killed by nemesis (crash-all-torn)") }
                }
            }
            await hold(fault)
            for index in all {
                await attempt("restart \(name(index))") { try processes.start(index, reason: "restarted after crash-all-torn") }
            }
            let names = torn.map(name).joined(separator: ", ")
            events.end(id, at: clock.nanos(),
                       detail: "\(torn.count) of \(all.count) tore a WAL write (\(names.isEmpty ? "none" : names)), the rest SIGKILL; all restarted")

        case .failpoint(let position, let spec):
            let index = member(at: position)
            let detail = "\(name(index)) SYNOD_FAILPOINTS=\(spec)"
            let id = events.begin(kind: "failpoint", nodes: [index], detail: detail, at: clock.nanos())
            await processes.kill(index, reason: "killed to enable failpoints")
            processes.setFailpoints(index, spec)
            await attempt("restart \(name(index)) with failpoints") {
                try processes.start(index, reason: "restarted for failpoint window")
            }
            await hold(fault)
            await processes.kill(index, reason: "killed to end failpoint window")
            processes.setFailpoints(index, nil)
            await attempt("restart \(name(index)) without failpoints") {
                try processes.start(index, reason: "restarted without failpoints")
            }
            events.end(id, at: clock.nanos())
        }
    }
}

extension NemesisRunner {
    /// The minority side of a split among `members`: the planned nodes (deduplicated), topped
    /// up or cut down to (members - 1) / 2 nodes (at least one), in member order.
    static func minority(_ planned: [Int], members: [Int]) -> [Int] {
        let size = max(1, (members.count - 1) / 2)
        var chosen: [Int] = []
        for index in planned where members.contains(index) && !chosen.contains(index) { chosen.append(index) }
        for index in members where chosen.count < size && !chosen.contains(index) { chosen.append(index) }
        return Array(chosen.prefix(size)).sorted()
    }
}

/// Restarts nodes that exit on their own (failpoint crashes, or real crashes), recording a
/// `restart` event for each.
struct CrashSupervisor: Sendable {
    var processes: ClusterProcesses
    var clock: ChaosClock
    var events: NemesisLog
    var log: @Sendable (String) -> Void
    var restartDelay: Duration = .milliseconds(500)

    func run() async {
        while !Task.isCancelled {
            for (index, status) in processes.takeUnexpectedExits() {
                let failpoints = processes.failpoints(index)
                let cause: String
                if let failpoints {
                    cause = "exited with status \(status) under SYNOD_FAILPOINTS=\(failpoints)"
                } else {
                    cause = "exited on its own with status \(status) (no failpoint active)"
                    log("warning: n\(index + 1) \(cause); see its log")
                }
                try? await Task.sleep(for: restartDelay)
                if Task.isCancelled || processes.shuttingDown { return }
                do {
                    try processes.start(index, reason: "restarted after it exited (status \(status))")
                    events.instant(kind: "restart", nodes: [index], detail: "n\(index + 1) \(cause); restarted",
                                   at: clock.nanos())
                } catch {
                    log("restart of n\(index + 1) failed: \(error)")
                }
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }
}
