import Foundation
import Synchronization
import SynodProcess
import XCTest
@testable import SynodChaos

/// Real-process runs: a cluster of `synod serve` children behind the in-process proxy network.
final class ChaosRunnerTests: XCTestCase {
    /// The `synod` executable built next to the test bundle (the test target depends on it).
    static func synodBinary() -> String? {
        var candidates: [String] = []
        let bundleDirectory = Bundle.main.bundleURL.deletingLastPathComponent()
        candidates.append(bundleDirectory.appendingPathComponent("synod").path)
        for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
            candidates.append(bundle.bundleURL.deletingLastPathComponent().appendingPathComponent("synod").path)
        }
        if let first = CommandLine.arguments.first {
            let url = URL(fileURLWithPath: first).resolvingSymlinksInPath()
            candidates.append(url.deletingLastPathComponent().appendingPathComponent("synod").path)
            candidates.append(url.deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("synod").path)
        }
        let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        candidates.append(packageRoot.appendingPathComponent(".build/debug/synod").path)
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    private func makeOptions(seed: UInt64, name: String) throws -> ChaosOptions {
        guard let binary = Self.synodBinary() else {
            XCTFail("the synod executable was not found next to the test bundle nor in .build/debug; run `swift build --product synod`")
            throw XCTSkip("no synod binary")
        }
        var options = ChaosOptions()
        options.synodBinary = binary
        options.nodes = 3
        options.seed = seed
        options.reportDirectory = FileManager.default.temporaryDirectory
            .appendingPathComponent("synod-chaos-test-\(name)-\(ProcessInfo.processInfo.processIdentifier)").path
        try? FileManager.default.removeItem(atPath: options.reportDirectory)
        options.opTimeoutSeconds = 2
        options.progressIntervalSeconds = 5
        return options
    }

    private static func log(_ line: String) {
        FileHandle.standardError.write(Data(("[chaos] " + line + "\n").utf8))
    }

    func testShortRunWithKillsAndPartitionsPasses() async throws {
        ChildRegistry.shared.reset()
        // The first seed whose schedule has at least one kill and one partition.
        let kinds: [NemesisKind] = [.kill, .partition]
        let seed = (UInt64(1)...UInt64(10_000)).first { seed in
            let kindsPlanned = Set(NemesisSchedule.plan(seed: seed, kinds: kinds, nodes: 3, durationSeconds: 14,
                                                        intervalSeconds: 3).map(\.kind))
            return kindsPlanned.count == 2
        } ?? 11
        var options = try makeOptions(seed: seed, name: "pass")
        options.durationSeconds = 14
        options.intervalSeconds = 3
        options.clients = 6
        options.keys = 6
        options.nemesis = kinds
        let runner = ChaosRunner(options: options, network: ProxyNetwork(), log: { Self.log($0) })
        let verdict = try await runner.run()
        Self.log(verdict.line)
        XCTAssertFalse(verdict.failed, "\(verdict.line)\n\(verdict.violation ?? "") (report: \(options.reportDirectory))")
        XCTAssertEqual(verdict.linearizable, true)
        XCTAssertEqual(verdict.lostAcknowledgedWrites, 0)
        XCTAssertTrue(verdict.replicaHashesEqual)
        let total = verdict.operationCounts.values.flatMap(\.values).reduce(0, +)
        XCTAssertGreaterThan(total, 100)
        XCTAssertGreaterThan(verdict.nemesisCounts.filter { $0.key != "heal" }.values.reduce(0, +), 0)
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(options.reportDirectory)/verdict.json"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(options.reportDirectory)/nodes/n1.log"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(options.reportDirectory)/data"),
                       "a passing run deletes the data directories")
        try? FileManager.default.removeItem(atPath: options.reportDirectory)
    }

    /// Membership changes under kills: members added (learner, joined, promoted), voters
    /// removed (their processes exit by themselves), the leader moved; the clients follow and
    /// the history stays linearizable.
    func testShortRunWithMembershipChangesPasses() async throws {
        ChildRegistry.shared.reset()
        let kinds: [NemesisKind] = [.membership, .kill]
        let duration = 36.0
        let interval = 3.0
        // The first seed whose schedule adds, removes and moves the leader early enough.
        let seed = (UInt64(1)...UInt64(10_000)).first { seed in
            let plan = NemesisSchedule.plan(seed: seed, kinds: kinds, nodes: 3, durationSeconds: duration,
                                            intervalSeconds: interval)
            let steps = plan.filter { $0.startNanos < 26_000_000_000 }.compactMap { fault -> MembershipStep? in
                if case .membership(let step) = fault.action { return step }
                return nil
            }
            let removes = steps.filter { if case .remove = $0 { return true } else { return false } }
            let moves = steps.filter { if case .moveLeader = $0 { return true } else { return false } }
            return steps.first == .add && !removes.isEmpty && !moves.isEmpty && plan.contains { $0.kind == .kill }
        } ?? 21
        var options = try makeOptions(seed: seed, name: "membership")
        options.durationSeconds = duration
        options.intervalSeconds = interval
        options.clients = 6
        options.keys = 6
        options.nemesis = kinds
        let lines = Mutex<[String]>([])
        let runner = ChaosRunner(options: options, network: ProxyNetwork(), log: { line in
            Self.log(line)
            lines.withLock { $0.append(line) }
        })
        let verdict = try await runner.run()
        Self.log(verdict.line)
        XCTAssertFalse(verdict.failed, "\(verdict.line)\n\(verdict.violation ?? "") (report: \(options.reportDirectory))")
        XCTAssertEqual(verdict.linearizable, true)
        XCTAssertEqual(verdict.lostAcknowledgedWrites, 0)
        XCTAssertTrue(verdict.replicaHashesEqual)
        // A running member that is removed stops by itself with status 0, as etcd does (a
        // supervisor restarting on failure must leave it down).
        let exits = lines.withLock { $0 }.filter { $0.contains("exited by itself with status") }
        XCTAssertTrue(exits.contains { $0.contains("exited by itself with status 0 ") }, "\(exits)")
        XCTAssertFalse(exits.contains { $0.contains("exited by itself with status 1 ") }, "\(exits)")
        XCTAssertGreaterThan(verdict.nemesisCounts["member-add"] ?? 0, 0, "\(verdict.nemesisCounts)")
        XCTAssertGreaterThan(verdict.nemesisCounts["member-promote"] ?? 0, 0, "\(verdict.nemesisCounts)")
        XCTAssertNotNil(verdict.finalMembers)
        XCTAssertTrue((3...5).contains(verdict.finalMembers?.count ?? 0), "\(verdict.finalMembers ?? [])")
        try? FileManager.default.removeItem(atPath: options.reportDirectory)
    }

    /// Power loss on disks that reorder writes, on every member at once: each member tears
    /// its next WAL write (some sectors written, an earlier one missing) and exits; all restart
    /// with no `synod recover`, discard the torn write (it was never synced) and serve, and
    /// nothing acknowledged is lost.
    func testEveryMemberTearingItsLastWriteAtOnceComesBackWithNothingLost() async throws {
        ChildRegistry.shared.reset()
        var options = try makeOptions(seed: 3, name: "torn")
        options.durationSeconds = 16
        options.intervalSeconds = 3
        options.clients = 6
        options.keys = 6
        options.nemesis = [.crashAllTorn]
        let runner = ChaosRunner(options: options, network: ProxyNetwork(), log: { Self.log($0) })
        let verdict = try await runner.run()
        Self.log(verdict.line)
        XCTAssertFalse(verdict.failed, "\(verdict.line)\n\(verdict.violation ?? "") (report: \(options.reportDirectory))")
        XCTAssertEqual(verdict.linearizable, true)
        XCTAssertEqual(verdict.lostAcknowledgedWrites, 0)
        XCTAssertTrue(verdict.replicaHashesEqual)
        XCTAssertGreaterThanOrEqual(verdict.nemesisCounts["crash-all-torn"] ?? 0, 2, "\(verdict.nemesisCounts)")
        let logs = (1...3).compactMap { try? String(contentsOfFile: "\(options.reportDirectory)/nodes/n\($0).log", encoding: .utf8) }
        let tears = logs.map { $0.components(separatedBy: "failpoint tear-wal-write").count - 1 }.reduce(0, +)
        let discarded = logs.map { $0.components(separatedBy: "bytes of an unsynced write").count - 1 }.reduce(0, +)
        Self.log("torn WAL writes: \(tears), torn writes discarded at restart: \(discarded)")
        XCTAssertGreaterThanOrEqual(tears, 3, "members should have torn WAL writes")
        XCTAssertGreaterThan(discarded, 0, "some restart should have discarded a torn write")
        XCTAssertFalse(logs.contains { $0.contains("corruption in") }, "no member may refuse to start")
        try? FileManager.default.removeItem(atPath: options.reportDirectory)
    }

    /// The negative control: with every node answering reads locally, clients that prefer
    /// followers see stale values, and the harness must say so.
    func testBrokenReadsAreCaught() async throws {
        ChildRegistry.shared.reset()
        // A node cut off from the majority keeps answering reads from its frozen state while the
        // majority moves on: pick the first seed whose schedule isolates or splits off a node
        // early and long enough, so the control does not depend on timing luck.
        let kinds: [NemesisKind] = [.partition, .pause]
        let seed = (UInt64(1)...UInt64(10_000)).first { seed in
            NemesisSchedule.plan(seed: seed, kinds: kinds, nodes: 3, durationSeconds: 15, intervalSeconds: 3)
                .contains { fault in
                    guard fault.startNanos < 8_000_000_000, fault.holdNanos >= 2_500_000_000 else { return false }
                    switch fault.action {
                    case .isolate, .split: return true
                    default: return false
                    }
                }
        } ?? 7
        var options = try makeOptions(seed: seed, name: "broken")
        options.durationSeconds = 15
        options.intervalSeconds = 3
        options.clients = 10
        options.keys = 2
        options.nemesis = kinds
        options.brokenReads = true
        let runner = ChaosRunner(options: options, network: ProxyNetwork(), log: { Self.log($0) })
        let verdict = try await runner.run()
        Self.log(verdict.line)
        XCTAssertEqual(verdict.linearizable, false, "stale reads went unnoticed: \(verdict.line)")
        XCTAssertTrue(verdict.failed)
        XCTAssertFalse(verdict.violationOperationIDs.isEmpty)
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(options.reportDirectory)/data"),
                      "a failed run keeps the data directories")
        try? FileManager.default.removeItem(atPath: options.reportDirectory)
    }

    /// The stall nemesis against a server whose read lease is counted in ticks (the
    /// `tick-lease` failpoint on every node): the leader is stopped with its peer links cut,
    /// the others elect a new leader and take writes, and the old leader wakes still cut off
    /// but reachable by clients, answering reads from the lease its stopped ticks kept alive.
    /// The harness must report the history as not linearizable. (The same schedule against
    /// the real server passes: `testStallsOfTheLeaderPass`.)
    func testLeaseCountedInTicksIsCaughtByTheStallNemesis() async throws {
        let (options, verdict) = try await stallRun(name: "tick-lease", brokenLease: true)
        XCTAssertEqual(verdict.linearizable, false, "stale lease reads went unnoticed: \(verdict.line)")
        XCTAssertGreaterThan(verdict.nemesisCounts["stall"] ?? 0, 0)
        try? FileManager.default.removeItem(atPath: options.reportDirectory)
    }

    /// The real server under the same stalls: the woken leader finds its lease expired (its
    /// clock ran through the stop) and serves nothing stale.
    func testStallsOfTheLeaderPass() async throws {
        let (options, verdict) = try await stallRun(name: "stall", brokenLease: false)
        XCTAssertFalse(verdict.failed, "\(verdict.line)\n\(verdict.violation ?? "") (report: \(options.reportDirectory))")
        XCTAssertEqual(verdict.linearizable, true)
        XCTAssertGreaterThan(verdict.nemesisCounts["stall"] ?? 0, 0)
        try? FileManager.default.removeItem(atPath: options.reportDirectory)
    }

    /// A run of the stall nemesis alone on `stallSeed`'s schedule.
    private func stallRun(name: String, brokenLease: Bool) async throws -> (ChaosOptions, ChaosVerdict) {
        ChildRegistry.shared.reset()
        var options = try makeOptions(seed: Self.stallSeed, name: name)
        options.durationSeconds = Self.stallDuration
        options.intervalSeconds = 3
        options.clients = 10
        options.keys = 3
        options.nemesis = [.stall]
        options.brokenLease = brokenLease
        let runner = ChaosRunner(options: options, network: ProxyNetwork(), log: { Self.log($0) })
        let verdict = try await runner.run()
        Self.log(verdict.line)
        return (options, verdict)
    }

    static let stallDuration = 24.0

    /// The first seed whose schedule stalls the leader at least three times, each long enough
    /// (2.5 s: the others elect a new leader and write meanwhile).
    static let stallSeed: UInt64 = (UInt64(1)...UInt64(10_000)).first { seed in
        NemesisSchedule.plan(seed: seed, kinds: [.stall], nodes: 3, durationSeconds: stallDuration, intervalSeconds: 3)
            .filter { fault in
                guard fault.holdNanos >= 2_500_000_000, case .stall(.leader, _) = fault.action else { return false }
                return true
            }.count >= 3
    } ?? 3
}
