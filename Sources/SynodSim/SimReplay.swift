/// A structured record of one simulated run, for replaying it step by step (`synod sim
/// --html`): pure data, `Codable`. Recording reads the simulation and draws nothing from its
/// random generator, so a recorded run is the run the same seed gives without recording.
///
/// A step is one event of the simulated world (a tick, a delivery, a fault, a client's
/// arrival...) that did something visible: sent, delivered or lost a message kept in the
/// record, changed a node's state, or produced a note (a fault, a client's answer, a
/// membership change, a value chosen, a violation). Events that did nothing visible (most
/// ticks) are not steps.
public struct SimReplay: Codable, Hashable, Sendable {
    public var seed: UInt64
    public var nodeCount: Int
    public var breaks: [String]
    public var readMode: String
    /// Protocol timings of the run, in milliseconds.
    public var tickMillis: Double
    public var electionTimeoutMillis: Double
    public var leaseMillis: Double
    /// Heartbeats, heartbeat acknowledgements and commit notices are many: one in
    /// `heartbeatSampling` is kept (by message number), the others are counted here.
    public var heartbeatSampling: Int
    public var heartbeatsOmitted: Int = 0
    /// Steps beyond `stepLimit` are not recorded (the run goes on; its checks still count),
    /// nor those more than 200 steps after the first violation.
    public var stepLimit: Int
    public var stepsOmitted: Int = 0
    /// The initial node ids.
    public var initialNodes: [UInt32]
    public var steps: [ReplayStep] = []
    /// Every violation the run's checks reported, and the first one in detail.
    public var violations: [String] = []
    public var violation: ReplayViolation?

    /// The state of every node known at step `index` (after it): each node's latest recorded
    /// state at or before that step, ordered by node id.
    public func nodes(atStep index: Int) -> [ReplayNode] {
        var latest: [UInt32: ReplayNode] = [:]
        for step in steps.prefix(max(0, index + 1)) {
            for node in step.nodes { latest[node.id] = node }
        }
        return latest.values.sorted { $0.id < $1.id }
    }

    /// The links cut at step `index` (after it): the latest recorded `cuts` at or before it.
    public func cuts(atStep index: Int) -> [[UInt32]] {
        var cuts: [[UInt32]] = []
        for step in steps.prefix(max(0, index + 1)) {
            if let changed = step.cuts { cuts = changed }
        }
        return cuts
    }
}

/// One step of the run.
public struct ReplayStep: Codable, Hashable, Sendable {
    public var index: Int
    /// Simulated time, in microseconds.
    public var time: UInt64
    /// What happened: "tick n1", "deliver n2 -> n1", "nemesis", "client 3 starts"...
    public var event: String
    public var messages: [ReplayMessage] = []
    public var notes: [ReplayNote] = []
    /// The nodes whose state changed in this step, as they are after it.
    public var nodes: [ReplayNode] = []
    /// The network links that lose every message after this step, as [from, to] pairs in
    /// order, when they changed in this step (nil: as before; empty: none cut). A link cut
    /// one way only appears once.
    public var cuts: [[UInt32]]?
}

/// A message sent, lost, duplicated, damaged or delivered.
public struct ReplayMessage: Codable, Hashable, Sendable {
    public enum Fate: String, Codable, Hashable, Sendable {
        /// Sent, to be delivered later (`copies` is 2 when the network duplicates it).
        case sent
        /// Lost: dropped by the network or cut by a partition.
        case dropped
        /// Arrived at its destination.
        case delivered
    }
    /// The same number on the send and on each delivery of one message.
    public var id: Int
    public var fate: Fate
    /// "Prepare", "Promise", "Accept", "Accepted", "Commit", "Heartbeat", ...
    public var type: String
    public var from: UInt32
    public var to: UInt32
    /// The message's ballot ("b3.1"), if it has one (on the send or loss only: a delivery
    /// names its message by `id`, to keep the record small).
    public var ballot: String?
    /// The slots it is about: the slot of an Accept or Accepted, the first slot of a Prepare,
    /// the slots a Promise reports, the chosen-through slot of a Commit or Heartbeat (on the
    /// send or loss only).
    public var slots: [UInt64]?
    /// 2 when the network duplicates it (nil: one copy).
    public var copies: Int?
    /// A snapshot chunk the network damaged (nil: not damaged).
    public var damaged: Bool?
    /// The simulator's one-line description, as in `--trace` (on the send or loss only).
    public var text: String?
    /// For a Promise: the ballot each reported slot was accepted in ("" when reported as
    /// chosen), in the order of `slots` (on the send or loss only).
    public var accepted: [String]?
    /// For a Promise or an Accept: the value of each slot in `slots` (on the send or loss only).
    public var values: [String]?
}

/// A note on the step: a fault, a client operation, a membership change, a role change, a
/// value chosen, a violation, or anything else the `--trace` story says.
public struct ReplayNote: Codable, Hashable, Sendable {
    public enum Kind: String, Codable, Hashable, Sendable {
        case fault, client, membership, role, chosen, violation, storage, other
    }
    public var kind: Kind
    public var text: String
    /// The client operation's index in the run's history (client notes).
    public var operation: Int?
    /// The slot a chosen note is about.
    public var slot: UInt64?
}

/// One node's state after a step.
public struct ReplayNode: Codable, Hashable, Sendable {
    public enum Status: String, Codable, Hashable, Sendable {
        case up, down, stalled, removed, refused
    }
    public var id: UInt32
    public var status: Status
    /// "leader", "candidate" or "follower".
    public var role: String
    /// The ballot it leads or campaigns with.
    public var ballot: String?
    /// The highest ballot it promised.
    public var promised: String
    public var chosenThrough: UInt64
    public var appliedThrough: UInt64
    public var lease: Bool
    /// The leader it believes in.
    public var leaderHint: UInt32?
    /// Its newest membership (empty until it knows one).
    public var voters: [UInt32]
    public var learners: [UInt32]
    /// Slots through this one are compacted into its snapshot (0: no snapshot).
    public var snapshotThrough: UInt64 = 0
    /// The slots above `chosenThrough` it holds state for: accepted (in a ballot) or known
    /// chosen above a gap. Slots through `chosenThrough` are chosen, through `appliedThrough`
    /// applied.
    public var log: [ReplaySlot] = []
    /// Its disk: "damaged" (damage it has not found yet), "repairing" (found damage at its
    /// start, abstains until peers fill it in); nil when healthy.
    public var disk: String?
}

/// A slot of a node's log above its chosen prefix.
public struct ReplaySlot: Codable, Hashable, Sendable {
    public var slot: UInt64
    /// The ballot it accepted the slot's value in (nil: it learned the slot chosen only).
    public var ballot: String?
    /// Known chosen (above a gap in the chosen prefix); nil when not.
    public var chosen: Bool?
}

/// The first violation of a run, in detail.
public struct ReplayViolation: Codable, Hashable, Sendable {
    /// The step it happened at (or, for a check at the end of the run, the step that
    /// completed the last operation it involves).
    public var step: Int
    public var text: String
    /// "agreement", "quorum", "linearizability" (a stale read), "invariant", ...
    public var kind: String
    /// For agreement and quorum violations: the slot, and who accepted what in which ballot.
    public var slot: UInt64?
    public var acceptances: [ReplayAcceptance] = []
    /// The values chosen for the slot (two for an agreement violation).
    public var chosenValues: [String] = []
    /// The steps at which the slot was chosen (as first applied by each value).
    public var chosenSteps: [Int] = []
    /// For a linearizability violation: the operations involved, with the step each completed.
    public var operations: [ReplayOperation] = []
    /// Ids of the recorded messages that led there (about the slot, or to the nodes that
    /// answered the operations).
    public var messageIDs: [Int] = []
}

public struct ReplayAcceptance: Codable, Hashable, Sendable {
    public var ballot: String
    public var value: String
    public var nodes: [UInt32]
}

public struct ReplayOperation: Codable, Hashable, Sendable {
    public var id: Int
    public var client: Int
    public var text: String
    public var invokedAt: UInt64
    public var completedAt: UInt64?
    public var outcome: String
    public var step: Int?
}
