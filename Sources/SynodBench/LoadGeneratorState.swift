import Foundation
import Synchronization
import SynodCore

/// Counters shared by every client of a run, read by the progress reporter. Relaxed atomics:
/// they are statistics, nothing is ordered by them.
final class RunCounters: Sendable {
    /// Requests claimed so far (for `total`).
    let issued = Atomic<Int>(0)
    let completed = Atomic<Int>(0)
    let failed = Atomic<Int>(0)
    /// Set when the run is over (duration reached, total reached, or the watch writer done).
    let stopped = Atomic<Bool>(false)

    /// Claims one request when running to a total; false when the total is reached.
    @inline(__always)
    func claim(total: Int?) -> Bool {
        guard let total else { return true }
        return issued.wrappingAdd(1, ordering: .relaxed).oldValue < total
    }
}

/// What one client (or watcher) measured; merged at the end of a run.
struct ClientTally: Sendable {
    var latency = LatencyRecorder()
    var operations = 0
    var casFailures = 0
    var errors: [String: Int] = [:]

    mutating func merge(_ other: ClientTally) {
        latency.merge(other.latency)
        operations += other.operations
        casFailures += other.casFailures
        errors.merge(other.errors, uniquingKeysWith: +)
    }
}

// Key choice draws from SynodCore's seeded `SplitMix64` (`--seed` replays the same keys).
extension SplitMix64 {
    /// A uniform index in `0..<bound` (bound > 0), one value modulo `bound` (unlike `below`,
    /// a bound of 1 still draws); the modulo bias is negligible for key spaces far below 2^64.
    @inline(__always)
    mutating func index(below bound: Int) -> Int {
        Int(truncatingIfNeeded: next() % UInt64(bound))
    }
}

/// Periodic ``BenchProgress`` readings while a run goes.
func reportProgress(
    _ counters: RunCounters, startNanos: UInt64, options: BenchOptions,
    progress: @escaping @Sendable (BenchProgress) -> Void
) -> Task<Void, Never> {
    Task {
        var lastCompleted = 0
        var lastNanos = startNanos
        while !Task.isCancelled {
            try? await Task.sleep(nanoseconds: 250_000_000)
            if Task.isCancelled { break }
            let now = monotonicNanos()
            let completed = counters.completed.load(ordering: .relaxed)
            let interval = Double(now - lastNanos) / 1e9
            let recent = interval > 0 ? Double(completed - lastCompleted) / interval : 0
            lastCompleted = completed
            lastNanos = now
            progress(BenchProgress(
                elapsedSeconds: Double(now - startNanos) / 1e9,
                plannedSeconds: options.total == nil ? options.durationSeconds : nil,
                completed: completed,
                plannedTotal: options.total,
                errors: counters.failed.load(ordering: .relaxed),
                recentThroughput: recent))
        }
    }
}

extension BenchOptions {
    /// The first problem with these options, as a line naming the flag; nil when they are usable.
    public var validationProblem: String? {
        if endpoints.isEmpty { return "--endpoints must name at least one endpoint" }
        if !(1...10_000).contains(conns) { return "--conns must be in 1...10000" }
        if !(1...100_000).contains(clients) { return "--clients must be in 1...100000" }
        if let total, total < 1 { return "--total must be at least 1" }
        if total == nil, !(durationSeconds > 0 && durationSeconds <= 86_400) {
            return "--duration must be more than 0 s and at most 24 h"
        }
        if let rate, !(rate > 0 && rate <= 10_000_000) { return "--rate must be in (0, 10000000] requests per second" }
        if !(1...10_000_000).contains(keySpace) { return "--key-space must be in 1...10000000" }
        if !(0...(1 << 20)).contains(valueBytes) { return "--value-size must be in 0...1048576" }
        if workload == .watch, valueBytes < 8 { return "--value-size must be at least 8 for watch (the value carries the send time)" }
        if keyPrefix.isEmpty { return "--key-prefix must not be empty" }
        if !(readRatio >= 0 && readRatio <= 1) { return "--read-ratio must be in 0...1" }
        if !(1...100_000).contains(watchers) { return "--watchers must be in 1...100000" }
        if let tls, (tls.certFile == nil) != (tls.keyFile == nil) { return "--cert and --key go together" }
        return nil
    }

    /// Key `i` of the key space: the prefix and a zero-padded index, so every key has one length.
    func keyBytes() -> [Data] {
        let width = String(max(0, keySpace - 1)).count
        var keys: [Data] = []
        keys.reserveCapacity(keySpace)
        for index in 0..<keySpace {
            let digits = String(index)
            let key = keyPrefix + String(repeating: "0", count: width - digits.count) + digits
            keys.append(Data(key.utf8))
        }
        return keys
    }

    /// The value every put writes: `valueBytes` printable bytes.
    func valueData() -> Data {
        Data((0..<valueBytes).map { UInt8(ascii: "a") + UInt8($0 % 26) })
    }
}
