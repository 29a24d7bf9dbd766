@_exported import SynodEtcdAPI
import GRPCCore
import GRPCNIOTransportHTTP2
import Synchronization

/// Configuration of a ``SynodClient``.
public struct SynodClientConfiguration: Sendable {
    /// Server endpoints: `http://127.0.0.1:2379` or `127.0.0.1:2379` (host names and `[::1]:2379`
    /// also work). Plaintext only. The client fails over between them in order.
    public var endpoints: [String]
    /// Total time budget of one request, failover and retries included.
    public var requestTimeout: Duration
    /// Time budget of one attempt on one endpoint; after it the client moves to the next endpoint
    /// (capped by what is left of ``requestTimeout``).
    public var attemptTimeout: Duration
    /// Pause after every endpoint has failed once in a row, before starting over.
    public var retryBackoff: Duration
    /// Maximum size of one response message (large ranges can be big). etcd's clients
    /// (etcdctl, clientv3) accept up to 2 GiB by default; so does this one.
    public var maxResponseBytes: Int
    /// TLS for every endpoint (needed for `https://` endpoints; given, it is used for all).
    public var tls: SynodClientTLS?
    /// User name and password (etcd's `--user name:password`): the client authenticates once
    /// and sends the token with every request, authenticating again when it expires.
    public var credentials: (user: String, password: String)?

    public init(
        endpoints: [String],
        requestTimeout: Duration = .seconds(5),
        attemptTimeout: Duration = .seconds(2),
        retryBackoff: Duration = .milliseconds(100),
        maxResponseBytes: Int = Int(Int32.max)
    ) {
        self.endpoints = endpoints
        self.requestTimeout = requestTimeout
        self.attemptTimeout = attemptTimeout
        self.retryBackoff = retryBackoff
        self.maxResponseBytes = maxResponseBytes
    }
}

/// A client of the etcd v3 gRPC API, as served by Synod (or by etcd itself).
///
/// The client keeps one gRPC connection per endpoint. A unary request goes to the current
/// endpoint; when that fails with a transport error (`unavailable`, `deadlineExceeded`) or an
/// etcd "no leader"-style error (gRPC `unavailable`, e.g. `etcdserver: no leader`,
/// `etcdserver: leader changed`), the client moves to the next endpoint and retries until
/// ``SynodClientConfiguration/requestTimeout`` runs out. Other errors are thrown at once as
/// ``SynodClientError/server(code:message:endpoint:)``.
///
/// - Important: every attempt of one put, delete or txn carries the same random
///   `synod-request-id` header, and a Synod server applies all attempts with one id at most
///   once (the session table answers a retry with the first attempt's result, as long as the
///   session is still remembered: the newest 65,536 requests). Against etcd, which ignores the
///   header, a retried write may be applied twice, as with etcd's own clients; use a
///   transaction guarded by a compare on `mod_revision`/`version` there.
///
/// The connections only make progress while ``run()`` executes; ``withSynodClient(_:_:)`` runs
/// them for the duration of a closure:
///
/// ```swift
/// try await withSynodClient(SynodClientConfiguration(endpoints: ["127.0.0.1:2379"])) { client in
///     _ = try await client.put("greeting", "hello")
///     let response = try await client.get("greeting")
///     print(response.kvs.first?.value ?? Data())
/// }
/// ```
public final class SynodClient: Sendable {
    typealias Transport = HTTP2ClientTransport.Posix

    struct Connection: Sendable {
        let endpoint: SynodEndpoint
        let grpc: GRPCClient<Transport>
    }

    /// The validated configuration.
    public let configuration: SynodClientConfiguration
    /// The parsed endpoints, in configuration order.
    public let endpoints: [SynodEndpoint]
    let connections: [Connection]
    private let state: Mutex<State>
    /// The Authenticate token, with credentials.
    let tokens = AuthTokenCache()
    /// Lets the connections' token interceptor call back into this client.
    private let reference = ClientReference()

    private struct State {
        var current = 0
        var nextWatchToken = 0
        var watchTasks: [Int: Task<Void, Never>] = [:]
        var closed = false
    }

    /// Validates the configuration and prepares (but does not open) one connection per endpoint.
    ///
    /// - Throws: ``SynodClientError/invalidEndpoint(endpoint:reason:)`` for a malformed endpoint,
    ///   ``SynodClientError/invalidConfiguration(_:)`` for an empty endpoint list or
    ///   non-positive timeouts.
    public init(configuration: SynodClientConfiguration) throws {
        guard !configuration.endpoints.isEmpty else {
            throw SynodClientError.invalidConfiguration("no endpoints given")
        }
        guard configuration.requestTimeout > .zero else {
            throw SynodClientError.invalidConfiguration("the request timeout must be positive")
        }
        guard configuration.attemptTimeout > .zero else {
            throw SynodClientError.invalidConfiguration("the attempt timeout must be positive")
        }
        var endpoints: [SynodEndpoint] = []
        for text in configuration.endpoints {
            let endpoint = try SynodEndpoint(parsing: text)
            if endpoints.contains(where: { $0.host == endpoint.host && $0.port == endpoint.port }) {
                throw SynodClientError.invalidEndpoint(endpoint: text, reason: "listed twice")
            }
            endpoints.append(endpoint)
        }
        if configuration.tls == nil, let plain = endpoints.first(where: \.isHTTPS) {
            throw SynodClientError.invalidEndpoint(endpoint: plain.original, reason: "https:// needs TLS settings (--cacert, and --cert/--key for client certificates)")
        }
        var connections: [Connection] = []
        for endpoint in endpoints {
            let transport: Transport
            do {
                transport = try endpoint.makeTransport(maxBackoff: .seconds(2), tls: configuration.tls)
            } catch {
                throw SynodClientError.invalidEndpoint(endpoint: endpoint.original, reason: "\(error)")
            }
            connections.append(Connection(endpoint: endpoint, grpc: GRPCClient(transport: transport, interceptors: [
                AuthTokenInterceptor(cache: tokens, enabled: configuration.credentials != nil, authenticate: { [reference] in
                    guard let client = reference.client else { throw CancellationError() }
                    return try await client.authenticate()
                }),
            ])))
        }
        self.configuration = configuration
        self.endpoints = endpoints
        self.connections = connections
        self.state = Mutex(State())
        reference.client = self
    }

    /// Runs the connections of every endpoint. Returns after ``close()`` once in-flight requests
    /// have finished; cancelling the calling task stops everything at once.
    public func run() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            for connection in self.connections {
                group.addTask { try await connection.grpc.runConnections() }
            }
        }
    }

    /// Cancels the watches started by this client and begins a graceful shutdown of every
    /// connection: new requests fail, in-flight ones finish, then ``run()`` returns.
    public func close() {
        let tasks = self.state.withLock { state -> [Task<Void, Never>] in
            state.closed = true
            let tasks = Array(state.watchTasks.values)
            state.watchTasks.removeAll()
            return tasks
        }
        for task in tasks { task.cancel() }
        for connection in self.connections { connection.grpc.beginGracefulShutdown() }
    }

    // MARK: - Internals shared by the API files

    var currentIndex: Int { self.state.withLock { $0.current } }

    /// Moves the current endpoint past `failed` unless another request already did.
    func advance(from failed: Int) {
        self.state.withLock { state in
            if state.current == failed { state.current = (failed + 1) % self.connections.count }
        }
    }

    func registerWatch(_ makeTask: (Int) -> Task<Void, Never>) -> Int? {
        self.state.withLock { state -> Int? in
            guard !state.closed else { return nil }
            let token = state.nextWatchToken
            state.nextWatchToken += 1
            state.watchTasks[token] = makeTask(token)
            return token
        }
    }

    func unregisterWatch(_ token: Int) {
        _ = self.state.withLock { $0.watchTasks.removeValue(forKey: token) }
    }

    func callOptions(timeout: Duration?) -> CallOptions {
        var options = CallOptions.defaults
        options.timeout = timeout
        options.maxResponseMessageBytes = self.configuration.maxResponseBytes
        // grpc-swift-nio-transport 2.x checks received messages against the request limit
        // (left alone, 4 MiB: a range over more failed whatever `maxResponseBytes` said).
        // Requests are bounded by the server (`--max-request-bytes`).
        options.maxRequestMessageBytes = self.configuration.maxResponseBytes
        return options
    }

    /// Runs `body` against the current endpoint, failing over on retryable errors until the
    /// request timeout runs out.
    ///
    /// With `repeatable: false` (requests that must not take effect twice, such as membership
    /// changes) only failures that show the request was not carried out are retried elsewhere
    /// (see ``isSafeToRepeat(_:)``); a failure that leaves the outcome unknown (a timeout, a
    /// leader change) is thrown at once.
    func withFailover<Result: Sendable>(
        repeatable: Bool = true,
        _ body: @Sendable (Connection, CallOptions) async throws -> Result
    ) async throws -> Result {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: self.configuration.requestTimeout)
        var failures: [Int: SynodClientError.EndpointFailure] = [:]
        var lastServerError: SynodClientError?
        var failuresInARow = 0
        var renewedToken = false
        var index = self.currentIndex
        while true {
            try Task.checkCancellation()
            let remaining = clock.now.duration(to: deadline)
            if remaining <= .zero { break }
            let connection = self.connections[index]
            let options = self.callOptions(timeout: min(remaining, self.configuration.attemptTimeout))
            do {
                return try await body(connection, options)
            } catch let error as RPCError {
                if configuration.credentials != nil, Self.isStaleToken(error), !renewedToken {
                    // Refused before it took effect: once more with a new token.
                    renewedToken = true
                    tokens.store(nil)
                    continue
                }
                guard Self.isRetryable(error) else {
                    if error.code == .cancelled, Task.isCancelled { throw CancellationError() }
                    throw SynodClientError.server(
                        code: error.code, message: error.message, endpoint: connection.endpoint.original)
                }
                let failure = Self.failure(error, endpoint: connection.endpoint)
                if !repeatable && !Self.isSafeToRepeat(error) {
                    if Self.isServerMessage(error) {
                        throw SynodClientError.server(
                            code: error.code, message: error.message, endpoint: connection.endpoint.original)
                    }
                    throw SynodClientError.unavailable([failure])
                }
                failures[index] = failure
                if Self.isServerMessage(error) {
                    lastServerError = .server(code: error.code, message: error.message, endpoint: connection.endpoint.original)
                } else {
                    lastServerError = nil
                }
            } catch let error as SynodClientError {
                throw error
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                let failure = SynodClientError.EndpointFailure(
                    endpoint: connection.endpoint.original, code: .unknown, reason: Self.reason(for: error))
                throw SynodClientError.unavailable([failure])
            }
            self.advance(from: index)
            index = (index + 1) % self.connections.count
            failuresInARow += 1
            if failuresInARow >= self.connections.count {
                failuresInARow = 0
                let pause = min(self.configuration.retryBackoff, clock.now.duration(to: deadline))
                if pause > .zero { try await Task.sleep(for: pause) }
            }
        }
        if let lastServerError { throw lastServerError }
        let ordered = failures.keys.sorted().compactMap { failures[$0] }
        throw SynodClientError.unavailable(ordered)
    }

    /// Transport failures, timeouts and etcd's unavailable-class errors ("no leader",
    /// "leader changed", "request timed out") are worth retrying on another endpoint.
    static func isRetryable(_ error: RPCError) -> Bool {
        switch error.code {
        case .unavailable, .deadlineExceeded:
            return true
        default:
            return false
        }
    }

    /// Whether a request that failed with `error` surely did not take effect, so that sending
    /// it again cannot apply it twice: the server was unreachable or refused it for want of a
    /// leader. A timeout or "leader changed" leaves the outcome unknown.
    static func isSafeToRepeat(_ error: RPCError) -> Bool {
        guard error.code == .unavailable else { return false }
        return !(error.message.contains("request timed out") || error.message.contains("leader changed"))
    }

    /// Whether the error text came from an etcd-style server rather than from the transport.
    static func isServerMessage(_ error: RPCError) -> Bool {
        error.message.hasPrefix("etcdserver:") || error.message.hasPrefix("synod:")
    }

    static func failure(_ error: RPCError, endpoint: SynodEndpoint) -> SynodClientError.EndpointFailure {
        .init(endpoint: endpoint.original, code: error.code, reason: Self.reason(for: error))
    }

    /// A short reason for an RPC failure ("connection refused", "timed out", or the message).
    /// Public for other tools that report unreachable endpoints (the load generator).
    public static func reason(for error: any Error) -> String {
        var texts: [String] = []
        var next: (any Error)? = error
        var depth = 0
        while let current = next, depth < 8 {
            if let rpc = current as? RPCError {
                texts.append(rpc.message)
                next = rpc.cause
            } else if let runtime = current as? RuntimeError {
                texts.append(runtime.message)
                next = runtime.cause
            } else {
                texts.append(String(describing: current))
                next = nil
            }
            depth += 1
        }
        let joined = texts.joined(separator: " ").lowercased()
        if joined.contains("connection refused") { return "connection refused" }
        if joined.contains("connection reset") { return "connection reset" }
        if joined.contains("no route to host") { return "no route to host" }
        if let rpc = error as? RPCError {
            if rpc.code == .deadlineExceeded { return "timed out" }
            if isServerMessage(rpc) { return rpc.message }
        }
        return texts.first(where: { !$0.isEmpty }) ?? String(describing: error)
    }
}

/// Creates a client, runs its connections while `body` executes, then closes it.
///
/// ```swift
/// let value = try await withSynodClient(.init(endpoints: ["127.0.0.1:2379"])) { client in
///     try await client.get("k").kvs.first?.value
/// }
/// ```
public func withSynodClient<Result: Sendable>(
    _ configuration: SynodClientConfiguration,
    _ body: (SynodClient) async throws -> Result
) async throws -> Result {
    let client = try SynodClient(configuration: configuration)
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await client.run() }
        do {
            let result = try await body(client)
            client.close()
            group.cancelAll()
            return result
        } catch {
            client.close()
            group.cancelAll()
            throw error
        }
    }
}
