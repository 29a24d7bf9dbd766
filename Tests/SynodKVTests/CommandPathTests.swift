import SynodCore
import XCTest
@testable import SynodKV

/// The full command path: leases, compaction and txns applied through `KVStateMachine`.
final class CommandPathTests: XCTestCase {
    private var machine = KVStateMachine()
    private var sequence: UInt64 = 0

    @discardableResult
    private func run(_ command: KVCommand) -> KVStateMachine.Output {
        sequence += 1
        return machine.apply(Command(clientID: 1, sequence: sequence, payload: command.encoded()), slot: Slot(sequence))
    }

    func testLeaseLifecycleThroughCommands() throws {
        XCTAssertEqual(run(.leaseGrant(id: 10, ttlSeconds: 5)).outcome,
                       .applied(.success(.leaseGrant(id: 10, ttlSeconds: 5, revision: 1))))
        XCTAssertEqual(run(.leaseGrant(id: 10, ttlSeconds: 5)).outcome, .applied(.failure(.leaseExists)))
        run(.put(PutRequest(key: b("a"), value: b("1"), lease: 10)))
        run(.put(PutRequest(key: b("b"), value: b("1"), lease: 10)))
        XCTAssertEqual(run(.leaseKeepAlive(id: 10)).outcome,
                       .applied(.success(.leaseKeepAlive(id: 10, ttlSeconds: 5, revision: 3))),
                       "a keep-alive proves the lease exists and changes no key")
        XCTAssertEqual(run(.leaseKeepAlive(id: 11)).outcome, .applied(.failure(.leaseNotFound)))
        let revoke = run(.leaseRevoke(id: 10))
        XCTAssertEqual(revoke.outcome, .applied(.success(.leaseRevoke(revision: 4))))
        XCTAssertEqual(revoke.events.map(\.kind), [.delete, .delete])
        XCTAssertEqual(Set(revoke.events.map(\.kv.modRevision)), [4])
        XCTAssertEqual(machine.store.leaseIDs, [])
    }

    func testCompactAndTxnThroughCommands() throws {
        run(.put(PutRequest(key: b("a"), value: b("1"))))
        run(.put(PutRequest(key: b("a"), value: b("2"))))
        XCTAssertEqual(run(.compact(revision: 3)).outcome, .applied(.success(.compact(revision: 3))))
        XCTAssertEqual(run(.compact(revision: 2)).outcome, .applied(.failure(.compacted)))
        XCTAssertEqual(run(.compact(revision: 9)).outcome, .applied(.failure(.futureRevision)))
        let txn = TxnRequest(compare: [Compare(key: b("a"), result: .equal, target: .value(b("2")))],
                             success: [.put(PutRequest(key: b("b"), value: b("x"))),
                                       .range(RangeRequest(key: b("a"), revision: 2))])
        XCTAssertEqual(run(.txn(txn)).outcome, .applied(.failure(.compacted)),
                       "a read of a compacted revision fails the whole txn")
        XCTAssertNil(try machine.store.get("b"))
        XCTAssertEqual(machine.store.revision, 3)
    }

    func testGRPCStatusCodes() {
        XCTAssertEqual(KVError.emptyKey.grpcStatusCode, 3)
        XCTAssertEqual(KVError.duplicateKey.grpcStatusCode, 3)
        XCTAssertEqual(KVError.leaseNotFound.grpcStatusCode, 5)
        XCTAssertEqual(KVError.leaseExists.grpcStatusCode, 9)
        XCTAssertEqual(KVError.leaseTTLTooLarge.grpcStatusCode, 11)
        XCTAssertEqual(KVError.compacted.grpcStatusCode, 11)
        XCTAssertEqual(KVError.futureRevision.grpcStatusCode, 11)
    }

    func testEveryErrorSurvivesASnapshotInTheSessionTable() throws {
        var machine = KVStateMachine()
        var table = machine.sessions
        for (i, error) in KVError.allCases.enumerated() {
            table.record(Command(clientID: UInt64(i), sequence: 1, payload: []), result: .failure(error), slot: 1)
        }
        machine.sessions = table
        let restored = try KVStateMachine(snapshot: machine.snapshot())
        XCTAssertEqual(restored.sessions, machine.sessions)
        XCTAssertEqual(restored.sessions.sessions.count, KVError.allCases.count)
    }

    func testSnapshotRejectsValuesThatWouldOverflowLater() throws {
        var machine = KVStateMachine()
        machine.store.revision = Int64.max
        XCTAssertThrowsError(try KVStateMachine(snapshot: machine.snapshot())) { error in
            XCTAssertEqual(error as? KVDecodingError, .invalid)
        }
        XCTAssertThrowsError(try KVStateMachine(snapshot: [])) { error in
            XCTAssertEqual(error as? KVDecodingError, .truncated)
        }
        XCTAssertThrowsError(try KVStateMachine(snapshot: [7])) { error in
            XCTAssertEqual(error as? KVDecodingError, .unsupportedVersion(7))
        }
    }
}

final class EventConsistencyTests: XCTestCase {
    /// The events an apply returns are exactly what a watch replaying that revision would see.
    func testLiveEventsEqualReplayedHistory() throws {
        var random = RandomCommands(seed: 31)
        var machine = KVStateMachine()
        var checked = 0
        for i in 1...600 {
            let command = Command(clientID: 1, sequence: UInt64(i), payload: random.command().encoded())
            let output = machine.apply(command, slot: Slot(i))
            guard let revision = output.events.first?.kv.modRevision else { continue }
            XCTAssertEqual(revision, machine.store.revision)
            XCTAssertTrue(output.events.allSatisfy { $0.kv.modRevision == revision })
            let replayed = try machine.store.events(from: revision, key: [0], rangeEnd: [0])
            XCTAssertEqual(replayed, output.events, "command \(i)")
            checked += 1
        }
        XCTAssertGreaterThan(checked, 100)
    }
}
