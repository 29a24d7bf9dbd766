/// What the core asks the driver to make durable. Replaying the durable records in order
/// (see `Replica.init(restoring:)`) rebuilds every piece of state safety depends on.
public enum DurableRecord: Hashable, Sendable {
    /// The acceptor promised `ballot` (never lower than an earlier promise).
    case promised(Ballot)
    /// The acceptor accepted `value` for `slot` in `ballot`.
    case accepted(slot: Slot, ballot: Ballot, value: Value)
    /// `slot` is known chosen with `value`. Not needed for safety (peers can tell again);
    /// it lets a restarted replica re-apply its log without asking anyone.
    case chosen(slot: Slot, value: Value)
    /// A snapshot covering every slot through `snapshot.slot`; records for those slots are
    /// no longer needed once it is durable.
    case snapshot(Snapshot)
    /// The membership this replica starts from (the initial cluster), written once when a new
    /// replica first starts, so a restart never depends on flags repeating it. A snapshot's
    /// membership supersedes it.
    case membership(MembershipHistory)
    /// This replica finished repairing damage its storage found in its synced records (see
    /// `Replica+Repair`): everything that damage could have hidden is now covered by records
    /// written before this one. Storage notes the damage as repaired once this is durable, so
    /// a later restart does not repair it again.
    case repaired
}

/// Records the driver must make durable, and the messages it may send only after they are.
///
/// - Important: The driver makes batches durable in `id` order (a batch is durable only when
///   every earlier batch is), sends `messagesAfterDurable` only after that, and then tells the
///   replica with `Input.durable(id)`. This is how the core states the rule "an acceptor's
///   promise and accepted values are on disk before the message that reveals them leaves".
public struct PersistBatch: Hashable, Sendable {
    public var id: UInt64
    public var records: [DurableRecord]
    public var messagesAfterDurable: [Envelope]

    public init(id: UInt64, records: [DurableRecord], messagesAfterDurable: [Envelope]) {
        self.id = id
        self.records = records
        self.messagesAfterDurable = messagesAfterDurable
    }
}
