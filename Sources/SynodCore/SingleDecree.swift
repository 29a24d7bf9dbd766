/// Single-decree Paxos, the "synod" algorithm: a group of acceptors chooses at most one value,
/// ever, from whatever proposers suggest. This namespace holds the bare algorithm as small,
/// separately tested value types, so the core rule of Paxos can be read, tested and broken on
/// purpose in isolation. `Replica` does not call these types: it applies the same rules slot by
/// slot with one phase 1 for all slots, in its own state (the acceptor's checks in
/// `Replica+Acceptor`; the proposer's choice of value in `Replica.mergeReport`, where, beyond
/// `valueToPropose`, a value a promiser reports as already chosen outranks every ballot).
///
/// The pieces:
/// - `SingleDecree.Acceptor`: promises and accepts (phases 1b and 2b).
/// - `SingleDecree.Proposer`: runs one ballot (phases 1a and 2a) and learns the chosen value.
/// - `SingleDecree.valueToPropose(promises:own:)`: the rule that makes it safe.
/// - `SingleDecree.Quorums`: phase-1 and phase-2 quorum sizes (Flexible Paxos).
///
/// Like the rest of the core, these types do no I/O: the caller carries messages between them
/// and makes acceptor state durable before a reply that reveals it leaves the node.
public enum SingleDecree {}

extension SingleDecree {
    /// A value an acceptor accepted, with the ballot it accepted it in.
    public struct AcceptedValue<V: Hashable & Sendable>: Hashable, Sendable {
        /// The ballot of the Accept the acceptor took.
        public var ballot: Ballot
        /// The value that Accept carried.
        public var value: V

        public init(ballot: Ballot, value: V) {
            self.ballot = ballot
            self.value = value
        }
    }

    /// An acceptor's answer to Prepare (phase 1b).
    public enum PrepareReply<V: Hashable & Sendable>: Hashable, Sendable {
        /// The acceptor promised `ballot`: it will accept nothing below it from now on. `accepted`
        /// is the value it accepted in its highest ballot so far (nil if it never accepted one).
        case promise(ballot: Ballot, accepted: AcceptedValue<V>?)
        /// The acceptor refused `ballot` because it already promised the higher `promised`.
        case reject(ballot: Ballot, promised: Ballot)
    }

    /// An acceptor's answer to Accept (phase 2b).
    public enum AcceptReply: Hashable, Sendable {
        /// The acceptor accepted the proposer's value in `ballot`.
        case accepted(ballot: Ballot)
        /// The acceptor refused `ballot` because it already promised the higher `promised`.
        case reject(ballot: Ballot, promised: Ballot)
    }

    /// Quorum sizes over a fixed set of acceptors.
    ///
    /// Paxos needs only that every phase-1 quorum intersects every phase-2 quorum (Flexible
    /// Paxos, Howard et al. 2016): then a proposer that finished phase 1 hears from at least one
    /// acceptor of any phase-2 quorum that may have chosen a value. Majorities are one choice;
    /// `phase1 + phase2 > members.count` is the general condition.
    public struct Quorums: Hashable, Sendable {
        /// The acceptors, in a fixed order.
        public let members: [NodeID]
        /// Promises a proposer needs before it may propose (phase 1).
        public let phase1: Int
        /// Acceptances that make a value chosen (phase 2).
        public let phase2: Int

        /// Quorums of the given sizes.
        /// - Parameter unsafeAllowNonIntersectingQuorums: skips the intersection check. Only for
        ///   negative controls that must show the agreement check can fail; never in a deployment.
        /// - Throws: `ConfigurationError` when there are no members, a member is listed twice, a
        ///   size is outside `1...members.count`, or (unless allowed) the quorums need not intersect.
        public init(members: [NodeID], phase1: Int, phase2: Int,
                    unsafeAllowNonIntersectingQuorums: Bool = false) throws(ConfigurationError) {
            let n = members.count
            guard n >= 1 else { throw .noMembers }
            guard Set(members).count == n else { throw .duplicateMember }
            guard (1...n).contains(phase1) else { throw .quorumOutOfRange(name: "phase-1", size: phase1, members: n) }
            guard (1...n).contains(phase2) else { throw .quorumOutOfRange(name: "phase-2", size: phase2, members: n) }
            if !unsafeAllowNonIntersectingQuorums && phase1 + phase2 <= n {
                throw .quorumsDoNotIntersect(phase1: phase1, phase2: phase2, members: n)
            }
            self.members = members
            self.phase1 = phase1
            self.phase2 = phase2
        }

        /// Majority quorums for both phases (always intersecting).
        /// - Precondition: `members` is non-empty and has no duplicates.
        public static func majority(_ members: [NodeID]) -> Quorums {
            let majority = members.count / 2 + 1
            do {
                return try Quorums(members: members, phase1: majority, phase2: majority)
            } catch {
                preconditionFailure("majority quorums over \(members): \(error)")
            }
        }

        /// Whether every phase-1 quorum shares an acceptor with every phase-2 quorum.
        public var intersect: Bool { phase1 + phase2 > members.count }
    }

    /// The core rule of Paxos: the value a proposer must propose in phase 2, given the promises
    /// of a phase-1 quorum.
    ///
    /// If any promising acceptor reported an accepted value, the proposer must propose the one
    /// accepted in the highest ballot; only if none did may it propose its own value.
    ///
    /// Why this is safe: suppose value `v` was chosen in ballot `b`, below this proposer's ballot.
    /// A phase-2 quorum accepted `v` in `b`, and it intersects this phase-1 quorum, so at least one
    /// promise reports a ballot `>= b`. By induction over the ballots between `b` and this one,
    /// every value accepted in them is `v`, so the highest reported ballot carries `v`. Ignoring
    /// the reports, or picking any lower one, lets a second value be chosen.
    ///
    /// - Parameters:
    ///   - promises: what each promising acceptor reported accepting (nil: nothing accepted).
    ///   - own: the value the proposer wants chosen.
    /// - Returns: the reported value with the highest ballot, or `own` if nothing was reported.
    ///   Equal highest ballots carry the same value (a proposer proposes one value per ballot);
    ///   should they not, the first in `promises` order wins, so the result is deterministic.
    public static func valueToPropose<V>(promises: [AcceptedValue<V>?], own: V) -> V {
        var highest: AcceptedValue<V>?
        for case let reported? in promises where highest.map({ reported.ballot > $0.ballot }) ?? true {
            highest = reported
        }
        return highest?.value ?? own
    }
}
