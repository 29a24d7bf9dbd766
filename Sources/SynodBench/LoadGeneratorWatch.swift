import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Synchronization
import SynodCore
import SynodEtcdAPI

/// The `watch` workload: ``BenchOptions/watchers`` watch streams on the key prefix, one writer
/// putting values whose first 8 bytes are the put's start time (monotonic nanoseconds, little
/// endian). A watcher records, per event, the time from that put's start to the event's arrival;
/// operations are events received, summed over the watchers.
///
/// The writer runs closed loop (or at ``BenchOptions/rate``) for the duration, or for
/// ``BenchOptions/total`` puts. Afterwards the watchers get up to ``drainNanos`` to receive every
/// event of every acknowledged put; events still missing then are counted as `missingEvents`.
enum WatchWorkload {
    static let drainNanos: UInt64 = 5_000_000_000
    static let createTimeoutNanos: UInt64 = 5_000_000_000

    /// Shared between the watchers and the coordinator.
    final class Shared: Sendable {
        let created = Atomic<Int>(0)
        let events = Atomic<Int>(0)
        /// Arrival time of the latest event (monotonic nanoseconds).
        let lastEventNanos = Atomic<UInt64>(0)
        let tallies = Mutex<ClientTally>(ClientTally())
    }

    static func run(
        _ options: BenchOptions, connections: [LoadGenerator.Connection], counters: RunCounters, startNanos: UInt64
    ) async -> (tally: ClientTally, seconds: Double) {
        let shared = Shared()
        let prefix = Data(options.keyPrefix.utf8)
        return await withTaskGroup(of: Void.self) { group in
            for index in 0..<options.watchers {
                let watch = Etcdserverpb_Watch.Client(wrapping: connections[index % connections.count])
                group.addTask { await watcher(watch, prefix: prefix, shared: shared, counters: counters) }
            }
            // Wait (bounded) until every watch is created, so no watcher misses early puts.
            let waitStart = monotonicNanos()
            while shared.created.load(ordering: .relaxed) < options.watchers, monotonicNanos() - waitStart < createTimeoutNanos {
                try? await Task.sleep(nanoseconds: 5_000_000)
            }
            let watching = shared.created.load(ordering: .relaxed)
            let writerStart = monotonicNanos()
            let writerTally = await writer(options, kv: Etcdserverpb_KV.Client(wrapping: connections[0]),
                                           counters: counters, startNanos: writerStart)
            let writerEnd = monotonicNanos()
            let expected = writerTally.operations * watching
            let drainStart = monotonicNanos()
            while shared.events.load(ordering: .relaxed) < expected, monotonicNanos() - drainStart < drainNanos {
                try? await Task.sleep(nanoseconds: 2_000_000)
            }
            counters.stopped.store(true, ordering: .relaxed)
            group.cancelAll()
            await group.waitForAll()
            var tally = shared.tallies.withLock { $0 }
            // The writer's puts are not operations of this workload, but its errors are errors.
            tally.errors.merge(writerTally.errors, uniquingKeysWith: +)
            let missing = expected - tally.operations
            if missing > 0 { tally.errors["missingEvents", default: 0] += missing }
            if watching < options.watchers {
                tally.errors["watchNotCreated", default: 0] += options.watchers - watching
            }
            // Measured from the first put to the last event (or the writer's end), so the drain
            // wait for missing events does not dilute the throughput.
            let end = max(writerEnd, shared.lastEventNanos.load(ordering: .relaxed))
            return (tally, Double(end - writerStart) / 1e9)
        }
    }

    /// One watch stream over the prefix; records latencies until cancelled.
    private static func watcher(
        _ watch: Etcdserverpb_Watch.Client<HTTP2ClientTransport.Posix>, prefix: Data, shared: Shared, counters: RunCounters
    ) async {
        var create = Etcdserverpb_WatchCreateRequest()
        create.key = prefix
        create.rangeEnd = prefixEnd(prefix)
        var request = Etcdserverpb_WatchRequest()
        request.createRequest = create
        let message = request
        var options = CallOptions.defaults
        options.timeout = nil
        let tally: ClientTally
        do {
            tally = try await watch.watch(
                request: StreamingClientRequest(producer: { writer in
                    try await writer.write(message)
                    // The request side stays open for as long as the watch runs.
                    while !Task.isCancelled { try? await Task.sleep(nanoseconds: 3_600_000_000_000) }
                }),
                options: options
            ) { response -> ClientTally in
                var tally = ClientTally()
                do {
                    for try await message in response.messages {
                        if message.created { shared.created.wrappingAdd(1, ordering: .relaxed) }
                        if message.canceled {
                            tally.errors["watchCanceled", default: 0] += 1
                            break
                        }
                        if message.events.isEmpty { continue }
                        let now = monotonicNanos()
                        for event in message.events where event.type == .put {
                            let sent = event.kv.value.withUnsafeBytes { bytes -> UInt64 in
                                bytes.count >= 8 ? UInt64(littleEndian: bytes.loadUnaligned(as: UInt64.self)) : now
                            }
                            tally.latency.record(fromNanos: sent, toNanos: now)
                            tally.operations += 1
                        }
                        shared.lastEventNanos.store(now, ordering: .relaxed)
                        shared.events.wrappingAdd(message.events.count, ordering: .relaxed)
                        counters.completed.wrappingAdd(message.events.count, ordering: .relaxed)
                    }
                } catch {
                    if !counters.stopped.load(ordering: .relaxed) {
                        tally.errors[errorKind(error), default: 0] += 1
                        counters.failed.wrappingAdd(1, ordering: .relaxed)
                    }
                }
                return tally
            }
        } catch {
            var failed = ClientTally()
            if !counters.stopped.load(ordering: .relaxed) {
                failed.errors[errorKind(error), default: 0] += 1
                counters.failed.wrappingAdd(1, ordering: .relaxed)
            }
            tally = failed
        }
        shared.tallies.withLock { $0.merge(tally) }
    }

    /// The single writer: puts to random keys under the prefix, the start time in the value.
    private static func writer(
        _ options: BenchOptions, kv: Etcdserverpb_KV.Client<HTTP2ClientTransport.Posix>, counters: RunCounters,
        startNanos: UInt64
    ) async -> ClientTally {
        var tally = ClientTally()
        let keys = options.keyBytes()
        var value = options.valueData()
        var random = SplitMix64(seed: options.seed)
        let callOptions = LoadGenerator.callOptions()
        let endNanos: UInt64? = options.total == nil ? startNanos + UInt64(options.durationSeconds * 1e9) : nil
        let intervalNanos: UInt64? = options.rate.map { UInt64(max(1, 1e9 / $0)) }
        var scheduled = startNanos
        var put = Etcdserverpb_PutRequest()
        while !Task.isCancelled {
            var now = monotonicNanos()
            if let intervalNanos {
                if let endNanos, scheduled >= endNanos { break }
                if scheduled > now {
                    try? await Task.sleep(nanoseconds: scheduled - now)
                    now = monotonicNanos()
                }
                scheduled += intervalNanos
            } else if let endNanos, now >= endNanos {
                break
            }
            if let total = options.total, tally.operations + tally.errors.values.reduce(0, +) >= total { break }
            value.withUnsafeMutableBytes { bytes in bytes.storeBytes(of: now.littleEndian, toByteOffset: 0, as: UInt64.self) }
            put.key = keys[random.index(below: keys.count)]
            put.value = value
            do {
                _ = try await kv.put(put, options: callOptions)
                tally.operations += 1
            } catch {
                if Task.isCancelled { break }
                tally.errors[errorKind(error), default: 0] += 1
                counters.failed.wrappingAdd(1, ordering: .relaxed)
            }
        }
        return tally
    }

    /// The range end that makes `[prefix, end)` cover every key starting with `prefix`.
    static func prefixEnd(_ prefix: Data) -> Data { EtcdKeyRange.prefixEnd(prefix) }
}
