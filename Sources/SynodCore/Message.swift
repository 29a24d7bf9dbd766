/// One accepted (or known-chosen) slot reported in a Promise.
public struct PromisedEntry: Hashable, Sendable {
    public var slot: Slot
    /// The highest ballot in which the acceptor accepted `value`; nil when the acceptor only
    /// knows the slot as chosen (learned without accepting), which outranks any ballot.
    public var ballot: Ballot?
    public var value: Value
    public init(slot: Slot, ballot: Ballot?, value: Value) {
        self.slot = slot
        self.ballot = ballot
        self.value = value
    }
}

/// One chosen slot, as carried by catch-up replies.
public struct ChosenEntry: Hashable, Sendable {
    public var slot: Slot
    public var value: Value
    public init(slot: Slot, value: Value) {
        self.slot = slot
        self.value = value
    }
}

/// One piece of a snapshot too large for one message. A snapshot over
/// `Configuration.snapshotChunkBytes` travels as chunks the receiver asks for one at a time
/// (`snapshotChunkRequest` names the next offset), so a slow receiver slows the sender, no
/// message grows with the state, and a transfer cut by a lost message or a dropped
/// connection resumes where it stopped. `checksum` (`Snapshot.checksum`, XXH64 of the whole
/// snapshot) names the snapshot and is checked by the receiver before it installs anything.
public struct SnapshotChunk: Hashable, Sendable {
    /// The snapshot's slot.
    public var slot: Slot
    /// The snapshot's size in bytes.
    public var total: UInt64
    /// `Snapshot.checksum` (XXH64) of all `total` bytes.
    public var checksum: UInt64
    /// Where `data` starts in the snapshot.
    public var offset: UInt64
    public var data: [UInt8]
    /// The snapshot's membership history (every chunk carries it: it is small, and a
    /// receiver may start from any chunk's answer).
    public var membership: MembershipHistory?
    /// The sender's chosen prefix, as in a catch-up reply.
    public var chosenThrough: Slot

    public init(slot: Slot, total: UInt64, checksum: UInt64, offset: UInt64, data: [UInt8],
                membership: MembershipHistory?, chosenThrough: Slot) {
        self.slot = slot
        self.total = total
        self.checksum = checksum
        self.offset = offset
        self.data = data
        self.membership = membership
        self.chosenThrough = chosenThrough
    }
}

/// A message between replicas. Every message that carries a ballot lets the receiver learn of
/// higher ballots; every Reject carries the higher ballot the acceptor has promised.
public enum Message: Hashable, Sendable {
    /// Phase 1a: "promise me `ballot` for every slot from `firstSlot` on".
    case prepare(ballot: Ballot, firstSlot: Slot)
    /// Phase 1b: the acceptor promised `ballot`. `chosenThrough` is the acceptor's contiguous
    /// chosen prefix; `entries` are its accepted or known-chosen slots above both it and `firstSlot`.
    case promise(ballot: Ballot, chosenThrough: Slot, entries: [PromisedEntry])
    /// Phase 2a, with the leader's commit notice `chosenThrough` piggybacked.
    case accept(ballot: Ballot, slot: Slot, value: Value, chosenThrough: Slot)
    /// Phase 2b: the acceptor accepted `slot` in `ballot`.
    case accepted(ballot: Ballot, slot: Slot)
    /// The acceptor refused `ballot` because it promised the higher `promised`.
    case reject(ballot: Ballot, promised: Ballot)
    /// Leader liveness, commit notice and lease/read-index round `sequence`.
    case heartbeat(ballot: Ballot, chosenThrough: Slot, sequence: UInt64)
    /// The acceptor acknowledged heartbeat `sequence` of `ballot`.
    case heartbeatAck(ballot: Ballot, sequence: UInt64, chosenThrough: Slot)
    /// Commit notice: the leader of `ballot` knows every slot through `chosenThrough` is
    /// chosen. Sent as soon as its chosen prefix grows, so followers apply (and answer their
    /// clients) without waiting for the next Accept or Heartbeat. It is only a fact about
    /// chosen slots: it promises nothing, renews no lease and resets no timer.
    case commit(ballot: Ballot, chosenThrough: Slot)
    /// "Send me the chosen values from `firstSlot` on."
    case catchUpRequest(firstSlot: Slot)
    /// Chosen values (and a snapshot when the requester is behind the sender's compaction point).
    case catchUpReply(snapshot: Snapshot?, entries: [ChosenEntry], chosenThrough: Slot)
    /// A piece of a snapshot too large for one catch-up reply.
    case snapshotChunk(SnapshotChunk)
    /// "Send me snapshot `slot` (with `checksum`) from byte `offset` on."
    case snapshotChunkRequest(slot: Slot, checksum: UInt64, offset: UInt64)
    /// Client commands a follower forwards to the leader.
    case forward(commands: [Command])
    /// A follower asks the leader for a read index for its read `readID`.
    case readIndexRequest(readID: UInt64)
    /// The leader's answer: apply through `index` and then read; nil = "I am not the leader".
    case readIndexReply(readID: UInt64, index: Slot?)
    /// A follower forwards a membership change to the leader; `requestID` is the follower's.
    case reconfigureRequest(requestID: UInt64, change: MembershipChange, force: Bool)
    /// The leader refused the forwarded change `requestID`.
    case reconfigureRefused(requestID: UInt64, error: ReconfigurationError)
    /// The leader of `ballot` stopped leading (leader transfer, or it was removed) and no
    /// longer serves lease reads: acceptors may promise `target` at once, and `target`
    /// starts phase 1 now instead of waiting for its election timeout.
    case handOff(ballot: Ballot, target: NodeID)
    /// Pre-vote: "would you promise `ballot` now?" Changes nothing at the receiver.
    case preVote(ballot: Ballot)
    /// The answer to a pre-vote; `promised` is the acceptor's promise (the pre-candidate goes
    /// above it next time when it is higher).
    case preVoteReply(ballot: Ballot, granted: Bool, promised: Ballot)
    /// The sender found its own safety broken (e.g. two values chosen for one slot) and
    /// stopped; receivers raise an alarm. `reason` is one line, at most `safetyAlarmReasonBytesMax`.
    case safetyAlarm(reason: String)
    /// A replica repairing damage to its synced records (see `Replica+Repair`) asks a voter for
    /// its promise and the highest slot it knows of; `nonce` ties the answer to this request.
    case repairQuery(nonce: UInt64)
    /// The answer to `repairQuery(nonce)`: the sender's promised ballot, the highest slot it
    /// accepted, knows chosen or proposed, and whether it is repairing itself (then its
    /// promise may be incomplete and the answer does not count).
    case repairReport(nonce: UInt64, promised: Ballot, highestSlot: Slot, repairing: Bool)

    /// The message's kind, for traces and metrics.
    public var kind: String {
        switch self {
        case .prepare: return "Prepare"
        case .promise: return "Promise"
        case .accept: return "Accept"
        case .accepted: return "Accepted"
        case .reject: return "Reject"
        case .heartbeat: return "Heartbeat"
        case .heartbeatAck: return "HeartbeatAck"
        case .commit: return "Commit"
        case .catchUpRequest: return "CatchUpRequest"
        case .catchUpReply: return "CatchUpReply"
        case .snapshotChunk: return "SnapshotChunk"
        case .snapshotChunkRequest: return "SnapshotChunkRequest"
        case .forward: return "Forward"
        case .readIndexRequest: return "ReadIndexRequest"
        case .readIndexReply: return "ReadIndexReply"
        case .reconfigureRequest: return "ReconfigureRequest"
        case .reconfigureRefused: return "ReconfigureRefused"
        case .handOff: return "HandOff"
        case .preVote: return "PreVote"
        case .preVoteReply: return "PreVoteReply"
        case .safetyAlarm: return "SafetyAlarm"
        case .repairQuery: return "RepairQuery"
        case .repairReport: return "RepairReport"
        }
    }
}

extension Message {
    /// The longest reason a `safetyAlarm` carries (longer ones are cut).
    public static let safetyAlarmReasonBytesMax = 1024
}

/// A message with its sender and receiver.
public struct Envelope: Hashable, Sendable {
    public var from: NodeID
    public var to: NodeID
    public var message: Message
    public init(from: NodeID, to: NodeID, message: Message) {
        self.from = from
        self.to = to
        self.message = message
    }
}
