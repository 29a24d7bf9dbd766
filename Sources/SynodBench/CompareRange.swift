import Foundation
import GRPCCore
import Synchronization
import SynodEtcdAPI

/// One linearizable Range over every key the memory phase loaded, sent to the leader: how long
/// it takes and how far the leader's resident set rises above its level just before (its peak
/// is reset through `/proc/<pid>/clear_refs` first and also sampled every 50 ms). A server that
/// builds the whole response in memory grows by at least the response's size.
public struct CompareRange: Codable, Sendable, Equatable {
    public var keys: Int = 0
    /// Bytes of keys and values in the response.
    public var responseBytes: Int = 0
    public var seconds: Double?
    /// The leader's peak RSS during the range minus its RSS just before it.
    public var leaderGrowthBytes: Int?
    public var error: String?

    public init() {}
}

extension CompareRunner {
    /// See `CompareRange`.
    func rangePhase(_ cluster: CompareCluster, leaderIndex: Int) async -> CompareRange {
        var range = CompareRange()
        let name = cluster.system.rawValue
        let pid = cluster.pid(leaderIndex)
        let before = pid.flatMap { CompareMachineInfo.memory(pid: $0).current }
        if let pid { try? "5".write(toFile: "/proc/\(pid)/clear_refs", atomically: false, encoding: .utf8) }
        let peak = Mutex(before ?? 0)
        let done = Mutex(false)
        async let sampled: Void = {
            while !done.withLock({ $0 }) {
                if let pid, let rss = CompareMachineInfo.memory(pid: pid).current { peak.withLock { $0 = max($0, rss) } }
                try? await Task.sleep(for: .milliseconds(50))
            }
        }()
        let start = ContinuousClock.now
        do {
            let response = try await CompareClient.withClient(cluster.endpoints[leaderIndex]) { client in
                var request = Etcdserverpb_RangeRequest()
                request.key = Data(Self.memoryPrefix.utf8)
                request.rangeEnd = Data(Self.memoryPrefix.utf8.dropLast()) + [Self.memoryPrefix.utf8.last.map { $0 + 1 } ?? 0]
                var options = CompareClient.callOptions(timeout: .seconds(Int64(options.restartTimeoutSeconds)))
                options.maxResponseMessageBytes = Int(Int32.max)
                // grpc-swift-nio-transport 2.x limits decoded responses by the request limit.
                options.maxRequestMessageBytes = Int(Int32.max)
                return try await Etcdserverpb_KV.Client(wrapping: client).range(request, options: options)
            }
            range.seconds = CompareClient.seconds(since: start)
            range.keys = response.kvs.count
            range.responseBytes = response.kvs.reduce(0) { $0 + $1.key.count + $1.value.count }
        } catch {
            range.error = "\(error)"
        }
        done.withLock { $0 = true }
        await sampled
        if let pid, let highWater = CompareMachineInfo.memory(pid: pid).peak { peak.withLock { $0 = max($0, highWater) } }
        if let before { range.leaderGrowthBytes = max(0, peak.withLock { $0 } - before) }
        log("\(name): range over every loaded key: " + (range.error.map { "failed: \($0)" }
            ?? "\(range.keys) keys, \(CompareFormat.mebibytes(range.responseBytes)) MiB in \(CompareFormat.seconds(range.seconds)) s; leader RSS +\(CompareFormat.mebibytes(range.leaderGrowthBytes)) MiB"))
        return range
    }
}
