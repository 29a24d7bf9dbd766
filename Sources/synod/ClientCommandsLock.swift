import ArgumentParser
import Dispatch
import Foundation
import Synchronization
import SynodClient

/// `synod lock NAME [COMMAND ARGS...]`, like `etcdctl lock`: acquires the lock through etcd's
/// Lock service with a lease kept alive meanwhile, prints the lock's key and holds it until
/// interrupted (SIGINT/SIGTERM), or runs the command with the lock held (its environment has
/// ETCD_LOCK_KEY and ETCD_LOCK_REV) and exits with the command's status.
struct ClientLockCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lock",
        abstract: "Acquire a named lock (like etcdctl lock).",
        discussion: "Without a command, prints the lock's key and holds the lock until interrupted; with one, runs it while holding the lock and exits with its status.")
    @OptionGroup var client: ClientOptions
    @Option(help: "TTL in seconds of the lease the lock is held with (kept alive while the command runs).")
    var ttl: Int64 = 10
    @Argument(help: "The lock's name.") var name: String
    @Argument(parsing: .captureForPassthrough, help: "A command to run with the lock held, and its arguments.")
    var command: [String] = []

    func validate() throws {
        if ttl <= 0 { throw ValidationError("--ttl must be positive") }
    }

    func run() async throws {
        let signals = InterruptSignals()
        var status: Int32 = 0
        try await client.run { client in
            status = try await LeaseSession.with(client, ttl: ttl) { session in
                let locked: V3lockpb_LockResponse
                do {
                    locked = try await signals.untilInterrupted { try await client.lock(name, lease: session.lease) }
                } catch is CancellationError {
                    throw ClientCommandError("context canceled")
                }
                let key = locked.key
                if let program = command.first {
                    let status = try await Self.runCommand(program, Array(command.dropFirst()), key: key, revision: locked.header.revision)
                    try await client.unlock(key: key)
                    return status
                }
                guard let held = try await client.get(key).kvs.first else { throw ClientCommandError("lock lost on init") }
                var out = Output()
                out.keyValue(held)
                out.flush()
                let interrupted = await signals.untilInterruptedOr { await session.expired() }
                if !interrupted { throw ClientCommandError("session expired") }
                try await client.unlock(key: key)
                return 0
            }
        }
        if status != 0 { throw ExitCode(status) }
    }

    /// Runs the command with the lock's key and revision in its environment; answers its exit
    /// status (or the number of the signal that ended it). Waits without holding a thread, so
    /// the lease's keep-alive goes on meanwhile.
    static func runCommand(_ program: String, _ arguments: [String], key: Data, revision: Int64) async throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [program] + arguments
        var environment = ProcessInfo.processInfo.environment
        environment["ETCD_LOCK_KEY"] = String(decoding: key, as: UTF8.self)
        environment["ETCD_LOCK_REV"] = "\(revision)"
        process.environment = environment
        let (ended, end) = AsyncStream.makeStream(of: Int32.self)
        process.terminationHandler = { finished in
            end.yield(finished.terminationStatus)
            end.finish()
        }
        do {
            // posix_spawn hands the calling thread's signal mask to the child, and the task
            // pool's threads block SIGINT and SIGTERM: unblocked, the command sees Ctrl-C.
            var none = sigset_t()
            var saved = sigset_t()
            sigemptyset(&none)
            pthread_sigmask(SIG_SETMASK, &none, &saved)
            defer { pthread_sigmask(SIG_SETMASK, &saved, nil) }
            try process.run()
        } catch {
            throw ClientCommandError("cannot run \(program): \(error)")
        }
        for await status in ended { return status }
        return process.terminationStatus
    }
}

/// `synod elect NAME PROPOSAL` and `synod elect --listen NAME`, like `etcdctl elect`:
/// campaigns through etcd's Election service and, once leading, prints the leader key and
/// value and leads until interrupted (then resigns); `-l` prints the leader and every change.
struct ClientElectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "elect",
        abstract: "Observe or take part in a leader election (like etcdctl elect).")
    @OptionGroup var client: ClientOptions
    @Flag(name: [.short, .long], help: "Observation mode: print the leader and each change of leader or value.")
    var listen = false
    @Option(help: "TTL in seconds of the campaign's lease (kept alive while leading or waiting).")
    var ttl: Int64 = 60
    @Argument(help: "The election's name.") var name: String
    @Argument(help: "The value proposed once elected.") var proposal: String?

    func validate() throws {
        if ttl <= 0 { throw ValidationError("--ttl must be positive") }
        if proposal == nil && !listen { throw ValidationError("no proposal argument but -l not set") }
    }

    func run() async throws {
        let signals = InterruptSignals()
        try await client.run { client in
            if listen {
                let failure = Mutex<(any Error)?>(nil)
                _ = await signals.untilInterruptedOr {
                    do {
                        for try await response in client.observe(name) {
                            var out = Output()
                            out.keyValue(response.kv)
                            out.flush()
                        }
                    } catch is CancellationError {
                    } catch {
                        failure.withLock { $0 = error }
                    }
                    return true
                }
                if let error = failure.withLock({ $0 }) { throw error }
                return
            }
            try await LeaseSession.with(client, ttl: ttl) { session in
                let campaign: V3electionpb_CampaignResponse
                do {
                    campaign = try await signals.untilInterrupted {
                        try await client.campaign(name, lease: session.lease, value: proposal ?? "")
                    }
                } catch is CancellationError {
                    throw ClientCommandError("context canceled")
                }
                guard let elected = try await client.get(campaign.leader.key).kvs.first else {
                    throw ClientCommandError("election: not leader")
                }
                var out = Output()
                out.keyValue(elected)
                out.flush()
                let interrupted = await signals.untilInterruptedOr { await session.expired() }
                if !interrupted { throw ClientCommandError("elect: session expired") }
                try await client.resign(campaign.leader)
            }
        }
    }
}

/// A lease kept alive in the background (etcd's concurrency session), revoked on `close`.
final class LeaseSession: Sendable {
    let lease: Int64
    private let keeper: Task<Void, Never>
    private let client: SynodClient
    private let gone = OnceFlag()

    private init(lease: Int64, ttl: Int64, client: SynodClient) {
        self.lease = lease
        self.client = client
        let gone = gone
        keeper = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(max(ttl * 1000 / 3, 500)))
                if Task.isCancelled { return }
                do {
                    let response = try await client.leaseKeepAliveOnce(id: lease)
                    if response.ttl <= 0 { break }
                } catch SynodClientError.server(code: .notFound, _, _) {
                    break
                } catch {
                    continue  // a failover or a slow member: try again within the TTL
                }
            }
            if !Task.isCancelled { gone.set() }
        }
    }
    static func open(_ client: SynodClient, ttl: Int64) async throws -> LeaseSession {
        let granted = try await client.leaseGrant(ttl: ttl)
        return LeaseSession(lease: granted.id, ttl: ttl, client: client)
    }

    /// Returns false once the lease is gone (expired or revoked); true if cancelled first.
    func expired() async -> Bool {
        while !gone.isSet {
            if Task.isCancelled { return true }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return false
    }

    /// Stops renewing and revokes the lease (deleting its keys), best effort.
    func close() async {
        keeper.cancel()
        _ = try? await client.leaseRevoke(id: lease)
    }

    /// Runs `body` with a session, closing it afterwards whatever happens.
    static func with<T>(_ client: SynodClient, ttl: Int64, _ body: (LeaseSession) async throws -> T) async throws -> T {
        let session = try await open(client, ttl: ttl)
        do {
            let result = try await body(session)
            await session.close()
            return result
        } catch {
            await session.close()
            throw error
        }
    }
}

/// SIGINT and SIGTERM, noticed by whoever waits (etcdctl's lock and elect end on either).
final class InterruptSignals: Sendable {
    private let raised = OnceFlag()
    /// Kept for the life of the object (a released source stops delivering).
    private let sources: Mutex<[any DispatchSourceSignal]>

    init() {
        let raised = raised
        var sources: [any DispatchSourceSignal] = []
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { raised.set() }
            source.resume()
            sources.append(source)
        }
        self.sources = Mutex(sources)
    }

    /// Returns once a signal came (or the task is cancelled).
    private func waitForSignal() async {
        while !raised.isSet && !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Runs `body`; an interrupt cancels it (it then throws `CancellationError`).
    func untilInterrupted<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                await self.waitForSignal()
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let result = first else { throw CancellationError() }
            return result
        }
    }

    /// Waits for an interrupt (answers true) or for `body` to end (answers its result).
    func untilInterruptedOr(_ body: @escaping @Sendable () async -> Bool) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask { await body() }
            group.addTask {
                await self.waitForSignal()
                return true
            }
            defer { group.cancelAll() }
            return await group.next() ?? true
        }
    }
}

/// A flag set once, from any thread.
final class OnceFlag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .acquiring) }
    func set() { value.store(true, ordering: .releasing) }
}
