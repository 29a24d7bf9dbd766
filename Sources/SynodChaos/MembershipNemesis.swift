import Foundation
import Synchronization
import SynodClient

/// Carries out membership steps on the running cluster: MemberAdd (as a learner) and start a
/// new `synod serve` joining with `--initial-cluster-state existing`, MemberPromote once it has
/// caught up, MemberRemove (the removed process must exit by itself), MoveLeader. Every step
/// becomes nemesis events; the harness's member view (``ChaosMembership``) follows, and with
/// it the clients.
///
/// - Important: membership requests are not idempotent. When one fails without saying whether
///   it took effect (a timeout, a leader change), the member list decides.
struct MembershipNemesis: Sendable {
    var processes: ClusterProcesses
    var network: any ChaosNetwork
    var members: ChaosMembership
    var leaders: LeaderFinder
    var clock: ChaosClock
    var events: NemesisLog
    var tally: MembershipTally
    var log: @Sendable (String) -> Void

    /// How long a learner may take to catch up before the add counts as failed.
    var promoteTimeout: Duration = .seconds(60)
    /// How long a removed member's process may take to exit by itself.
    var exitTimeout: Duration = .seconds(20)

    func name(_ index: Int) -> String { members.addresses[index].name }

    func run(_ step: MembershipStep, fault: PlannedFault) async {
        switch step {
        case .add: await add()
        case .remove(let victim): await remove(victim, waitForMajority: fault.kind == .replace)
        case .moveLeader(let pick): await moveLeader(pick: pick)
        }
    }

    // MARK: - Add and promote

    func add() async {
        // A learner left over from an earlier add whose promotion failed goes first (the
        // cluster allows one learner at a time).
        for learner in members.learners {
            let promoted = await promote(learner)
            if !promoted { await removeLearner(learner, reason: "it never caught up") }
        }
        let voters = members.voters
        guard voters.count < MembershipPlanner.votersMax else {
            skip("member-add", "add", nodes: [], "skipped: \(voters.count) voters already")
            return
        }
        guard let slot = members.nextUnused else {
            skip("member-add", "add", nodes: [], "skipped: every node slot of this run is used")
            return
        }
        let address = members.addresses[slot]
        let event = events.begin(kind: "member-add", nodes: [slot],
                                 detail: "\(name(slot)) MemberAdd as learner (\(address.advertisePeerURL))", at: clock.nanos())
        // The slot is spent whatever happens: its peer URL may yet be added by a late apply.
        members.setRole(slot, .removed)
        network.expectJoin(node: slot)
        var memberID: UInt64?
        var list: [Etcdserverpb_Member] = []
        var failure = ""
        do {
            let response = try await sending {
                try await $0.memberAdd(peerURLs: [address.advertisePeerURL], isLearner: true)
            }
            memberID = response.member.id
            list = response.members
        } catch {
            failure = Self.describe(error)
            // The outcome may be unknown: the member list says whether it happened.
            if let found = await memberList(), let member = found.first(where: { $0.peerUrls.contains(address.advertisePeerURL) }) {
                memberID = member.id
                list = found
            }
        }
        guard let memberID else {
            events.end(event, at: clock.nanos(), detail: "\(name(slot)) MemberAdd failed: \(failure)")
            tally.note("add", .failed)
            log("membership: \(name(slot)) MemberAdd failed: \(failure)")
            return
        }
        members.setMemberID(slot, memberID)
        members.setRole(slot, .learner)
        let cluster = initialCluster(list: list, joining: slot, memberID: memberID)
        processes.setJoin(slot, cluster: cluster)
        do {
            try processes.start(slot, reason: "started to join (--initial-cluster-state existing, --initial-cluster \(cluster))")
        } catch {
            events.end(event, at: clock.nanos(), detail: "\(name(slot)) added (id \(Self.hex(memberID))) but not started: \(error)")
            tally.note("add", .failed)
            await removeLearner(slot, reason: "its process did not start")
            return
        }
        events.end(event, at: clock.nanos(),
                   detail: "\(name(slot)) added as learner (id \(Self.hex(memberID)))\(failure.isEmpty ? "" : " after '\(failure)'"), started")
        tally.note("add", .ok)
        log("membership: \(name(slot)) added as learner (id \(Self.hex(memberID))) and started")
        if !(await promote(slot)) {
            await removeLearner(slot, reason: "it never caught up")
        }
    }

    /// `name=peerURL,...` for every member of `list`, the joining one included.
    func initialCluster(list: [Etcdserverpb_Member], joining slot: Int, memberID: UInt64) -> String {
        let indexByID = members.indexByMemberID
        var entries: [String] = []
        for member in list {
            guard let url = member.peerUrls.first else { continue }
            let name: String
            if member.id == memberID {
                name = self.name(slot)
            } else if let index = indexByID[member.id] {
                name = self.name(index)
            } else if !member.name.isEmpty {
                name = member.name
            } else {
                name = "m\(Self.hex(member.id))"
            }
            entries.append("\(name)=\(url)")
        }
        let own = "\(name(slot))=\(members.addresses[slot].advertisePeerURL)"
        if !entries.contains(own) { entries.append(own) }
        return entries.joined(separator: ",")
    }

    /// Promotes learner `slot`, retrying while it is not in sync; true once it votes.
    @discardableResult
    func promote(_ slot: Int) async -> Bool {
        guard let memberID = members.memberID(slot) else { return false }
        let started = clock.nanos()
        let event = events.begin(kind: "member-promote", nodes: [slot], detail: "\(name(slot)) MemberPromote", at: started)
        let deadline = ContinuousClock.now + promoteTimeout
        var attempts = 0
        var lastError = ""
        var promoted = false
        while ContinuousClock.now < deadline && !processes.shuttingDown {
            attempts += 1
            do {
                _ = try await withClient(excluding: slot) { try await $0.memberPromote(id: memberID) }
                promoted = true
                break
            } catch {
                lastError = Self.describe(error)
            }
            if lastError.contains("member not found") { break }
            // Not in sync yet (retry), or an unknown outcome: the list says whether it votes.
            if !lastError.contains("in sync"), !Self.isRefusal(lastError), let list = await memberList(excluding: slot),
               let member = list.first(where: { $0.id == memberID }) {
                if !member.isLearner {
                    promoted = true
                    break
                }
            }
            try? await Task.sleep(for: .milliseconds(500))
        }
        let seconds = String(format: "%.1f", Double(clock.nanos() - started) / 1e9)
        if promoted {
            members.setRole(slot, .voter)
            events.end(event, at: clock.nanos(), detail: "\(name(slot)) promoted to voter (\(attempts) attempt(s), \(seconds) s)")
            tally.note("promote", .ok)
            log("membership: \(name(slot)) promoted after \(attempts) attempt(s) in \(seconds) s; voters \(members.names(members.voters))")
        } else {
            events.end(event, at: clock.nanos(), detail: "\(name(slot)) not promoted in \(seconds) s: \(lastError)")
            tally.note("promote", .failed)
            log("warning: membership: \(name(slot)) not promoted in \(seconds) s (\(attempts) attempts): \(lastError); see \(processes.logPath(slot))")
        }
        return promoted
    }

    /// Removes a learner that cannot be promoted, and stops its process.
    func removeLearner(_ slot: Int, reason: String) async {
        guard let memberID = members.memberID(slot) else { return }
        processes.setRemoving(slot, true)
        let event = events.begin(kind: "member-remove", nodes: [slot], detail: "\(name(slot)) (learner) MemberRemove: \(reason)",
                                 at: clock.nanos())
        var outcome = "removed"
        do {
            _ = try await sending(excluding: slot) { try await $0.memberRemove(id: memberID) }
        } catch {
            let gone = await memberListShows(seconds: 5, excluding: slot) { !$0.contains { $0.id == memberID } }
            outcome = gone ? "removed (after '\(Self.describe(error))')" : "MemberRemove failed: \(Self.describe(error))"
        }
        members.setRole(slot, .removed)
        await processes.kill(slot, reason: "stopped: learner removed (\(reason))")
        processes.retire(slot)
        events.end(event, at: clock.nanos(), detail: "\(name(slot)) (learner) \(outcome); process stopped")
        log("membership: \(name(slot)) (learner) \(outcome): \(reason)")
    }

    // MARK: - Remove

    func remove(_ victim: MembershipVictim, waitForMajority: Bool) async {
        let voters = members.voters
        guard voters.count > MembershipPlanner.votersMin else {
            skip("member-remove", "remove", nodes: [], "remove \(victim) skipped: only \(voters.count) voters")
            return
        }
        var leader: Int?
        let target: Int
        switch victim {
        case .leader:
            leader = await leaders.leader()
            guard let found = leader, voters.contains(found) else {
                skip("member-remove", "remove", nodes: [], "remove the leader skipped: no leader known")
                return
            }
            target = found
        case .voter(let pick):
            target = voters[pick % voters.count]
        case .original(let index):
            guard voters.contains(index) else {
                skip("member-remove", "remove", nodes: [index], "remove \(name(index)) skipped: not a voter")
                return
            }
            target = index
        case .oldestAdded:
            guard let found = voters.first(where: { $0 >= members.originalCount }) else {
                skip("member-remove", "remove", nodes: [], "remove the oldest added voter skipped: none")
                return
            }
            target = found
        }
        // A majority of the voters left must be running, or the cluster would stop.
        let remaining = voters.filter { $0 != target }
        let majority = remaining.count / 2 + 1
        func running() -> Int { remaining.filter { processes.isRunning($0) && !processes.isPaused($0) }.count }
        let waitUntil = ContinuousClock.now + .seconds(waitForMajority ? 30 : 0)
        while running() < majority && ContinuousClock.now < waitUntil {
            try? await Task.sleep(for: .milliseconds(200))
        }
        guard running() >= majority else {
            skip("member-remove", "remove", nodes: [target],
                 "remove \(name(target)) skipped: only \(running()) of the other \(remaining.count) voters run")
            return
        }
        guard let memberID = members.memberID(target) else {
            skip("member-remove", "remove", nodes: [target], "remove \(name(target)) skipped: member id unknown")
            return
        }
        let text = "\(name(target))\(leader == target ? " (leader)" : "")"
        processes.setRemoving(target, true)
        let started = clock.nanos()
        let event = events.begin(kind: "member-remove", nodes: [target], detail: "\(text) MemberRemove", at: started)
        var note = ""
        do {
            _ = try await sending(excluding: target) { try await $0.memberRemove(id: memberID) }
        } catch {
            let message = Self.describe(error)
            let gone = await memberListShows(seconds: 5, excluding: target) { !$0.contains { $0.id == memberID } }
            guard gone else {
                processes.setRemoving(target, false)
                events.end(event, at: clock.nanos(), detail: "\(text) MemberRemove failed: \(message)")
                tally.note("remove", .failed)
                log("membership: \(text) MemberRemove failed: \(message)")
                return
            }
            note = " (after '\(message)')"
        }
        // The clients stop using it now.
        members.setRole(target, .removed)
        let exitDeadline = ContinuousClock.now + exitTimeout
        while processes.isRunning(target) && ContinuousClock.now < exitDeadline {
            try? await Task.sleep(for: .milliseconds(100))
        }
        let seconds = String(format: "%.1f", Double(clock.nanos() - started) / 1e9)
        let exit: String
        if let status = processes.exitStatus(target) {
            exit = "exited by itself with status \(status) \(seconds) s after the request"
            processes.mark(target, "removed from the cluster; exited by itself with status \(status)")
        } else {
            exit = "did NOT exit by itself within \(Int(exitTimeout.components.seconds)) s: killed"
            log("warning: membership: removed member \(name(target)) did not exit by itself within \(Int(exitTimeout.components.seconds)) s; killing it (see \(processes.logPath(target)))")
            await processes.kill(target, reason: "killed: removed from the cluster but still running")
            tally.noteKilledAfterRemoval()
        }
        processes.retire(target)
        tally.note("remove", .ok)
        events.end(event, at: clock.nanos(), detail: "\(text) removed\(note); \(exit)")
        log("membership: \(text) removed\(note); \(exit); voters \(members.names(members.voters))")
    }

    // MARK: - Move leader

    func moveLeader(pick: Int) async {
        guard let leader = await leaders.leader() else {
            skip("move-leader", "move-leader", nodes: [], "MoveLeader skipped: no leader known")
            return
        }
        let candidates = members.voters.filter { $0 != leader }
        guard !candidates.isEmpty else {
            skip("move-leader", "move-leader", nodes: [leader], "MoveLeader skipped: no other voter")
            return
        }
        let target = candidates[pick % candidates.count]
        guard let memberID = members.memberID(target) else {
            skip("move-leader", "move-leader", nodes: [target], "MoveLeader skipped: member id of \(name(target)) unknown")
            return
        }
        let event = events.begin(kind: "move-leader", nodes: [leader, target],
                                 detail: "MoveLeader \(name(leader)) -> \(name(target))", at: clock.nanos())
        do {
            _ = try await withClient { try await $0.moveLeader(to: memberID) }
        } catch {
            let message = Self.describe(error)
            events.end(event, at: clock.nanos(), detail: "MoveLeader \(name(leader)) -> \(name(target)) failed: \(message)")
            tally.note("move-leader", .failed)
            log("membership: MoveLeader \(name(leader)) -> \(name(target)) failed: \(message)")
            return
        }
        var now = await leaders.leader()
        let deadline = ContinuousClock.now + .seconds(3)
        while now != target && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(200))
            now = await leaders.leader()
        }
        let observed = now.map { "\(name($0)) leads" } ?? "no leader seen"
        events.end(event, at: clock.nanos(), detail: "MoveLeader \(name(leader)) -> \(name(target)): ok, \(observed)")
        tally.note("move-leader", .ok)
        log("membership: MoveLeader \(name(leader)) -> \(name(target)): ok, \(observed)")
    }

    /// A step that did not run (its precondition did not hold): a `member-skip` event.
    func skip(_ kind: String, _ tallyKind: String, nodes: [Int], _ detail: String) {
        events.instant(kind: "member-skip", nodes: nodes, detail: "\(kind): \(detail)", at: clock.nanos())
        tally.note(tallyKind, .skipped)
        log("membership: \(detail)")
    }
}
