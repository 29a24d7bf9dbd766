import ArgumentParser
import Foundation
import GRPCCore
import SynodClient

/// `synod bench auth`: Authenticate calls per second against a running cluster (Synod or
/// etcd), the figure etcd's users found to be a bottleneck. Two phases: the same user and
/// password again and again (clients that authenticate per request), and many users each
/// authenticating once (every call pays a full password-hash verification).
struct AuthBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "auth",
        abstract: "Authenticate calls per second against a running cluster (measures; sets up and removes its users).",
        discussion: """
            The cluster must have auth disabled: the command adds root and bench users, enables auth,
            measures, then disables auth and removes the users again. Run it against Synod and
            against etcd 3.4 on the same machine to compare.
            """)

    @Option(help: "Comma-separated client endpoints (host:port).")
    var endpoints: String = ClientOptions.defaultEndpoints
    @Option(help: "Concurrent callers.")
    var clients: Int = 16
    @Option(help: "Seconds of the repeated-credentials phase.")
    var duration: Double = 5
    @Option(help: "Distinct users of the first-time phase (each authenticates once).")
    var users: Int = 64

    func run() async throws {
        let list = endpoints.split(separator: ",").map { String($0.trimmingCharacters(in: .whitespaces)) }
        let grpcs = try list.map { GRPCClient(transport: try SynodEndpoint(parsing: $0).makeTransport(maxBackoff: .seconds(1))) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for grpc in grpcs { group.addTask { try await grpc.runConnections() } }
            defer {
                for grpc in grpcs { grpc.beginGracefulShutdown() }
                group.cancelAll()
            }
            let auth = grpcs.map { Etcdserverpb_Auth.Client(wrapping: $0) }
            var options = CallOptions.defaults
            options.timeout = .seconds(30)
            let rootPassword = "bench-root-\(UInt32.random(in: 0...UInt32.max))"
            try await setUp(auth[0], rootPassword: rootPassword, options: options)
            do {
                let repeated = try await repeatedPhase(auth, options: options)
                let firstTime = try await firstTimePhase(auth, options: options)
                print(String(format: "authenticate, same user again and again: %.0f/s (%d clients, %.1f s, %d calls)",
                             repeated.rate, clients, repeated.seconds, repeated.calls))
                print(String(format: "authenticate, %d users once each:          %.0f/s (%.2f s)",
                             users, firstTime.rate, firstTime.seconds))
            } catch {
                try? await tearDown(auth[0], rootPassword: rootPassword, options: options)
                throw error
            }
            try await tearDown(auth[0], rootPassword: rootPassword, options: options)
        }
    }

    private func user(_ i: Int) -> String { "bench-user-\(i)" }
    private func password(_ i: Int) -> String { "bench-password-\(i)" }

    private func setUp(_ auth: Etcdserverpb_Auth.Client<SynodGRPCTransport>, rootPassword: String,
                       options: CallOptions) async throws {
        var root = Etcdserverpb_AuthUserAddRequest()
        root.name = "root"
        root.password = rootPassword
        _ = try await auth.userAdd(root, options: options)
        var grant = Etcdserverpb_AuthUserGrantRoleRequest()
        grant.user = "root"
        grant.role = "root"
        _ = try await auth.userGrantRole(grant, options: options)
        for i in 0...users {
            var add = Etcdserverpb_AuthUserAddRequest()
            add.name = user(i)
            add.password = password(i)
            _ = try await auth.userAdd(add, options: options)
        }
        _ = try await auth.authEnable(Etcdserverpb_AuthEnableRequest(), options: options)
    }

    private func tearDown(_ auth: Etcdserverpb_Auth.Client<SynodGRPCTransport>, rootPassword: String,
                          options: CallOptions) async throws {
        var login = Etcdserverpb_AuthenticateRequest()
        login.name = "root"
        login.password = rootPassword
        let token = try await auth.authenticate(login, options: options).token
        var metadata = Metadata()
        metadata.addString(token, forKey: "token")
        _ = try await auth.authDisable(Etcdserverpb_AuthDisableRequest(), metadata: metadata, options: options)
        for name in (0...users).map(user) + ["root"] {
            var delete = Etcdserverpb_AuthUserDeleteRequest()
            delete.name = name
            _ = try await auth.userDelete(delete, options: options)
        }
    }

    private func repeatedPhase(_ auth: [Etcdserverpb_Auth.Client<SynodGRPCTransport>], options: CallOptions) async throws
        -> (rate: Double, seconds: Double, calls: Int) {
        let started = ContinuousClock.now
        let deadline = started + .milliseconds(Int(duration * 1000))
        let calls = try await withThrowingTaskGroup(of: Int.self) { group in
            for c in 0..<clients {
                group.addTask {
                    var request = Etcdserverpb_AuthenticateRequest()
                    request.name = user(0)
                    request.password = password(0)
                    var done = 0
                    while ContinuousClock.now < deadline {
                        _ = try await auth[c % auth.count].authenticate(request, options: options)
                        done += 1
                    }
                    return done
                }
            }
            return try await group.reduce(0, +)
        }
        let seconds = Double((ContinuousClock.now - started).components.attoseconds) / 1e18
            + Double((ContinuousClock.now - started).components.seconds)
        return (Double(calls) / seconds, seconds, calls)
    }

    private func firstTimePhase(_ auth: [Etcdserverpb_Auth.Client<SynodGRPCTransport>], options: CallOptions) async throws
        -> (rate: Double, seconds: Double) {
        let started = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            let perClient = (users + clients - 1) / max(1, clients)
            for c in 0..<clients {
                group.addTask {
                    for i in (1 + c * perClient)..<min(users + 1, 1 + (c + 1) * perClient) {
                        var request = Etcdserverpb_AuthenticateRequest()
                        request.name = user(i)
                        request.password = password(i)
                        _ = try await auth[i % auth.count].authenticate(request, options: options)
                    }
                }
            }
            try await group.waitForAll()
        }
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return (Double(users) / seconds, seconds)
    }
}
