import Foundation
import NIOPosix
import SynodBench
import SynodProcess
import XCTest

@testable import synod

/// The commands that supervise `synod serve` children, run as a person would: `synod cluster`
/// stopped by Ctrl-C, SIGTERM or a member's death, and `synod chaos` interrupted. Each must
/// leave no child behind.
final class SupervisorCommandTests: XCTestCase {
    private var directory = ""
    private let registry = ChildRegistry()

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("synod-supervisor-\(getpid())-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDown() {
        registry.killAll()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// The `synod` executable built next to the test bundle (this target depends on it).
    private func synodBinary() throws -> String {
        // On Linux the test bundle is an executable in the build directory, next to synod.
        let testBinaries = [Bundle.main.bundleURL] + CommandLine.arguments.prefix(1).map(URL.init(fileURLWithPath:))
        let candidates = testBinaries.map {
            $0.resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("synod").path
        }
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw XCTSkip("no synod executable next to the test bundle; run `swift build --product synod`")
        }
        return found
    }

    /// A base port for `synod cluster --nodes 3`: base, base+20000 and base+30000, each with
    /// the two ports above it, all free.
    private func clusterBasePort() -> Int {
        for attempt in 0..<100 {
            let base = 21_000 + (Int(getpid() % 500) * 20 + attempt * 37) % 14_000
            let ports = [0, 20_000, 30_000].flatMap { offset in (0...2).map { base + offset + $0 } }
            if ports.allSatisfy(CompareClusterLayout.portIsFree) { return base }
        }
        return 21_000
    }

    /// The processes whose parent is `pid`, from /proc.
    private func children(of pid: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { candidate in
            guard let stat = try? String(contentsOfFile: "/proc/\(candidate)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            // After the command name: state, then the parent's pid.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 && Int32(fields[1]) == pid
        }
    }

    /// Waits until `count` children of `parent` have been running for a while.
    private func waitForChildren(of parent: ChildProcess, count: Int, seconds: Int = 60) async throws -> [Int32] {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            let found = children(of: parent.pid)
            if found.count >= count {
                try await Task.sleep(for: .seconds(2))
                return children(of: parent.pid)
            }
            XCTAssertTrue(parent.isRunning, "the supervisor exited early: \(log("supervisor.log"))")
            if !parent.isRunning { return [] }
            try await Task.sleep(for: .milliseconds(100))
        }
        XCTFail("no \(count) children within \(seconds) s: \(log("supervisor.log"))")
        return []
    }

    private func log(_ name: String) -> String {
        (try? String(contentsOfFile: "\(directory)/\(name)", encoding: .utf8)) ?? ""
    }

    private func assertGone(_ pids: [Int32], file: StaticString = #filePath, line: UInt = #line) {
        for pid in pids {
            XCTAssertFalse(FileManager.default.fileExists(atPath: "/proc/\(pid)"), "child \(pid) still exists", file: file, line: line)
        }
    }

    private func startCluster() async throws -> (ChildProcess, [Int32]) {
        let command = ChildCommand(
            executable: try synodBinary(),
            arguments: ["cluster", "--data-dir", "\(directory)/data", "--base-port", String(clusterBasePort())],
            logPath: "\(directory)/supervisor.log")
        let cluster = try registry.launch(command, name: "cluster")
        let members = try await waitForChildren(of: cluster, count: 3)
        XCTAssertEqual(members.count, 3)
        return (cluster, members)
    }

    func testClusterStopsEveryMemberOnCtrlC() async throws {
        let (cluster, members) = try await startCluster()
        cluster.send(SIGINT)
        let exited = await cluster.waitForExit(timeout: .seconds(30))
        XCTAssertTrue(exited)
        XCTAssertEqual(cluster.exitStatus, 0, log("supervisor.log"))
        let output = log("supervisor.log")
        XCTAssertTrue(output.contains("Synod: 3-node local cluster started"), output)
        XCTAssertTrue(output.hasSuffix("\nstopping (interrupted)...\nstopped.\n"), output)
        XCTAssertFalse(output.contains("did not stop"), "the members stop on SIGTERM: \(output)")
        assertGone(members)
    }

    func testClusterStopsEveryMemberOnSIGTERM() async throws {
        let (cluster, members) = try await startCluster()
        cluster.send(SIGTERM)
        _ = await cluster.waitForExit(timeout: .seconds(30))
        XCTAssertEqual(cluster.exitStatus, 0)
        XCTAssertTrue(log("supervisor.log").hasSuffix("\nstopping (terminated)...\nstopped.\n"), log("supervisor.log"))
        assertGone(members)
    }

    func testClusterStopsWhenAMemberDies() async throws {
        let (cluster, members) = try await startCluster()
        let victim = try XCTUnwrap(members.first)
        kill(victim, SIGKILL)
        _ = await cluster.waitForExit(timeout: .seconds(30))
        XCTAssertEqual(cluster.exitStatus, 0)
        let output = log("supervisor.log")
        XCTAssertTrue(output.range(of: #"stopping \(n[123] exited with status 9; see its log\)\.\.\.\nstopped\.\n$"#,
                                   options: .regularExpression) != nil, output)
        assertGone(members)
    }

    /// The cluster page's controls, over HTTP: a member killed there stays down while the
    /// cluster runs on, restart brings it back, and Ctrl-C stops a paused member promptly too.
    func testClusterPageControlsKillRestartAndPause() async throws {
        let base = clusterBasePort()
        let ui = base - 1
        guard CompareClusterLayout.portIsFree(ui) else { throw XCTSkip("port \(ui) is taken") }
        let command = ChildCommand(
            executable: try synodBinary(),
            arguments: ["cluster", "--data-dir", "\(directory)/data", "--base-port", String(base), "--ui-port", String(ui)],
            logPath: "\(directory)/supervisor.log")
        let cluster = try registry.launch(command, name: "cluster")
        let members = try await waitForChildren(of: cluster, count: 3)
        XCTAssertEqual(members.count, 3)
        XCTAssertTrue(log("supervisor.log").contains("Cluster page: http://127.0.0.1:\(ui)/"), log("supervisor.log"))
        let http = LiveHTTPClient(group: MultiThreadedEventLoopGroup.singleton, tls: nil)
        let page = "http://127.0.0.1:\(ui)"
        func state() async throws -> LiveJSON {
            let answer = try await http.request(.GET, page + "/ui/state", timeout: .seconds(5)).get()
            XCTAssertEqual(answer.status, 200)
            return try XCTUnwrap(LiveJSON.parse(answer.body))
        }
        func control(_ action: String, _ body: String, token: String) async throws -> (Int, LiveJSON?) {
            let answer = try await http.request(.POST, page + "/ui/control/" + action, headers: [("X-Synod-Control-Token", token)],
                                                body: Array(body.utf8), timeout: .seconds(10)).get()
            return (answer.status, LiveJSON.parse(answer.body))
        }
        let first = try await state()
        let token = try XCTUnwrap(first["controls"]?["token"]?.string)
        let (refused, _) = try await control("kill", #"{"member":"n2"}"#, token: "wrong")
        XCTAssertEqual(refused, 403)
        let (status, answer) = try await control("kill", #"{"member":"n2"}"#, token: token)
        XCTAssertEqual(status, 200)
        XCTAssertEqual(answer?["ok"], .bool(true), "\(String(describing: answer))")
        try await Task.sleep(for: .seconds(1))
        XCTAssertTrue(cluster.isRunning, "a member killed from the page does not stop the cluster: \(log("supervisor.log"))")
        XCTAssertEqual(children(of: cluster.pid).count, 2)
        let n2 = try await state()["members"]?.array?.first { $0["name"] == "n2" }
        XCTAssertEqual(n2?["role"], .string("down"))
        XCTAssertEqual(n2?["error"], .string("killed from the cluster page"))
        let (restarted, again) = try await control("restart", #"{"member":"n2"}"#, token: token)
        XCTAssertEqual(restarted, 200)
        XCTAssertEqual(again?["ok"], .bool(true), "\(String(describing: again))")
        XCTAssertEqual(children(of: cluster.pid).count, 3)
        let (paused, _) = try await control("pause", #"{"member":"n3"}"#, token: token)
        XCTAssertEqual(paused, 200)
        let n3 = try await state()["members"]?.array?.first { $0["name"] == "n3" }
        XCTAssertEqual(n3?["role"], .string("paused"))
        let all = children(of: cluster.pid)
        let stopping = ContinuousClock.now
        cluster.send(SIGINT)
        _ = await cluster.waitForExit(timeout: .seconds(30))
        XCTAssertEqual(cluster.exitStatus, 0, log("supervisor.log"))
        XCTAssertLessThan(ContinuousClock.now - stopping, .seconds(9), "a paused member is stopped without waiting out its grace")
        XCTAssertFalse(log("supervisor.log").contains("did not stop"), log("supervisor.log"))
        assertGone(all)
    }

    func testChaosKillsEveryNodeOnCtrlCAndExits130() async throws {
        let report = "\(directory)/report"
        let command = ChildCommand(
            executable: try synodBinary(),
            arguments: ["chaos", "--duration", "5m", "--nemesis", "none", "--clients", "2", "--report", report],
            logPath: "\(directory)/supervisor.log")
        let chaos = try registry.launch(command, name: "chaos")
        let nodes = try await waitForChildren(of: chaos, count: 3)
        XCTAssertEqual(nodes.count, 3)
        chaos.send(SIGINT)
        let exited = await chaos.waitForExit(timeout: .seconds(30))
        XCTAssertTrue(exited)
        XCTAssertEqual(chaos.exitStatus, 130, log("supervisor.log"))
        XCTAssertTrue(log("supervisor.log").contains("synod chaos: interrupted; nodes killed, logs in \(report)/nodes"),
                      log("supervisor.log"))
        assertGone(nodes)
    }
}
