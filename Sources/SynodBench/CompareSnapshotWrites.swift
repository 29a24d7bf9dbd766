import Foundation
import GRPCCore
import Synchronization
import SynodEtcdAPI

/// Puts while the leader takes snapshots of the state the memory phase loaded: `writers`
/// clients put new keys through the leader for `seconds` (on Synod longer, up to four times,
/// until a snapshot began and ended in the window), and each put's latency is counted
/// as made **during** a snapshot (its interval overlaps a time the leader's
/// `synod_snapshot_in_progress` gauge, read every 20 ms, was 1) or **outside** one. A member
/// whose snapshot stalls its writes shows a p99 during far above the p99 outside. etcd has no
/// such gauge (its raft snapshot does not copy the key space), so its puts are reported
/// together, as the figure to compare with.
public struct CompareSnapshotWrites: Codable, Sendable, Equatable {
    public var writers: Int
    /// How long the writers put.
    public var seconds: Double
    /// Snapshots that began in the window, and the seconds one was in progress.
    public var snapshots: Int = 0
    public var snapshotSeconds: Double = 0
    public var all = LatencySummary.empty
    public var during: LatencySummary?
    public var outside: LatencySummary?
    public var failedPuts = 0
    /// Readings of the leader's gauge (0 for etcd, which has none).
    public var gaugeSamples = 0
    public var error: String?

    public init(writers: Int, seconds: Double) {
        self.writers = writers
        self.seconds = seconds
    }
}

/// One put: when it was sent and answered (nanoseconds on one monotonic clock).
public struct CompareTimedPut: Sendable, Equatable {
    public var start: UInt64
    public var end: UInt64

    public init(start: UInt64, end: UInt64) {
        self.start = start
        self.end = end
    }
}

extension CompareSnapshotWrites {
    /// The windows a gauge sampled at `samples` (time, value) was 1: from the first sample
    /// reading 1 to the first reading 0 after it (or the last sample).
    public static func windows(_ samples: [(UInt64, Bool)]) -> [ClosedRange<UInt64>] {
        var windows: [ClosedRange<UInt64>] = []
        var opened: UInt64?
        for (time, on) in samples {
            if on, opened == nil { opened = time }
            if !on, let start = opened {
                windows.append(start...max(start, time))
                opened = nil
            }
        }
        if let start = opened, let last = samples.last?.0 { windows.append(start...max(start, last)) }
        return windows
    }

    /// Whether the gauge read 1 and later 0 again: a snapshot began and ended while sampled.
    public static func endedWindow(_ samples: [(UInt64, Bool)]) -> Bool {
        guard let first = samples.firstIndex(where: { $0.1 }) else { return false }
        return samples[first...].contains { !$0.1 }
    }

    /// Splits `puts` into those overlapping a window and the others, and summarises both.
    public mutating func classify(_ puts: [CompareTimedPut], windows: [ClosedRange<UInt64>]) {
        var allPuts = LatencyRecorder()
        var inside = LatencyRecorder()
        var others = LatencyRecorder()
        for put in puts {
            allPuts.record(fromNanos: put.start, toNanos: put.end)
            if windows.contains(where: { $0.lowerBound <= put.end && put.start <= $0.upperBound }) {
                inside.record(fromNanos: put.start, toNanos: put.end)
            } else {
                others.record(fromNanos: put.start, toNanos: put.end)
            }
        }
        all = allPuts.summary
        snapshots = windows.count
        snapshotSeconds = windows.reduce(0) { $0 + Double($1.upperBound - $1.lowerBound) / 1e9 }
        guard !windows.isEmpty else { return }
        during = inside.summary
        outside = others.summary
    }
}

/// A plain HTTP/1.0 GET over a blocking socket (the members' `/metrics`), nil on any failure.
enum CompareHTTP {
    static func get(host: String, port: Int, path: String, timeoutMilliseconds: Int = 1_000) -> String? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var timeout = timeval(tv_sec: timeoutMilliseconds / 1_000, tv_usec: (timeoutMilliseconds % 1_000) * 1_000)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = CompareClusterLayout.ipv4Address(host, port: port)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return nil }
        let request = Array("GET \(path) HTTP/1.0\r\nHost: \(host)\r\n\r\n".utf8)
        guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == request.count else { return nil }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count < 0 { return nil }
            if count == 0 { break }
            response += buffer[0..<count]
        }
        let text = String(decoding: response, as: UTF8.self)
        guard text.hasPrefix("HTTP/1."), text.split(separator: " ", maxSplits: 2).dropFirst().first == "200",
              let body = text.range(of: "\r\n\r\n") else { return nil }
        return String(text[body.upperBound...])
    }

    /// The value of the first sample of `metric` (no labels) in a Prometheus exposition.
    static func metric(_ metric: String, in exposition: String) -> Double? {
        for line in exposition.split(separator: "\n") where line.hasPrefix(metric + " ") {
            return Double(line.dropFirst(metric.count + 1).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }
}

private final class SnapshotWritesState: Sendable {
    let puts = Mutex<[CompareTimedPut]>([])
    let failed = Mutex(0)
    let samples = Mutex<[(UInt64, Bool)]>([])
    let stop = Mutex(false)
    let elapsed = Mutex(0.0)
}

extension CompareRunner {
    /// The key prefix of the puts during snapshots.
    static let snapshotWritesPrefix = "snapwrites/"

    /// See `CompareSnapshotWrites`.
    func snapshotWritesPhase(_ cluster: CompareCluster, leaderIndex: Int) async -> CompareSnapshotWrites {
        let name = cluster.system.rawValue
        let seconds = options.snapshotWritesSeconds
        var result = CompareSnapshotWrites(writers: options.joinWriters, seconds: seconds)
        let metricsPort = cluster.system == .synod ? options.basePort + 41 + leaderIndex : nil
        let state = SnapshotWritesState()
        let value = Data(repeating: UInt8(ascii: "s"), count: options.valueBytes)
        let writers = result.writers
        log("\(name): \(writers) writers put for \(CompareFormat.seconds(seconds)) s while the leader snapshots its state")
        async let sampled: Void = {
            guard let metricsPort else { return }
            while !state.stop.withLock({ $0 }) {
                let now = monotonicNanos()
                if let text = CompareHTTP.get(host: "127.0.0.1", port: metricsPort, path: "/metrics"),
                   let gauge = CompareHTTP.metric("synod_snapshot_in_progress", in: text) {
                    state.samples.withLock { $0.append((now, gauge >= 1)) }
                }
                try? await Task.sleep(for: .milliseconds(20))
            }
        }()
        do {
            try await CompareClient.withClient(cluster.endpoints[leaderIndex]) { client in
                let kv = Etcdserverpb_KV.Client(wrapping: client)
                let start = ContinuousClock.now
                let waitsForSnapshot = metricsPort != nil
                await withTaskGroup(of: Void.self) { group in
                    // Stops the writers after `seconds`; on Synod not before one snapshot
                    // began and ended in the window, for at most four times as long.
                    group.addTask {
                        try? await Task.sleep(for: .milliseconds(Int(seconds * 1_000)))
                        while waitsForSnapshot, ContinuousClock.now < start + .milliseconds(Int(seconds * 4_000)),
                              !CompareSnapshotWrites.endedWindow(state.samples.withLock { $0 }) {
                            try? await Task.sleep(for: .milliseconds(100))
                        }
                        state.stop.withLock { $0 = true }
                        state.elapsed.withLock { $0 = CompareClient.seconds(since: start) }
                    }
                    for worker in 0..<writers {
                        group.addTask {
                            var index = 0
                            var mine: [CompareTimedPut] = []
                            while !state.stop.withLock({ $0 }) {
                                var request = Etcdserverpb_PutRequest()
                                request.key = Data("\(Self.snapshotWritesPrefix)\(worker)/\(index)".utf8)
                                request.value = value
                                let start = monotonicNanos()
                                if (try? await kv.put(request, options: CompareClient.callOptions(timeout: .seconds(10)))) != nil {
                                    mine.append(CompareTimedPut(start: start, end: monotonicNanos()))
                                } else {
                                    state.failed.withLock { $0 += 1 }
                                }
                                index += 1
                            }
                            state.puts.withLock { $0 += mine }
                        }
                    }
                }
            }
        } catch {
            result.error = "\(error)"
        }
        state.stop.withLock { $0 = true }
        await sampled
        result.failedPuts = state.failed.withLock { $0 }
        result.gaugeSamples = state.samples.withLock { $0.count }
        result.seconds = state.elapsed.withLock { $0 }
        result.classify(state.puts.withLock { $0 }, windows: CompareSnapshotWrites.windows(state.samples.withLock { $0 }))
        func figure(_ summary: LatencySummary?) -> String {
            guard let summary else { return "-" }
            return "\(summary.count) puts, p50 \(CompareFormat.millis(summary.p50Micros)) ms, p99 \(CompareFormat.millis(summary.p99Micros)) ms"
        }
        log("\(name): puts during snapshots: \(result.snapshots) snapshot(s), \(CompareFormat.seconds(result.snapshotSeconds)) s; "
            + "all \(figure(result.all)); during \(figure(result.during)); outside \(figure(result.outside))"
            + (result.failedPuts > 0 ? "; \(result.failedPuts) failed" : ""))
        return result
    }
}
