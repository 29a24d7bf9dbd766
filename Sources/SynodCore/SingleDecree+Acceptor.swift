extension SingleDecree {
    /// A single-decree acceptor: the only state Paxos needs to stay safe.
    ///
    /// It keeps two promises: never to accept a ballot below `promised`, and to report its
    /// highest accepted (ballot, value) to every proposer it promises.
    ///
    /// - Important: `promised` and `accepted` must be durable before the reply that reveals them
    ///   leaves the node (compare `PersistBatch` for `Replica`). An acceptor that forgets a promise
    ///   or an acceptance after a crash can let two different values be chosen. Restore a
    ///   restarted acceptor with `init(promised:accepted:)`.
    public struct Acceptor<V: Hashable & Sendable>: Hashable, Sendable {
        /// The highest ballot promised; never decreases.
        public private(set) var promised: Ballot
        /// The value accepted in the highest ballot so far, if any. Its ballot is never above `promised`.
        public private(set) var accepted: AcceptedValue<V>?

        /// A fresh acceptor that has promised and accepted nothing.
        public init() {
            self.promised = .zero
            self.accepted = nil
        }

        /// An acceptor restored from its durable state.
        /// - Precondition: `accepted?.ballot` is not above `promised` (accepting implies promising).
        public init(promised: Ballot, accepted: AcceptedValue<V>?) {
            precondition(accepted.map { $0.ballot <= promised } ?? true,
                         "an acceptor never accepts above its promise")
            self.promised = promised
            self.accepted = accepted
        }

        /// Phase 1b: promise `ballot` unless a higher one was promised.
        ///
        /// A Prepare for the ballot already promised is answered again with the same promise:
        /// the first answer may have been lost, and repeating it commits the acceptor to nothing new.
        public mutating func receivePrepare(_ ballot: Ballot) -> PrepareReply<V> {
            guard ballot >= promised else { return .reject(ballot: ballot, promised: promised) }
            promised = ballot
            return .promise(ballot: ballot, accepted: accepted)
        }

        /// Phase 2b: accept `value` in `ballot` unless a higher ballot was promised.
        ///
        /// Accepting also promises `ballot`: a proposer only sends Accept after a phase-1 quorum
        /// promised it, so this acceptor skipping the Prepare (lost message) changes nothing.
        public mutating func receiveAccept(_ ballot: Ballot, value: V) -> AcceptReply {
            guard ballot >= promised else { return .reject(ballot: ballot, promised: promised) }
            promised = ballot
            accepted = AcceptedValue(ballot: ballot, value: value)
            return .accepted(ballot: ballot)
        }
    }
}
