import Foundation
import Logging
import NIOCore
import SynodCore
import SynodKV
import SynodTransport

/// Fail-stop, the log lines and metrics of what the driver reports, and telling the operator
/// when the peers needed for a quorum cannot be reached.
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
        discardTurn()
        if !alarms.isEmpty { transport?.send(alarms) }
        stop()
        options.onSafetyHalt?(reason)
    }

    /// Logs and counts what the driver reports.
    func report(_ event: DriverEvent) {
        switch event {
        case .proposed: metrics.proposals.increment()
        case .committed(let commands): metrics.commits.increment(by: Int64(commands))
        case .leaderElected(let leader, let round):
            metrics.leaderChanges.increment()
            metrics.ballotRound.record(Int64(round))
            logger.info("leader elected", metadata: ["leader": "\(memberName(leader))", "round": "\(round)"])
        case .becameLeader:
            metrics.isLeader.set(to: 1)
        case .stoppedLeading:
            metrics.isLeader.set(to: 0)
            logger.info("stopped leading", metadata: ["pending-failed": "leader changed"])
        case .roleChanged(let role):
            logger.info("member role", metadata: ["role": "\(role)", "node": "\(nodeID)"])
        case .membershipChanged(let latest, let chosenAt, let activeFrom):
            logger.info("membership", metadata: [
                "members": "\(latest.members.map { "\($0.id)\($0.isLearner ? "(learner)" : "")=\($0.name.isEmpty ? "unstarted" : $0.name)" }.joined(separator: ","))",
                "chosen-at": "\(chosenAt)", "active-from": "\(activeFrom)",
            ])
        case .snapshotTaken(let slot, let revision, let bytes):
            logger.info("snapshot taken", metadata: ["slot": "\(slot)", "revision": "\(revision)", "bytes": "\(bytes)"])
        case .snapshotInstalled(let slot, let revision):
            metrics.snapshotsInstalled.increment()
            logger.info("installed snapshot", metadata: ["slot": "\(slot)", "revision": "\(revision)"])
        case .undecodableSnapshot(let slot, let reason):
            logger.critical("undecodable snapshot; stopping", metadata: ["slot": "\(slot)", "error": "\(reason)"])
        case .integrityCheckRecorded:
            metrics.integrityChecks.increment()
        case .integrityMismatch(let mismatch, let name, let isLocal):
            if isLocal { metrics.integrityMismatches.increment() }
            logger.critical(isLocal ? "integrity check failed: this replica's state differs from the majority's; CORRUPT alarm raised"
                                    : "integrity check failed: a member's state differs from the majority's; CORRUPT alarm raised",
                            metadata: [
                                "member": "\(name)", "revision": "\(mismatch.revision)",
                                "check": "\(String(mismatch.checkID, radix: 16))",
                                "member-hash": "\(String(mismatch.memberHash, radix: 16))",
                                "majority-hash": "\(String(mismatch.majorityHash, radix: 16))",
                            ])
        case .corruptAlarm(let raised):
            metrics.corruptAlarm.set(to: raised ? 1 : 0)
        case .leaseExpired(let id):
            logger.debug("lease expired", metadata: ["lease": "\(String(id, radix: 16))"])
        case .peerHalted(_, let name, let reason):
            logger.critical("a member halted on a safety violation; raising the CORRUPT alarm for it",
                            metadata: ["member": "\(name)", "reason": "\(reason)"])
        case .removalNoticed:
            logger.warning("this member's removal from the cluster was chosen; it stops once the removal takes effect")
        case .removedByCluster:
            logger.warning("the cluster's membership no longer has this member: it was removed")
        case .repairFinished:
            metrics.repairing.set(to: 0)
            logger.notice("damaged log records repaired from the other members; this member votes again",
                          metadata: ["promised": "\(driver.replica.promised)", "chosen": "\(driver.replica.chosenThrough)"])
        }
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
        guard let transport, let membership = driver.governingMembership, membership.isVoter(nodeID) else { return }
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
