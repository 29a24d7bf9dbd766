import Foundation
import Synchronization

/// Every child a supervisor started, so that one call can kill them all, whatever the
/// supervisor is doing at that moment (a signal handler, an error path, the process exiting).
///
/// After ``killAll()`` the registry is shutting down: ``launch(_:name:)`` refuses, and a child
/// whose launch raced with it is killed as soon as it is registered.
public final class ChildRegistry: Sendable {
    private struct State {
        var children: [Int32: ChildProcess] = [:]
        var shuttingDown = false
    }

    private let state = Mutex(State())

    /// The registry of the `synod` commands. Its children are also killed when this process
    /// exits through `exit()` (an error thrown out of a command, a timeout's `exit(130)`), so a
    /// supervisor that fails half-way leaves no server behind.
    public static let shared: ChildRegistry = {
        let registry = ChildRegistry()
        atexit { ChildRegistry.shared.killAll() }
        return registry
    }()

    public init() {}

    /// True once ``killAll()`` ran (until ``reset()``): nothing may start any more.
    public var shuttingDown: Bool { state.withLock { $0.shuttingDown } }

    /// The registered children still running.
    public var running: [ChildProcess] {
        state.withLock { Array($0.children.values) }.filter(\.isRunning)
    }

    /// Starts `command` and registers the child under `name`. Its standard input is
    /// /dev/null: the children are servers, and a shared terminal must stay the supervisor's.
    public func launch(_ command: ChildCommand, name: String) throws(ChildLaunchError) -> ChildProcess {
        guard !shuttingDown else { throw .shuttingDown }
        var log: FileHandle?
        if let path = command.logPath {
            guard let handle = ChildLog.openForAppending(path) else { throw .cannotWriteLog(path: path) }
            log = handle
        }
        let process = Process()
        let (executable, arguments) = command.resolved
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment = command.environment { process.environment = environment }
        process.standardInput = FileHandle.nullDevice
        if let log {
            process.standardOutput = log
            process.standardError = log
        }
        do {
            try Self.withNoSignalBlocked { try process.run() }
        } catch {
            try? log?.close()
            throw .cannotStart(executable: command.executable, underlying: error)
        }
        // posix_spawn has returned, so the child holds its own copy of the log descriptor.
        try? log?.close()
        let child = ChildProcess(name: name, command: command, process: process)
        // The spawn ran outside the lock (a slow exec must not block killAll); a killAll that
        // came in meanwhile did not see this child, so it is killed here.
        let lateForShutdown = state.withLock { state in
            state.children = state.children.filter { $0.value.isRunning }
            state.children[child.pid] = child
            return state.shuttingDown
        }
        if lateForShutdown { child.kill() }
        return child
    }

    /// Runs `body` with no signal blocked on the calling thread. posix_spawn hands that thread's
    /// mask down to the child, and Swift's thread pool blocks SIGINT, SIGTERM and more on its
    /// threads: a program started from there would never see a SIGTERM. This process's own
    /// signals are unaffected: its main thread blocks none, and what it handles it handles
    /// wherever the signal lands.
    private static func withNoSignalBlocked<T>(_ body: () throws -> T) rethrows -> T {
        var none = sigset_t()
        var saved = sigset_t()
        sigemptyset(&none)
        pthread_sigmask(SIG_SETMASK, &none, &saved)
        defer { pthread_sigmask(SIG_SETMASK, &saved, nil) }
        return try body()
    }

    /// Marks the registry as shutting down and SIGKILLs (after SIGCONT) every registered child
    /// still running, without waiting. It takes one lock and sends signals, so a signal
    /// source's handler or an exit hook may call it at any time.
    public func killAll() {
        let children = state.withLock { state in
            state.shuttingDown = true
            return Array(state.children.values)
        }
        for child in children { child.kill() }
    }

    /// Allows launches again after ``killAll()`` (tests running several supervisors in turn).
    public func reset() {
        state.withLock { $0.shuttingDown = false }
    }
}
