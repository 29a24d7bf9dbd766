import SynodCheck
import XCTest
@testable import SynodChaos

final class ChaosCheckTests: XCTestCase {
    private func op(_ id: Int, client: Int = 0, _ kind: ChaosOperationKind, _ key: String = "k0", value: String? = nil,
                    expected: String? = nil, from: UInt64, to: UInt64?, status: ChaosOperationStatus = .ok,
                    read: String? = nil, cas: Bool? = nil, revision: Int64? = nil, mod: Int64? = nil,
                    final: Bool = false) -> ChaosOperation {
        ChaosOperation(id: id, client: client, kind: kind, key: key, value: value, expected: expected, invokedNanos: from,
                       completedNanos: to, status: status, readValue: read, casSucceeded: cas, revision: revision,
                       modRevision: mod, final: final)
    }

    func testConversionToCheckerInput() {
        let history = [
            op(0, .write, value: "a", from: 1, to: 2, revision: 2),
            op(1, .read, from: 3, to: 4, read: "a", revision: 2, mod: 2),
            op(2, .cas, value: "b", expected: "a", from: 5, to: 6, cas: true, revision: 3),
            op(3, .delete, from: 7, to: nil, status: .unknown),
            op(4, .read, from: 8, to: 9, status: .fail),
            op(5, .cas, value: "c", expected: nil, from: 10, to: 11, cas: false, revision: 3),
        ]
        let converted = ChaosCheck.historyOperations(history)
        XCTAssertEqual(converted.map(\.id), [0, 1, 2, 3, 5], "failed reads are dropped")
        XCTAssertEqual(converted[0].operation, .write(key: "k0", value: "a"))
        XCTAssertEqual(converted[0].outcome, .written)
        XCTAssertEqual(converted[1].outcome, .read("a"))
        XCTAssertEqual(converted[2].operation, .compareAndSet(key: "k0", expected: "a", new: "b"))
        XCTAssertEqual(converted[2].outcome, .compareAndSet(true))
        XCTAssertEqual(converted[3].operation, .delete(key: "k0"))
        XCTAssertEqual(converted[3].outcome, .unknown)
        XCTAssertNil(converted[3].completedAt)
        XCTAssertEqual(converted[4].operation, .compareAndSet(key: "k0", expected: nil, new: "c"))
        XCTAssertEqual(converted[4].outcome, .compareAndSet(false))
        XCTAssertEqual(ChaosCheck.linearizability(history).linearizable, true)
    }

    func testStaleReadIsNotLinearizable() {
        // w(a) completes, w(b) completes, then a later read still sees a: a stale read.
        let history = [
            op(0, .write, value: "a", from: 1, to: 2, revision: 2),
            op(1, client: 1, .write, value: "b", from: 3, to: 4, revision: 3),
            op(2, client: 2, .read, from: 5, to: 6, read: "a", revision: 2, mod: 2),
        ]
        let result = ChaosCheck.linearizability(history)
        XCTAssertEqual(result.linearizable, false)
        XCTAssertTrue(result.violationOperationIDs.contains(2), "\(result.violationOperationIDs)")
        XCTAssertNotNil(result.violation)
        let verdict = ChaosCheck.verdict(operations: history, nemesis: [], replicaHashesEqual: true, hashRevision: 3,
                                         replicaHashes: [:], alarms: [], durationSeconds: 1, seed: 9, strict: false)
        XCTAssertTrue(verdict.failed)
        XCTAssertTrue(verdict.line.hasPrefix("linearizable: false, lost acknowledged writes: 0"), verdict.line)
        XCTAssertTrue(verdict.line.hasSuffix("seed: 9"), verdict.line)
    }

    func testUnknownWriteMayExplainARead() {
        let history = [
            op(0, .write, value: "a", from: 1, to: nil, status: .unknown),
            op(1, client: 1, .read, from: 5, to: 6, read: "a", revision: 2, mod: 2),
        ]
        XCTAssertEqual(ChaosCheck.linearizability(history).linearizable, true)
    }

    func testLostAcknowledgedWrites() {
        let history = [
            op(0, .write, "k0", value: "a", from: 1, to: 2, revision: 5),
            // Acknowledged at revision 7, but the final read shows k0 last modified at 5: lost.
            op(1, client: 1, .write, "k0", value: "b", from: 3, to: 4, revision: 7),
            op(2, client: 2, .cas, "k1", value: "x", expected: nil, from: 3, to: 4, cas: true, revision: 6),
            // A failed cas writes nothing: never lost.
            op(3, client: 2, .cas, "k1", value: "y", expected: "q", from: 5, to: 6, cas: false, revision: 9),
            // Acknowledged at revision 12 but the store ended at revision 8: lost (globally).
            op(4, client: 3, .write, "k2", value: "z", from: 5, to: 6, revision: 12),
            // Unknown writes can be lost without harm.
            op(5, client: 3, .write, "k0", value: "u", from: 7, to: nil, status: .unknown),
            op(6, client: -1, .read, "k0", from: 20, to: 21, read: "a", revision: 8, mod: 5, final: true),
            op(7, client: -1, .read, "k1", from: 22, to: 23, read: "x", revision: 8, mod: 6, final: true),
            op(8, client: -1, .read, "k2", from: 24, to: 25, read: nil, revision: 8, final: true),
        ]
        XCTAssertEqual(ChaosCheck.lostAcknowledgedWrites(history), [1, 4])
        let verdict = ChaosCheck.verdict(operations: history, nemesis: [], replicaHashesEqual: true, hashRevision: 8,
                                         replicaHashes: [:], alarms: [], durationSeconds: 1, seed: 1, strict: false)
        XCTAssertEqual(verdict.lostAcknowledgedWrites, 2)
        XCTAssertTrue(verdict.failed)
    }

    func testNoLostWritesWhenFinalStateMatches() {
        let history = [
            op(0, .write, "k0", value: "a", from: 1, to: 2, revision: 2),
            op(1, .delete, "k0", from: 3, to: 4, revision: 3),
            op(2, .write, "k0", value: "b", from: 5, to: 6, revision: 4),
            op(3, client: -1, .read, "k0", from: 7, to: 8, read: "b", revision: 4, mod: 4, final: true),
        ]
        XCTAssertEqual(ChaosCheck.lostAcknowledgedWrites(history), [])
        let verdict = ChaosCheck.verdict(operations: history, nemesis: [], replicaHashesEqual: true, hashRevision: 4,
                                         replicaHashes: [:], alarms: [], durationSeconds: 1, seed: 1, strict: false)
        XCTAssertFalse(verdict.failed, verdict.line)
        XCTAssertEqual(verdict.operationCounts["write"]?["ok"], 2)
    }

    func testVerdictFailsOnHashesAndAlarms() {
        let history = [op(0, .write, value: "a", from: 1, to: 2, revision: 2)]
        let unequal = ChaosCheck.verdict(operations: history, nemesis: [], replicaHashesEqual: false, hashRevision: 2,
                                         replicaHashes: ["n1": 1, "n2": 2], alarms: [], durationSeconds: 1, seed: 1,
                                         strict: false)
        XCTAssertTrue(unequal.failed)
        let alarmed = ChaosCheck.verdict(operations: history, nemesis: [], replicaHashesEqual: true, hashRevision: 2,
                                         replicaHashes: [:], alarms: ["CORRUPT on n2"], durationSeconds: 1, seed: 1,
                                         strict: false)
        XCTAssertTrue(alarmed.failed)
        XCTAssertTrue(alarmed.line.contains("alarms: 1"), alarmed.line)
    }

    func testVerdictLineGroupsPartitions() {
        let events = [
            NemesisEvent(id: 0, kind: "kill", nodes: [0], detail: "", startNanos: 0),
            NemesisEvent(id: 1, kind: "partition-split", nodes: [0], detail: "", startNanos: 0),
            NemesisEvent(id: 2, kind: "partition-isolate", nodes: [0], detail: "", startNanos: 0),
            NemesisEvent(id: 3, kind: "heal", nodes: [0], detail: "", startNanos: 0),
        ]
        let verdict = ChaosCheck.verdict(operations: [], nemesis: events, replicaHashesEqual: true, hashRevision: 0,
                                         replicaHashes: [:], alarms: [], durationSeconds: 1, seed: 42, strict: false)
        XCTAssertEqual(verdict.line, "linearizable: true, lost acknowledged writes: 0, replica hashes equal: true, "
            + "alarms: 0, ops: 0 (ok 0, unknown 0, fail 0), nemesis: kill 1, partition 2, seed: 42")
    }

    func testScheduleDependsOnlyOnSeed() {
        let kinds = NemesisKind.all
        let a = NemesisSchedule.plan(seed: 42, kinds: kinds, nodes: 5, durationSeconds: 120, intervalSeconds: 5)
        let b = NemesisSchedule.plan(seed: 42, kinds: kinds, nodes: 5, durationSeconds: 120, intervalSeconds: 5)
        let c = NemesisSchedule.plan(seed: 43, kinds: kinds, nodes: 5, durationSeconds: 120, intervalSeconds: 5)
        XCTAssertGreaterThan(a.count, 5)
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a, c)
        // Faults never overlap and end a second before the run does.
        for (previous, next) in zip(a, a.dropFirst()) {
            XCTAssertLessThanOrEqual(previous.startNanos + previous.holdNanos, next.startNanos)
        }
        if let last = a.last { XCTAssertLessThanOrEqual(last.startNanos + last.holdNanos, 119_000_000_000) }
        XCTAssertEqual(Set(a.map(\.kind)).count > 2, true)
        XCTAssertEqual(NemesisSchedule.plan(seed: 42, kinds: [], nodes: 3, durationSeconds: 60, intervalSeconds: 5), [])
    }

    func testOptionParsing() throws {
        XCTAssertEqual(try NemesisKind.parseList("none"), [])
        XCTAssertEqual(try NemesisKind.parseList("all"), NemesisKind.all)
        XCTAssertFalse(NemesisKind.all.contains(where: \.changesMembership), "membership changes are asked for by name")
        XCTAssertEqual(try NemesisKind.parseList("membership,kill,partition"), [.membership, .kill, .partition])
        XCTAssertEqual(try NemesisKind.parseList("replace"), [.replace])
        XCTAssertEqual(try NemesisKind.parseList("kill,crash-all"), [.kill, .crashAll])
        XCTAssertThrowsError(try NemesisKind.parseList("kill,meteor"))
        XCTAssertEqual(ChaosClients.rotated(["a", "b", "c"], preferring: 4), ["b", "c", "a"])
    }
}
