import Foundation
import Logging
import NIOCore
import Synchronization
import SynodCore
import SynodTransport

/// The membership as any thread may read it (admission of API calls, discovery answers,
/// peer names for metrics).
struct SharedMembership: Sendable {
    var latest: Membership?
    /// The membership governing the first unchosen slot (older than `latest` while a change
    /// waits to take effect).
    var governing: Membership?
    var role = LocalRole.joining
}

/// The shell's side of membership: what other threads read, where the peers listen, the
/// removed-member marker, and the discovery probe the driver asks for.
extension Node {
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
        driver.computeRole() == .removed || FileManager.default.fileExists(atPath: Self.removedMarkerPath(options.dataDirectory))
    }

    /// Written into the data directory once the member stopped because it was removed.
    static func removedMarkerPath(_ directory: String) -> String { directory + "/synod.removed" }

    /// The member `id` in the newest membership that has it (or the discovered one).
    func knownMember(_ id: NodeID) -> Member? {
        driver.knownMember(id) ?? options.join?.membership?.member(id)
    }

    func memberName(_ id: NodeID) -> String {
        if let name = knownMember(id)?.name, !name.isEmpty { return name }
        return "node \(id)"
    }

    /// Where the replica's peers listen: from their peer URLs in the newest membership that
    /// has them (the one discovery reported while joining).
    func peerAddresses() -> [NodeID: PeerAddress] {
        var result: [NodeID: PeerAddress] = [:]
        for peer in driver.replica.peers {
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

    /// The driver's membership or peers changed: publish them to other threads and redial.
    func membershipChanged() {
        let latest = driver.latestMembership
        let governing = driver.governingMembership
        let role = driver.role
        shared.withLock {
            $0.latest = latest
            $0.governing = governing
            $0.role = role
        }
        let addresses = peerAddresses()
        if addresses != observedPeerAddresses {
            observedPeerAddresses = addresses
            transport?.setPeers(addresses)
        }
    }

    /// The removal took effect: write the marker (a member may learn its removal only from
    /// its peers, which its data would not show at a restart), let this turn's messages
    /// (hand-off, commit notices, answers) leave, then stop.
    func finishRemoval() {
        if !FileManager.default.createFile(atPath: Self.removedMarkerPath(options.dataDirectory),
                                           contents: Data("removed from cluster \(String(clusterID, radix: 16))\n".utf8)) {
            logger.warning("cannot write the removed-member marker", metadata: ["path": "\(Self.removedMarkerPath(options.dataDirectory))"])
        }
        logger.error("the member has been permanently removed from the cluster; the data-dir used by this member must be removed",
                     metadata: ["data-dir": "\(options.dataDirectory)"])
        let linger = TimeAmount.milliseconds(Int64(max(100, options.heartbeatMilliseconds * 2)))
        loop.scheduleTask(in: linger) { [self] in
            stop()
            onRemoved?()
            options.onRemoved?()
        }
    }

    /// The driver asks whether the cluster still has this member: discovery over the peer
    /// port (as a joiner asks), answered back into the driver.
    func probeMembership() {
        let ownURL = knownMember(nodeID)?.peerURLs.first ?? options.local.peerURL
        let peers = observedPeerAddresses.keys.sorted().compactMap { observedPeerAddresses[$0] }
        let (nodeID, clusterID, loop) = (nodeID, clusterID, loop)
        guard !peers.isEmpty else {
            step(.probeAnswered(removedFrom: nil))
            return
        }
        Task { [self] in
            let without = await JoinDiscovery.membershipWithout(nodeID, clusterID: clusterID, ownPeerURL: ownURL,
                                                                peers: peers, group: loop, security: options.peerSecurity)
            loop.execute { [self] in
                guard !stoppedFlag else { return }
                step(.probeAnswered(removedFrom: without))
            }
        }
    }
}
