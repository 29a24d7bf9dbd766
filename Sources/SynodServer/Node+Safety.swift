import Foundation
import Logging
import NIOCore
import SynodCore
import SynodKV
import SynodTransport

/// Fail-stop, safety alarms from peers, losing leadership, and telling the operator when the
/// peers needed for a quorum cannot be reached.
extension Node {
    /// Exit status of `synod serve` after a safety halt.
    public static let safetyHaltExitStatus: Int32 = 71

    /// Written into the data directory when the replica halted; the member refuses to start
    /// on it again until an operator looked (see README, "A member halted").
    static func haltedMarkerPath(_ directory: String) -> String { directory + "/synod.halted" }

    /// The reason recorded by an earlier safety halt on this data directory, if any.
    static func recordedHalt(in directory: String) -> String? {
        guard let data = FileManager.default.contents(atPath: haltedMarkerPath(directory)) else { return nil }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The replica found its own safety broken: stop at once. Nothing of this step is
    /// persisted, applied or answered; the peers are told (`alarms`) so they raise an alarm;
    /// the reason goes to the log in one line and into `synod.halted`.
    func haltOnSafetyViolation(_ reason: String, alarms: [Envelope]) {
        guard !stoppedFlag else { return }
        logger.critical("safety violation: this member halts and will not serve again on this data directory: \(reason)")
        let marker = "halted at \(Date()): \(reason)\n"
        if !FileManager.default.createFile(atPath: Self.haltedMarkerPath(options.dataDirectory), contents: Data(marker.utf8)) {
            logger.error("cannot write the halt marker", metadata: ["path": "\(Self.haltedMarkerPath(options.dataDirectory))"])
        }
        storageFailure = "halted: \(reason)"
        // The alarms leave directly: the turn's other messages must not.
        turnMessagesDiscard()
        if !alarms.isEmpty { transport?.send(alarms) }
        stop()
        options.onSafetyHalt?(reason)
    }

    /// A peer halted on a safety violation: log it and raise the CORRUPT alarm for it through
    /// the log, so every member lists it (`etcdctl alarm list`) and /health reports it.
    func raiseSafetyAlarm(_ alarm: PeerAlarm) {
        let member = knownMember(alarm.node)
        logger.critical("a member halted on a safety violation; raising the CORRUPT alarm for it",
                        metadata: ["member": "\(memberName(alarm.node))", "reason": "\(alarm.reason)"])
        guard let memberID = member?.memberID, memberID != 0 else { return }
        proposeInternal(.alarm(action: .activate, member: AlarmMember(memberID: memberID, alarm: .corrupt)))
    }

    /// This member stopped leading: writes waiting here fail now with etcd's "leader changed"
    /// (their outcome is unknown; a client retries, with the same request id at most once),
    /// instead of waiting out their timeout for a leader that may be gone for good.
    func leadershipLost() {
        wasLeader = false
        metrics.isLeader.set(to: 0)
        failPendingWrites(NodeError.leaderChanged)
        logger.info("stopped leading", metadata: ["pending-failed": "leader changed"])
    }

    // MARK: Peer reachability

    /// How often reachability is evaluated, and how long after start the first report waits
    /// (peers of a cluster that starts together come up within a few seconds).
    static let reachabilityCheckInterval = TimeAmount.milliseconds(500)
    static let reachabilityGrace = TimeAmount.seconds(3)

    /// Logs, once per change, whether this member's outbound links reach enough voters for a
    /// quorum (with this member): a member that cannot reach a quorum says why (each
    /// unreachable peer's last connection error) at warning level, and says so again at info
    /// level once it can.
    func observePeerReachability(now: NIODeadline) {
        if let checkedAt = reachabilityCheckedAt, now < checkedAt + Self.reachabilityCheckInterval { return }
        if reachabilityCheckedAt == nil { reachabilityCheckedAt = now + Self.reachabilityGrace; return }
        reachabilityCheckedAt = now
        guard let transport, let membership = replica.membership(at: replica.chosenThrough + 1),
              membership.isVoter(nodeID) else { return }
        let statistics = transport.statistics().peers
        let others = membership.voters.filter { $0 != nodeID }
        let connected = others.filter { statistics[$0]?.isConnected == true }
        let needed = max(membership.phase1Quorum, membership.phase2Quorum) - 1
        let reachable = connected.count >= needed
        guard reachable != quorumReachable else { return }
        let wasKnown = quorumReachable != nil
        quorumReachable = reachable
        if reachable {
            if wasKnown {
                logger.info("peers reachable again: a quorum of voters is connected",
                            metadata: ["connected": "\(connected.map(memberName))"])
            }
            return
        }
        let reasons = others.filter { statistics[$0]?.isConnected != true }.map { peer -> String in
            let link = statistics[peer]
            let reason = link?.lastError ?? ((link?.connects ?? 0) > 0 ? "connection lost" : "not connected yet")
            return "\(memberName(peer)): \(reason)"
        }
        logger.warning("cannot reach a quorum of peers: no leader can be elected or kept from here",
                       metadata: ["connected": "\(connected.count) of \(others.count) other voters",
                                  "needed": "\(needed)", "unreachable": "\(reasons.joined(separator: "; "))"])
    }
}
