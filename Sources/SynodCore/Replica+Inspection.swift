/// Read-only looks at the replica's protocol state for operators (the live cluster page):
/// nothing here changes the replica, and nothing is on the protocol's path.

/// One slot of the log as an observer sees it.
public struct SlotInspection: Hashable, Sendable {
    public enum State: UInt8, Hashable, Sendable {
        /// Accepted by this acceptor, not known chosen.
        case accepted
        /// Known chosen, not applied yet.
        case chosen
        /// Chosen and handed to the state machine.
        case applied
    }

    /// What the slot holds, coarsely.
    public enum Content: Hashable, Sendable {
        case noop
        /// Client commands: how many, and the first bytes (at most two) of the first one's
        /// payload, where the state machine's encoding names the command.
        case commands(count: Int, firstPayloadPrefix: [UInt8])
        case reconfiguration
    }

    public var slot: Slot
    /// The ballot this acceptor accepted the value in; nil when the value was only learned
    /// as chosen (catch-up, commit) without accepting it here.
    public var ballot: Ballot?
    public var state: State
    public var content: Content
}

extension SlotInspection.Content {
    init(_ value: Value) {
        switch value {
        case .noop: self = .noop
        case .reconfigure: self = .reconfiguration
        case .batch(let commands): self = .commands(count: commands.count, firstPayloadPrefix: Array(commands.first?.payload.prefix(2) ?? []))
        }
    }
}

extension Replica {
    /// The highest `limit` slots this replica holds in its log (above its snapshot), ascending.
    /// Costs one pass over the log's keys; meant for an observer, not for every step.
    public func recentSlots(limit: Int) -> [SlotInspection] {
        guard limit > 0, let highest = log.keys.max() else { return [] }
        var found: [SlotInspection] = []
        found.reserveCapacity(limit)
        let floor = snapshot?.slot ?? 0
        var slot = highest
        // Slots are nearly contiguous: walk down from the highest, skipping holes, but never
        // further than a bounded number of probes.
        var probes = 0
        while slot > floor, found.count < limit, probes < limit * 64 {
            if let entry = log[slot] {
                let state: SlotInspection.State
                if entry.chosen != nil {
                    state = slot <= appliedThrough ? .applied : .chosen
                } else {
                    state = .accepted
                }
                let value = entry.chosen ?? entry.acceptedValue
                found.append(SlotInspection(slot: slot, ballot: entry.acceptedBallot, state: state,
                                            content: value.map(SlotInspection.Content.init) ?? .noop))
            }
            slot -= 1
            probes += 1
        }
        return found.reversed()
    }

    /// Nanoseconds left on this leader's read lease at the replica's clock; nil when it holds none.
    public var leaseRemainingNanoseconds: UInt64? {
        guard holdsLease, let state = leader else { return nil }
        return state.leaseExpiresAt.nanoseconds &- clock.nanoseconds
    }
}
