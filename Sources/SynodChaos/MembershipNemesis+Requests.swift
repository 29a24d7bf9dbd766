import Foundation
import SynodClient

// How the membership nemesis talks to the cluster (leader first, never to the member a request
// is about, refusals retried, unknown outcomes settled by the member list), and how the
// harness's view is brought in line with the cluster's at the end of a run.
extension MembershipNemesis {
    /// Runs `body` with a client for the current members (voters and learners), the leader's
    /// endpoint first and `excluding` left out: a request about a member is never sent to that
    /// member (a removed member that lags may never learn the outcome, so never answer).
    func withClient<T: Sendable>(excluding: Int? = nil, _ body: (SynodClient) async throws -> T) async throws -> T {
        var nodes = members.members.filter { $0 != excluding }
        if let leader = await leaders.leader(), let position = nodes.firstIndex(of: leader) {
            nodes.remove(at: position)
            nodes.insert(leader, at: 0)
        }
        let endpoints = nodes.map { members.addresses[$0].clientURL }
        guard !endpoints.isEmpty else { throw ChaosRunError("no members left to ask") }
        let config = SynodClientConfiguration(endpoints: endpoints, requestTimeout: .seconds(6),
                                              attemptTimeout: .seconds(3), retryBackoff: .milliseconds(100))
        return try await withSynodClient(config, body)
    }

    /// Whether a membership request failed with a refusal that says it was not carried out
    /// and may succeed later (no leader yet, another change in flight, the cluster not healthy).
    static func isRefusal(_ message: String) -> Bool {
        ["not leader", "no leader", "unhealthy cluster", "busy", "too many requests"].contains { message.contains($0) }
    }

    /// Sends a membership request, again while it is refused (see ``isRefusal(_:)``), for up to
    /// `seconds`. Other errors, and the last refusal, are thrown.
    func sending<T: Sendable>(excluding: Int? = nil, seconds: Int = 20,
                              _ body: @escaping @Sendable (SynodClient) async throws -> T) async throws -> T {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while true {
            do {
                return try await withClient(excluding: excluding, body)
            } catch {
                guard Self.isRefusal(Self.describe(error)), ContinuousClock.now < deadline, !processes.shuttingDown else {
                    throw error
                }
                try? await Task.sleep(for: .milliseconds(500))
            }
        }
    }

    /// The member list (linearizable, asked of the leader first), trying for a few seconds.
    func memberList(excluding: Int? = nil) async -> [Etcdserverpb_Member]? {
        let deadline = ContinuousClock.now + .seconds(8)
        while ContinuousClock.now < deadline {
            if let response = try? await withClient(excluding: excluding, { try await $0.memberList(linearizable: true) }) {
                return response.members
            }
            try? await Task.sleep(for: .milliseconds(300))
        }
        return nil
    }

    /// Polls the member list until `condition` holds (true) or `seconds` pass (false).
    func memberListShows(seconds: Int, excluding: Int? = nil, _ condition: ([Etcdserverpb_Member]) -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        repeat {
            if let list = await memberList(excluding: excluding), condition(list) { return true }
            try? await Task.sleep(for: .milliseconds(500))
        } while ContinuousClock.now < deadline
        return false
    }

    static func describe(_ error: any Error) -> String {
        ChaosClients.describe(error)
    }

    static func hex(_ id: UInt64) -> String { String(id, radix: 16) }

    // MARK: - End of run

    /// Brings the harness's view in line with the cluster's member list before the final
    /// checks: a member nobody started is removed, a node no longer listed is stopped, a
    /// learner is promoted if it can be. Returns a problem, if the list could not be read.
    func reconcile() async -> String? {
        guard let list = await memberList() else { return "the member list could not be read at the end" }
        let indexByID = members.indexByMemberID
        let listed = Set(list.map(\.id))
        for member in list where indexByID[member.id] == nil || !members.members.contains(indexByID[member.id] ?? -1) {
            log("warning: membership: member \(Self.hex(member.id)) (\(member.peerUrls.joined(separator: ","))) has no running node; removing it")
            do {
                _ = try await sending { try await $0.memberRemove(id: member.id) }
            } catch {
                log("warning: membership: removing \(Self.hex(member.id)) failed: \(Self.describe(error))")
            }
        }
        for index in members.members {
            guard let id = members.memberID(index) else { continue }
            if !listed.contains(id) {
                log("warning: membership: \(name(index)) is no longer in the member list; stopping it")
                members.setRole(index, .removed)
                await processes.kill(index, reason: "stopped: not in the member list at the end")
                processes.retire(index)
            } else if let member = list.first(where: { $0.id == id }) {
                members.setRole(index, member.isLearner ? .learner : .voter)
            }
        }
        for learner in members.learners {
            await promote(learner)
        }
        return nil
    }

}
