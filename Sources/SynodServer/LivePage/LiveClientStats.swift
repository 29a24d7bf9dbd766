import NIOCore
import Synchronization

/// Client throughput and latency at this member for the live page, over the last few seconds.
///
/// Recorded only while someone watches (a page asked for the state in the last
/// `watchWindowNanoseconds`): otherwise a request costs one atomic load here.
public final class LiveClientStats: Sendable {
    static let watchWindowNanoseconds: Int64 = 10_000_000_000
    /// Seconds the rates and percentiles are computed over (the complete seconds before now).
    static let windowSeconds: Int64 = 3
    /// Latency samples kept per second (the first ones of that second).
    static let samplesPerSecond = 512

    private struct Second {
        var second: Int64 = -1
        var writes = 0
        var reads = 0
        var latenciesMs: [Double] = []
    }

    public struct Summary: Sendable, Equatable {
        public var writesPerSecond: Double
        public var readsPerSecond: Double
        public var p50Ms: Double?
        public var p99Ms: Double?
    }

    private let watchedUntil = Atomic<Int64>(0)
    private let seconds = Mutex<[Second]>(Array(repeating: Second(), count: 5))

    public init() {}

    static func uptimeNanoseconds() -> Int64 { Int64(NIODeadline.now().uptimeNanoseconds) }

    /// Whether requests are being recorded.
    public var isWatched: Bool { watchedUntil.load(ordering: .relaxed) > Self.uptimeNanoseconds() }

    /// Someone looks: record for the next `watchWindowNanoseconds`.
    func watched() {
        watchedUntil.store(Self.uptimeNanoseconds() + Self.watchWindowNanoseconds, ordering: .relaxed)
    }

    /// The start of a request to time, or nil when nobody watches.
    public func start() -> Int64? {
        isWatched ? Self.uptimeNanoseconds() : nil
    }

    /// A request that began at `start` (from `start()`) finished.
    public func finish(write: Bool, start: Int64) {
        let now = Self.uptimeNanoseconds()
        let second = now / 1_000_000_000
        let latency = Double(now - start) / 1_000_000
        seconds.withLock { seconds in
            let index = Int(second % Int64(seconds.count))
            if seconds[index].second != second { seconds[index] = Second(second: second) }
            if write { seconds[index].writes += 1 } else { seconds[index].reads += 1 }
            if seconds[index].latenciesMs.count < Self.samplesPerSecond { seconds[index].latenciesMs.append(latency) }
        }
    }

    /// Rates and latency percentiles over the last complete seconds.
    public func summary() -> Summary {
        let current = Self.uptimeNanoseconds() / 1_000_000_000
        let (writes, reads, latencies) = seconds.withLock { seconds -> (Int, Int, [Double]) in
            var writes = 0, reads = 0
            var latencies: [Double] = []
            for entry in seconds where entry.second < current && entry.second >= current - Self.windowSeconds {
                writes += entry.writes
                reads += entry.reads
                latencies += entry.latenciesMs
            }
            return (writes, reads, latencies)
        }
        let sorted = latencies.sorted()
        func percentile(_ p: Double) -> Double? {
            guard !sorted.isEmpty else { return nil }
            return sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.down)))]
        }
        return Summary(writesPerSecond: Double(writes) / Double(Self.windowSeconds),
                       readsPerSecond: Double(reads) / Double(Self.windowSeconds),
                       p50Ms: percentile(0.5), p99Ms: percentile(0.99))
    }

    /// Whether an etcd KV method is a write (else a read), for the counts; nil for others.
    static func isWrite(method: String) -> Bool? {
        switch method {
        case "Put", "DeleteRange", "Txn": return true
        case "Range": return false
        default: return nil
        }
    }
}
