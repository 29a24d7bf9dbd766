extension SingleDecree {
    /// A single-decree proposer running one ballot: phase 1 (collect promises), phase 2 (collect
    /// acceptances), and the outcome (chosen, or preempted by a higher ballot).
    ///
    /// The caller sends Prepare(`ballot`) to every member of `quorums`, feeds the replies in, and
    /// acts on the returned events. A preempted proposer is finished: to try again, the caller
    /// starts a new `Proposer` with a ballot above the one the reject reported.
    ///
    /// - Important: A ballot belongs to one proposer, and a proposer proposes at most one value in
    ///   it. The caller must never run two `Proposer`s with the same ballot.
    public struct Proposer<V: Hashable & Sendable>: Hashable, Sendable {
        /// Where this ballot stands.
        public enum Phase: Hashable, Sendable {
            /// Phase 1: Prepare sent, collecting promises.
            case preparing
            /// Phase 2: Accept(`ballot`, value) sent, collecting acceptances.
            case accepting(V)
            /// A phase-2 quorum accepted the value: it is chosen, forever.
            case chosen(V)
            /// An acceptor promised the higher ballot `by`; this ballot can achieve nothing more.
            case preempted(by: Ballot)
        }

        /// What the caller must do after a reply.
        public enum Event: Hashable, Sendable {
            /// Phase 1 is complete: send Accept(`ballot`, value) to every member (phase 2a).
            case sendAccept(V)
            /// The value is chosen: tell the learners.
            case chosen(V)
            /// An acceptor promised `by`, above this ballot: give up; a retry needs a ballot above `by`.
            case preempted(by: Ballot)
        }

        /// The ballot this proposer runs; unique to it.
        public let ballot: Ballot
        /// The value this proposer wants chosen, used only if no promise reports an accepted value.
        public let ownValue: V
        /// The acceptors to send Prepare and Accept to, and how many must answer.
        public let quorums: Quorums
        /// Where this ballot stands; changes only through the `receive` methods.
        public private(set) var phase: Phase = .preparing

        /// Promises by acceptor. Kept sorted on use so the value choice never depends on
        /// dictionary order (determinism).
        private var promises: [NodeID: AcceptedValue<V>?] = [:]
        /// Acceptors that accepted this ballot's value.
        private var acceptors: Set<NodeID> = []

        /// A proposer for `ballot` that would like `value` chosen.
        public init(ballot: Ballot, value: V, quorums: Quorums) {
            self.ballot = ballot
            self.ownValue = value
            self.quorums = quorums
        }

        /// Acceptors that promised this ballot so far.
        public var promiseCount: Int { promises.count }
        /// Acceptors that accepted this ballot's value so far.
        public var acceptedCount: Int { acceptors.count }

        /// Feeds a Prepare reply from acceptor `from`.
        ///
        /// Replies for another ballot, from non-members, repeated ones, and promises arriving after
        /// phase 1 finished are ignored: once Accept is sent, the value must not change.
        /// - Returns: `.sendAccept` when this promise completes a phase-1 quorum, `.preempted` on
        ///   a reject, nil otherwise.
        public mutating func receivePrepareReply(_ reply: PrepareReply<V>, from: NodeID) -> Event? {
            guard quorums.members.contains(from) else { return nil }
            switch reply {
            case .reject(let rejected, let higher):
                return preempt(rejected: rejected, higher: higher)
            case .promise(let promisedBallot, let accepted):
                guard promisedBallot == ballot, phase == .preparing else { return nil }
                promises[from] = accepted
                guard promises.count >= quorums.phase1 else { return nil }
                let reports = promises.sorted { $0.key < $1.key }.map(\.value)
                let value = SingleDecree.valueToPropose(promises: reports, own: ownValue)
                phase = .accepting(value)
                return .sendAccept(value)
            }
        }

        /// Feeds an Accept reply from acceptor `from`.
        /// - Returns: `.chosen` when this acceptance completes a phase-2 quorum, `.preempted` on a
        ///   reject, nil otherwise (including replies for another ballot or a finished proposer).
        public mutating func receiveAcceptReply(_ reply: AcceptReply, from: NodeID) -> Event? {
            guard quorums.members.contains(from) else { return nil }
            switch reply {
            case .reject(let rejected, let higher):
                return preempt(rejected: rejected, higher: higher)
            case .accepted(let acceptedBallot):
                guard acceptedBallot == ballot, case .accepting(let value) = phase else { return nil }
                acceptors.insert(from)
                guard acceptors.count >= quorums.phase2 else { return nil }
                phase = .chosen(value)
                return .chosen(value)
            }
        }

        /// A reject ends the ballot, unless the value is already chosen (then nothing can undo
        /// that, and a later reject only means a newer ballot started, which will re-propose it).
        private mutating func preempt(rejected: Ballot, higher: Ballot) -> Event? {
            guard rejected == ballot, higher > ballot else { return nil }
            switch phase {
            case .preparing, .accepting:
                phase = .preempted(by: higher)
                return .preempted(by: higher)
            case .chosen, .preempted:
                return nil
            }
        }
    }
}
