import Foundation
import SynodClient
import SynodProcess
import XCTest
@testable import SynodChaos

/// Pre-vote with real processes: a follower cut off from the others for 30 s and then
/// healed must not cause a leader change (goal: 0), because it never raised its ballot while
/// alone. Without pre-vote (`--pre-vote false`) the same partition ends in a new election.
final class PreVoteProcessTests: XCTestCase {
    private struct Observation {
        var leaderChanges: Int
        var leaderBefore: UInt64
        var leaderAfter: UInt64
        var followerCaughtUp: Bool
    }

    private func cutFollowerFor30Seconds(extraArguments: [String]) async throws -> Observation {
        guard let binary = ChaosRunnerTests.synodBinary() else { throw XCTSkip("no synod binary") }
        ChildRegistry.shared.reset()
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("synod-prevote-\(getpid())-\(extraArguments.count)").path
        try? FileManager.default.removeItem(atPath: root)
        let network = ProxyNetwork()
        let addresses = try await network.prepare(nodeCount: 3)
        let processes = ClusterProcesses(binary: binary, addresses: addresses, launchPrefixes: [[], [], []],
                                         reportDirectory: root, clusterToken: "prevote", snapshotCount: 10_000,
                                         brokenReads: false, clock: ChaosClock(), extraServeArguments: extraArguments)
        defer { processes.killAllNow() }
        for index in 0..<3 { try processes.start(index) }
        let endpoints = addresses.map(\.clientURL)
        let configuration = SynodClientConfiguration(endpoints: endpoints, requestTimeout: .seconds(10), attemptTimeout: .seconds(2))
        let observation = try await withSynodClient(configuration) { client -> Observation in
            _ = try await client.put("before", "1")
            func status(_ index: Int) async throws -> Etcdserverpb_StatusResponse {
                try await client.status(endpoint: endpoints[index])
            }
            let ids = try await [status(0), status(1), status(2)].map(\.header.memberID)
            let leader = try await status(0).leader
            let term = try await status(0).raftTerm
            guard let leaderIndex = ids.firstIndex(of: leader) else { throw ChaosRunError("no leader") }
            let follower = (leaderIndex + 1) % 3
            for other in 0..<3 where other != follower {
                try await network.cut(from: follower, to: other)
                try await network.cut(from: other, to: follower)
            }
            // 30 s cut off, with writes going on among the others.
            let end = ContinuousClock.now + .seconds(30)
            var written = 0
            while ContinuousClock.now < end {
                _ = try? await client.put("during", "\(written)")
                written += 1
                try await Task.sleep(for: .milliseconds(200))
            }
            try await network.heal()
            // Five more seconds of writes after healing; the follower catches up.
            for index in 0..<25 {
                _ = try? await client.put("after", "\(index)")
                try await Task.sleep(for: .milliseconds(200))
            }
            let after = try await status(leaderIndex == 0 ? 1 : 0)
            let followerStatus = try await status(follower)
            let changes = Int(after.raftTerm - term)
            return Observation(leaderChanges: changes, leaderBefore: leader, leaderAfter: after.leader,
                               followerCaughtUp: followerStatus.leader == after.leader && followerStatus.raftAppliedIndex > 0)
        }
        await network.teardown()
        try? FileManager.default.removeItem(atPath: root)
        return observation
    }

    func testFollowerBackFromA30SecondPartitionDoesNotDeposeTheLeader() async throws {
        let observation = try await cutFollowerFor30Seconds(extraArguments: [])
        XCTAssertEqual(observation.leaderChanges, 0, "ballot rounds moved: a new election happened")
        XCTAssertEqual(observation.leaderAfter, observation.leaderBefore)
        XCTAssertTrue(observation.followerCaughtUp, "the follower follows the same leader again")
    }

    func testWithoutPreVoteTheSamePartitionForcesAnElection() async throws {
        let observation = try await cutFollowerFor30Seconds(extraArguments: ["--pre-vote", "false"])
        XCTAssertGreaterThan(observation.leaderChanges, 0, "without pre-vote the returning follower's ballot deposes the leader")
    }
}
