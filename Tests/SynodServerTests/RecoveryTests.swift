import Foundation
import GRPCCore
import SynodClient
import SynodCore
import SynodEtcdAPI
import SynodKV
import SynodStore
import XCTest
@testable import SynodServer

/// `synod recover` (ClusterRecovery): a survivor of a cluster that lost its quorum for good
/// becomes a one-voter cluster with the same id and all its data.
final class RecoveryTests: XCTestCase {
    /// Three members write, all stop; one member's directory is recovered and serves alone
    /// (flags unchanged, `new` and then `existing`), with every key, accepting writes.
    func testARecoveredSurvivorServesAloneWithAllItsKeysAndAcceptsWrites() async throws {
        let cluster = try InProcessCluster(nodes: 3, snapshotCount: 100)
        do {
            for i in 0..<3 { try cluster.start(i) }
            try await withClient(try cluster.client()) { client in
                for k in 0..<150 { _ = try await eventually { try await client.put("k\(k)", "v\(k)") } }
            }
            for i in 0..<3 { await cluster.stop(i) }
            let directory = try XCTUnwrap(cluster.configurations[0].dataDir)

            let dryRun = try ClusterRecovery.recover(RecoveryOptions(dataDirectory: directory, name: "n1", dryRun: true))
            XCTAssertNil(dryRun.backupDirectory)
            XCTAssertFalse(FileManager.default.fileExists(atPath: directory + ".pre-recover"), "a dry run changes nothing")

            let report = try ClusterRecovery.recover(RecoveryOptions(dataDirectory: directory, name: "n1"))
            XCTAssertEqual(report.previousMembership.voters.count, 3)
            XCTAssertEqual(report.member.name, "n1")
            XCTAssertEqual(report.membership.latest.voters, [report.member.id])
            XCTAssertGreaterThanOrEqual(report.membership.latest.nextNodeID, 4, "ids of the old members are never reused")
            XCTAssertEqual(report.membership.latestEpoch.activeFrom, report.appliedSlot + 1)
            XCTAssertGreaterThan(report.appliedSlot, 0)
            XCTAssertEqual(report.keyCount, 150)
            XCTAssertEqual(report.backupDirectory, directory + ".pre-recover")
            XCTAssertTrue(FileManager.default.fileExists(atPath: directory + ".pre-recover/synod.meta"))
            let oldSnapshots = try FileManager.default.contentsOfDirectory(atPath: directory + ".pre-recover/snap")
            XCTAssertFalse(oldSnapshots.isEmpty, "the recovered state came from a snapshot plus log entries")
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory + "/snap"),
                           [String(repeating: "0", count: 20 - "\(report.appliedSlot)".count) + "\(report.appliedSlot).snap"])
            XCTAssertEqual(dryRun.appliedSlot, report.appliedSlot)
            let text = report.lines.joined(separator: "\n")
            XCTAssertTrue(text.contains("may be lost:"), text)
            XCTAssertTrue(text.contains("revision \(report.revision), 150 keys"), text)

            // Same flags as before: the 3-member --initial-cluster, state new.
            try cluster.start(0)
            try await withClient(try cluster.client([0])) { client in
                let count = try await eventually { () async throws -> Int64 in
                    let response = try await client.get("k", prefix: true, countOnly: true)
                    guard response.count == 150 else { throw SynodClientError.invalidArgument("count \(response.count)") }
                    return response.count
                }
                XCTAssertEqual(count, 150)
                let value = try await client.get("k149").kvs.first?.value
                XCTAssertEqual(value.map { String(decoding: $0, as: UTF8.self) }, "v149")
                _ = try await eventually { try await client.put("after", "recovery") }
                let members = try await eventually { try await client.memberList(linearizable: true) }
                XCTAssertEqual(members.members.count, 1, "\(members.members)")
                XCTAssertEqual(members.members.first?.name, "n1")
            }
            await cluster.stop(0)

            // And with --initial-cluster-state existing (as `synod serve` starts it: the other
            // members are asked who this member is; none answers).
            cluster.configurations[0].initialClusterState = "existing"
            try await cluster.join(0)
            try await withClient(try cluster.client([0])) { client in
                let response = try await eventually { try await client.get("k", prefix: true, countOnly: true) }
                XCTAssertEqual(response.count, 150)
                let after = try await eventually { try await client.get("after") }
                XCTAssertEqual(after.kvs.first.map { String(decoding: $0.value, as: UTF8.self) }, "recovery")
                _ = try await eventually { try await client.put("after2", "x") }
            }
        } catch {
            await cluster.stopAll()
            throw error
        }
        await cluster.stopAll()
    }

    /// Values the survivor accepted but did not know chosen stay in its log; started alone it
    /// chooses them, so their writes survive. A membership change among them becomes a no-op.
    func testAcceptedButUnchosenWritesOfTheSurvivorAreKept() async throws {
        let cluster = try InProcessCluster(nodes: 3)
        do {
            let options = try cluster.configurations[0].validate()
            let local = options.local
            let directory = options.dataDirectory
            let identity = DataDirectoryIdentity(clusterID: options.clusterID, nodeID: local.nodeID.rawValue)
            let members = options.members.map {
                Member(id: $0.nodeID, name: $0.name, peerURLs: [$0.peerURL], memberID: $0.memberID)
            }
            let initial = Membership(members: members)
            func put(_ key: String, _ value: String, client: UInt64) -> Value {
                let request = PutRequest(key: Array(key.utf8), value: Array(value.utf8))
                return .batch([Command(clientID: client, sequence: 1, payload: KVCommand.put(request).encoded())])
            }
            let leader = Ballot(round: 3, node: NodeID(2))
            let change = Reconfiguration(origin: NodeID(2), requestID: 9, change: .remove(NodeID(3)),
                                         membership: Membership(members: Array(members.prefix(2)), nextNodeID: 7),
                                         activeFrom: 35)
            let records: [DurableRecord] = [
                .membership(MembershipHistory(initial: initial)),
                .promised(leader),
                .accepted(slot: 1, ballot: leader, value: put("a", "1", client: 11)),
                .chosen(slot: 1, value: put("a", "1", client: 11)),
                .accepted(slot: 2, ballot: leader, value: put("b", "2", client: 12)),
                .accepted(slot: 3, ballot: leader, value: .reconfigure(change)),
                .accepted(slot: 4, ballot: leader, value: put("c", "3", client: 13)),
            ]
            do {
                let opened = try DurableStorage.open(fileSystem: POSIXFileSystem(), directory: directory, identity: identity)
                opened.storage.append(PersistBatch(id: 1, records: records, messagesAfterDurable: []))
                try opened.storage.sync()
            }

            let report = try ClusterRecovery.recover(RecoveryOptions(dataDirectory: directory))
            XCTAssertEqual(report.appliedSlot, 1)
            XCTAssertEqual(report.keyCount, 1)
            XCTAssertEqual(report.keptAcceptedRecords, 3)
            XCTAssertEqual(report.keptChosenRecords, 0)
            XCTAssertEqual(report.keptSlots, 2...4)
            XCTAssertEqual(report.neutralizedChanges, 1)
            XCTAssertEqual(report.promised, Ballot(round: 4, node: local.nodeID))
            XCTAssertEqual(report.membership.latest.nextNodeID, 7, "the highest id any change handed out")
            XCTAssertEqual(report.membership.latest.voters, [local.nodeID])

            try cluster.start(0)
            try await withClient(try cluster.client([0])) { client in
                for (key, value) in [("a", "1"), ("b", "2"), ("c", "3")] {
                    let response = try await eventually { () async throws -> Etcdserverpb_RangeResponse in
                        let response = try await client.get(key)
                        guard !response.kvs.isEmpty else { throw SynodClientError.invalidArgument("\(key) not yet") }
                        return response
                    }
                    XCTAssertEqual(response.kvs.first.map { String(decoding: $0.value, as: UTF8.self) }, value)
                }
                _ = try await eventually { try await client.put("d", "4") }
                let list = try await eventually { try await client.memberList(linearizable: true) }
                XCTAssertEqual(list.members.count, 1, "the neutralized change did not come back: \(list.members)")
            }
        } catch {
            await cluster.stopAll()
            throw error
        }
        await cluster.stopAll()
    }

    func testRefusesMissingEmptyForeignInUseAndMislabelledDirectories() throws {
        let root = NSTemporaryDirectory() + "synod-recover-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        func refusal(_ options: RecoveryOptions) -> String {
            do {
                _ = try ClusterRecovery.recover(options)
                return "recovered"
            } catch {
                return error.description
            }
        }
        XCTAssertEqual(refusal(.init(dataDirectory: root + "/missing")), "data directory \(root)/missing does not exist")
        try FileManager.default.createDirectory(atPath: root + "/empty", withIntermediateDirectories: true)
        XCTAssertEqual(refusal(.init(dataDirectory: root + "/empty/")), "data directory \(root)/empty is empty: nothing to recover")
        try FileManager.default.createDirectory(atPath: root + "/other", withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: root + "/other/notes.txt", contents: Data("x".utf8))
        XCTAssertEqual(refusal(.init(dataDirectory: root + "/other")), "\(root)/other is not a Synod data directory (no synod.meta)")

        // A real directory whose membership was recorded at start.
        let directory = root + "/n1"
        let identity = DataDirectoryIdentity(clusterID: 0xabc, nodeID: 1)
        do {
            let opened = try DurableStorage.open(fileSystem: POSIXFileSystem(), directory: directory, identity: identity)
            let membership = Membership(members: [Member(id: NodeID(1), name: "n1", peerURLs: ["http://127.0.0.1:1"], memberID: 5),
                                                  Member(id: NodeID(2), name: "n2", peerURLs: ["http://127.0.0.1:2"], memberID: 6)])
            opened.storage.append(PersistBatch(id: 1, records: [.membership(MembershipHistory(initial: membership))], messagesAfterDurable: []))
            try opened.storage.sync()
        }
        XCTAssertEqual(refusal(.init(dataDirectory: directory, name: "n9")), "\(directory) belongs to member 'n1', not 'n9'")
        _ = FileManager.default.createFile(atPath: directory + "/synod.removed", contents: Data("removed\n".utf8))
        XCTAssertTrue(refusal(.init(dataDirectory: directory)).hasPrefix("\(directory) belongs to a member that was removed from the cluster (synod.removed)"))
        try FileManager.default.removeItem(atPath: directory + "/synod.removed")
        // Other files of the directory are carried over.
        _ = FileManager.default.createFile(atPath: directory + "/operator-notes.txt", contents: Data("keep\n".utf8))

        #if os(Linux)
        // Another process holding a file of the directory open: the member is running.
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/bin/sh")
        holder.arguments = ["-c", "exec 3<\(directory)/synod.meta; exec sleep 30"]
        try holder.run()
        defer { holder.terminate(); holder.waitUntilExit() }
        var message = ""
        for _ in 0..<50 {
            message = refusal(.init(dataDirectory: directory, dryRun: true))
            if message.contains("in use") { break }
            Thread.sleep(forTimeInterval: 0.1)
        }
        XCTAssertTrue(message.hasPrefix("\(directory) is in use by process \(holder.processIdentifier)"), message)
        // Also through a relative path and a symbolic link.
        let depth = FileManager.default.currentDirectoryPath.split(separator: "/").count
        let relative = String(repeating: "../", count: depth) + directory.drop { $0 == "/" }
        XCTAssertTrue(refusal(.init(dataDirectory: relative, dryRun: true)).contains("is in use by process"))
        try FileManager.default.createSymbolicLink(atPath: root + "/link", withDestinationPath: directory)
        XCTAssertTrue(refusal(.init(dataDirectory: root + "/link", dryRun: true)).contains("is in use by process"))
        holder.terminate()
        holder.waitUntilExit()
        #endif

        let report = try ClusterRecovery.recover(.init(dataDirectory: directory))
        XCTAssertEqual(report.appliedSlot, 0, "nothing chosen: the membership record carries the new membership")
        XCTAssertEqual(report.membership.latest.voters, [NodeID(1)])
        XCTAssertEqual(report.membership.latest.nextNodeID, 3)
        XCTAssertEqual(report.copiedFiles, ["operator-notes.txt"])
        XCTAssertEqual(FileManager.default.contents(atPath: directory + "/operator-notes.txt"), Data("keep\n".utf8))
        // Recovering again works on the recovered directory (a second backup name), here through
        // the symbolic link.
        let through = FileManager.default.fileExists(atPath: root + "/link") ? root + "/link" : directory
        let again = try ClusterRecovery.recover(.init(dataDirectory: through, name: "n1"))
        XCTAssertEqual(again.dataDirectory, directory, "a symbolic link is followed: the data is rewritten where it is")
        XCTAssertEqual(again.previousMembership.voters, [NodeID(1)])
        XCTAssertNotEqual(again.backupDirectory, report.backupDirectory)
        XCTAssertGreaterThan(again.promised, report.promised)
    }

    /// A recovered member grows back: MemberAdd of a new member, which joins with an empty
    /// data directory and `--initial-cluster-state existing` and gets every key.
    func testARecoveredMemberGrowsBackWithMemberAdd() async throws {
        let cluster = try InProcessCluster(nodes: 3)
        do {
            for i in 0..<3 { try cluster.start(i) }
            try await withClient(try cluster.client()) { client in
                for k in 0..<20 { _ = try await eventually { try await client.put("g\(k)", "v\(k)") } }
            }
            for i in 0..<3 { await cluster.stop(i) }
            _ = try ClusterRecovery.recover(RecoveryOptions(dataDirectory: try XCTUnwrap(cluster.configurations[0].dataDir)))
            try cluster.start(0)
            let spare = cluster.addSpare(members: [0])
            let peerURL = cluster.configurations[spare].listenPeerURLs
            let added = try await withClient(try cluster.client([0])) { client in
                do {
                    return try await eventually { try await client.memberAdd(peerURLs: [peerURL]) }
                } catch SynodClientError.server(let code, let message, _) where code == .unimplemented {
                    throw XCTSkip("the server does not implement MemberAdd yet: \(message)")
                }
            }
            XCTAssertEqual(added.members.count, 2)
            try await cluster.join(spare)
            try await withClient(try cluster.client([spare])) { client in
                let response = try await eventually(30) { () async throws -> Etcdserverpb_RangeResponse in
                    let response = try await client.get("g", prefix: true, serializable: true, countOnly: true)
                    guard response.count == 20 else { throw SynodClientError.invalidArgument("count \(response.count)") }
                    return response
                }
                XCTAssertEqual(response.count, 20)
            }
            try await withClient(try cluster.client([0, spare])) { client in
                _ = try await eventually { try await client.put("grown", "yes") }
                let list = try await client.memberList(linearizable: true)
                XCTAssertEqual(list.members.count, 2)
            }
        } catch {
            await cluster.stopAll()
            throw error
        }
        await cluster.stopAll()
    }
}
