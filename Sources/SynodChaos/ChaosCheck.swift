import Foundation
import SynodCheck

/// The checks `synod chaos` runs on a recorded history, as pure functions so tests can feed
/// them hand-made histories.
public enum ChaosCheck {
    /// The checker's view of a chaos history: failed operations are dropped (they had no
    /// effect); unknown ones may have taken effect at any time after their invocation.
    public static func historyOperations(_ operations: [ChaosOperation]) -> [HistoryOperation] {
        var result: [HistoryOperation] = []
        result.reserveCapacity(operations.count)
        for op in operations {
            let operation: KVOperation
            switch op.kind {
            case .read: operation = .read(key: op.key)
            case .write: operation = .write(key: op.key, value: op.value ?? "")
            case .cas: operation = .compareAndSet(key: op.key, expected: op.expected, new: op.value ?? "")
            case .delete: operation = .delete(key: op.key)
            }
            let outcome: KVOutcome
            var completed: UInt64? = op.completedNanos
            switch op.status {
            case .fail:
                continue
            case .unknown:
                outcome = .unknown
                completed = nil
            case .ok:
                switch op.kind {
                case .read: outcome = .read(op.readValue)
                case .write, .delete: outcome = .written
                case .cas: outcome = .compareAndSet(op.casSucceeded ?? false)
                }
                if completed == nil { completed = op.invokedNanos }
            }
            result.append(HistoryOperation(id: op.id, client: op.client, operation: operation,
                                           invokedAt: op.invokedNanos, completedAt: completed, outcome: outcome))
        }
        return result
    }

    /// The result of the linearizability check.
    public struct LinearizabilityResult: Sendable {
        /// nil when the checker ran out of budget without finding a violation.
        public var linearizable: Bool?
        public var timedOutKeys: [String]
        public var violation: String?
        public var violationOperationIDs: [Int]
    }

    /// Runs the linearizability checker on the history.
    public static func linearizability(_ operations: [ChaosOperation],
                                       searchStepsMax: Int = 20_000_000) -> LinearizabilityResult {
        let checker = LinearizabilityChecker(initialValue: nil, searchStepsMax: searchStepsMax)
        switch checker.check(historyOperations(operations)) {
        case .linearizable:
            return LinearizabilityResult(linearizable: true, timedOutKeys: [], violation: nil, violationOperationIDs: [])
        case .violation(let violation):
            return LinearizabilityResult(linearizable: false, timedOutKeys: [], violation: violation.description,
                                         violationOperationIDs: violation.operations.map(\.id).sorted())
        case .timedOut(let key):
            return LinearizabilityResult(linearizable: nil, timedOutKeys: [key], violation: nil, violationOperationIDs: [])
        }
    }

    /// Acknowledged mutations that the final state does not reflect.
    ///
    /// - Globally: every acknowledged write, successful cas and delete carries the store revision
    ///   it produced (or saw); the final store revision must be at least the largest of them.
    /// - Per key: when the final read finds the key present with mod_revision M, every
    ///   acknowledged put, successful cas or delete of that key with a revision above M is lost
    ///   (any of them would have replaced or removed the value written at M).
    public static func lostAcknowledgedWrites(_ operations: [ChaosOperation]) -> [Int] {
        let finals = operations.filter { $0.final && $0.kind == .read && $0.status == .ok }
        guard !finals.isEmpty else { return [] }
        let finalRevision = finals.compactMap(\.revision).max() ?? 0
        var finalByKey: [String: ChaosOperation] = [:]
        for read in finals {
            if let existing = finalByKey[read.key], existing.invokedNanos >= read.invokedNanos { continue }
            finalByKey[read.key] = read
        }
        var lost = Set<Int>()
        for op in operations where op.status == .ok && !op.final {
            let mutation: Bool
            switch op.kind {
            case .write, .delete: mutation = true
            case .cas: mutation = op.casSucceeded == true
            case .read: mutation = false
            }
            guard mutation, let revision = op.revision else { continue }
            if revision > finalRevision {
                lost.insert(op.id)
                continue
            }
            if let final = finalByKey[op.key], final.readValue != nil, let modRevision = final.modRevision,
               revision > modRevision {
                lost.insert(op.id)
            }
        }
        return lost.sorted()
    }

    /// Operation counts by kind, then status.
    public static func operationCounts(_ operations: [ChaosOperation]) -> [String: [String: Int]] {
        var counts: [String: [String: Int]] = [:]
        for op in operations {
            counts[op.kind.rawValue, default: [:]][op.status.rawValue, default: 0] += 1
        }
        return counts
    }

    /// Nemesis event counts by kind.
    public static func nemesisCounts(_ events: [NemesisEvent]) -> [String: Int] {
        var counts: [String: Int] = [:]
        for event in events { counts[event.kind, default: 0] += 1 }
        return counts
    }

    /// The one-line verdict (`linearizable: true, lost acknowledged writes: 0, ...`).
    public static func verdictLine(_ verdict: ChaosVerdict) -> String {
        let linearizable = verdict.linearizable.map { $0 ? "true" : "false" } ?? "unknown"
        var byStatus: [String: Int] = [:]
        var total = 0
        for (_, statuses) in verdict.operationCounts {
            for (status, count) in statuses {
                byStatus[status, default: 0] += count
                total += count
            }
        }
        var grouped: [String: Int] = [:]
        for (kind, count) in verdict.nemesisCounts where kind != "heal" {
            let name = kind.hasPrefix("partition") ? "partition" : kind
            grouped[name, default: 0] += count
        }
        let order = ["kill", "pause", "stall", "partition", "netem", "crash-all", "crash-all-torn", "failpoint", "restart", "member-add",
                     "member-promote", "member-remove", "move-leader", "member-skip"]
        let names = grouped.keys.sorted { a, b in
            (order.firstIndex(of: a) ?? order.count, a) < (order.firstIndex(of: b) ?? order.count, b)
        }
        let nemesis = names.isEmpty ? "none" : names.map { "\($0) \(grouped[$0] ?? 0)" }.joined(separator: ", ")
        return "linearizable: \(linearizable), lost acknowledged writes: \(verdict.lostAcknowledgedWrites), "
            + "replica hashes equal: \(verdict.replicaHashesEqual), alarms: \(verdict.alarms.count), "
            + "ops: \(total) (ok \(byStatus["ok"] ?? 0), unknown \(byStatus["unknown"] ?? 0), fail \(byStatus["fail"] ?? 0)), "
            + "nemesis: \(nemesis), "
            + (verdict.finalMembers.map { "members: \($0.joined(separator: ",")), " } ?? "")
            + (verdict.membershipProblem.map { "membership: \($0), " } ?? "")
            + "seed: \(verdict.seed)"
    }

    /// Adds the membership outcome of a run that changes the membership: the final members
    /// go into the verdict line, and a problem fails the run.
    public static func addMembership(to verdict: inout ChaosVerdict, finalMembers: [String], summary: String,
                                     problem: String?) {
        verdict.finalMembers = finalMembers
        verdict.membership = summary
        verdict.membershipProblem = problem
        if problem != nil { verdict.failed = true }
        verdict.line = verdictLine(verdict)
    }

    /// Builds the verdict from the history and the end-of-run observations.
    public static func verdict(operations: [ChaosOperation], nemesis: [NemesisEvent], replicaHashesEqual: Bool,
                               hashRevision: Int64, replicaHashes: [String: UInt32], alarms: [String],
                               durationSeconds: Double, seed: UInt64, strict: Bool,
                               searchStepsMax: Int = 20_000_000) -> ChaosVerdict {
        let linear = linearizability(operations, searchStepsMax: searchStepsMax)
        let lost = lostAcknowledgedWrites(operations)
        var verdict = ChaosVerdict(
            linearizable: linear.linearizable, checkTimedOutKeys: linear.timedOutKeys, violation: linear.violation,
            violationOperationIDs: linear.violationOperationIDs, lostAcknowledgedWrites: lost.count,
            lostOperationIDs: lost, replicaHashesEqual: replicaHashesEqual, hashRevision: hashRevision,
            replicaHashes: replicaHashes, alarms: alarms, operationCounts: operationCounts(operations),
            nemesisCounts: nemesisCounts(nemesis), durationSeconds: durationSeconds, seed: seed)
        verdict.failed = linear.linearizable == false || (strict && linear.linearizable == nil) || !lost.isEmpty
            || !replicaHashesEqual || !alarms.isEmpty
        verdict.line = verdictLine(verdict)
        return verdict
    }
}
