/// A read request's consistency level.
public enum ReadConsistency: Hashable, Sendable {
    /// Reflects every write completed before the read began (lease or read index).
    case linearizable
    /// Answered from the local applied state at once; may be stale. Explicit opt-in, as in etcd.
    case serializable
}

/// Everything that can happen to a replica.
public enum Input: Hashable, Sendable {
    /// First input after `init`: replays recovered state to the state machine.
    case start
    /// One tick of the replica's local clock.
    case tick
    /// A message from a peer.
    case receive(Envelope)
    /// A client command submitted at this replica.
    case propose(Command)
    /// Several client commands submitted together (a driver's loop turn): the leader packs
    /// them into as few slots as the batch limits allow, instead of one slot per command.
    case proposeAll([Command])
    /// A client read submitted at this replica; `readID` is chosen by the driver, unique per replica.
    case read(readID: UInt64, consistency: ReadConsistency)
    /// Persist batch `id` (and so every earlier one) is durable.
    case durable(UInt64)
    /// The state machine took a snapshot through `slot` (<= the last applied slot), in memory
    /// or (a node's) in a spool file. `checksum`, when the driver computed it off its loop, is
    /// `Snapshot.checksum(of: bytes)`, which chunked transfers of this snapshot carry; without it
    /// the replica computes it the first time it sends the snapshot in chunks.
    case snapshot(slot: Slot, bytes: SnapshotBytes, checksum: UInt64? = nil)
    /// The snapshot through `slot` is durable and its bytes can be read from `bytes` (its
    /// file): the replica drops its in-memory copy for them, if it still holds that snapshot.
    /// `checksum`, when given, is its transfer checksum (as for `.snapshot`).
    case snapshotStored(slot: Slot, bytes: SnapshotBytes, checksum: UInt64? = nil)
    /// An operator asks for a membership change; `requestID` is chosen by the driver, unique
    /// per replica. `force` skips the check that enough voters are up after the change.
    /// The outcome arrives in `Output.reconfigured`.
    case reconfigure(requestID: UInt64, change: MembershipChange, force: Bool)
    /// An operator asks the leader to hand leadership to `target` (etcd's MoveLeader). The
    /// outcome arrives in `Output.transfers`.
    case transferLeadership(requestID: UInt64, target: NodeID)
}

/// How a membership change request ended, reported at the replica it was submitted to.
public struct ReconfigurationOutcome: Hashable, Sendable {
    public var requestID: UInt64
    /// The chosen change (applied at this replica), or why it was refused.
    public var result: Result<Reconfiguration, ReconfigurationError>
    public init(requestID: UInt64, result: Result<Reconfiguration, ReconfigurationError>) {
        self.requestID = requestID
        self.result = result
    }
}

/// How a leader transfer ended.
public struct TransferOutcome: Hashable, Sendable {
    public var requestID: UInt64
    /// The new leader, or why the transfer failed.
    public var result: Result<NodeID, ReconfigurationError>
    public init(requestID: UInt64, result: Result<NodeID, ReconfigurationError>) {
        self.requestID = requestID
        self.result = result
    }
}

/// Why a command was not taken.
public enum ProposalRejection: Hashable, Sendable {
    /// No leader is known here; `leaderHint` names the last one heard of, if any.
    case noLeader(leaderHint: NodeID?)
    /// The leader's queue is full.
    case busy
}

/// Why a read failed.
public enum ReadFailure: Hashable, Sendable {
    case noLeader(leaderHint: NodeID?)
    case timedOut
    case busy
}

/// One thing the state machine must apply, in order.
public enum Apply: Hashable, Sendable {
    /// Replace the state machine's state by this snapshot.
    case snapshot(Snapshot)
    /// Apply the chosen value of `slot` (slots arrive strictly in order, without gaps).
    case entry(slot: Slot, value: Value)
}

/// The effects of one step, to be carried out by the driver in this order:
/// 1. hand `persist` to storage (and send its `messagesAfterDurable` once it is durable),
/// 2. send `messages` (they reveal nothing that is not durable),
/// 3. apply `apply` to the state machine, in order,
/// 4. answer `readsReady` from the state machine (now that step 3 is done), and fail
///    `readsFailed` and `rejected`.
public struct Output: Hashable, Sendable {
    /// A read that could not be served here.
    public struct FailedRead: Hashable, Sendable {
        public var readID: UInt64
        public var reason: ReadFailure
        public init(readID: UInt64, reason: ReadFailure) {
            self.readID = readID
            self.reason = reason
        }
    }
    /// A command this replica did not take.
    public struct RejectedCommand: Hashable, Sendable {
        public var command: Command
        public var reason: ProposalRejection
        public init(command: Command, reason: ProposalRejection) {
            self.command = command
            self.reason = reason
        }
    }

    public var persist: PersistBatch?
    public var messages: [Envelope] = []
    public var apply: [Apply] = []
    public var readsReady: [UInt64] = []
    public var readsFailed: [FailedRead] = []
    public var rejected: [RejectedCommand] = []
    /// Membership change requests submitted here that ended (answer after step 3).
    public var reconfigured: [ReconfigurationOutcome] = []
    /// Leader transfers submitted here that ended.
    public var transfers: [TransferOutcome] = []
    /// Set when this replica found its own safety broken (two values learned for one slot, a
    /// durable promise that went down, ...): it has stopped for good and every later step
    /// returns only this. The driver must stop the node at once (nothing more persisted, sent,
    /// applied or answered) and report the reason; `messages` then only tell the peers.
    public var halted: String?
    /// Peers that reported (`Message.safetyAlarm`) finding their own safety broken: the
    /// driver raises an alarm for each.
    public var peerAlarms: [PeerAlarm] = []
    /// A peer needs a snapshot this replica does not have yet (a joining member asked for
    /// everything from slot 1): the driver should take one soon and feed `.snapshot`.
    public var snapshotWanted = false
    /// This replica finished repairing damaged records (see `Replica+Repair`) in this step and
    /// votes again once this step's batch is durable.
    public var repairFinished = false

    public init() {}

    /// True when the step had no effect the driver must act on.
    public var isEmpty: Bool {
        persist == nil && messages.isEmpty && apply.isEmpty && readsReady.isEmpty
            && readsFailed.isEmpty && rejected.isEmpty && reconfigured.isEmpty && transfers.isEmpty
            && !snapshotWanted && halted == nil && peerAlarms.isEmpty
    }
}

/// A peer that stopped because it found its own safety broken, and why.
public struct PeerAlarm: Hashable, Sendable {
    public var node: NodeID
    public var reason: String
    public init(node: NodeID, reason: String) {
        self.node = node
        self.reason = reason
    }
}
