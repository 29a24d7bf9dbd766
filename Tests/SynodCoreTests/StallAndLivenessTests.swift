import XCTest
@testable import SynodCore

private let n1 = NodeID(1), n2 = NodeID(2), n3 = NodeID(3)

/// A stalled leader, pre-vote, check-quorum and the bounds on a leader's bookkeeping.
final class StallAndLivenessTests: XCTestCase {
    // MARK: A stalled leader and its lease

    /// n1 leads with a lease; its process stops for 3 s with its peer links cut. n2 and n3
    /// elect one of them, which chooses "b". n1 wakes, still cut off from its peers, and a client asks it
    /// for a linearizable read. What n1 may do depends on the clock the driver hands it.
    private struct StallOutcome {
        var cluster: Cluster
        var woken: Replica
        /// The read at the woken n1, stepped directly (the harness's own stale-read check
        /// is bypassed so the broken variant can be looked at).
        var read: Output
    }

    private func stallScenario(clockKeptRunning: Bool) throws -> StallOutcome {
        var cluster = Cluster(seed: 3)
        cluster.run("elect 1; propose 1 a; deliver all; tick 1 x 2; deliver all")
        XCTAssertEqual(cluster.step(n1, .read(readID: 1, consistency: .linearizable)).readsReady, [1],
                       "setup: n1 answers from its lease")
        cluster.isolated = [n1]
        // 300 ticks of real time pass for n1 while its process is stopped (no tick arrives).
        if clockKeptRunning { cluster.stall(n1, ticks: 300) }
        // Meanwhile n2 and n3 wait out their lease guard and elect one of them, which chooses "b".
        func newLeader(_ cluster: Cluster) -> NodeID? { cluster.leaders.first { $0 != n1 } }
        for _ in 0..<100 where newLeader(cluster) == nil {
            cluster.tick(n2)
            cluster.tick(n3)
            cluster.deliverAll()
        }
        let successor = try XCTUnwrap(newLeader(cluster), "setup: n2 or n3 leads")
        cluster.propose(successor, "b")
        cluster.deliverAll()
        cluster.tick(successor, times: 2)
        cluster.deliverAll()
        XCTAssertEqual(cluster.appliedNames(successor), ["a", "b"], "setup: b is chosen and applied")
        // n1 wakes: the first thing that reaches it is the client's read.
        var woken = try XCTUnwrap(cluster.replicas[n1])
        XCTAssertEqual(woken.role, .leader, "n1 heard nothing of the new leader")
        let clock = try XCTUnwrap(cluster.clocks[n1])
        let read = woken.step(.read(readID: 2, consistency: .linearizable), clock: clock)
        return StallOutcome(cluster: cluster, woken: woken, read: read)
    }

    /// With a clock that kept running through the stall (CLOCK_BOOTTIME), the lease has
    /// expired when n1 looks at it: the read waits for a heartbeat round instead, which
    /// nobody acknowledges, so it never returns the stale "a"-only state.
    func testWokenLeaderFindsItsLeaseExpired() throws {
        let outcome = try stallScenario(clockKeptRunning: true)
        XCTAssertEqual(outcome.read.readsReady, [], "a lease read after the stall would be stale")
        var woken = outcome.woken
        let clock = try XCTUnwrap(outcome.cluster.clocks[n1])
        var failed: [Output.FailedRead] = []
        for tick in 1...40 {
            let output = woken.step(.tick, clock: clock.adding(nanoseconds: UInt64(tick) * woken.configuration.tickNanoseconds))
            XCTAssertEqual(output.readsReady, [])
            failed += output.readsFailed
        }
        XCTAssertEqual(failed.map(\.readID), [2], "the read fails, so its client retries elsewhere")
        XCTAssertNotEqual(woken.role, .leader, "check-quorum: alone, n1 stepped down")
        outcome.cluster.assertClean()
    }

    /// The negative control: a driver whose clock stopped with the process (a lease counted
    /// in ticks) lets the woken n1 answer at once from a state without "b", although "b" was
    /// chosen (and could have been acknowledged) before the read began.
    func testLeaseCountedInTicksServesAStaleRead() throws {
        let outcome = try stallScenario(clockKeptRunning: false)
        XCTAssertEqual(outcome.read.readsReady, [2], "the broken clock still trusts the lease")
        XCTAssertEqual(outcome.cluster.appliedNames(n1), ["a"], "and answers without b")
    }

    // MARK: Pre-vote

    /// Counts elections while n3 is cut off for 30 s (3,000 ticks) and after it returns.
    private func leaderChangesAroundAPartition(preVote: Bool) -> (changes: Int, cluster: Cluster) {
        var cluster = Cluster(seed: 5) { $0.preVote = preVote }
        cluster.run("elect 1; propose 1 a; deliver all")
        var changes = 0
        var leader = cluster.leaders
        func observe(_ cluster: Cluster) {
            let now = cluster.leaders
            if now != leader {
                if !now.isEmpty { changes += 1 }
                leader = now
            }
        }
        cluster.isolated = [n3]
        for _ in 0..<3_000 {
            for id in cluster.ids { cluster.tick(id) }
            cluster.deliverAll()
            observe(cluster)
        }
        cluster.isolated = []
        for round in 0..<500 {
            for id in cluster.ids { cluster.tick(id) }
            if round == 10 { cluster.propose(n1, "b") }
            cluster.deliverAll()
            observe(cluster)
        }
        return (changes, cluster)
    }

    /// With pre-vote, n3 asks before it campaigns; n1 and n2 still hear their leader and say
    /// no, so n3 never raises its ballot and rejoins quietly: the leader never changes.
    func testReturningFollowerDoesNotDeposeAHealthyLeader() throws {
        let (changes, cluster) = leaderChangesAroundAPartition(preVote: true)
        XCTAssertEqual(changes, 0)
        XCTAssertEqual(cluster.leaders, [n1])
        XCTAssertEqual(cluster.appliedNames(n3), ["a", "b"], "n3 caught up after the partition")
        XCTAssertEqual(cluster.replicas[n3]?.promised, cluster.replicas[n1]?.promised, "n3's ballot never went up")
        cluster.assertClean()
    }

    /// The control: without pre-vote the same partition ends with a needless election (n3
    /// comes back with a higher ballot and rejects the leader's messages).
    func testWithoutPreVoteTheReturningFollowerDeposesTheLeader() {
        let (changes, cluster) = leaderChangesAroundAPartition(preVote: false)
        XCTAssertGreaterThan(changes, 0)
        cluster.assertClean()
    }

    /// Pre-vote changes nothing durable: no promise is written by either side, and a
    /// voter that hears its leader says no.
    func testPreVoteIsAnsweredWithoutChangingState() throws {
        var cluster = Cluster(seed: 2)
        cluster.run("elect 1; propose 1 a; deliver all; tick 1 x 2; deliver all")
        let promised = try XCTUnwrap(cluster.replicas[n2]?.promised)
        let ballot = Ballot(round: promised.round + 1, node: n3)
        let answer = cluster.step(n2, .receive(Envelope(from: n3, to: n2, message: .preVote(ballot: ballot))))
        XCTAssertNil(answer.persist)
        XCTAssertEqual(answer.messages.map(\.message), [.preVoteReply(ballot: ballot, granted: false, promised: promised)],
                       "n2 heard n1 within an election timeout")
        XCTAssertEqual(cluster.replicas[n2]?.promised, promised)
        // Once n2's guard has run out (no leader heard for an election timeout) it says yes.
        cluster.isolated = [n1]
        cluster.ageGuard(n2)
        let later = cluster.step(n2, .receive(Envelope(from: n3, to: n2, message: .preVote(ballot: ballot))))
        XCTAssertNil(later.persist)
        XCTAssertEqual(later.messages.map(\.message), [.preVoteReply(ballot: ballot, granted: true, promised: promised)])
        XCTAssertEqual(cluster.replicas[n2]?.promised, promised, "a pre-vote is no promise")
    }

    // MARK: Check-quorum

    private func isolatedLeader(checkQuorum: Bool) -> Cluster {
        var cluster = Cluster(seed: 4) { $0.checkQuorum = checkQuorum }
        cluster.run("elect 1; propose 1 a; deliver all; tick 1 x 2; deliver all")
        cluster.isolated = [n1]
        cluster.propose(n1, "lost")
        for _ in 0..<(2 * cluster.configuration.electionTimeoutTicks) { cluster.tick(n1) }
        return cluster
    }

    /// A leader that hears from no quorum for an election timeout steps down, and the
    /// command queued at it fails at once (noLeader), instead of waiting out its timeout.
    func testLeaderWithoutAQuorumStepsDownAndFailsItsQueue() throws {
        var cluster = Cluster(seed: 4)
        cluster.run("elect 1; propose 1 a; deliver all; tick 1 x 2; deliver all")
        cluster.isolated = [n1]
        // Fill the window so one more command has to wait in the queue.
        for index in 0..<(Int(Replica.activationDelaySlots) + 1) { cluster.propose(n1, "w\(index)") }
        XCTAssertGreaterThan(cluster.replicas[n1]?.queuedCommands ?? 0, 0, "setup: a command waits in the queue")
        for _ in 0..<(2 * cluster.configuration.electionTimeoutTicks) { cluster.tick(n1) }
        XCTAssertEqual(cluster.replicas[n1]?.role, .follower)
        XCTAssertFalse(cluster.rejected[n1, default: []].isEmpty, "queued commands failed on stepping down")
        XCTAssertTrue(cluster.rejected[n1, default: []].allSatisfy { $0.reason == .noLeader(leaderHint: nil) })
        cluster.assertClean()
    }

    func testWithoutCheckQuorumTheIsolatedLeaderKeepsLeading() {
        let cluster = isolatedLeader(checkQuorum: false)
        XCTAssertEqual(cluster.replicas[n1]?.role, .leader)
        let stepping = isolatedLeader(checkQuorum: true)
        XCTAssertEqual(stepping.replicas[n1]?.role, .follower)
    }

    // MARK: Bounded bookkeeping

    /// While no quorum answers, the leader remembers a bounded number of heartbeat rounds
    /// (only those young enough to still start a lease).
    func testUnconfirmedHeartbeatRoundsStayBounded() throws {
        var cluster = Cluster(seed: 6) { $0.checkQuorum = false }
        cluster.run("elect 1; tick 1 x 2; deliver all")
        cluster.isolated = [n1]
        for _ in 0..<5_000 { cluster.tick(n1) }
        let leader = try XCTUnwrap(cluster.replicas[n1]?.leader)
        XCTAssertEqual(cluster.replicas[n1]?.role, .leader)
        XCTAssertGreaterThan(leader.heartbeatSequence, 2_000, "setup: thousands of rounds went unanswered")
        XCTAssertLessThanOrEqual(leader.heartbeatSentAt.count, Replica.heartbeatRoundsMax)
        let leaseRounds = cluster.configuration.leaseTicks / cluster.configuration.heartbeatIntervalTicks + 1
        XCTAssertLessThanOrEqual(leader.heartbeatSentAt.count, leaseRounds)
    }
}
