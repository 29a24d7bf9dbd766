import SynodCore

// The node's housekeeping, one small value per chore. Each decides only *whether* to act now,
// from the driver's clock and what it is told; the driver acts. Tested on their own in
// HousekeepingTests.

/// When the leader starts the next replicated integrity check.
struct IntegritySchedule: Sendable {
    /// 0 turns the checks off.
    let intervalNanoseconds: UInt64
    private var due: ClockTime?

    init(intervalNanoseconds: UInt64) { self.intervalNanoseconds = intervalNanoseconds }

    /// True when a check is due now (then the next is one interval away). The first call
    /// only starts the schedule: a new leader waits one interval.
    mutating func isDue(now: ClockTime) -> Bool {
        guard intervalNanoseconds > 0 else { return false }
        guard let due else {
            self.due = now.adding(nanoseconds: intervalNanoseconds)
            return false
        }
        guard due <= now else { return false }
        self.due = now.adding(nanoseconds: intervalNanoseconds)
        return true
    }
}

/// Publishes this member's name and client URLs through the log until they are applied,
/// proposing again after `retryNanoseconds` without success.
struct MemberPublisher: Sendable {
    let retryNanoseconds: UInt64
    private var proposedAt: ClockTime?

    init(retryNanoseconds: UInt64) { self.retryNanoseconds = retryNanoseconds }

    mutating func shouldPropose(now: ClockTime, published: Bool, leaderKnown: Bool, role: LocalRole) -> Bool {
        guard !published, leaderKnown, role.mayPublish else { return false }
        if let at = proposedAt, at.adding(nanoseconds: retryNanoseconds) > now { return false }
        proposedAt = now
        return true
    }
}

/// A member that was removed may miss the slots that tell it so (once its removal is active
/// the others stop sending to it). So a member that has known no leader for `quiet` asks its
/// peers (discovery) whether the cluster still has it, at most once per `quiet`; while a
/// removal of this very member waits for its outcome it asks every half second (the removal
/// is often chosen without this member hearing of it).
struct OrphanProbe: Sendable {
    let quietNanoseconds: UInt64
    static let selfRemovalIntervalNanoseconds: UInt64 = 500_000_000
    private var leaderSeenAt: ClockTime?
    private var lastProbeAt: ClockTime?
    private(set) var running = false

    init(quietNanoseconds: UInt64) { self.quietNanoseconds = quietNanoseconds }

    mutating func shouldProbe(now: ClockTime, leaderKnown: Bool, selfRemovalPending: Bool, role: LocalRole) -> Bool {
        guard role == .voter || role == .learner, !running else { return false }
        if selfRemovalPending {
            if let last = lastProbeAt, last.adding(nanoseconds: Self.selfRemovalIntervalNanoseconds) > now { return false }
        } else {
            if leaderKnown || leaderSeenAt == nil {
                leaderSeenAt = now
                return false
            }
            guard let seen = leaderSeenAt, seen.adding(nanoseconds: quietNanoseconds) <= now else { return false }
            if let last = lastProbeAt, last.adding(nanoseconds: quietNanoseconds) > now { return false }
        }
        lastProbeAt = now
        running = true
        return true
    }

    mutating func answered() { running = false }
}

/// When to snapshot: every `everySlots` applied slots; sooner once the log of chosen commands
/// kept in memory reaches an eighth of the last snapshot's size (at least 32 MiB: with
/// batching a slot holds hundreds of commands, so a slot count alone lets the log grow to
/// gigabytes; the eighth bounds re-encoding at 8 snapshot bytes per log byte); and at once
/// when a joining peer needs one. One encoding at a time.
struct SnapshotPolicy: Sendable {
    let everySlots: UInt64
    var lastSlot: Slot = 0
    var requested = false
    var encoding = false

    init(everySlots: UInt64) { self.everySlots = everySlots }

    /// How much further the thresholds stretch while a peer fetches the snapshot.
    static let servingStretch = 8

    /// Whether to snapshot the state at `applied` now (the state machine reflects `stateSlot`).
    /// While a peer fetches the current snapshot (`serving`), a new one waits until the log
    /// passes `servingStretch` times the thresholds: the fetched snapshot stays pinned anyway
    /// (`Replica.servedSnapshot`), so a new one taken meanwhile would be a second copy of the
    /// state in memory until the transfer ends.
    func isDue(applied: Slot, stateSlot: Slot, chosenLogBytes: Int, snapshotBytes: Int, serving: Bool = false) -> Bool {
        guard !encoding, stateSlot == applied, applied > lastSlot else { return false }
        let stretch = serving ? Self.servingStretch : 1
        let logBytesMax = max(32 << 20, snapshotBytes / 8) * stretch
        return applied >= lastSlot + everySlots * UInt64(stretch) || chosenLogBytes >= logBytesMax || requested
    }
}

/// A member whose removal was chosen keeps running, voting as before, until a member of the
/// cluster confirms that the removal governs that member's own first unchosen slot (the
/// discovery probe: `removedByCluster`). It asks at once when its own log says the removal
/// took effect and it does not lead, and otherwise once per grace period after it noticed the
/// removal (the others may have dropped it). It never stops on its own knowledge or a timer
/// alone: a member still in the old membership may not know yet (or may have lost, in a
/// power loss, the unsynced record) that the last slots the old membership governs were
/// chosen, and it needs this member's vote to decide them again. Seen in the simulator:
/// seed 6 (a member stopped on a bare timer while another voter's disk had failed) and
/// seed 33 with --break stale-lease --read-mode read-index (a removed member restarted after
/// a power loss and stopped at once; the remaining voter had lost its unsynced chosen marks).
/// A leader never asks: it decides the last slots itself and hands off first
/// (`Replica.leaderLeaves`).
struct RemovalWatch: Sendable {
    let graceNanoseconds: UInt64
    private(set) var noticedAt: ClockTime?
    private(set) var lastProbeAt: ClockTime?
    private(set) var finished = false

    init(graceNanoseconds: UInt64) { self.graceNanoseconds = graceNanoseconds }

    /// Notes the removal (true the first time), tells whether the member stops now, and
    /// whether to ask the cluster (`removedByCluster` carries its answer).
    mutating func check(now: ClockTime, removalActive: Bool, leading: Bool,
                        removedByCluster: Bool) -> (noticed: Bool, stop: Bool, probe: Bool) {
        guard !finished else { return (false, false, false) }
        let firstNotice = noticedAt == nil
        let noticed = noticedAt ?? now
        noticedAt = noticed
        if removedByCluster {
            finished = true
            return (firstNotice, true, false)
        }
        guard !leading, removalActive || noticed.adding(nanoseconds: graceNanoseconds) <= now else {
            return (firstNotice, false, false)
        }
        if let last = lastProbeAt, last.adding(nanoseconds: graceNanoseconds) > now { return (firstNotice, false, false) }
        lastProbeAt = now
        return (firstNotice, false, true)
    }
}
