import Foundation
import Logging
import NIOCore
import SynodBytes
import SynodCore
import SynodTransport

/// How a member started with `--initial-cluster-state existing` learns who it is: it asks
/// the members in `--initial-cluster` over their peer port (`PeerTransport.discover`) with its
/// own advertised peer URL, and a running member answers from its newest membership.
///
/// Reply payload (little-endian), version 1:
/// `version (1) = 1 | cluster id (8) | node id (4) | etcd member id (8) | MembershipHistory`
/// where the history (`MembershipHistory.encoded()`) holds the membership governing the
/// answering node's first unchosen slot and, if newer, its newest membership. Node id
/// and member id are 0 when no member has the requester's peer URL: a joiner then knows it
/// was not added, and a member that lost touch with the cluster learns it was removed
/// (`confirmsRemoval`), as etcd's peers tell a removed member.
enum JoinDiscovery {
    static let version: UInt8 = 1
    /// Each attempt's budget (connecting included).
    static let attemptTimeout = TimeAmount.seconds(2)

    /// The answer of a running node to a node that advertises `peerURL`; nil while this node
    /// has no membership itself (the transport then refuses the request).
    /// Runs on NIO threads: reads only the node's shared membership.
    static func answer(node: Node, peerURL: String) -> [UInt8]? {
        guard let membership = node.latestMembership, node.role == .voter || node.role == .learner else { return nil }
        let wanted = try? ServeConfiguration.address(peerURL, flag: "peer URL").address
        let member = membership.members.first { member in
            member.peerURLs.contains { (try? ServeConfiguration.address($0, flag: "peer URL").address) == wanted }
        }
        return encode(clusterID: node.clusterID, member: member, membership: membership,
                      governing: node.governingMembership ?? membership)
    }

    static func encode(clusterID: UInt64, member: Member?, membership: Membership, governing: Membership) -> [UInt8] {
        var writer = LittleEndianWriter()
        writer.writeUInt8(version)
        writer.writeUInt64(clusterID)
        writer.writeUInt32(member?.id.rawValue ?? 0)
        writer.writeUInt64(member?.memberID ?? 0)
        var bytes = writer.bytes
        var epochs = [MembershipEpoch(chosenAt: 0, activeFrom: 1, membership: governing)]
        if governing != membership { epochs.append(MembershipEpoch(chosenAt: 1, activeFrom: 2, membership: membership)) }
        bytes += MembershipHistory(epochs: epochs).encoded()
        return bytes
    }

    /// A decoded reply: `member` is nil when the answering node knows no member with the
    /// requester's peer URL.
    struct Answer {
        var clusterID: UInt64
        var member: Member?
        /// The answering node's newest membership.
        var membership: Membership
        /// The membership governing its first unchosen slot.
        var governing: Membership

        var identity: JoinIdentity? {
            member.map { JoinIdentity(clusterID: clusterID, nodeID: $0.id, memberID: $0.memberID, membership: membership) }
        }
    }

    struct MalformedReply: Error, CustomStringConvertible {
        var reason: String
        var description: String { "malformed discovery reply: \(reason)" }
    }

    static func decode(_ bytes: [UInt8]) throws -> Answer {
        guard bytes.count > 21 else { throw MalformedReply(reason: "\(bytes.count) bytes") }
        guard bytes[0] == version else { throw MalformedReply(reason: "unknown version \(bytes[0])") }
        let header: (clusterID: UInt64, nodeID: NodeID, memberID: UInt64)
        do {
            header = try LittleEndianReader.read(bytes) { reader throws(ByteDecodingError) in
                _ = try reader.readUInt8("version")
                return (try reader.readUInt64("cluster id"), NodeID(try reader.readUInt32("node id")),
                        try reader.readUInt64("member id"))
            }
        } catch {
            throw MalformedReply(reason: error.reason)
        }
        let (clusterID, nodeID, memberID) = header
        let history: MembershipHistory
        do {
            history = try MembershipHistory(decoding: Array(bytes[21...]))
        } catch {
            throw MalformedReply(reason: "\(error)")
        }
        let governing = history.epochs[0].membership
        if nodeID.rawValue == 0 { return Answer(clusterID: clusterID, member: nil, membership: history.latest, governing: governing) }
        guard let member = history.latest.member(nodeID), member.memberID == memberID else {
            throw MalformedReply(reason: "node \(nodeID) is not in the membership it came with")
        }
        return Answer(clusterID: clusterID, member: member, membership: history.latest, governing: governing)
    }

    /// Asks `peers` about `ownPeerURL`; returns the membership of the first of them (of cluster
    /// `clusterID`) whose governing membership no longer has `nodeID` although it was added
    /// before (ids are never reused, so an id below `nextNodeID` that is missing was removed),
    /// or nil. Governing, not newest: until the removal takes effect this member's vote may
    /// still be needed for the slots before it.
    static func membershipWithout(_ nodeID: NodeID, clusterID: UInt64, ownPeerURL: String, peers: [PeerAddress],
                                  group: any EventLoopGroup, security: PeerSecurity? = nil) async -> Membership? {
        for address in peers {
            guard let payload = try? await PeerTransport.discover(group: group, address: address, ownPeerURL: ownPeerURL,
                                                                  timeout: .seconds(1), security: security),
                  let answer = try? decode(payload), answer.clusterID == clusterID else { continue }
            let membership = answer.membership
            if !membership.contains(nodeID) && !answer.governing.contains(nodeID) && nodeID.rawValue < membership.nextNodeID {
                return membership
            }
        }
        return nil
    }

    /// Fills `options.join` for `--initial-cluster-state existing`:
    /// - an empty data directory: asks the other members in `--initial-cluster` until one
    ///   knows this member's peer URL (or all reachable ones say they do not);
    /// - a data directory with data: its identity file says who this member is; one round of
    ///   discovery (if any member answers) checks it is the same cluster and member.
    /// - Throws: `ServerStartError` with one line for the operator.
    static func resolve(_ options: NodeOptions, group: any EventLoopGroup, logger: Logger) async throws -> NodeOptions {
        guard options.joinExisting, options.join == nil else { return options }
        var options = options
        let own = options.local
        let others = options.members.filter { $0.name != own.name && $0.peerAddress != own.peerAddress }
        let directory = options.dataDirectory
        if SynodNodeServer.hasData(directory) {
            // Restart: no identity file means DurableStorage reports the problem.
            guard let stored = storedIdentity(directory) else { return options }
            var join = JoinIdentity(clusterID: stored.clusterID, nodeID: stored.nodeID, memberID: 0, membership: nil)
            let round = await ask(others, ownPeerURL: own.peerURL, group: group, logger: logger,
                                  security: options.peerSecurity)
            if let (answer, url) = round.answer {
                guard answer.clusterID == stored.clusterID else {
                    throw ServerStartError(
                        "cannot open data directory \(directory): it belongs to cluster \(hex(stored.clusterID)), but the member at \(url) is in cluster \(hex(answer.clusterID))")
                }
                guard answer.nodeID == stored.nodeID else {
                    throw ServerStartError(
                        "cannot open data directory \(directory): it belongs to node \(stored.nodeID), but the cluster knows \(own.peerURL) as node \(answer.nodeID) (a member added again starts with an empty data directory)")
                }
                join.memberID = answer.memberID
                join.membership = answer.membership
            }
            options.join = join
            return options
        }
        guard !others.isEmpty else {
            throw ServerStartError(
                "--initial-cluster-state existing with an empty data directory: --initial-cluster lists no other member to join through")
        }
        let deadline = NIODeadline.now() + .milliseconds(Int64(options.joinDiscoveryTimeoutMilliseconds))
        while true {
            let round = await ask(others, ownPeerURL: own.peerURL, group: group, logger: logger,
                                  security: options.peerSecurity)
            if let (answer, url) = round.answer {
                logger.info("joining the cluster", metadata: [
                    "via": "\(url)", "cluster": "\(hex(answer.clusterID))", "node": "\(answer.nodeID)",
                    "member": "\(hex(answer.memberID))",
                ])
                options.join = answer
                return options
            }
            if round.unknown > 0 && round.unreachable == 0 {
                throw ServerStartError("member with peer URL \(own.peerURL) is not in the cluster; run member add first")
            }
            if NIODeadline.now() >= deadline {
                if round.unknown > 0 {
                    throw ServerStartError("member with peer URL \(own.peerURL) is not in the cluster; run member add first")
                }
                throw ServerStartError(
                    "--initial-cluster-state existing: cannot reach any member of the cluster to join through (\(round.lastError ?? "no answer"))")
            }
            try await Task.sleep(for: .milliseconds(300))
        }
    }

    struct Round {
        var answer: (JoinIdentity, String)?
        /// Members that answered that they do not know this peer URL.
        var unknown = 0
        var unreachable = 0
        var lastError: String?
    }

    /// One discovery attempt at each member in turn, stopping at the first that knows this member.
    static func ask(_ members: [MemberInfo], ownPeerURL: String, group: any EventLoopGroup, logger: Logger,
                    security: PeerSecurity? = nil) async -> Round {
        var round = Round()
        for member in members {
            do {
                let payload = try await PeerTransport.discover(
                    group: group, address: member.peerAddress, ownPeerURL: ownPeerURL, timeout: attemptTimeout,
                    security: security)
                let answer = try decode(payload)
                if let identity = answer.identity {
                    round.answer = (identity, member.peerURL)
                    return round
                }
                round.unknown += 1
                logger.debug("discovery: member does not know this peer URL", metadata: ["member": "\(member.peerURL)"])
            } catch {
                round.unreachable += 1
                round.lastError = "\(error)"
                logger.debug("discovery failed", metadata: ["member": "\(member.peerURL)", "error": "\(error)"])
            }
        }
        return round
    }

    /// Cluster and node id from the data directory's `synod.meta` (see `DataDirectoryIdentity`
    /// for the layout; `DurableStorage.open` verifies its checksum later).
    static func storedIdentity(_ directory: String) -> (clusterID: UInt64, nodeID: NodeID)? {
        guard let data = FileManager.default.contents(atPath: directory + "/synod.meta"), data.count == 28 else { return nil }
        let bytes = [UInt8](data)
        guard bytes[0..<8].elementsEqual("SYNODDIR".utf8) else { return nil }
        var clusterID: UInt64 = 0
        for index in 0..<8 { clusterID |= UInt64(bytes[12 + index]) << (8 * index) }
        var nodeID: UInt32 = 0
        for index in 0..<4 { nodeID |= UInt32(bytes[20 + index]) << (8 * index) }
        return nodeID >= 1 ? (clusterID, NodeID(nodeID)) : nil
    }

    static func hex(_ value: UInt64) -> String { String(value, radix: 16) }
}
