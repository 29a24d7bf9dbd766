import XCTest
@testable import SynodChaos

/// The planning side of the membership nemesis: deterministic from the seed, voter bounds kept,
/// the rolling replacement complete; and the pieces the runner resolves with at run time.
final class MembershipPlanTests: XCTestCase {
    private static func steps(_ plan: [PlannedFault]) -> [MembershipStep] {
        plan.compactMap { fault in
            if case .membership(let step) = fault.action { return step }
            return nil
        }
    }

    func testMembershipScheduleIsDeterministicAndKeepsVoterBounds() {
        let kinds: [NemesisKind] = [.membership, .kill, .partition]
        var sawAdd = false, sawRemove = false, sawLeaderRemove = false, sawMove = false
        for nodes in MembershipPlanner.nodesAccepted {
            for seed in UInt64(1)...UInt64(150) {
                let a = NemesisSchedule.plan(seed: seed, kinds: kinds, nodes: nodes, durationSeconds: 120, intervalSeconds: 3)
                let b = NemesisSchedule.plan(seed: seed, kinds: kinds, nodes: nodes, durationSeconds: 120, intervalSeconds: 3)
                XCTAssertEqual(a, b, "seed \(seed)")
                let steps = Self.steps(a)
                for count in MembershipPlanner.voterCounts(nodes: nodes, steps: steps) {
                    XCTAssertTrue(MembershipPlanner.nodesAccepted.contains(count), "seed \(seed), nodes \(nodes): \(count) voters")
                }
                XCTAssertLessThanOrEqual(MembershipPlanner.nodesNeeded(nodes: nodes, plan: a), MembershipPlanner.nodesMax)
                XCTAssertEqual(MembershipPlanner.nodesNeeded(nodes: nodes, plan: a), nodes + steps.filter { $0 == .add }.count)
                for fault in a {
                    if case .membership = fault.action { XCTAssertEqual(fault.kind, .membership) }
                }
                for (previous, next) in zip(a, a.dropFirst()) {
                    XCTAssertLessThanOrEqual(previous.startNanos + previous.holdNanos, next.startNanos)
                }
                for step in steps {
                    switch step {
                    case .add: sawAdd = true
                    case .remove(.leader): sawLeaderRemove = true
                    case .remove: sawRemove = true
                    case .moveLeader: sawMove = true
                    }
                }
            }
        }
        XCTAssertTrue(sawAdd && sawRemove && sawLeaderRemove && sawMove)
        // Another seed, another schedule.
        XCTAssertNotEqual(NemesisSchedule.plan(seed: 1, kinds: kinds, nodes: 3, durationSeconds: 120, intervalSeconds: 3),
                          NemesisSchedule.plan(seed: 2, kinds: kinds, nodes: 3, durationSeconds: 120, intervalSeconds: 3))
    }

    func testSchedulesWithoutMembershipAreUnchanged() {
        // Adding membership kinds must not change what a seed means for the other kinds.
        let plan = NemesisSchedule.plan(seed: 42, kinds: [.kill, .partition], nodes: 3, durationSeconds: 60, intervalSeconds: 5)
        XCTAssertTrue(Self.steps(plan).isEmpty)
        XCTAssertEqual(MembershipPlanner.nodesNeeded(nodes: 3, plan: plan), 3)
    }

    func testRandomStepsRespectBoundsAtTheEdges() {
        var random = ChaosRandom(seed: 7)
        var low = MembershipPlanner(nodes: 3)
        XCTAssertFalse(low.allows(.remove(.leader)))
        XCTAssertTrue(low.allows(.add))
        var high = MembershipPlanner(nodes: 5)
        XCTAssertFalse(high.allows(.add))
        for _ in 0..<200 {
            let step = low.randomStep(random: &random)
            XCTAssertTrue((3...5).contains(low.voters), "\(step)")
            _ = high.randomStep(random: &random)
            XCTAssertTrue((3...5).contains(high.voters))
        }
        XCTAssertLessThanOrEqual(low.nodesUsed, MembershipPlanner.nodesMax)
    }

    /// Replays the rolling replacement on node indices the way the runner resolves it.
    private static func replay(nodes: Int, steps: [MembershipStep]) -> (voters: [Int], history: [Int]) {
        var voters = Array(0..<nodes)
        var next = nodes
        var history: [Int] = []
        for step in steps {
            switch step {
            case .add:
                voters.append(next)
                next += 1
            case .remove(.original(let index)):
                voters.removeAll { $0 == index }
            case .remove(.oldestAdded):
                if let oldest = voters.filter({ $0 >= nodes }).min() { voters.removeAll { $0 == oldest } }
            case .remove, .moveLeader:
                XCTFail("unexpected step \(step)")
            }
            history.append(voters.count)
        }
        return (voters.sorted(), history)
    }

    func testReplacementProgramReplacesEveryOriginal() {
        XCTAssertEqual(MembershipPlanner.replacementProgram(nodes: 3), [
            .add, .add,
            .remove(.original(0)), .add, .remove(.original(1)), .add, .remove(.original(2)), .add,
            .remove(.oldestAdded), .remove(.oldestAdded),
        ])
        for nodes in MembershipPlanner.nodesAccepted {
            let program = MembershipPlanner.replacementProgram(nodes: nodes)
            let (voters, history) = Self.replay(nodes: nodes, steps: program)
            XCTAssertEqual(voters.count, 3, "nodes \(nodes)")
            XCTAssertTrue(voters.allSatisfy { $0 >= nodes }, "an original survived: \(voters)")
            XCTAssertTrue(history.allSatisfy { (3...5).contains($0) }, "\(history)")
            XCTAssertEqual(MembershipPlanner.voterCounts(nodes: nodes, steps: program), history)
            XCTAssertLessThanOrEqual(nodes + program.filter { $0 == .add }.count, MembershipPlanner.nodesMax)
        }
        XCTAssertEqual(MembershipPlanner.replacementProgram(nodes: 2), [])
    }

    func testReplaceScheduleHoldsTheWholeProgramInOrder() {
        for (duration, interval) in [(90.0, 3.0), (60.0, 5.0), (12.0, 5.0)] {
            for seed in UInt64(1)...UInt64(20) {
                let plan = NemesisSchedule.plan(seed: seed, kinds: [.replace, .kill, .partition], nodes: 3,
                                                durationSeconds: duration, intervalSeconds: interval)
                let replace = plan.filter { $0.kind == .replace }
                XCTAssertEqual(Self.steps(replace), MembershipPlanner.replacementProgram(nodes: 3), "seed \(seed), \(duration) s")
                XCTAssertEqual(plan.map(\.startNanos), plan.map(\.startNanos).sorted())
                XCTAssertEqual(plan.map(\.index), Array(plan.indices))
            }
        }
        // Alone, the replacement takes every slot it needs and nothing else.
        let alone = NemesisSchedule.plan(seed: 5, kinds: [.replace], nodes: 3, durationSeconds: 90, intervalSeconds: 3)
        XCTAssertEqual(Self.steps(alone), MembershipPlanner.replacementProgram(nodes: 3))
        XCTAssertEqual(MembershipPlanner.nodesNeeded(nodes: 3, plan: alone), 8)
    }

    func testMembershipNeedsThreeToFiveNodes() {
        var options = ChaosOptions()
        options.nemesis = [.membership, .kill]
        options.nodes = 1
        XCTAssertThrowsError(try options.validate()) { error in
            XCTAssertTrue("\(error)".contains("--nodes"), "\(error)")
        }
        options.nemesis = [.replace]
        options.nodes = 7
        XCTAssertThrowsError(try options.validate()) { error in
            XCTAssertTrue("\(error)".contains("replace"), "\(error)")
        }
        options.nodes = 3
        XCTAssertTrue(options.changesMembership)
        XCTAssertEqual(options.nodeSlots, 8)
    }

    func testSplitMinorityFollowsTheMembers() {
        XCTAssertEqual(NemesisRunner.minority([0], members: [0, 1, 2]), [0])
        XCTAssertEqual(NemesisRunner.minority([4, 4], members: [2, 3, 4, 5, 6]), [2, 4])
        XCTAssertEqual(NemesisRunner.minority([1, 3, 5], members: [3, 5, 6]), [3])
    }

    func testReplacementEndState() {
        XCTAssertNil(ChaosRunner.replacementProblem(voters: [5, 6, 7], learners: [], originalCount: 3))
        XCTAssertNotNil(ChaosRunner.replacementProblem(voters: [2, 6, 7], learners: [], originalCount: 3))
        XCTAssertNotNil(ChaosRunner.replacementProblem(voters: [4, 5, 6, 7], learners: [], originalCount: 3))
        XCTAssertNotNil(ChaosRunner.replacementProblem(voters: [5, 6, 7], learners: [8], originalCount: 3))
    }

    func testMembershipViewFollowsRoles() {
        let addresses = (0..<5).map { index in
            ChaosNodeAddresses(index: index, listenClientURL: "http://127.0.0.1:\(100 + index)",
                               clientURL: "http://127.0.0.1:\(100 + index)", listenPeerURL: "http://127.0.0.1:\(200 + index)",
                               advertisePeerURL: "http://127.0.0.1:\(300 + index)", metricsURL: "http://127.0.0.1:\(400 + index)")
        }
        let members = ChaosMembership(addresses: addresses, originalCount: 3)
        XCTAssertEqual(members.voters, [0, 1, 2])
        XCTAssertEqual(members.nextUnused, 3)
        let before = members.clientView()
        XCTAssertEqual(before.endpoints.count, 3)
        members.setRole(3, .learner)
        members.setMemberID(3, 0xABC)
        XCTAssertEqual(members.clientView().endpoints, before.endpoints, "learners take no client traffic")
        XCTAssertEqual(members.memberView().endpoints.count, 4)
        XCTAssertNotEqual(members.version, before.version)
        members.setRole(3, .voter)
        members.setRole(0, .removed)
        XCTAssertEqual(members.voters, [1, 2, 3])
        XCTAssertEqual(members.clientView().endpoints, ["http://127.0.0.1:101", "http://127.0.0.1:102", "http://127.0.0.1:103"])
        XCTAssertEqual(members.indexByMemberID[0xABC], 3)
        XCTAssertEqual(members.used, [0, 1, 2, 3])
        XCTAssertEqual(members.nextUnused, 4)
    }

    func testProxyLearnsTheIdOfAJoiningNode() {
        let registry = ProxyNetworkRegistry()
        registry.setNodeCount(6)
        // Before any join, ids map to index + 1 and strangers are refused.
        XCTAssertEqual(registry.senderIndex(2), 1)
        XCTAssertNil(registry.senderIndex(7))
        registry.expectJoin(node: 3)
        XCTAssertEqual(registry.senderIndex(1), 0)
        XCTAssertEqual(registry.senderIndex(0), -1, "no id yet: forwarded, never cut")
        XCTAssertEqual(registry.senderIndex(4), 3)
        XCTAssertEqual(registry.senderIndex(4), 3)
        // An add that never started a node spent id 5: the next joiner is 6.
        registry.expectJoin(node: 4)
        XCTAssertEqual(registry.senderIndex(6), 4)
        XCTAssertEqual(registry.senderIndex(5), -1)
        XCTAssertEqual(registry.senderIndex(3), 2)
        XCTAssertEqual(registry.unmappedSenders, 2)
    }

    func testVerdictLineNamesTheFinalMembers() {
        var verdict = ChaosCheck.verdict(operations: [], nemesis: [], replicaHashesEqual: true, hashRevision: 0,
                                         replicaHashes: [:], alarms: [], durationSeconds: 1, seed: 3, strict: false)
        ChaosCheck.addMembership(to: &verdict, finalMembers: ["n6", "n7", "n8"], summary: "add 5/5", problem: nil)
        XCTAssertFalse(verdict.failed)
        XCTAssertTrue(verdict.line.hasSuffix("members: n6,n7,n8, seed: 3"), verdict.line)
        ChaosCheck.addMembership(to: &verdict, finalMembers: ["n1", "n6", "n7"], summary: "add 5/5",
                                 problem: "rolling replacement incomplete")
        XCTAssertTrue(verdict.failed)
        XCTAssertTrue(verdict.line.contains("membership: rolling replacement incomplete"), verdict.line)
    }
}
