#if canImport(Glibc)
import Glibc
import SynodCore
import XCTest
@testable import SynodKV

/// A measurement, not a check: how many heap bytes the key space, the session table, the
/// encoded snapshot and a log of chosen commands cost per key. Runs only with
/// `SYNOD_MEMORY_KEYS=N` set (e.g. 100000); prints its numbers.
@_silgen_name("malloc_trim")
private func mallocTrim(_ pad: Int) -> Int32

final class MemoryFootprintTests: XCTestCase {
    /// Resident bytes after returning free heap pages to the system (glibc `malloc_trim`).
    private static func heapBytes() -> Int {
        _ = mallocTrim(0)
        return rssKiB() * 1024
    }

    private static func rssKiB() -> Int {
        guard let file = fopen("/proc/self/status", "r") else { return 0 }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 256)
        while fgets(&line, 256, file) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if text.hasPrefix("VmRSS:") {
                return Int(text.split(separator: " ").dropFirst().first ?? "0") ?? 0
            }
        }
        return 0
    }

    private static func key(_ i: Int) -> [UInt8] {
        // Like the bench's keys: a prefix and a zero-padded number, in random order.
        let n = (UInt64(i) &* 0x9E37_79B9_7F4A_7C15) % 10_000_000_000
        var digits = Array(String(n).utf8)
        while digits.count < 10 { digits.insert(UInt8(ascii: "0"), at: 0) }
        return Array("bench/".utf8) + digits
    }

    func testMeasureFootprint() throws {
        guard let text = ProcessInfo.processInfo.environment["SYNOD_MEMORY_KEYS"], let n = Int(text) else {
            throw XCTSkip("set SYNOD_MEMORY_KEYS=N to measure")
        }
        let value = [UInt8](repeating: 0x61, count: 256)
        func report(_ label: String, _ bytes: Int) {
            print(String(format: "MEM %-44@ %9.1f MiB  %7.1f B/key", label as NSString,
                         Double(bytes) / 1_048_576, Double(bytes) / Double(n)))
        }
        print("MEM layout HistoryEntry \(MemoryLayout<HistoryEntry>.stride) KeyValue \(MemoryLayout<KeyValue>.stride) "
              + "Session \(MemoryLayout<SessionTable<KVStateMachine.CommandResult>.Session>.stride) "
              + "KVResponse \(MemoryLayout<KVResponse>.stride) Command \(MemoryLayout<Command>.stride)")
        let start = Self.heapBytes()
        let rssStart = Self.rssKiB()

        // 1. The key space alone: one client, so the session table stays at one entry.
        var machine = KVStateMachine(sessionCapacity: 65_536)
        var payloads: [[UInt8]] = []
        payloads.reserveCapacity(n)
        for i in 0..<n { payloads.append(KVCommand.put(PutRequest(key: Self.key(i), value: value)).encoded()) }
        let afterPayloads = Self.heapBytes()
        report("command payloads (log of chosen commands)", afterPayloads - start)
        var slot: Slot = 0
        for i in 0..<n {
            if i % 8 == 0 { slot += 1 }
            _ = machine.apply(Command(clientID: 1, sequence: UInt64(i + 1), payload: payloads[i]), slot: slot)
        }
        let afterStore = Self.heapBytes()
        report("key space (\(machine.store.index.count) keys)", afterStore - afterPayloads)

        // 2. Sessions: a fresh client per command, as the server does for one-shot requests.
        for i in 0..<min(n, 65_536) {
            let command = Command(clientID: UInt64(i + 2), sequence: 1, payload: [])
            machine.sessions.record(command, result: .success(.put(PutResponse(revision: Int64(i), prevKv: nil))),
                                    slot: slot + 1 + Slot(i))
        }
        let afterSessions = Self.heapBytes()
        report("sessions (\(machine.sessions.sessions.count))", afterSessions - afterStore)

        // 3. The encoded snapshot, as the replica keeps it.
        let encodeStart = ContinuousClock.now
        let snapshot = machine.snapshot()
        let encodeTime = ContinuousClock.now - encodeStart
        let afterSnapshot = Self.heapBytes()
        report("snapshot bytes (\(snapshot.count) B, encode \(encodeTime))", afterSnapshot - afterSessions)

        // 4. Restart: decode.
        let decodeStart = ContinuousClock.now
        let restored = try KVStateMachine(snapshot: snapshot, sessionCapacity: 65_536)
        let decodeTime = ContinuousClock.now - decodeStart
        let afterRestore = Self.heapBytes()
        report("decoded copy (decode \(decodeTime))", afterRestore - afterSnapshot)
        XCTAssertEqual(restored.store.revision, machine.store.revision)
        print("MEM RSS \(rssStart) KiB -> \(Self.rssKiB()) KiB; heap total \(Double(afterRestore - start) / 1_048_576) MiB")
        withExtendedLifetime((payloads, machine, snapshot, restored)) {}
    }
}
#endif
