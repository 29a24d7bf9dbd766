import Foundation

/// A child process started by a ``ChildRegistry``: its state, the signals a supervisor sends
/// it, and waiting for it to end.
public final class ChildProcess: Sendable {
    /// The supervisor's name for it (a member name such as `n1`), for messages.
    public let name: String
    public let command: ChildCommand
    public let pid: Int32
    private let process: Process

    init(name: String, command: ChildCommand, process: Process) {
        self.name = name
        self.command = command
        self.pid = process.processIdentifier
        self.process = process
    }

    /// True until the child has exited and been reaped.
    public var isRunning: Bool { process.isRunning }

    /// Nil while the child runs; then its exit code, or the number of the signal that ended it.
    public var exitStatus: Int32? {
        process.isRunning ? nil : process.terminationStatus
    }

    /// Sends `signal` while the child runs. Once it has been reaped its pid may already belong
    /// to an unrelated process, so nothing is sent then.
    public func send(_ signal: Int32) {
        guard process.isRunning else { return }
        _ = Foundation.kill(pid, signal)
    }

    /// SIGSTOP: the child stays in memory, holding its sockets and files, but runs no code.
    public func pause() { send(SIGSTOP) }

    /// SIGCONT after ``pause()``.
    public func resume() { send(SIGCONT) }

    /// SIGCONT, then SIGKILL, without waiting. Linux ends a stopped process on SIGKILL too; the
    /// SIGCONT costs nothing and makes a paused child's end as prompt as a running one's on
    /// any kernel.
    public func kill() {
        send(SIGCONT)
        send(SIGKILL)
    }

    /// ``kill()``, then waits up to `timeout` for the child to be gone.
    public func killAndWait(timeout: Duration) async {
        kill()
        _ = await waitForExit(timeout: timeout)
    }

    /// Waits up to `timeout` for the child to exit; true when it did.
    public func waitForExit(timeout: Duration) async -> Bool {
        await waitForExit(until: .now + timeout)
    }

    /// Waits until `deadline` at most for the child to exit; true when it did.
    public func waitForExit(until deadline: ContinuousClock.Instant) async -> Bool {
        // Polling: Foundation reaps the child on its own thread and offers no awaitable
        // completion; 5 ms is far below anything a supervisor measures.
        while process.isRunning && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(5))
        }
        return !process.isRunning
    }

    /// The blocking form of ``waitForExit(timeout:)``, for clean-up paths that cannot await
    /// (a `defer` in synchronous code).
    public func blockUntilExit(timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < deadline {
            usleep(10_000)
        }
        return !process.isRunning
    }

    /// Asks every child to stop (SIGCONT, then SIGTERM: a paused child would otherwise sit on
    /// the SIGTERM until its grace ran out), gives them `grace` together, then SIGKILLs the ones
    /// still running, calling `whenKilled` for each first, and waits for those too.
    public static func stop(_ children: [ChildProcess], grace: Duration,
                            whenKilled: (ChildProcess) -> Void = { _ in }) async {
        for child in children {
            child.send(SIGCONT)
            child.send(SIGTERM)
        }
        let deadline = ContinuousClock.now + grace
        for child in children { _ = await child.waitForExit(until: deadline) }
        for child in children where child.isRunning {
            whenKilled(child)
            await child.killAndWait(timeout: .seconds(10))
        }
    }
}
