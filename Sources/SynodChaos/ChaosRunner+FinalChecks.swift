import Foundation
import SynodClient

// The end of a run: waiting for the healed members to answer and converge, the final reads,
// the replica hashes and the alarms, all over the members at the end of the run.
extension ChaosRunner {
    /// Waits until every member answers `status` and knows a leader (or the time runs out).
    func waitForAllAnswering(admin: ChaosAdmin, members: ChaosMembership, seconds: Int) async {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline && !Task.isCancelled {
            let count = members.members.count
            if let client = try? admin.client() {
                let results = await client.statusAll()
                let good = results.filter { entry in
                    if case .success(let status) = entry.result { return status.leader != 0 }
                    return false
                }
                if good.count == count { return }
            }
            try? await Task.sleep(for: .milliseconds(200))
        }
    }

    /// Waits until every member reports the same revision and applied index twice in a row.
    func waitForConvergence(admin: ChaosAdmin, members: ChaosMembership, seconds: Int) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        var previous: [Int64]?
        while ContinuousClock.now < deadline && !Task.isCancelled {
            let count = members.members.count
            guard let client = try? admin.client() else { return false }
            let results = await client.statusAll()
            var values: [Int64] = []
            for (_, result) in results {
                guard case .success(let status) = result else { break }
                values.append(status.header.revision)
                values.append(Int64(truncatingIfNeeded: status.raftAppliedIndex))
            }
            if values.count == 2 * count {
                let revisions = stride(from: 0, to: values.count, by: 2).map { values[$0] }
                let applied = stride(from: 1, to: values.count, by: 2).map { values[$0] }
                let same = Set(revisions).count == 1 && Set(applied).count == 1
                if same && previous == values { return true }
                previous = same ? values : nil
            } else {
                previous = nil
            }
            try? await Task.sleep(for: .milliseconds(300))
        }
        return false
    }

    /// Reads every key linearizably after the clients stopped (recorded with `final: true`).
    func finalReads(endpoints: [String], recorder: ChaosRecorder, clock: ChaosClock) async throws {
        let config = SynodClientConfiguration(endpoints: endpoints, requestTimeout: .seconds(5),
                                              attemptTimeout: .seconds(2), retryBackoff: .milliseconds(100))
        try await withSynodClient(config) { client in
            for keyIndex in 0..<options.keys {
                let key = ChaosClients.keyName(keyIndex)
                for _ in 0..<5 {
                    var op = ChaosOperation(id: recorder.nextID(), client: -1, kind: .read, key: key,
                                            invokedNanos: clock.nanos(), endpoint: endpoints.first, final: true)
                    do {
                        let response = try await client.get(key)
                        op.completedNanos = clock.nanos()
                        let kv = response.kvs.first
                        op.readValue = kv.map { String(decoding: $0.value, as: UTF8.self) }
                        op.modRevision = kv?.modRevision
                        op.revision = response.header.revision
                        op.status = .ok
                        recorder.record(op)
                        break
                    } catch {
                        op.completedNanos = clock.nanos()
                        op.status = .fail
                        op.error = ChaosClients.describe(error)
                        recorder.record(op)
                        try Task.checkCancellation()
                    }
                }
            }
        }
    }

    /// Compares every voter's KV hash at the lowest revision all of them have. A learner
    /// refuses HashKV (as etcd's learners do), so one left unpromoted at the end is not
    /// compared (its applied slot and revision were, before this check).
    func replicaHashes(admin: ChaosAdmin, nodes: [Int], members: ChaosMembership) async -> (Bool, Int64, [String: UInt32]) {
        guard let client = try? admin.client() else { return (false, 0, [:]) }
        let learners = Set(members.learners)
        for index in nodes where learners.contains(index) {
            log("replica hashes: \(members.addresses[index].name) is a learner (HashKV is refused there, as etcd does): not compared")
        }
        let addresses = nodes.filter { !learners.contains($0) }.map { members.addresses[$0] }
        var revisions: [Int64] = []
        for address in addresses {
            if let status = try? await client.status(endpoint: address.clientURL) {
                revisions.append(status.header.revision)
            }
        }
        guard revisions.count == addresses.count, let revision = revisions.min() else {
            log("replica hashes: not every node answered status")
            return (false, 0, [:])
        }
        var hashes: [String: UInt32] = [:]
        var equal = true
        for address in addresses {
            do {
                let response = try await client.hashKV(endpoint: address.clientURL, revision: revision)
                hashes[address.name] = response.hash
            } catch {
                log("replica hashes: \(address.name): \(error)")
                equal = false
            }
        }
        if Set(hashes.values).count > 1 { equal = false }
        return (equal, revision, hashes)
    }

    func alarmList(admin: ChaosAdmin, members: ChaosMembership) async -> [String] {
        do {
            let response = try await admin.client().alarmList()
            let indexByMemberID = members.indexByMemberID
            return response.alarms.map { alarm in
                let node = indexByMemberID[alarm.memberID].map { "n\($0 + 1)" } ?? String(alarm.memberID, radix: 16)
                return "\(alarm.alarm) on \(node)"
            }
        } catch {
            log("warning: alarm list failed: \(error)")
            return []
        }
    }
}
