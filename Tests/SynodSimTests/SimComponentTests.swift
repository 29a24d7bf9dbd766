@testable import SynodSim
import SynodCheck
import SynodCore
import SynodKV
import SynodNode
import XCTest

/// The simulated clients speak etcd commands to the SynodKV state machine that ships.
final class SimComponentTests: XCTestCase {
    private func apply(_ operation: KVOperation, to kv: inout KVStateMachine, requestID: UInt64, slot: Slot) -> KVStateMachine.Outcome {
        let command = try! XCTUnwrap(ClientWrite.command(for: operation))
        let write = ClientWrite(payload: command.encoded(), requestID: requestID)
        return kv.apply(Command(clientID: write.key.clientID, sequence: 1, payload: write.payload), slot: slot).outcome
    }

    func testClientOperationsAreEtcdCommandsAppliedOnce() throws {
        var kv = KVStateMachine(sessionCapacity: 16)
        guard case .applied(.success(.put)) = apply(.write(key: "a", value: "x"), to: &kv, requestID: 1, slot: 1) else {
            return XCTFail("put")
        }
        // The same request (a retry) maps to the same session and is not applied twice.
        guard case .duplicate = apply(.write(key: "a", value: "x"), to: &kv, requestID: 1, slot: 2) else {
            return XCTFail("a retry must be a duplicate")
        }
        XCTAssertEqual(kv.store.revision, 2, "one put, one revision after the first")
        guard case .applied(.success(.txn(let hit))) = apply(.compareAndSet(key: "a", expected: "x", new: "y"), to: &kv, requestID: 2, slot: 3),
              case .applied(.success(.txn(let miss))) = apply(.compareAndSet(key: "a", expected: "x", new: "z"), to: &kv, requestID: 3, slot: 4),
              case .applied(.success(.txn(let absent))) = apply(.compareAndSet(key: "b", expected: nil, new: "n"), to: &kv, requestID: 4, slot: 5)
        else { return XCTFail("compare-and-set") }
        XCTAssertTrue(hit.succeeded)
        XCTAssertFalse(miss.succeeded)
        XCTAssertTrue(absent.succeeded, "compare-and-set on an absent key: create revision 0")
        guard case .applied(.success(.deleteRange)) = apply(.delete(key: "a"), to: &kv, requestID: 5, slot: 6) else {
            return XCTFail("delete")
        }
        XCTAssertNil(try kv.store.range(RangeRequest(key: Array("a".utf8))).kvs.first)
        XCTAssertEqual(try kv.store.range(RangeRequest(key: Array("b".utf8))).kvs.first?.value, Array("n".utf8))
        XCTAssertNil(ClientWrite.command(for: .read(key: "a")))
    }
}
