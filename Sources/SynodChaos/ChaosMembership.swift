import Foundation
import Synchronization
import SynodClient

/// The harness's view of who is a member: for every node slot (original nodes first, then the
/// ones added during the run), whether it is a voter, a learner or gone, and its etcd member
/// id. The clients, the nemesis and the final checks read it; the membership nemesis writes it.
///
/// Every change bumps ``version``, so a reader can tell cheaply that its endpoint list is stale.
final class ChaosMembership: Sendable {
    enum Role: String, Sendable {
        /// Never used (yet).
        case unused
        /// Added (MemberAdd) as a learner; not yet promoted.
        case learner
        case voter
        /// Removed from the cluster (or an add that did not happen): never used again.
        case removed
    }

    struct Slot: Sendable {
        var role: Role = .unused
        var memberID: UInt64?
    }

    private struct State {
        var slots: [Slot]
        var version = 0
    }

    let addresses: [ChaosNodeAddresses]
    /// The nodes the cluster started with (slots 0..<originalCount).
    let originalCount: Int
    private let state: Mutex<State>

    /// - Parameters:
    ///   - addresses: every slot the network prepared (originals first).
    ///   - originalCount: how many of them start as voters.
    init(addresses: [ChaosNodeAddresses], originalCount: Int) {
        self.addresses = addresses
        self.originalCount = originalCount
        var slots = Array(repeating: Slot(), count: addresses.count)
        for index in 0..<min(originalCount, slots.count) { slots[index].role = .voter }
        self.state = Mutex(State(slots: slots))
    }

    var version: Int { state.withLock { $0.version } }

    func role(_ index: Int) -> Role { state.withLock { $0.slots[index].role } }

    func memberID(_ index: Int) -> UInt64? { state.withLock { $0.slots[index].memberID } }

    /// Indices of the slots whose role is in `roles`, in node order.
    private func indices(_ roles: Set<Role>) -> [Int] {
        state.withLock { state in state.slots.indices.filter { roles.contains(state.slots[$0].role) } }
    }

    /// Voters and learners, in node order.
    var members: [Int] { indices([.voter, .learner]) }

    /// Voters, in node order.
    var voters: [Int] { indices([.voter]) }

    var learners: [Int] { indices([.learner]) }

    /// Every slot ever used (for the report's node rows).
    var used: [Int] { indices([.voter, .learner, .removed]) }

    /// The first slot never used, if any is left.
    var nextUnused: Int? { indices([.unused]).first }

    /// Member id -> node index, for every slot whose id is known.
    var indexByMemberID: [UInt64: Int] {
        state.withLock { state in
            var map: [UInt64: Int] = [:]
            for (index, slot) in state.slots.enumerated() {
                if let id = slot.memberID { map[id] = index }
            }
            return map
        }
    }

    /// The client URLs the workload uses (the voters'), with the version they belong to.
    func clientView() -> (version: Int, endpoints: [String]) {
        state.withLock { state in
            let endpoints = state.slots.indices.filter { state.slots[$0].role == .voter }.map { addresses[$0].clientURL }
            return (state.version, endpoints)
        }
    }

    /// The client URLs of every member (voters and learners), with the version.
    func memberView() -> (version: Int, endpoints: [String]) {
        state.withLock { state in
            let endpoints = state.slots.indices.filter { [.voter, .learner].contains(state.slots[$0].role) }
                .map { addresses[$0].clientURL }
            return (state.version, endpoints)
        }
    }

    func setMemberID(_ index: Int, _ id: UInt64) {
        state.withLock { state in
            state.slots[index].memberID = id
            state.version += 1
        }
    }

    func setRole(_ index: Int, _ role: Role) {
        state.withLock { state in
            guard state.slots[index].role != role else { return }
            state.slots[index].role = role
            state.version += 1
        }
    }

    /// Node names (`n1`...) of `indices`, comma-separated.
    func names(_ indices: [Int]) -> String {
        indices.map { addresses[$0].name }.joined(separator: ",")
    }
}

/// An admin client that follows the membership: it is rebuilt (and the old one closed) when the
/// member list changed since it was made. For status polls, hashes and leader lookups.
final class ChaosAdmin: Sendable {
    private struct State {
        var version = -1
        var client: SynodClient?
        var task: Task<Void, Never>?
        var closed = false
    }

    let members: ChaosMembership
    private let state = Mutex(State())

    init(members: ChaosMembership) {
        self.members = members
    }

    /// The client for the current members (voters and learners).
    func client() throws -> SynodClient {
        let (version, endpoints) = members.memberView()
        if let current = state.withLock({ $0.version == version ? $0.client : nil }) { return current }
        let client = try SynodClient(configuration: Self.configuration(endpoints))
        let (previous, closed) = state.withLock { state -> (SynodClient?, Bool) in
            if state.closed { return (nil, true) }
            let previous = state.client
            state.client = client
            state.version = version
            state.task = Task { try? await client.run() }
            return (previous, false)
        }
        if closed { throw ChaosRunError("shutting down") }
        // In-flight requests on the previous client finish; its run task then returns.
        previous?.close()
        return client
    }

    /// Closes the current client.
    func shutdown() {
        let (client, task) = state.withLock { state -> (SynodClient?, Task<Void, Never>?) in
            state.closed = true
            defer {
                state.client = nil
                state.task = nil
            }
            return (state.client, state.task)
        }
        client?.close()
        task?.cancel()
    }

    static func configuration(_ endpoints: [String]) -> SynodClientConfiguration {
        SynodClientConfiguration(endpoints: endpoints, requestTimeout: .seconds(1), attemptTimeout: .milliseconds(500),
                                 retryBackoff: .milliseconds(50))
    }
}
