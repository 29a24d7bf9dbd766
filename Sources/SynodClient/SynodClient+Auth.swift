import GRPCCore
import Synchronization

/// The token of a client with credentials: fetched with Authenticate on first use, sent as
/// the `token` metadata of every other call (as etcd's clients do), fetched again when the
/// server says it is no longer valid.
final class AuthTokenCache: Sendable {
    private let state = Mutex<String?>(nil)

    var current: String? { state.withLock { $0 } }

    func store(_ token: String?) { state.withLock { $0 = token } }

    /// Forgets `token` unless another call already replaced it.
    func invalidate(_ token: String?) {
        state.withLock { if $0 == token { $0 = nil } }
    }
}

/// Adds the token to every call but Authenticate itself.
/// A weak reference to the client, for the interceptors its connections were built with.
final class ClientReference: Sendable {
    private struct Box { weak var client: SynodClient? }
    private let box = Mutex(Box())

    var client: SynodClient? {
        get { box.withLock { $0.client } }
        set { box.withLock { $0.client = newValue } }
    }
}

struct AuthTokenInterceptor: ClientInterceptor {
    let cache: AuthTokenCache
    /// Without credentials, calls pass unchanged.
    let enabled: Bool
    /// Authenticates (through the client's failover) and returns a new token.
    let authenticate: @Sendable () async throws -> String

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingClientRequest<Input>,
        context: ClientContext,
        next: (StreamingClientRequest<Input>, ClientContext) async throws -> StreamingClientResponse<Output>
    ) async throws -> StreamingClientResponse<Output> {
        if !enabled || context.descriptor == Etcdserverpb_Auth.Method.Authenticate.descriptor {
            return try await next(request, context)
        }
        let token: String
        if let cached = cache.current {
            token = cached
        } else {
            token = try await authenticate()
            cache.store(token)
        }
        var request = request
        request.metadata.replaceOrAddString(token, forKey: "token")
        return try await next(request, context)
    }
}

extension SynodClient {
    /// etcd's messages for a token the server no longer accepts: the request was refused
    /// before it took effect, so it is sent again with a new token.
    static func isStaleToken(_ error: RPCError) -> Bool {
        error.message == "etcdserver: invalid auth token" || error.message == "etcdserver: revision of auth store is old"
    }

    /// Authenticate with the configured credentials; the token (valid on every member of a
    /// Synod cluster) is returned.
    public func authenticate() async throws -> String {
        guard let credentials = configuration.credentials else {
            throw SynodClientError.invalidConfiguration("no user name and password configured")
        }
        var message = Etcdserverpb_AuthenticateRequest()
        message.name = credentials.user
        message.password = credentials.password
        let request = message
        let response = try await withFailover { connection, options in
            try await Etcdserverpb_Auth.Client(wrapping: connection.grpc).authenticate(request, options: options)
        }
        return response.token
    }
}
