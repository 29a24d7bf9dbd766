#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SynodCore

/// The clock a node hands its driver at every step (see `ClockTime`).
protocol ReplicaClock: Sendable {
    /// The reading for a step of a replica that has seen `ticks` ticks.
    func now(ticks: UInt64) -> ClockTime
}

/// CLOCK_BOOTTIME on Linux: monotonic, and it keeps counting while the process is stopped
/// (SIGSTOP) and while the machine is suspended, unlike a count of timer firings. A leader
/// that was stopped for longer than its lease therefore finds the lease expired the moment
/// it looks at it, before it answers any read.
struct BootClock: ReplicaClock {
    func now(ticks: UInt64) -> ClockTime { Self.read() }

    static func read() -> ClockTime {
        var spec = timespec()
        #if os(Linux)
        let status = clock_gettime(CLOCK_BOOTTIME, &spec)
        #else
        let status = clock_gettime(CLOCK_MONOTONIC, &spec)
        #endif
        // clock_gettime cannot fail for a valid clock id; a zero reading would only make the
        // replica keep its last reading (readings never go backwards).
        guard status == 0 else { return .zero }
        return ClockTime(nanoseconds: UInt64(spec.tv_sec) &* 1_000_000_000 &+ UInt64(spec.tv_nsec))
    }
}

/// The `tick-lease` failpoint: the broken clock that counts the node's ticks, so the lease
/// stops while the process is stopped (the chaos harness's negative control).
struct TickCountingClock: ReplicaClock {
    var tickNanoseconds: UInt64

    func now(ticks: UInt64) -> ClockTime { ClockTime(nanoseconds: ticks &* tickNanoseconds) }
}
