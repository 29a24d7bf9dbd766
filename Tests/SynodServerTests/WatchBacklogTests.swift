import SynodKV
import XCTest
@testable import SynodServer

/// A slow watch client cannot make the node hold more than a bounded backlog: the watch falls
/// behind, catches up from history without a gap or a duplicate once its client reads again,
/// or is canceled when the history it needs was compacted meanwhile.
final class WatchBacklogTests: XCTestCase {
    private func key(_ text: String) -> [UInt8] { Array(text.utf8) }

    /// Reads what the stream holds now (the registry yields synchronously, so it is all there).
    private func drain(_ iterator: inout AsyncStream<WatchDelivery>.AsyncIterator, count: Int,
                       backlog: WatchBacklog) async -> [WatchDelivery] {
        var deliveries: [WatchDelivery] = []
        for _ in 0..<count {
            guard let delivery = await iterator.next() else { break }
            if case .events(let events, _) = delivery { backlog.written(WatchBacklog.size(of: events)) }
            deliveries.append(delivery)
        }
        return deliveries
    }

    /// Puts `count` values over `keys` keys and publishes each put's events; returns how many
    /// puts the watch received (its backlog grew).
    private func putLarge(_ count: Int, keys: Int, value: [UInt8], kv: inout KVStateMachine,
                          registry: inout WatcherRegistry, backlog: WatchBacklog) -> Int {
        var delivered = 0
        for i in 0..<count {
            let (_, events) = kv.apply(.put(PutRequest(key: key("k\(i % keys)"), value: value)))
            let before = backlog.value
            registry.publish(events, revision: kv.store.revision)
            if backlog.value > before { delivered += 1 }
        }
        return delivered
    }

    private func revisions(_ deliveries: [WatchDelivery]) -> [Int64] {
        deliveries.flatMap { delivery -> [Int64] in
            if case .events(let events, _) = delivery { return events.map(\.kv.modRevision) }
            return []
        }
    }

    func testSlowWatchFallsBehindThenCatchesUpWithoutAGap() async throws {
        var kv = KVStateMachine(sessionCapacity: 16)
        var registry = WatcherRegistry()
        let (stream, continuation) = AsyncStream<WatchDelivery>.makeStream()
        let backlog = WatchBacklog()
        _ = registry.add(WatchFilter(key: key("k"), rangeEnd: key("l")), continuation: continuation, backlog: backlog)
        // 100 KiB values, never read: the watch stops receiving past 4 MiB waiting.
        let value = [UInt8](repeating: 0x61, count: 100 << 10)
        let delivered = putLarge(200, keys: 5, value: value, kv: &kv, registry: &registry, backlog: backlog)
        XCTAssertEqual(registry.behindCount, 1, "the watch fell behind")
        XCTAssertLessThanOrEqual(backlog.value, WatcherRegistry.backlogBytesMax + WatchBacklog.size(of: [WatchEvent(
            kind: .put, kv: KeyValue(key: key("k0"), value: value), prevKv: KeyValue(key: key("k0"), value: value), sub: 0)]))
        XCTAssertLessThan(delivered, 60, "no more than the backlog's worth was handed to the stream")
        // The client reads what it was given; the watch then catches up from history.
        var iterator = stream.makeAsyncIterator()
        var seen = revisions(await drain(&iterator, count: delivered, backlog: backlog))
        for _ in 0..<20 where registry.behindCount > 0 {
            registry.catchUp(store: kv.store)
            let pending = backlog.value
            if pending > 0 { seen += revisions(await drain(&iterator, count: 1, backlog: backlog)) }
        }
        XCTAssertEqual(registry.behindCount, 0, "caught up")
        // Live again: the next put arrives directly.
        let (_, events) = kv.apply(.put(PutRequest(key: key("k9"), value: key("live"))))
        registry.publish(events, revision: kv.store.revision)
        seen += revisions(await drain(&iterator, count: 1, backlog: backlog))
        XCTAssertEqual(seen, Array(2...202), "every revision once, in order")
        XCTAssertEqual(backlog.value, 0)
    }

    func testBehindWatchWhoseHistoryWasCompactedIsCanceled() async throws {
        var kv = KVStateMachine(sessionCapacity: 16)
        var registry = WatcherRegistry()
        let (stream, continuation) = AsyncStream<WatchDelivery>.makeStream()
        let backlog = WatchBacklog()
        _ = registry.add(WatchFilter(key: key("k"), rangeEnd: key("l")), continuation: continuation, backlog: backlog)
        _ = putLarge(100, keys: 3, value: [UInt8](repeating: 0x62, count: 100 << 10), kv: &kv, registry: &registry, backlog: backlog)
        XCTAssertEqual(registry.behindCount, 1)
        _ = kv.apply(.compact(revision: kv.store.revision))
        var iterator = stream.makeAsyncIterator()
        var deliveries: [WatchDelivery] = []
        while backlog.value > 0, let delivery = await iterator.next() {
            if case .events(let events, _) = delivery { backlog.written(WatchBacklog.size(of: events)) }
            deliveries.append(delivery)
        }
        registry.catchUp(store: kv.store)
        XCTAssertEqual(registry.count, 0, "the watch is gone")
        guard case .canceled(let reason, let compactRevision)? = await iterator.next() else {
            return XCTFail("expected a cancellation")
        }
        XCTAssertEqual(reason, "etcdserver: mvcc: required revision has been compacted")
        XCTAssertEqual(compactRevision, kv.store.compactRevision)
        let end = await iterator.next()
        XCTAssertNil(end, "the stream ends")
    }

    /// The control: without a backlog bound a watch that is never read would hold every event.
    func testAWatchThatKeepsUpNeverFallsBehind() async throws {
        var kv = KVStateMachine(sessionCapacity: 16)
        var registry = WatcherRegistry()
        let (stream, continuation) = AsyncStream<WatchDelivery>.makeStream()
        let backlog = WatchBacklog()
        _ = registry.add(WatchFilter(key: key("k"), rangeEnd: key("l")), continuation: continuation, backlog: backlog)
        var iterator = stream.makeAsyncIterator()
        var seen: [Int64] = []
        let value = [UInt8](repeating: 0x63, count: 100 << 10)
        for i in 0..<200 {
            let (_, events) = kv.apply(.put(PutRequest(key: key("k\(i % 5)"), value: value)))
            registry.publish(events, revision: kv.store.revision)
            seen += revisions(await drain(&iterator, count: 1, backlog: backlog))
        }
        XCTAssertEqual(registry.behindCount, 0)
        XCTAssertEqual(seen, Array(2...201))
    }
}
