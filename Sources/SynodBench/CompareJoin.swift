import Foundation
import GRPCCore
import Synchronization
import SynodEtcdAPI

/// The join phase of `compare --join` (after the memory phase loaded its keys): a fourth member
/// is added as a learner (MemberAdd, then started with `--initial-cluster-state existing`) while
/// writers keep putting new keys through the leader. Measured: the time from its start until
/// its own status reports the revision the leader had when it was added (it holds the whole
/// state loaded before), how far the leader's resident set grew above its level before the add
/// (sampled every 100 ms), the same for a follower that sends nothing (the writes' own cost:
/// the new keys and the log, which every member holds), the joiner's peak resident set, and the
/// puts acknowledged meanwhile.
public struct CompareJoin: Codable, Sendable, Equatable {
    public var member: String
    /// The leader's revision when the member was added: what it had to catch up to.
    public var targetRevision: Int64
    /// From the joiner's process start to its status at or past `targetRevision`.
    public var seconds: Double?
    /// The leader's largest RSS during the join minus its RSS just before the add.
    public var senderGrowthBytes: Int?
    /// The same for a follower that serves no transfer: what the writes themselves cost every
    /// member (new keys, the log above the last snapshot). The sender's own cost is the
    /// difference.
    public var followerGrowthBytes: Int?
    /// VmHWM of the joiner once caught up.
    public var joinerPeakBytes: Int?
    /// The state the joiner received, as it lies in its data directory once caught up: Synod's
    /// newest snapshot file (every key's retained history, as the state holds it), etcd's bbolt
    /// file (`member/snap/db`). The denominator of the joiner's peak: the live keys and values
    /// alone leave out the history that writes since the last compaction keep.
    public var joinerStateBytes: Int?
    /// Puts the writers got acknowledged during the join, and the writers.
    public var writesDuring: Int
    public var writers: Int
    public var error: String?

    public init(member: String, targetRevision: Int64, writers: Int) {
        self.member = member
        self.targetRevision = targetRevision
        self.writesDuring = 0
        self.writers = writers
    }
}

extension CompareClient {
    /// The revision the member at the other end of `client` has applied (its status header).
    static func revision(_ client: Client) async throws -> Int64 {
        let maintenance = Etcdserverpb_Maintenance.Client(wrapping: client)
        let response = try await maintenance.status(Etcdserverpb_StatusRequest(), options: callOptions(timeout: .seconds(2)))
        return response.header.revision
    }

    /// Adds a learner with `peerURL` through `client`, retrying for up to 60 s while the
    /// cluster refuses (etcd answers "unhealthy cluster" until a recently restarted member has
    /// been connected for a while).
    static func addLearner(_ client: Client, peerURL: String) async throws {
        let cluster = Etcdserverpb_Cluster.Client(wrapping: client)
        var request = Etcdserverpb_MemberAddRequest()
        request.peerUrls = [peerURL]
        request.isLearner = true
        let deadline = ContinuousClock.now + .seconds(60)
        while true {
            do {
                _ = try await cluster.memberAdd(request, options: callOptions(timeout: .seconds(10)))
                return
            } catch {
                if ContinuousClock.now > deadline || Task.isCancelled { throw error }
                try await Task.sleep(for: .milliseconds(500))
            }
        }
    }
}

extension CompareRunner {
    /// The key prefix of the writes during the join.
    static let joinPrefix = "join/"

    func joinPhase(_ cluster: CompareCluster, leaderIndex: Int) async throws -> CompareJoin {
        let name = cluster.system.rawValue
        let spec = cluster.system == .synod
            ? CompareClusterLayout.synodJoiner(binary: options.synodBinary, basePort: options.basePort, directory: options.outDirectory)
            : CompareClusterLayout.etcdJoiner(binary: options.etcdBinary, basePort: options.basePort, directory: options.outDirectory)
        try CompareClusterLayout.checkPortsFree([spec])
        let joiner = CompareCluster(system: cluster.system, members: [spec], registry: cluster.registry)
        let leaderEndpoint = cluster.endpoints[leaderIndex]
        let target = try await CompareClient.withClient(leaderEndpoint) { try await CompareClient.revision($0) }
        var join = CompareJoin(member: spec.name, targetRevision: target, writers: options.joinWriters)
        let leaderPID = cluster.pid(leaderIndex)
        let before = leaderPID.flatMap { CompareMachineInfo.memory(pid: $0).current }
        let followerPID = cluster.members.indices.first { $0 != leaderIndex }.flatMap { cluster.pid($0) }
        let followerBefore = followerPID.flatMap { CompareMachineInfo.memory(pid: $0).current }
        let peerURL = spec.arguments[(spec.arguments.firstIndex(of: "--initial-advertise-peer-urls") ?? 0) + 1]
        try await CompareClient.withClient(leaderEndpoint) { try await CompareClient.addLearner($0, peerURL: peerURL) }
        log("\(name): added \(spec.name) as a learner at revision \(target); starting it while \(options.joinWriters) writers put")

        let state = JoinState(senderRSS: before ?? 0, followerRSS: followerBefore ?? 0)
        let value = Data(repeating: UInt8(ascii: "w"), count: options.valueBytes)
        let writers = options.joinWriters
        async let written: Void = CompareClient.withClient(leaderEndpoint) { client in
            let kv = Etcdserverpb_KV.Client(wrapping: client)
            await withTaskGroup(of: Void.self) { group in
                for worker in 0..<writers {
                    group.addTask {
                        var index = 0
                        while !state.stopped {
                            var request = Etcdserverpb_PutRequest()
                            request.key = Data("\(Self.joinPrefix)\(worker)/\(index)".utf8)
                            request.value = value
                            if (try? await kv.put(request, options: CompareClient.callOptions(timeout: .seconds(5)))) != nil {
                                state.writes.withLock { $0 += 1 }
                            }
                            index += 1
                        }
                    }
                }
            }
        }
        async let sampled: Void = {
            while !state.stopped {
                if let pid = leaderPID, let rss = CompareMachineInfo.memory(pid: pid).current {
                    state.senderPeak.withLock { $0 = max($0, rss) }
                }
                if let pid = followerPID, let rss = CompareMachineInfo.memory(pid: pid).current {
                    state.followerPeak.withLock { $0 = max($0, rss) }
                }
                try? await Task.sleep(for: .milliseconds(100))
            }
        }()

        let start = ContinuousClock.now
        do {
            try joiner.start(0)
            join.seconds = try await CompareClient.withClient(spec.clientEndpoint, fastReconnect: true) { client in
                let deadline = start + .milliseconds(Int(options.restartTimeoutSeconds * 1_000))
                while ContinuousClock.now < deadline {
                    try Task.checkCancellation()
                    if let gone = joiner.exited().first { throw CompareError("\(gone.name) exited with status \(gone.status); see \(spec.logPath)") }
                    if let revision = try? await CompareClient.revision(client), revision >= target {
                        return CompareClient.seconds(since: start)
                    }
                    try await Task.sleep(for: .milliseconds(100))
                }
                throw CompareError("\(spec.name) did not reach revision \(target) within \(Int(options.restartTimeoutSeconds)) s")
            }
            join.joinerPeakBytes = joiner.pid(0).flatMap { CompareMachineInfo.memory(pid: $0).peak }
            join.joinerStateBytes = Self.stateBytes(system: cluster.system, dataDirectory: spec.dataDirectory)
        } catch is CancellationError {
            state.stop()
            _ = try? await (written, sampled)
            await joiner.stop(graceSeconds: 0)
            throw CancellationError()
        } catch {
            join.error = "\(error)"
        }
        state.stop()
        _ = try? await (written, sampled)
        join.writesDuring = state.writes.withLock { $0 }
        if let before { join.senderGrowthBytes = state.senderPeak.withLock { $0 } - before }
        if let followerBefore { join.followerGrowthBytes = state.followerPeak.withLock { $0 } - followerBefore }
        await joiner.stop()
        if !options.keepData { try? FileManager.default.removeItem(atPath: spec.dataDirectory) }
        log("\(name): \(spec.name) " + (join.error.map { "failed to join: \($0)" }
            ?? "caught up to revision \(target) in \(CompareFormat.seconds(join.seconds)) s; leader RSS +\(CompareFormat.mebibytes(join.senderGrowthBytes)) MiB (a follower +\(CompareFormat.mebibytes(join.followerGrowthBytes))), joiner peak \(CompareFormat.mebibytes(join.joinerPeakBytes)) MiB for a state of \(CompareFormat.mebibytes(join.joinerStateBytes)) MiB, \(join.writesDuring) puts meanwhile"))
        return join
    }
}

extension CompareRunner {
    /// The size of the state a member holds on disk (see `CompareJoin.joinerStateBytes`).
    static func stateBytes(system: CompareSystem, dataDirectory: String) -> Int? {
        let files = FileManager.default
        let path: String
        switch system {
        case .etcd:
            path = dataDirectory + "/member/snap/db"
        case .synod:
            // Snapshot files are named by their zero-padded slot: the greatest name is the newest.
            let directory = dataDirectory + "/snap"
            guard let newest = (try? files.contentsOfDirectory(atPath: directory))?.filter({ $0.hasSuffix(".snap") }).max() else { return nil }
            path = directory + "/" + newest
        }
        return ((try? files.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue
    }
}

/// What the join phase's writers and sampler share with it.
private final class JoinState: Sendable {
    private let stopFlag = Mutex(false)
    let writes = Mutex(0)
    let senderPeak: Mutex<Int>
    let followerPeak: Mutex<Int>

    init(senderRSS: Int, followerRSS: Int) {
        senderPeak = Mutex(senderRSS)
        followerPeak = Mutex(followerRSS)
    }

    var stopped: Bool { stopFlag.withLock { $0 } }
    func stop() { stopFlag.withLock { $0 = true } }
}
