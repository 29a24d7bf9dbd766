import Foundation
import Synchronization
import SynodProcess
import XCTest

/// Signal handling of the harness, with SIGUSR1/SIGUSR2 standing in for SIGINT/SIGTERM so the
/// test process itself is never asked to stop.
final class SupervisionTests: XCTestCase {
    private func sleeper() -> ChildCommand {
        ChildCommand(executable: "/bin/sleep", arguments: ["30"])
    }

    func testAnInterruptKillsEveryChildAndCancelsTheWork() async throws {
        let registry = ChildRegistry()
        let children = try (0..<2).map { try registry.launch(sleeper(), name: "i\($0)") }
        children[0].pause()
        let cancelled = Flag()
        // A long grace: the trap is cancelled below, as a command does once its clean-up is
        // done, so the forced exit(130) never comes.
        let trap = registry.killOnInterrupt(command: "test", grace: .seconds(600), signals: [SIGUSR1]) {
            cancelled.set()
        }
        defer { trap.cancel() }
        // Dispatch installs the handler asynchronously after resume(); a signal that came
        // before would meet the plain SIG_IGN.
        try await Task.sleep(for: .milliseconds(300))
        kill(getpid(), SIGUSR1)
        for child in children {
            let exited = await child.waitForExit(timeout: .seconds(10))
            XCTAssertTrue(exited, child.name)
            XCTAssertEqual(child.exitStatus, SIGKILL)
        }
        let deadline = ContinuousClock.now + .seconds(10)
        while !cancelled.isSet && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        XCTAssertTrue(cancelled.isSet)
        XCTAssertTrue(registry.shuttingDown, "no child may start after the interrupt")
        trap.cancel()
        XCTAssertTrue(trap.isCancelled)
    }

    func testWaitingEndsWhenAChildExits() async throws {
        let registry = ChildRegistry()
        let long = try registry.launch(sleeper(), name: "long")
        let short = try registry.launch(ChildCommand(executable: "/bin/sh", arguments: ["-c", "sleep 0.2; exit 7"]), name: "short")
        let event = await ChildProcess.waitForSignalOrExit([long, short], signals: [SIGUSR2], pollInterval: .milliseconds(20))
        guard case .exited(let child, let status) = event else { return XCTFail("\(String(describing: event))") }
        XCTAssertEqual(child.name, "short")
        XCTAssertEqual(status, 7)
        XCTAssertTrue(long.isRunning)
        await ChildProcess.stop([long, short], grace: .seconds(5))
        XCTAssertEqual(long.exitStatus, SIGTERM)
    }

    func testWaitingEndsOnASignal() async throws {
        let registry = ChildRegistry()
        // Ignored from the start: the default action would end the test process if the
        // signal came before the trap was in place.
        signal(SIGUSR2, SIG_IGN)
        let child = try registry.launch(sleeper(), name: "waiter")
        let sender = Task {
            try await Task.sleep(for: .milliseconds(200))
            kill(getpid(), SIGUSR2)
        }
        let event = await ChildProcess.waitForSignalOrExit([child], signals: [SIGUSR2], pollInterval: .milliseconds(20))
        _ = try await sender.value
        guard case .signal(let number) = event else { return XCTFail("\(String(describing: event))") }
        XCTAssertEqual(number, SIGUSR2)
        XCTAssertTrue(child.isRunning, "a signal stops the waiting, not the children")
        await ChildProcess.stop([child], grace: .seconds(5))
        XCTAssertFalse(child.isRunning)
    }
}

/// A flag set from a @Sendable closure.
private final class Flag: Sendable {
    private let value = Mutex(false)
    var isSet: Bool { value.withLock { $0 } }
    func set() { value.withLock { $0 = true } }
}
