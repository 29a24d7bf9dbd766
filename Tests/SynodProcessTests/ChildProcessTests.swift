import Foundation
import Synchronization
import SynodProcess
import XCTest

/// The harness with real, tiny children (sh, sleep): exits, kills, pauses, stops, clean-up.
/// Each test has its own registry, so nothing here touches `ChildRegistry.shared`.
final class ChildProcessTests: XCTestCase {
    private var directory = ""

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("synod-process-\(getpid())-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func shell(_ script: String, log: String? = nil) -> ChildCommand {
        ChildCommand(executable: "/bin/sh", arguments: ["-c", script], logPath: log.map { "\(directory)/\($0)" })
    }

    private func sleeper(seconds: Int = 30) -> ChildCommand {
        ChildCommand(executable: "/bin/sleep", arguments: [String(seconds)])
    }

    /// The scheduler state letter of a process (R, S, T for stopped, ...), from /proc.
    private func state(of pid: Int32) -> Character? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        return stat[close...].dropFirst().first { $0 != " " }
    }

    private func waitForState(of pid: Int32, _ predicate: (Character?) -> Bool) -> Character? {
        let deadline = ContinuousClock.now + .seconds(5)
        while !predicate(state(of: pid)) && ContinuousClock.now < deadline { usleep(10_000) }
        return state(of: pid)
    }

    func testAChildThatExitsReportsItsStatusAndItsOutputIsInTheLog() async throws {
        let registry = ChildRegistry()
        let child = try registry.launch(shell("echo out; echo err >&2; exit 3", log: "c.log"), name: "c")
        let exited = await child.waitForExit(timeout: .seconds(10))
        XCTAssertTrue(exited)
        XCTAssertFalse(child.isRunning)
        XCTAssertEqual(child.exitStatus, 3)
        XCTAssertEqual(child.name, "c")
        XCTAssertTrue(registry.running.isEmpty, "an exited child is no longer among the running")
        XCTAssertEqual(try String(contentsOfFile: "\(directory)/c.log", encoding: .utf8), "out\nerr\n")
    }

    func testTheLogIsAppendedToNotReplaced() async throws {
        let registry = ChildRegistry()
        XCTAssertTrue(ChildLog.append("--- first\n", to: "\(directory)/a.log"))
        let child = try registry.launch(shell("echo run", log: "a.log"), name: "a")
        _ = await child.waitForExit(timeout: .seconds(10))
        ChildLog.append("--- after\n", to: "\(directory)/a.log")
        XCTAssertEqual(try String(contentsOfFile: "\(directory)/a.log", encoding: .utf8), "--- first\nrun\n--- after\n")
    }

    func testAKilledChildIsGoneWithTheSignalAsItsStatus() async throws {
        let registry = ChildRegistry()
        let child = try registry.launch(sleeper(), name: "s")
        XCTAssertTrue(child.isRunning)
        XCTAssertNil(child.exitStatus)
        XCTAssertEqual(registry.running.map(\.pid), [child.pid])
        await child.killAndWait(timeout: .seconds(10))
        XCTAssertFalse(child.isRunning)
        XCTAssertEqual(child.exitStatus, SIGKILL)
        XCTAssertTrue(registry.running.isEmpty)
        child.kill()  // a second kill of a reaped child sends nothing
    }

    func testAPausedChildStopsAndRunsAgainWhenResumed() async throws {
        let registry = ChildRegistry()
        let child = try registry.launch(sleeper(), name: "p")
        child.pause()
        XCTAssertEqual(waitForState(of: child.pid) { $0 == "T" }, "T", "SIGSTOP stops it")
        XCTAssertTrue(child.isRunning, "a stopped child has not exited")
        child.resume()
        XCTAssertNotEqual(waitForState(of: child.pid) { $0 != "T" }, "T", "SIGCONT lets it run")
        child.pause()
        XCTAssertEqual(waitForState(of: child.pid) { $0 == "T" }, "T")
        await child.killAndWait(timeout: .seconds(10))
        XCTAssertEqual(child.exitStatus, SIGKILL, "a paused child dies from kill() as well")
    }

    func testStopAsksFirstAndKillsWhatIgnoresTheRequest() async throws {
        let registry = ChildRegistry()
        let polite = try registry.launch(sleeper(), name: "polite")
        // sleep with SIGTERM ignored (exec keeps the ignored disposition).
        let stubborn = try registry.launch(shell("trap '' TERM; exec sleep 30"), name: "stubborn")
        try await Task.sleep(for: .milliseconds(200))  // let sh install the trap and exec
        let killed = Mutex<[String]>([])
        let start = ContinuousClock.now
        await ChildProcess.stop([polite, stubborn], grace: .milliseconds(500)) { child in
            killed.withLock { $0.append(child.name) }
        }
        XCTAssertLessThan(ContinuousClock.now - start, .seconds(8))
        XCTAssertEqual(killed.withLock { $0 }, ["stubborn"])
        XCTAssertEqual(polite.exitStatus, SIGTERM)
        XCTAssertEqual(stubborn.exitStatus, SIGKILL)
        XCTAssertTrue(registry.running.isEmpty)
    }

    func testKillAllCleansUpEveryChildAndRefusesNewOnesUntilReset() throws {
        let registry = ChildRegistry()
        let children = try (0..<3).map { try registry.launch(sleeper(), name: "k\($0)") }
        children[1].pause()
        XCTAssertEqual(registry.running.count, 3)
        registry.killAll()
        XCTAssertTrue(registry.shuttingDown)
        for child in children {
            XCTAssertTrue(child.blockUntilExit(timeout: .seconds(10)), child.name)
            XCTAssertEqual(child.exitStatus, SIGKILL, child.name)
        }
        XCTAssertTrue(registry.running.isEmpty)
        XCTAssertThrowsError(try registry.launch(sleeper(), name: "late")) { error in
            guard case .shuttingDown = error as? ChildLaunchError else { return XCTFail("\(error)") }
        }
        registry.reset()
        let again = try registry.launch(sleeper(), name: "again")
        again.kill()
        XCTAssertTrue(again.blockUntilExit(timeout: .seconds(10)))
    }

    func testLaunchPrefixesAndEnvironment() async throws {
        let registry = ChildRegistry()
        // A prefix named by a word goes through /usr/bin/env: `env GREETING=hi sh -c ...`.
        var command = shell("echo \"$GREETING\"", log: "prefix.log")
        command.launchPrefix = ["env", "GREETING=hi"]
        XCTAssertEqual(command.resolved.executable, "/usr/bin/env")
        XCTAssertEqual(command.resolved.arguments, ["env", "GREETING=hi", "/bin/sh", "-c", "echo \"$GREETING\""])
        let prefixed = try registry.launch(command, name: "prefixed")
        _ = await prefixed.waitForExit(timeout: .seconds(10))
        XCTAssertEqual(try String(contentsOfFile: "\(directory)/prefix.log", encoding: .utf8), "hi\n")

        // An absolute prefix (as /usr/bin/setpriv ...) is executed itself.
        command.launchPrefix = ["/usr/bin/env", "GREETING=absolute"]
        XCTAssertEqual(command.resolved.executable, "/usr/bin/env")
        XCTAssertEqual(command.resolved.arguments.first, "GREETING=absolute")
        command.launchPrefix = []
        XCTAssertEqual(command.resolved.executable, "/bin/sh")

        // An environment replaces this process's whole environment.
        let environment = ChildCommand(executable: "/bin/sh", arguments: ["-c", "echo \"${ONLY-}/${HOME-unset}\""],
                                       environment: ["ONLY": "x"], logPath: "\(directory)/env.log")
        let child = try registry.launch(environment, name: "env")
        _ = await child.waitForExit(timeout: .seconds(10))
        XCTAssertEqual(try String(contentsOfFile: "\(directory)/env.log", encoding: .utf8), "x/unset\n")
    }

    func testLaunchFailuresSayWhy() throws {
        let registry = ChildRegistry()
        XCTAssertThrowsError(try registry.launch(ChildCommand(executable: "/nonexistent/synod"), name: "x")) { error in
            guard case .cannotStart(let executable, _) = error as? ChildLaunchError else { return XCTFail("\(error)") }
            XCTAssertEqual(executable, "/nonexistent/synod")
        }
        let unwritable = ChildCommand(executable: "/bin/true", logPath: "\(directory)/no/such/dir/x.log")
        XCTAssertThrowsError(try registry.launch(unwritable, name: "x")) { error in
            XCTAssertEqual("\(error)", "cannot write \(directory)/no/such/dir/x.log")
        }
        XCTAssertTrue(registry.running.isEmpty)
    }
}
