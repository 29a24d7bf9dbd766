import Foundation
import SynodCore
import SynodKV
import SynodStore

/// What `synod recover` is asked to do.
public struct RecoveryOptions: Sendable {
    /// The stopped survivor's data directory.
    public var dataDirectory: String
    /// The member's name. Optional: when given it must match the name the cluster recorded
    /// for this data directory's member (it fills in the name if none was recorded).
    public var name: String?
    /// Compute and report everything, change nothing (beyond what opening the storage does
    /// at every server start: a torn log tail is truncated, unfinished snapshot files removed).
    public var dryRun = false

    public init(dataDirectory: String, name: String? = nil, dryRun: Bool = false) {
        self.dataDirectory = dataDirectory
        self.name = name
        self.dryRun = dryRun
    }
}

/// Why recovery refused or failed, as one line for the operator. Nothing was changed unless
/// the message says otherwise.
public struct RecoveryError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// What recovery found and did.
public struct RecoveryReport: Sendable {
    public var dataDirectory: String
    /// Where the original data directory was moved (nil in a dry run).
    public var backupDirectory: String?
    public var dryRun: Bool
    public var clusterID: UInt64
    /// This member as the new one-voter membership records it.
    public var member: Member
    /// The newest membership this member knew of before recovery.
    public var previousMembership: Membership
    /// The new membership: `member` alone, governing from `appliedSlot + 1`.
    public var membership: MembershipHistory
    /// S: the last slot this member had applied; the new snapshot covers every slot through it.
    public var appliedSlot: Slot
    public var revision: Int64
    public var keyCount: Int64
    /// Log records kept above S (values this member accepted or knew chosen, not applied yet):
    /// the recovered member, leading alone, chooses them when it starts.
    public var keptAcceptedRecords: Int
    public var keptChosenRecords: Int
    /// The slots those records are for, if any.
    public var keptSlots: ClosedRange<Slot>?
    /// Membership changes above S that were replaced by no-ops (they would bring back members
    /// that are gone).
    public var neutralizedChanges: Int
    /// The ballot recorded as promised: above every ballot in the old records, so the member
    /// never reuses one.
    public var promised: Ballot
    /// Other top-level files of the data directory copied into the recovered one.
    public var copiedFiles: [String]
    public var warnings: [String]

    /// The report for the operator: what was done, what may be lost, what to do next.
    public var lines: [String] {
        func hex(_ value: UInt64) -> String { String(value, radix: 16) }
        func describe(_ m: Member) -> String {
            "\(m.name.isEmpty ? "(unnamed)" : m.name) (\(hex(m.memberID)))\(m.isLearner ? " [learner]" : "")"
        }
        let verb = dryRun ? "would rewrite" : "rewrote"
        var lines = [
            "\(dryRun ? "dry run: " : "")\(verb) \(dataDirectory) as a one-member cluster",
            "  cluster:      \(hex(clusterID)) (unchanged)",
            "  member:       \(describe(member)), node id \(member.id.rawValue), peer URLs \(member.peerURLs.joined(separator: ","))",
            "  was:          \(previousMembership.members.map(describe).joined(separator: ", "))",
            "  now:          \(member.name.isEmpty ? "this member" : member.name) alone, the only voter from slot \(appliedSlot + 1) on; next node id \(membership.latest.nextNodeID) (ids are never reused)",
            "  data kept:    everything applied through slot \(appliedSlot): revision \(revision), \(keyCount) keys (\(appliedSlot == 0 ? "no snapshot needed" : "new snapshot at slot \(appliedSlot)"))",
        ]
        if let keptSlots {
            lines.append("  log kept:     \(keptAcceptedRecords) accepted and \(keptChosenRecords) chosen records for slots \(keptSlots.lowerBound)...\(keptSlots.upperBound): this member chooses them when it starts")
        } else {
            lines.append("  log kept:     nothing above slot \(appliedSlot)")
        }
        if neutralizedChanges > 0 {
            lines.append("  dropped:      \(neutralizedChanges) membership change(s) above slot \(appliedSlot) not known chosen (replaced by no-ops; no key-value data)")
        }
        lines.append("  ballot:       promised \(promised), above every ballot recorded")
        if !copiedFiles.isEmpty { lines.append("  copied:       \(copiedFiles.joined(separator: ", "))") }
        if let backupDirectory {
            lines.append("  old data:     moved to \(backupDirectory) (delete it once the recovered member works)")
        }
        for warning in warnings { lines.append("warning: \(warning)") }
        lines += [
            "may be lost:   writes acknowledged by the lost majority that never reached this member;",
            "               every write this member accepted is kept.",
            "next:          start this member with the same `synod serve` flags as before",
            "               (--initial-cluster-state new or existing); check `synod member list`",
            "               shows one member, then add members back with `synod member add`, each",
            "               started with an EMPTY data directory and --initial-cluster-state existing.",
            "               Never restart the other old members on their old data directories.",
        ]
        return lines
    }
}

/// Recovery of a cluster that lost its quorum for good (etcd's `--force-new-cluster`):
/// rewrites one stopped survivor's data directory so that `synod serve` starts it as a
/// one-voter cluster with the same cluster id, keeping all its data.
///
/// The procedure:
/// 1. Open the data directory read-only in effect (its identity file gives the cluster and
///    node id) and restore a `Replica` from its records; `.start` yields the snapshot and the
///    chosen entries in order, which are applied to a fresh `KVStateMachine`, exactly as a
///    node does at startup. S = the replica's applied slot.
/// 2. Build the new membership: one epoch chosen at S, governing from S + 1, with only this
///    member as a voter (its id, name, peer URLs and etcd member id kept) and `nextNodeID` as
///    high as any the old cluster used, so ids are never reused.
/// 3. Write a new data directory next to the old one: a snapshot at S (the state machine's
///    bytes, the new membership), a `.promised` record with a round above every ballot
///    recorded, and every accepted or chosen record for a slot above S. Those are values this
///    member accepted but did not know chosen: leading alone, it recovers them in phase 1 and
///    chooses them, so no write that reached this member is lost. Membership changes among
///    them are replaced by no-ops: they would bring back the lost members' votes.
/// 4. Swap directories: the old one becomes `<dir>.pre-recover`, the new one `<dir>`.
/// 5. Open the result again and check that it restores to the same state and membership.
///
/// What may be lost: only writes that the lost majority acknowledged and that never reached
/// this survivor (the survivor cannot know about them).
///
/// - Important: the member must be stopped. Synod's storage keeps no lock file, so recovery
///   checks (on Linux) that no process has a file of the directory open, and refuses if one
///   does; elsewhere it cannot tell: stop the server first. The other old members must never
///   be restarted on their old data: they would still count themselves in the old membership.
public enum ClusterRecovery {
    static let metaFileName = "synod.meta"
    /// Written by a node that learned its removal (see `Node.removedMarkerPath`).
    static let removedMarkerName = "synod.removed"
    static let sessionCapacity = 65_536

    /// Runs the recovery (see the type's documentation).
    /// - Throws: `RecoveryError` naming what was refused or failed; nothing changed unless
    ///   the message says so.
    public static func recover(_ options: RecoveryOptions) throws(RecoveryError) -> RecoveryReport {
        var directory = normalized(options.dataDirectory)
        let fileManager = FileManager.default
        // A data directory given as a symbolic link is rewritten where it really is, so the
        // link keeps pointing at the data.
        if let type = (try? fileManager.attributesOfItem(atPath: directory))?[.type] as? FileAttributeType,
           type == .typeSymbolicLink {
            directory = (directory as NSString).resolvingSymlinksInPath
        }
        let staging = directory + ".recover-new"
        var isDirectory: ObjCBool = false
        guard fileManager.fileExists(atPath: directory, isDirectory: &isDirectory) else {
            if fileManager.fileExists(atPath: staging) {
                throw RecoveryError(
                    "\(directory) does not exist but \(staging) does: an earlier recover was interrupted after moving the old data to \(directory).pre-recover*; finish it with `mv \(staging) \(directory)`")
            }
            throw RecoveryError("data directory \(directory) does not exist")
        }
        guard isDirectory.boolValue else { throw RecoveryError("\(directory) is not a directory") }
        let entries = (try? fileManager.contentsOfDirectory(atPath: directory)) ?? []
        guard !entries.isEmpty else { throw RecoveryError("data directory \(directory) is empty: nothing to recover") }
        guard entries.contains(metaFileName) else {
            throw RecoveryError("\(directory) is not a Synod data directory (no \(metaFileName))")
        }
        if entries.contains(removedMarkerName) {
            throw RecoveryError(
                "\(directory) belongs to a member that was removed from the cluster (\(removedMarkerName)): its data ends at its removal; recover another survivor's data directory (if this is the only copy left, delete \(directory)/\(removedMarkerName) first)")
        }
        if let holder = processUsing(directory) {
            throw RecoveryError("\(directory) is in use by process \(holder): stop that member first (recover works on a stopped member's data)")
        }
        let identity = try readIdentity(directory + "/" + metaFileName)
        let nodeID = NodeID(identity.nodeID)

        // 1. Restore the replica and the state machine as a node does at startup.
        let fileSystem = POSIXFileSystem()
        let records: [DurableRecord]
        do {
            records = try DurableStorage.open(fileSystem: fileSystem, directory: directory, identity: identity).records
        } catch {
            throw RecoveryError("cannot open data directory \(directory): \(error)")
        }
        let hasMembership = records.contains { record in
            switch record {
            case .membership: return true
            case .snapshot(let snapshot): return snapshot.membership != nil
            default: return false
            }
        }
        guard hasMembership else {
            throw RecoveryError(
                "\(directory) records no cluster membership (written by an older synod, or a member that joined and never received the cluster's state): start it once with this synod's `synod serve` and the same flags (it records the membership at start, even without a quorum), stop it, then run recover again")
        }
        var replica: Replica
        do {
            replica = try Replica(id: nodeID, configuration: Configuration(members: [nodeID]), seed: 0, restoring: records)
        } catch {
            throw RecoveryError("cannot restore the replica from \(directory): \(error)")
        }
        let kv = try applyStart(&replica, directory: directory)
        let appliedSlot = replica.appliedThrough
        guard let history = replica.membershipHistory else {
            throw RecoveryError("\(directory) records no cluster membership")
        }

        // 2. The new one-voter membership.
        var warnings: [String] = []
        // A member added at run time has no name in the membership; it published one through
        // the log when it started (etcd's member attributes).
        let named = history.latest.members.map { member -> Member in
            var member = member
            if member.name.isEmpty, let published = kv.members[member.memberID]?.name { member.name = published }
            return member
        }
        let previous = Membership(members: named, nextNodeID: history.latest.nextNodeID,
                                  phase1Quorum: history.latest.phase1Quorum, phase2Quorum: history.latest.phase2Quorum)
        guard var member = previous.member(nodeID) else {
            throw RecoveryError(
                "node \(nodeID) of \(directory) was removed from the cluster (it is not in the newest membership it knows): its data stops at its removal; recover another survivor's data directory")
        }
        if member.isLearner {
            warnings.append("this member was a learner: it holds only what it had caught up to (applied through slot \(appliedSlot))")
            member.isLearner = false
        }
        if let name = options.name {
            if member.name.isEmpty {
                member.name = name
            } else if member.name != name {
                throw RecoveryError("\(directory) belongs to member '\(member.name)', not '\(name)'")
            }
        }
        var nextNodeID = max(previous.nextNodeID, nodeID.rawValue + 1)
        for epoch in history.epochs { nextNodeID = max(nextNodeID, epoch.membership.nextNodeID) }
        for record in records {
            switch record {
            case .accepted(_, _, .reconfigure(let change)), .chosen(_, .reconfigure(let change)):
                nextNodeID = max(nextNodeID, change.membership.nextNodeID)
            default: break
            }
        }
        let membership = Membership(members: [member], nextNodeID: nextNodeID)
        let newHistory = MembershipHistory(epochs: [MembershipEpoch(chosenAt: appliedSlot, activeFrom: appliedSlot + 1, membership: membership)])

        // 3. The records of the recovered directory.
        let promised = Ballot(round: replica.promised.round + 1, node: nodeID)
        var tail: [DurableRecord] = []
        var accepted = 0, chosen = 0, neutralized = 0
        var lowest = Slot.max, highest: Slot = 0
        for record in records {
            switch record {
            case .accepted(let slot, let ballot, let value) where slot > appliedSlot:
                if case .reconfigure = value { neutralized += 1 }
                tail.append(.accepted(slot: slot, ballot: ballot, value: neutral(value)))
                accepted += 1
                lowest = min(lowest, slot)
                highest = max(highest, slot)
            case .chosen(let slot, let value) where slot > appliedSlot:
                if case .reconfigure = value { neutralized += 1 }
                tail.append(.chosen(slot: slot, value: neutral(value)))
                chosen += 1
                lowest = min(lowest, slot)
                highest = max(highest, slot)
            default:
                break
            }
        }
        var head: [DurableRecord] = [.promised(promised)]
        if appliedSlot > 0 {
            head.append(.snapshot(Snapshot(slot: appliedSlot, data: kv.snapshot(), membership: newHistory)))
        } else {
            head.append(.membership(newHistory))
        }
        let keyCount = (try? kv.store.range(RangeRequest(key: [0], rangeEnd: [0], countOnly: true)).count) ?? 0
        var report = RecoveryReport(
            dataDirectory: directory, backupDirectory: nil, dryRun: options.dryRun, clusterID: identity.clusterID,
            member: member, previousMembership: previous, membership: newHistory, appliedSlot: appliedSlot,
            revision: kv.store.revision, keyCount: keyCount, keptAcceptedRecords: accepted, keptChosenRecords: chosen,
            keptSlots: highest > 0 ? lowest...highest : nil, neutralizedChanges: neutralized, promised: promised,
            copiedFiles: [], warnings: warnings)
        guard !options.dryRun else { return report }

        if fileManager.fileExists(atPath: staging) {
            // Left by an interrupted run before the swap: never used, safe to rebuild.
            do { try fileManager.removeItem(atPath: staging) } catch {
                throw RecoveryError("cannot remove the leftover \(staging) of an interrupted recover: \(error)")
            }
        }
        do {
            let opened = try DurableStorage.open(fileSystem: fileSystem, directory: staging, identity: identity)
            opened.storage.append(PersistBatch(id: 1, records: head + tail, messagesAfterDurable: []))
            try opened.storage.sync()
        } catch {
            throw RecoveryError("cannot write the recovered data to \(staging) (\(directory) is unchanged): \(error)")
        }
        for name in entries.sorted() where ![metaFileName, removedMarkerName, "wal", "snap"].contains(name) && !name.hasSuffix(".tmp") {
            var isDir: ObjCBool = false
            guard fileManager.fileExists(atPath: directory + "/" + name, isDirectory: &isDir), !isDir.boolValue else { continue }
            do {
                try fileManager.copyItem(atPath: directory + "/" + name, toPath: staging + "/" + name)
                let file = try fileSystem.open(staging + "/" + name, create: false)
                defer { file.close() }
                try file.sync()
            } catch {
                throw RecoveryError("cannot copy \(name) into \(staging) (\(directory) is unchanged): \(error)")
            }
            report.copiedFiles.append(name)
        }

        // 4. Swap: the old directory is kept as a backup.
        var backup = directory + ".pre-recover"
        if fileManager.fileExists(atPath: backup) { backup += "-\(Int(Date().timeIntervalSince1970))" }
        let parent = (directory as NSString).deletingLastPathComponent
        do {
            try fileSystem.syncDirectory(staging)
            try fileSystem.rename(directory, to: backup)
        } catch {
            throw RecoveryError("cannot move \(directory) to \(backup) (\(directory) is unchanged; remove \(staging)): \(error)")
        }
        do {
            try fileSystem.rename(staging, to: directory)
            try fileSystem.syncDirectory(parent.isEmpty ? "." : parent)
        } catch {
            throw RecoveryError("cannot move \(staging) to \(directory): finish with `mv \(staging) \(directory)` (the old data is in \(backup)): \(error)")
        }
        report.backupDirectory = backup

        // 5. Check the result restores to the same state and membership.
        try verify(directory: directory, identity: identity, expected: report, stateHash: kv.stateHash)
        return report
    }

    /// Steps `.start` and applies what it yields to a fresh state machine, as `Node` does.
    static func applyStart(_ replica: inout Replica, directory: String) throws(RecoveryError) -> KVStateMachine {
        var kv = KVStateMachine(sessionCapacity: sessionCapacity)
        for item in replica.step(.start, clock: BootClock.read()).apply {
            switch item {
            case .snapshot(let snapshot):
                do {
                    kv = try KVStateMachine(snapshot: snapshot.bytes, sessionCapacity: sessionCapacity)
                } catch {
                    throw RecoveryError("the snapshot at slot \(snapshot.slot) in \(directory) does not decode: \(error)")
                }
            case .entry(let slot, let value):
                for command in value.commands { _ = kv.apply(command, slot: slot) }
            }
        }
        return kv
    }

    static func verify(directory: String, identity: DataDirectoryIdentity, expected: RecoveryReport,
                       stateHash: UInt64) throws(RecoveryError) {
        let nodeID = NodeID(identity.nodeID)
        do {
            let records = try DurableStorage.open(fileSystem: POSIXFileSystem(), directory: directory, identity: identity).records
            var replica = try Replica(id: nodeID, configuration: Configuration(members: [nodeID]), seed: 0, restoring: records)
            let kv = try applyStart(&replica, directory: directory)
            guard replica.appliedThrough == expected.appliedSlot, kv.stateHash == stateHash,
                  replica.membershipHistory?.latest.voters == [nodeID], replica.promised >= expected.promised else {
                throw RecoveryError(
                    "the recovered \(directory) does not restore as written (applied \(replica.appliedThrough), voters \(replica.membershipHistory?.latest.voters ?? [])); the old data is in \(expected.backupDirectory ?? "?")")
            }
        } catch let error as RecoveryError {
            throw error
        } catch {
            throw RecoveryError("cannot reopen the recovered \(directory): \(error); the old data is in \(expected.backupDirectory ?? "?")")
        }
    }

    /// A value safe to re-propose in the one-voter cluster: membership changes become no-ops.
    static func neutral(_ value: Value) -> Value {
        if case .reconfigure = value { return .noop }
        return value
    }

    static func normalized(_ path: String) -> String {
        var path = path
        while path.count > 1 && path.hasSuffix("/") { path.removeLast() }
        return path
    }

    /// Reads cluster and node id from the identity file (its checksum and version are checked
    /// again when the storage opens it; see `DataDirectoryIdentity`).
    static func readIdentity(_ path: String) throws(RecoveryError) -> DataDirectoryIdentity {
        guard let data = FileManager.default.contents(atPath: path) else { throw RecoveryError("cannot read \(path)") }
        let bytes = [UInt8](data)
        guard bytes.count == 28, Array(bytes[0..<8]) == Array("SYNODDIR".utf8) else {
            throw RecoveryError("\(path) is not a Synod identity file")
        }
        func little<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
            var value: T = 0
            for i in 0..<(T.bitWidth / 8) { value |= T(bytes[offset + i]) << (8 * i) }
            return value
        }
        return DataDirectoryIdentity(clusterID: little(12, UInt64.self), nodeID: little(20, UInt32.self))
    }

    /// A process (other than this one) with a file of `directory` open, if one can be seen:
    /// Linux only (/proc/<pid>/fd); processes of other users are not visible.
    static func processUsing(_ directory: String) -> String? {
        #if os(Linux)
        let fileManager = FileManager.default
        let absolute = directory.hasPrefix("/") ? directory : fileManager.currentDirectoryPath + "/" + directory
        let root = (absolute as NSString).resolvingSymlinksInPath
        let prefix = root.hasSuffix("/") ? root : root + "/"
        let own = "\(ProcessInfo.processInfo.processIdentifier)"
        guard let pids = try? fileManager.contentsOfDirectory(atPath: "/proc") else { return nil }
        for pid in pids where pid != own && pid.allSatisfy(\.isNumber) {
            guard let fds = try? fileManager.contentsOfDirectory(atPath: "/proc/\(pid)/fd") else { continue }
            for fd in fds {
                guard let target = try? fileManager.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)") else { continue }
                if target.hasPrefix(prefix) || target == root {
                    let command = (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?
                        .trimmingCharacters(in: .whitespacesAndNewlines)
                    return command.map { "\(pid) (\($0))" } ?? pid
                }
            }
        }
        #endif
        return nil
    }
}
