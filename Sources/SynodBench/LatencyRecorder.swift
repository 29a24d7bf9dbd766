import Histogram

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Nanoseconds on the monotonic clock (`CLOCK_MONOTONIC`): one vDSO call, no allocation.
@inline(__always)
func monotonicNanos() -> UInt64 {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return UInt64(spec.tv_sec) &* 1_000_000_000 &+ UInt64(spec.tv_nsec)
}

/// Latencies of one client (or one watcher), in microseconds, in an HdrHistogram.
///
/// Every client records into its own recorder, so the hot path takes no lock; the recorders are
/// merged once at the end of a run.
public struct LatencyRecorder: Sendable {
    /// Highest recordable latency: 60 s. Longer ones are clamped to it (requests carry a
    /// 10 s deadline, so only the open loop's queueing delay can get near it).
    public static let highestMicros: UInt64 = 60_000_000

    public private(set) var histogram: Histogram<UInt64>

    public init() {
        self.histogram = Histogram(lowestDiscernibleValue: 1, highestTrackableValue: Self.highestMicros,
                                   numberOfSignificantValueDigits: .three)
    }

    /// Records one latency given in microseconds (clamped to 1...``highestMicros``).
    @inline(__always)
    public mutating func record(micros: UInt64) {
        histogram.record(Swift.min(Swift.max(micros, 1), Self.highestMicros))
    }

    /// Records the time from `startNanos` to `endNanos` (monotonic clock).
    @inline(__always)
    mutating func record(fromNanos startNanos: UInt64, toNanos endNanos: UInt64) {
        let nanos = endNanos > startNanos ? endNanos - startNanos : 0
        record(micros: (nanos + 500) / 1_000)
    }

    public var count: Int { Int(histogram.totalCount) }

    public mutating func merge(_ other: LatencyRecorder) {
        histogram.add(other.histogram)
    }

    /// The summary (values are the histogram's, i.e. within 0.1% of the recorded ones).
    public var summary: LatencySummary {
        LatencySummary(histogram: histogram)
    }
}

extension LatencySummary {
    /// All zero: no successful request.
    public static let empty = LatencySummary(count: 0, minMicros: 0, meanMicros: 0, p50Micros: 0, p90Micros: 0,
                                             p99Micros: 0, p999Micros: 0, maxMicros: 0)

    /// Summarizes a histogram of microsecond latencies.
    public init(histogram: Histogram<UInt64>) {
        guard histogram.totalCount > 0 else {
            self = .empty
            return
        }
        self.init(
            count: Int(histogram.totalCount),
            minMicros: Double(histogram.min),
            meanMicros: histogram.mean,
            p50Micros: Double(histogram.valueAtPercentile(50)),
            p90Micros: Double(histogram.valueAtPercentile(90)),
            p99Micros: Double(histogram.valueAtPercentile(99)),
            p999Micros: Double(histogram.valueAtPercentile(99.9)),
            maxMicros: Double(histogram.maxRecorded)
        )
    }
}
