import SynodCore
import XCTest
@testable import SynodNode

/// The node's housekeeping chores decide on their own when to act.
final class HousekeepingTests: XCTestCase {
    private func at(_ milliseconds: UInt64) -> ClockTime { ClockTime(nanoseconds: milliseconds * 1_000_000) }

    func testIntegrityScheduleWaitsOneIntervalThenRepeats() {
        var schedule = IntegritySchedule(intervalNanoseconds: 1_000_000_000)
        XCTAssertFalse(schedule.isDue(now: at(0)), "a new leader waits one interval")
        XCTAssertFalse(schedule.isDue(now: at(999)))
        XCTAssertTrue(schedule.isDue(now: at(1_000)))
        XCTAssertFalse(schedule.isDue(now: at(1_500)))
        XCTAssertTrue(schedule.isDue(now: at(2_000)))
        var off = IntegritySchedule(intervalNanoseconds: 0)
        XCTAssertFalse(off.isDue(now: at(0)))
        XCTAssertFalse(off.isDue(now: at(100_000)))
    }

    func testPublisherProposesUntilPublishedAndRetriesSlowly() {
        var publisher = MemberPublisher(retryNanoseconds: 3_000_000_000)
        XCTAssertFalse(publisher.shouldPropose(now: at(0), published: false, leaderKnown: false, role: .voter), "no leader to propose to")
        XCTAssertFalse(publisher.shouldPropose(now: at(0), published: false, leaderKnown: true, role: .joining))
        XCTAssertTrue(publisher.shouldPropose(now: at(0), published: false, leaderKnown: true, role: .voter))
        XCTAssertFalse(publisher.shouldPropose(now: at(2_999), published: false, leaderKnown: true, role: .voter))
        XCTAssertTrue(publisher.shouldPropose(now: at(3_000), published: false, leaderKnown: true, role: .learner))
        XCTAssertFalse(publisher.shouldPropose(now: at(9_000), published: true, leaderKnown: true, role: .voter))
    }

    func testOrphanProbeAsksAfterAQuietPeriodOneAtATime() {
        var probe = OrphanProbe(quietNanoseconds: 2_000_000_000)
        XCTAssertFalse(probe.shouldProbe(now: at(0), leaderKnown: true, selfRemovalPending: false, role: .voter))
        XCTAssertFalse(probe.shouldProbe(now: at(1_000), leaderKnown: false, selfRemovalPending: false, role: .voter))
        XCTAssertTrue(probe.shouldProbe(now: at(2_000), leaderKnown: false, selfRemovalPending: false, role: .voter))
        XCTAssertFalse(probe.shouldProbe(now: at(9_000), leaderKnown: false, selfRemovalPending: false, role: .voter), "one at a time")
        probe.answered()
        XCTAssertFalse(probe.shouldProbe(now: at(3_000), leaderKnown: false, selfRemovalPending: false, role: .voter), "once per quiet period")
        XCTAssertTrue(probe.shouldProbe(now: at(4_000), leaderKnown: false, selfRemovalPending: false, role: .voter))
        probe.answered()
        // Waiting for its own removal: every half second.
        XCTAssertTrue(probe.shouldProbe(now: at(4_500), leaderKnown: true, selfRemovalPending: true, role: .voter))
        probe.answered()
        XCTAssertFalse(probe.shouldProbe(now: at(4_900), leaderKnown: true, selfRemovalPending: true, role: .voter))
        XCTAssertFalse(probe.shouldProbe(now: at(9_000), leaderKnown: false, selfRemovalPending: false, role: .removed))
    }

    func testSnapshotPolicyBySlotsBytesAndRequest() {
        var policy = SnapshotPolicy(everySlots: 100)
        XCTAssertFalse(policy.isDue(applied: 99, stateSlot: 99, chosenLogBytes: 0, snapshotBytes: 0))
        XCTAssertTrue(policy.isDue(applied: 100, stateSlot: 100, chosenLogBytes: 0, snapshotBytes: 0))
        XCTAssertFalse(policy.isDue(applied: 100, stateSlot: 99, chosenLogBytes: 0, snapshotBytes: 0), "the state must be at the slot")
        XCTAssertTrue(policy.isDue(applied: 5, stateSlot: 5, chosenLogBytes: 32 << 20, snapshotBytes: 0), "the in-memory log is big")
        XCTAssertFalse(policy.isDue(applied: 5, stateSlot: 5, chosenLogBytes: 32 << 20, snapshotBytes: 1 << 30), "an eighth of a 1 GiB snapshot")
        policy.requested = true
        XCTAssertTrue(policy.isDue(applied: 1, stateSlot: 1, chosenLogBytes: 0, snapshotBytes: 0))
        policy.encoding = true
        XCTAssertFalse(policy.isDue(applied: 500, stateSlot: 500, chosenLogBytes: 0, snapshotBytes: 0), "one encoding at a time")
        policy.encoding = false
        policy.lastSlot = 500
        XCTAssertFalse(policy.isDue(applied: 500, stateSlot: 500, chosenLogBytes: 0, snapshotBytes: 0), "nothing new")
        policy.requested = false
        // While a peer fetches the (pinned) snapshot, the thresholds stretch eightfold.
        XCTAssertTrue(policy.isDue(applied: 600, stateSlot: 600, chosenLogBytes: 0, snapshotBytes: 0))
        XCTAssertFalse(policy.isDue(applied: 600, stateSlot: 600, chosenLogBytes: 0, snapshotBytes: 0, serving: true))
        XCTAssertFalse(policy.isDue(applied: 900, stateSlot: 900, chosenLogBytes: 100 << 20, snapshotBytes: 0, serving: true))
        XCTAssertTrue(policy.isDue(applied: 1_300, stateSlot: 1_300, chosenLogBytes: 0, snapshotBytes: 0, serving: true))
        XCTAssertTrue(policy.isDue(applied: 900, stateSlot: 900, chosenLogBytes: 256 << 20, snapshotBytes: 0, serving: true))
        policy.requested = true
        XCTAssertTrue(policy.isDue(applied: 601, stateSlot: 601, chosenLogBytes: 0, snapshotBytes: 0, serving: true),
                      "a joining peer's request is not deferred")
    }

    func testARemovedMemberStopsOnlyWhenTheClusterConfirms() {
        // Active in its own log, not leading: it asks at once, again once per grace period,
        // and stops on the cluster's answer only.
        var watch = RemovalWatch(graceNanoseconds: 3_000_000_000)
        var result = watch.check(now: at(0), removalActive: true, leading: true, removedByCluster: false)
        XCTAssertTrue(result.noticed)
        XCTAssertFalse(result.stop, "a leader hands off first")
        XCTAssertFalse(result.probe, "a leader decides the last slots itself")
        result = watch.check(now: at(100), removalActive: true, leading: false, removedByCluster: false)
        XCTAssertFalse(result.noticed)
        XCTAssertFalse(result.stop, "its own log is not enough: the others may not know")
        XCTAssertTrue(result.probe)
        XCTAssertFalse(watch.check(now: at(200), removalActive: true, leading: false, removedByCluster: false).probe, "once per grace")
        XCTAssertTrue(watch.check(now: at(3_100), removalActive: true, leading: false, removedByCluster: false).probe)
        XCTAssertTrue(watch.check(now: at(3_200), removalActive: true, leading: false, removedByCluster: true).stop)
        XCTAssertFalse(watch.check(now: at(3_300), removalActive: true, leading: false, removedByCluster: true).stop, "stops once")

        // Not active yet: it waits a grace period before it asks, and never stops on the timer.
        var late = RemovalWatch(graceNanoseconds: 3_000_000_000)
        _ = late.check(now: at(0), removalActive: false, leading: false, removedByCluster: false)
        XCTAssertFalse(late.check(now: at(2_900), removalActive: false, leading: false, removedByCluster: false).probe)
        result = late.check(now: at(3_000), removalActive: false, leading: false, removedByCluster: false)
        XCTAssertFalse(result.stop, "no stop on a timer alone")
        XCTAssertTrue(result.probe)
        XCTAssertFalse(late.check(now: at(60_000), removalActive: false, leading: false, removedByCluster: false).stop)

        var leading = RemovalWatch(graceNanoseconds: 3_000_000_000)
        _ = leading.check(now: at(0), removalActive: true, leading: true, removedByCluster: false)
        result = leading.check(now: at(9_000), removalActive: true, leading: true, removedByCluster: false)
        XCTAssertFalse(result.stop, "a leader waits for its hand-off, however long")
        XCTAssertFalse(result.probe)
    }
}
