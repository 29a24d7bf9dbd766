import XCTest
import SynodCore

final class SessionTableTests: XCTestCase {
    private func command(_ client: UInt64, _ sequence: UInt64) -> Command {
        Command(clientID: client, sequence: sequence, payload: [])
    }

    func testRetriedCommandIsAnsweredFromTheTableNotAppliedAgain() {
        var table = SessionTable<String>()
        XCTAssertEqual(table.decide(command(1, 1)), .apply)
        table.record(command(1, 1), result: "ok-1", slot: 3)
        XCTAssertEqual(table.decide(command(1, 1)), .duplicate("ok-1"))
        XCTAssertEqual(table.decide(command(1, 2)), .apply)
        table.record(command(1, 2), result: "ok-2", slot: 4)
        XCTAssertEqual(table.decide(command(1, 1)), .stale, "the client moved on")
        XCTAssertEqual(table.decide(command(2, 1)), .apply, "sessions are per client")
    }

    func testEvictionDropsTheOldestSlotAndIsTheSameOnEveryReplica() {
        // Two replicas record the same commands in the same slots, in different orders of
        // dictionary history; they must evict the same client.
        var first = SessionTable<Int>(capacity: 2), second = SessionTable<Int>(capacity: 2)
        first.record(command(7, 1), result: 0, slot: 1)
        first.record(command(3, 1), result: 0, slot: 2)
        second.restore(clientID: 3, session: .init(sequence: 1, result: 0, slot: 2))
        second.restore(clientID: 7, session: .init(sequence: 1, result: 0, slot: 1))
        first.record(command(5, 1), result: 0, slot: 3)
        second.record(command(5, 1), result: 0, slot: 3)
        XCTAssertEqual(first.sortedSessions.map(\.clientID), [3, 5])
        XCTAssertEqual(second.sortedSessions.map(\.clientID), [3, 5])
        XCTAssertEqual(first, second)
    }

    func testHeapEvictionMatchesTheOldestSlotRuleOnRandomWorkloads() {
        // Reference: evict min (slot, client id) by scanning, the rule the heap must reproduce.
        var rng = SplitMix64(seed: 42)
        for round in 0..<20 {
            let capacity = 1 + Int(rng.next() % 8)
            var table = SessionTable<Int>(capacity: capacity)
            var reference: [UInt64: (sequence: UInt64, slot: Slot)] = [:]
            var slot: Slot = 0
            for _ in 0..<300 {
                if rng.next() % 3 == 0 { slot += 1 }
                let client = rng.next() % 12
                let sequence = (reference[client]?.sequence ?? 0) + 1
                table.record(command(client, sequence), result: 0, slot: slot)
                reference[client] = (sequence, slot)
                if reference.count > capacity,
                   let oldest = reference.min(by: { ($0.value.slot, $0.key) < ($1.value.slot, $1.key) }) {
                    reference.removeValue(forKey: oldest.key)
                }
                XCTAssertEqual(table.sortedSessions.map(\.clientID), reference.keys.sorted(), "round \(round)")
            }
        }
    }
}
