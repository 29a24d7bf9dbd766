/// Identifies one replica in the cluster. Stable for the life of the node.
public struct NodeID: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public init(_ rawValue: UInt32) { self.rawValue = rawValue }
    public static func < (lhs: NodeID, rhs: NodeID) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { "n\(rawValue)" }
}

/// A log index. Slot 0 is never used for a command: `chosenThrough == 0` means nothing is chosen yet.
public typealias Slot = UInt64

/// A Paxos ballot: (round, node id), totally ordered, first by round then by node.
///
/// Each ballot belongs to exactly one proposer (its `node`), and a proposer proposes at most
/// one value per slot in a ballot. A proposer never reuses a ballot: it persists its own
/// promise for a new ballot before sending any Prepare for it, so after a crash it restarts
/// from a round above every ballot it ever used.
public struct Ballot: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var round: UInt64
    public var node: NodeID

    public init(round: UInt64, node: NodeID) {
        self.round = round
        self.node = node
    }

    /// Below every ballot any proposer uses (real ballots have round >= 1).
    public static let zero = Ballot(round: 0, node: NodeID(0))

    public static func < (lhs: Ballot, rhs: Ballot) -> Bool {
        (lhs.round, lhs.node.rawValue) < (rhs.round, rhs.node.rawValue)
    }

    public var description: String { "b\(round).\(node.rawValue)" }
}
