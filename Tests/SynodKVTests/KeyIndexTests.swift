import SynodCore
import XCTest
@testable import SynodKV

/// The chunked key index against a plain sorted array, with chunks small enough to split often.
final class KeyIndexTests: XCTestCase {
    private func entry(_ main: Int64) -> HistoryEntry {
        HistoryEntry(revision: Revision(main: main), isTombstone: false, value: [UInt8(truncatingIfNeeded: main)],
                     lease: 0, createRevision: main, version: 1)
    }

    func testMatchesSortedArrayModel() {
        var random = SplitMix64(seed: 7)
        for chunkKeysMax in [2, 3, 4, 8] {
            var index = KeyIndex(chunkKeysMax: chunkKeysMax)
            var model: [([UInt8], [HistoryEntry])] = []
            for step in 1...400 {
                let key = Array("k\(random.next() % 150)".utf8)
                let written = entry(Int64(step))
                index.append(written, to: key)
                if let at = model.firstIndex(where: { $0.0 == key }) {
                    model[at].1.append(written)
                } else {
                    let at = model.firstIndex { !$0.0.lexicographicallyPrecedes(key) } ?? model.count
                    model.insert((key, [written]), at: at)
                }
                if step % 50 == 0 { check(index, model) }
            }
            check(index, model)
            // Ranges and lookups.
            for probe in ["k", "k1", "k10", "k5", "k99", "l", "a"] {
                let key = Array(probe.utf8)
                let expected = model.firstIndex { !$0.0.lexicographicallyPrecedes(key) } ?? model.count
                XCTAssertEqual(index.lowerBound(key), expected)
                XCTAssertEqual(index.history(for: key)?.entries, model.first { $0.0 == key }?.1)
                let single = index.positions(in: .single(key))
                XCTAssertEqual(single.count, model.contains { $0.0 == key } ? 1 : 0)
                let upper = Array("k5".utf8)
                let interval = index.positions(in: .interval(lower: key, upper: upper))
                let modelInterval = model.indices.filter { KeyRange.interval(lower: key, upper: upper).contains(model[$0].0) }
                XCTAssertEqual(Array(interval), modelInterval)
            }
            // A rebuilt index (other chunking) is equal and hashes equal.
            var restored = KeyIndex(chunkKeysMax: 5)
            for (key, entries) in model { XCTAssertTrue(restored.appendRestored(key: key, history: KeyHistory(entries: entries)!)) }
            XCTAssertEqual(restored, index)
            XCTAssertEqual(restored.hashValue, index.hashValue)
            XCTAssertFalse(restored.appendRestored(key: model[0].0, history: KeyHistory(entry(1))))
            // Compaction-style rewrite dropping every other key.
            var dropped = 0
            index.rewrite { history in
                dropped += 1
                return dropped % 2 == 0 ? nil : history
            }
            let kept = model.enumerated().filter { ($0.offset + 1) % 2 != 0 }.map(\.element)
            check(index, kept)
            XCTAssertNotEqual(index, restored)
        }
    }

    private func check(_ index: KeyIndex, _ model: [([UInt8], [HistoryEntry])], line: UInt = #line) {
        XCTAssertEqual(index.count, model.count, line: line)
        for (position, (key, entries)) in model.enumerated() {
            XCTAssertEqual(index.key(at: position), key, line: line)
            XCTAssertEqual(index.history(at: position).entries, entries, line: line)
        }
    }
}

/// The per-key sizes the key index was laid out for (see `HistoryEntry`): a member holds one
/// history per key, so a byte here is two megabytes at two million keys.
final class MemoryLayoutTests: XCTestCase {
    func testAHistoryOfOneWriteTakesNoMoreThanTheWrite() {
        XCTAssertEqual(MemoryLayout<HistoryEntry>.stride, 48)
        XCTAssertEqual(MemoryLayout<KeyHistory>.stride, 48)
    }
}
