import SynodCore
import SynodKV

/// One member of the configuration as the serving member knows it (to find its page).
struct LivePeer: Sendable {
    var name: String
    var memberID: UInt64
    var clientURL: String?
}

/// This member's protocol state for the live page, copied on the node's loop and formatted
/// off it.
struct LiveMemberView: Sendable {
    var name: String
    var memberID: UInt64
    var clientURL: String?
    var role: String
    var leader: String?
    var ballot: Ballot?
    var promised: Ballot?
    var chosenThrough: Slot
    var appliedThrough: Slot
    var snapshotSlot: Slot
    var revision: Int64
    var leaseRemainingNanoseconds: UInt64?
    var isolated: Bool
    var slots: [SlotInspection]
    var messages: [LiveMessageRecord]
    var alarms: [String]
    /// Names of the members, by protocol id (ballots and messages name nodes by id).
    var names: [NodeID: String]
    /// Every member of the newest configuration, this one included, ordered by name.
    var peers: [LivePeer]
    var leaderName: String? { leader }
}

extension Node {
    static let liveSlotsShown = 32
    static let liveMessagesShown = 100

    /// This member's state for the live page. Loop only.
    func liveView() -> LiveMemberView {
        loop.preconditionInEventLoop()
        let replica = driver.replica
        let membership = driver.latestMembership
        let published = driver.kv.members
        var names: [NodeID: String] = [:]
        var peers: [LivePeer] = []
        for member in membership?.members ?? [] {
            var name = member.name.isEmpty ? (published[member.memberID]?.name ?? "") : member.name
            if name.isEmpty { name = member.id == nodeID ? options.name : "\(member.id)" }
            names[member.id] = name
            let clientURL = member.id == nodeID
                ? options.advertiseClientURLs.first
                : published[member.memberID]?.clientURLs.first
            peers.append(LivePeer(name: name, memberID: member.memberID, clientURL: clientURL))
        }
        if names[nodeID] == nil {
            names[nodeID] = options.name
            peers.append(LivePeer(name: options.name, memberID: memberID, clientURL: options.advertiseClientURLs.first))
        }
        peers.sort { $0.name < $1.name }
        let role: String
        switch driver.role {
        case .learner, .joining: role = "learner"
        case .voter, .removed:
            switch replica.role {
            case .leader: role = "leader"
            case .candidate: role = "candidate"
            case .follower: role = "follower"
            }
        }
        let leader = replica.leaderHint.map { names[$0] ?? "\($0)" }
        let alarms = driver.kv.alarms.filter { $0.memberID == memberID }.sorted().map { $0.alarm.name }
        return LiveMemberView(
            name: names[nodeID] ?? options.name, memberID: memberID, clientURL: options.advertiseClientURLs.first,
            role: role, leader: leader, ballot: replica.ownBallot ?? replica.leaderBallot,
            promised: replica.promised == .zero ? nil : replica.promised,
            chosenThrough: replica.chosenThrough, appliedThrough: replica.appliedThrough,
            snapshotSlot: replica.snapshot?.slot ?? 0,
            revision: driver.isDecodingSnapshot ? 0 : driver.kv.store.revision,
            leaseRemainingNanoseconds: replica.leaseRemainingNanoseconds, isolated: isolated,
            slots: replica.recentSlots(limit: Self.liveSlotsShown),
            messages: messageLog.recent(Self.liveMessagesShown), alarms: alarms, names: names, peers: peers)
    }

    /// Cuts this member off from its peers (`true`) or reconnects it. Any thread.
    func setIsolated(_ isolated: Bool) async throws {
        try await loop.submit { [self] in
            guard !stoppedFlag else { throw NodeError.stopped }
            self.isolated = isolated
        }.get()
    }
}
