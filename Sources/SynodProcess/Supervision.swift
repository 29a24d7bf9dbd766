import Foundation
import Synchronization

/// Signals delivered to a handler on a dispatch queue instead of ending this process.
///
/// Keep the trap while it is needed and cancel it when done: the sources hold it weakly, so a
/// trap nobody keeps stops reacting. The signals stay ignored after cancelling, as they were
/// while trapped, so a second Ctrl-C during a supervisor's clean-up cannot cut it short.
public final class SignalTrap: Sendable {
    /// SIGINT (Ctrl-C) and SIGTERM (kill, service managers): what asks a supervisor to stop.
    public static let termination: [Int32] = [SIGINT, SIGTERM]

    private let state = Mutex<(sources: [any DispatchSourceSignal], cancelled: Bool)>(([], false))

    public init(_ signals: [Int32] = SignalTrap.termination,
                handler: @escaping @Sendable (_ signal: Int32, _ trap: SignalTrap) -> Void) {
        // A dispatch source only sees a signal whose default action (ending the process) is off.
        for number in signals { signal(number, SIG_IGN) }
        let sources = signals.map { number -> any DispatchSourceSignal in
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [weak self] in
                guard let self, !self.isCancelled else { return }
                handler(number, self)
            }
            source.resume()
            return source
        }
        state.withLock { $0.sources = sources }
    }

    public var isCancelled: Bool { state.withLock { $0.cancelled } }

    public func cancel() {
        // Cancelling a source only flags it (never waits for a running handler), so doing it
        // under the lock cannot block.
        state.withLock { state in
            state.cancelled = true
            for source in state.sources { source.cancel() }
        }
    }
}

/// What ended ``ChildProcess/waitForSignalOrExit(_:signals:pollInterval:)``.
public enum SupervisionEvent: Sendable {
    case signal(Int32)
    case exited(ChildProcess, status: Int32)
}

extension ChildProcess {
    /// Waits until one of `signals` arrives or one of `children` exits, whichever is first;
    /// nil when the waiting task is cancelled first.
    public static func waitForSignalOrExit(_ children: [ChildProcess], signals: [Int32] = SignalTrap.termination,
                                           pollInterval: Duration = .milliseconds(200)) async -> SupervisionEvent? {
        await waitForSignalOrExit(watching: { children }, signals: signals, pollInterval: pollInterval)
    }

    /// The same, for a supervisor whose set of children changes: `watching` is asked at every
    /// poll for the children whose exit ends the wait (a child stopped on purpose is left out).
    public static func waitForSignalOrExit(watching: @escaping @Sendable () async -> [ChildProcess],
                                           signals: [Int32] = SignalTrap.termination,
                                           pollInterval: Duration = .milliseconds(200)) async -> SupervisionEvent? {
        let (events, continuation) = AsyncStream<SupervisionEvent>.makeStream()
        let trap = SignalTrap(signals) { number, _ in continuation.yield(.signal(number)) }
        let watcher = Task.detached {
            while !Task.isCancelled {
                for child in await watching() {
                    guard let status = child.exitStatus else { continue }
                    continuation.yield(.exited(child, status: status))
                    return
                }
                try? await Task.sleep(for: pollInterval)
            }
        }
        defer {
            watcher.cancel()
            trap.cancel()
            continuation.finish()
        }
        for await event in events { return event }
        return nil
    }
}

extension ChildRegistry {
    /// Ctrl-C / SIGTERM for a command that runs its work in a task: kill every child at once,
    /// call `cancel` so the work can clean up and report, and if this process is still there
    /// `grace` later (and the trap not cancelled), kill the children again (the work may have
    /// started some since), say so on standard error and exit with status 130.
    public func killOnInterrupt(command: String, grace: Duration, signals: [Int32] = SignalTrap.termination,
                                cancel: @escaping @Sendable () -> Void) -> SignalTrap {
        SignalTrap(signals) { [self] _, trap in
            killAll()
            cancel()
            let (seconds, attoseconds) = grace.components
            let delay = Double(seconds) + Double(attoseconds) / 1e18
            DispatchQueue.global().asyncAfter(deadline: .now() + delay) { [self] in
                // The command finished its clean-up and let the trap go: nothing to force.
                guard !trap.isCancelled else { return }
                killAll()
                FileHandle.standardError.write(Data("\(command): interrupted; cleanup took too long\n".utf8))
                exit(130)
            }
        }
    }
}
