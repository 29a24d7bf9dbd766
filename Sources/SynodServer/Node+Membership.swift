import Foundation
import Logging
import NIOCore
import Synchronization
import SynodCore
import SynodTransport

/// This member's place in the cluster, as the node's admission checks need it.
public enum LocalRole: UInt8, Hashable, Sendable {
    /// Started with an empty data directory to join a running cluster; no snapshot from it yet.
    case joining
    case voter
    /// Receives the log but votes in no quorum: serves serializable reads only, as etcd's learners.
    case learner
    /// A membership without this member was chosen; the node stops once it takes effect.
    case removed

    /// Whether the member publishes its name and client URLs through the log.
    var mayPublish: Bool { self == .voter || self == .learner }

    /// Why a client request is refused here, if it is: `needsVoter` for writes, linearizable
    /// reads and everything but Status and serializable Range (etcd's learner interceptor).
    func refusal(needsVoter: Bool) -> NodeError? {
        switch self {
        case .voter: return nil
        case .learner: return needsVoter ? .notSupportedForLearner : nil
        case .joining: return .joining
        case .removed: return .removed
        }
    }
}

/// A request waiting for the replica's outcome; it fails at `deadline` (the outcome of a
/// request lost with a leader change never arrives).
struct PendingRequest<T: Sendable> {
    var promise: EventLoopPromise<T>
    var deadline: NIODeadline
}

/// What of the membership the node last acted on; cheap to compute and compare after every step.
struct MembershipObservation: Hashable {
    var epochs: Int
    var latestChosenAt: Slot
    var latestActiveFrom: Slot
    /// The latest membership governs the first unchosen slot already.
    var latestActive: Bool
    var peers: [NodeID]
}

/// The membership as any thread may read it (admission of API calls, discovery answers,
/// peer names for metrics).
struct SharedMembership: Sendable {
    var latest: Membership?
    /// The membership governing the first unchosen slot (older than `latest` while a change
    /// waits to take effect).
    var governing: Membership?
    var role = LocalRole.joining
}

extension Node {
    // MARK: - Requests (any thread)

    /// Asks the cluster for a membership change and waits until it is chosen and applied here
    /// (the returned value carries the resulting membership), refused, or timed out.
    /// - Throws: `ReconfigurationError` (refused), `NodeError.timedOut` or `.stopped`.
    public func reconfigure(_ change: MembershipChange, force: Bool = false) async throws -> Reconfiguration {
        let promise = loop.makePromise(of: Reconfiguration.self)
        loop.execute { [self] in
            guard !stoppedFlag else { promise.fail(NodeError.stopped); return }
            var requestID = UInt64.random(in: 1 ... .max)
            while pendingReconfigurations[requestID] != nil { requestID = UInt64.random(in: 1 ... .max) }
            pendingReconfigurations[requestID] = PendingRequest(promise: promise, deadline: requestDeadline())
            if change == .remove(nodeID) { pendingSelfRemovals.insert(requestID) }
            step(.reconfigure(requestID: requestID, change: change, force: force))
        }
        return try await promise.futureResult.get()
    }

    /// Asks this node (it must lead) to hand leadership to `target`; returns the new leader
    /// once it leads.
    /// - Throws: `ReconfigurationError` (`.notLeader`, `.transferFailed`, `.leaderChanged`),
    ///   `NodeError.transferTimedOut` or `.stopped`.
    public func transferLeadership(to target: NodeID) async throws -> NodeID {
        let promise = loop.makePromise(of: NodeID.self)
        loop.execute { [self] in
            guard !stoppedFlag else { promise.fail(NodeError.stopped); return }
            var requestID = UInt64.random(in: 1 ... .max)
            while pendingTransfers[requestID] != nil { requestID = UInt64.random(in: 1 ... .max) }
            pendingTransfers[requestID] = PendingRequest(promise: promise, deadline: requestDeadline())
            step(.transferLeadership(requestID: requestID, target: target))
        }
        return try await promise.futureResult.get()
    }

    /// This member's role as of the last membership change (any thread).
    public var role: LocalRole { shared.withLock { $0.role } }

    /// The newest membership this node knows (any thread; nil while joining).
    public var latestMembership: Membership? { shared.withLock { $0.latest } }

    /// The membership governing this node's first unchosen slot (any thread).
    var governingMembership: Membership? { shared.withLock { $0.governing } }

    /// Refuses an API call this member may not serve (see `LocalRole.refusal`).
    func admit(needsVoter: Bool) throws {
        if let refusal = role.refusal(needsVoter: needsVoter) { throw refusal }
    }

    /// True when the data says this member was removed from the cluster (checked before start:
    /// a removed member never serves again).
    var wasRemoved: Bool {
        computeRole() == .removed || FileManager.default.fileExists(atPath: Self.removedMarkerPath(options.dataDirectory))
    }

    /// Written into the data directory once the member stopped because it was removed.
    static func removedMarkerPath(_ directory: String) -> String { directory + "/synod.removed" }

    // MARK: - Loop

    private func requestDeadline() -> NIODeadline {
        .now() + .milliseconds(Int64(options.requestTimeoutMilliseconds))
    }

    func expireMembershipRequests(now: NIODeadline) {
        for (id, request) in pendingReconfigurations where request.deadline <= now {
            pendingReconfigurations.removeValue(forKey: id)
            request.promise.fail(NodeError.timedOut)
        }
        for (id, request) in pendingTransfers where request.deadline <= now {
            pendingTransfers.removeValue(forKey: id)
            request.promise.fail(NodeError.transferTimedOut)
        }
    }

    func failMembershipRequests(_ error: NodeError) {
        for (_, request) in pendingReconfigurations { request.promise.fail(error) }
        pendingReconfigurations.removeAll()
        for (_, request) in pendingTransfers { request.promise.fail(error) }
        pendingTransfers.removeAll()
    }

    /// This member's role from the replica's membership. Ids are never reused, so a member
    /// missing from the latest membership whose id is below `nextNodeID` was removed; one
    /// above it has not been added in what this replica knows yet (a joiner that installed a
    /// snapshot older than its addition).
    func computeRole() -> LocalRole {
        if removedByCluster { return .removed }
        guard let history = replica.membershipHistory else { return .joining }
        let latest = history.latest
        guard let newest = latest.member(nodeID) else {
            return nodeID.rawValue < latest.nextNodeID ? .removed : .joining
        }
        // The governing membership decides (a promotion counts once it is active); a member
        // added but not active yet takes its role in the latest one.
        let current = history.membership(at: replica.chosenThrough + 1).member(nodeID) ?? newest
        return current.isLearner ? .learner : .voter
    }

    /// The member `id` in the newest membership that has it (or the discovered one).
    func knownMember(_ id: NodeID) -> Member? {
        if let history = replica.membershipHistory {
            for epoch in history.epochs.reversed() {
                if let member = epoch.membership.member(id) { return member }
            }
        }
        return options.join?.membership?.member(id)
    }

    func memberName(_ id: NodeID) -> String {
        if let name = knownMember(id)?.name, !name.isEmpty { return name }
        return "node \(id)"
    }

    /// Where the replica's peers listen: from their peer URLs in the newest membership that
    /// has them (the one discovery reported while joining).
    func peerAddresses() -> [NodeID: PeerAddress] {
        var result: [NodeID: PeerAddress] = [:]
        for peer in replica.peers {
            guard let member = knownMember(peer) else { continue }
            for url in member.peerURLs {
                if let parsed = try? ServeConfiguration.address(url, flag: "peer URL") {
                    result[peer] = parsed.address
                    break
                }
            }
        }
        return result
    }

    /// After a step: acts on membership changes (peers, role, removal). Cheap when nothing changed.
    func observeMembership(force: Bool = false) {
        let history = replica.membershipHistory
        let latestEpoch = history?.latestEpoch
        let observation = MembershipObservation(
            epochs: history?.epochs.count ?? 0, latestChosenAt: latestEpoch?.chosenAt ?? 0,
            latestActiveFrom: latestEpoch?.activeFrom ?? 0,
            latestActive: (latestEpoch?.activeFrom ?? 0) <= replica.chosenThrough + 1, peers: replica.peers)
        guard force || observation != observedMembership else { return }
        let previous = observedMembership
        observedMembership = observation
        let role = computeRole()
        if role != localRole || force {
            logger.info("member role", metadata: ["role": "\(role)", "node": "\(nodeID)"])
        }
        localRole = role
        let governing = history?.membership(at: replica.chosenThrough + 1)
        shared.withLock {
            $0.latest = history?.latest
            $0.governing = governing
            $0.role = role
        }
        if let latest = history?.latest,
           force || previous?.latestChosenAt != observation.latestChosenAt || previous?.epochs == 0 {
            logger.info("membership", metadata: [
                "members": "\(latest.members.map { "\($0.id)\($0.isLearner ? "(learner)" : "")=\($0.name.isEmpty ? "unstarted" : $0.name)" }.joined(separator: ","))",
                "chosen-at": "\(observation.latestChosenAt)", "active-from": "\(observation.latestActiveFrom)",
            ])
        }
        let addresses = peerAddresses()
        if force || addresses != observedPeerAddresses {
            observedPeerAddresses = addresses
            transport?.setPeers(addresses)
        }
        if role == .removed { checkRemoval(now: .now()) }
    }

    /// A removed member keeps running until its removal governs the first unchosen slot (its
    /// vote may still be needed before) and, if it led, it has handed off; or until a grace
    /// period passes (it may never learn the last slots once the others drop it). Then it
    /// stops, as etcd's removed member does.
    func checkRemoval(now: NIODeadline) {
        guard localRole == .removed, !removalFinished else { return }
        let noticedAt = removalNoticedAt ?? now
        if removalNoticedAt == nil {
            removalNoticedAt = now
            logger.warning("this member's removal from the cluster was chosen; it stops once the removal takes effect")
        }
        let active = replica.membership(at: replica.chosenThrough + 1)?.contains(nodeID) != true
        let grace = TimeAmount.milliseconds(Int64(max(3_000, options.electionTimeoutMilliseconds * 3)))
        guard (active && replica.role != .leader) || removedByCluster || now >= noticedAt + grace else { return }
        removalFinished = true
        // A member may learn its removal only from its peers (see `probeIfOrphaned`), which
        // its data would not show at a restart: the marker does.
        if !FileManager.default.createFile(atPath: Self.removedMarkerPath(options.dataDirectory),
                                           contents: Data("removed from cluster \(String(clusterID, radix: 16))\n".utf8)) {
            logger.warning("cannot write the removed-member marker", metadata: ["path": "\(Self.removedMarkerPath(options.dataDirectory))"])
        }
        logger.error("the member has been permanently removed from the cluster; the data-dir used by this member must be removed",
                     metadata: ["data-dir": "\(options.dataDirectory)"])
        // Let the messages of this turn (hand-off, commit notices, answers) leave first.
        let linger = TimeAmount.milliseconds(Int64(max(100, options.heartbeatMilliseconds * 2)))
        loop.scheduleTask(in: linger) { [self] in
            stop()
            onRemoved?()
            options.onRemoved?()
        }
    }

    /// A member that was removed may miss the slots that tell it so: once its removal is
    /// active the others stop sending to it and refuse its connections. So a member that has
    /// known no leader for a while asks its peers over discovery (as a joiner does); if one
    /// answers with a membership that dropped it, it was removed (etcd's peers answer a
    /// removed member's messages with "the member has been permanently removed").
    ///
    /// While this member's own removal, asked here, waits for its outcome it asks every half
    /// second: the removal is often chosen without this member hearing of it (see the report
    /// on `Replica.refreshPeers`), and the request is answered from the peers' membership.
    func probeIfOrphaned(now: NIODeadline) {
        pendingSelfRemovals = pendingSelfRemovals.filter { pendingReconfigurations[$0] != nil }
        guard localRole == .voter || localRole == .learner, !probeRunning else { return }
        let quiet = TimeAmount.milliseconds(Int64(max(1_500, options.electionTimeoutMilliseconds * 2)))
        if pendingSelfRemovals.isEmpty {
            if replica.leaderHint != nil || leaderSeenAt == nil {
                leaderSeenAt = now
                return
            }
            guard let seen = leaderSeenAt, now - seen >= quiet else { return }
            if let last = lastProbeAt, now - last < quiet { return }
        } else if let last = lastProbeAt, now - last < .milliseconds(500) {
            return
        }
        let ownURL = knownMember(nodeID)?.peerURLs.first ?? options.local.peerURL
        let peers = observedPeerAddresses.keys.sorted().compactMap { observedPeerAddresses[$0] }
        guard !peers.isEmpty else { return }
        lastProbeAt = now
        probeRunning = true
        let (nodeID, clusterID, loop) = (nodeID, clusterID, loop)
        Task { [self] in
            let without = await JoinDiscovery.membershipWithout(nodeID, clusterID: clusterID, ownPeerURL: ownURL,
                                                                peers: peers, group: loop)
            loop.execute { [self] in
                probeRunning = false
                guard let without, !stoppedFlag else { return }
                logger.warning("the cluster's membership no longer has this member: it was removed")
                // The removal asked here was chosen (ids are never reused, so this membership
                // follows it): answer it now, from the peers' membership.
                for requestID in pendingSelfRemovals.sorted() {
                    let removal = Reconfiguration(origin: nodeID, requestID: requestID, change: .remove(nodeID),
                                                  membership: without, activeFrom: 0)
                    pendingReconfigurations.removeValue(forKey: requestID)?.promise.succeed(removal)
                }
                pendingSelfRemovals.removeAll()
                removedByCluster = true
                observeMembership(force: true)
            }
        }
    }
}
