@testable import SynodSim
import SynodCore
import XCTest

/// The simulator's own state machine.
final class SimComponentTests: XCTestCase {
    func testStateMachineAppliesOnceAndRoundTripsThroughSnapshots() throws {
        var kv = SimKV()
        let put = Command(clientID: 7, sequence: 1, payload: KVCommand.put(key: "a", value: "x").encoded())
        XCTAssertEqual(kv.apply(put, slot: 1), .applied(.ok))
        XCTAssertEqual(kv.apply(put, slot: 2), .duplicate(.ok), "a retried command is not applied twice")
        let cas = Command(clientID: 7, sequence: 2, payload: KVCommand.compareAndSet(key: "a", expected: "x", new: "y").encoded())
        XCTAssertEqual(kv.apply(cas, slot: 3), .applied(.compareAndSet(true)))
        XCTAssertEqual(kv.apply(put, slot: 4), .stale)
        XCTAssertEqual(kv.values["a"], "y")
        let restored = try XCTUnwrap(SimKV.decode(kv.encoded()))
        XCTAssertEqual(restored.values, kv.values)
        XCTAssertEqual(restored.sessions, kv.sessions)
        XCTAssertEqual(restored.stateHash, kv.stateHash)
        let bytes = kv.encoded()
        for cut in 0..<bytes.count { XCTAssertNil(SimKV.decode(Array(bytes.prefix(cut))), "truncated at \(cut)") }
        XCTAssertNil(KVCommand.decode([9, 0, 0]))
    }
}
