/// A reading of the driver's monotonic clock, in nanoseconds since an arbitrary origin.
///
/// The replica counts most of its timers in ticks: they only decide *when* it acts (heartbeats,
/// retransmissions, elections), and a tick that fires late only delays an action. Two timers
/// are about *safety* and are measured on this clock instead: the leader's read lease and the
/// acceptors' lease guard (see `Configuration.leaseDuration`). A tick counter stops while the
/// process is stopped (SIGSTOP, a VM pause, a stalled event loop) and the rest of the cluster
/// does not, so a lease counted in ticks would outlive its real duration by the length of the
/// stall.
///
/// - Important: Drivers must read a clock that keeps running while the process is stopped
///   (CLOCK_BOOTTIME on Linux; CLOCK_MONOTONIC where there is nothing better) at the moment
///   they call `Replica.step`, and pass that reading. Readings must not go backwards; a lower
///   reading than one seen before is treated as the earlier one.
public struct ClockTime: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var nanoseconds: UInt64

    public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

    public static let zero = ClockTime(nanoseconds: 0)

    public static func < (lhs: ClockTime, rhs: ClockTime) -> Bool { lhs.nanoseconds < rhs.nanoseconds }

    /// The reading `nanoseconds` later (saturating).
    public func adding(nanoseconds: UInt64) -> ClockTime {
        let (sum, overflow) = self.nanoseconds.addingReportingOverflow(nanoseconds)
        return ClockTime(nanoseconds: overflow ? .max : sum)
    }

    public var description: String { "\(nanoseconds / 1_000_000).\(String(nanoseconds / 1_000 % 1_000).leftPadded(to: 3))ms" }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
