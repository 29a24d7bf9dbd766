import GRPCCore

/// Errors thrown by ``SynodClient``.
///
/// `description` is a single human-readable line, suitable for `Error: <description>` output.
public enum SynodClientError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The configuration was rejected before any connection was made.
    case invalidConfiguration(String)
    /// A request argument was rejected before it was sent (callers may also throw this for
    /// their own argument checks).
    case invalidArgument(String)
    /// An endpoint string could not be parsed.
    case invalidEndpoint(endpoint: String, reason: String)
    /// The server answered with an error that is not worth retrying elsewhere
    /// (for example `etcdserver: mvcc: required revision has been compacted` or
    /// `etcdserver: requested lease not found`), or a retryable server error was still being
    /// returned when the request timeout ran out.
    ///
    /// `code` is the gRPC status code and `message` the server's message, verbatim.
    case server(code: RPCError.Code, message: String, endpoint: String)
    /// No endpoint answered within the request timeout. Holds the last failure seen for each
    /// endpoint tried, in configuration order.
    case unavailable([EndpointFailure])
    /// The server cancelled a watch (for example because its start revision was compacted).
    /// `compactRevision` is non-zero when the cause was compaction.
    case watchCanceled(reason: String, compactRevision: Int64)
    /// The server sent a response this client cannot interpret.
    case invalidResponse(String)
    /// The endpoint named in a per-endpoint call (``SynodClient/status(endpoint:)``) is not
    /// one of the configured endpoints.
    case unknownEndpoint(String)

    /// The last failure seen when talking to one endpoint.
    public struct EndpointFailure: Sendable, Hashable, CustomStringConvertible {
        public var endpoint: String
        public var code: RPCError.Code
        public var reason: String

        public init(endpoint: String, code: RPCError.Code, reason: String) {
            self.endpoint = endpoint
            self.code = code
            self.reason = reason
        }

        public var description: String { "\(endpoint): \(reason)" }
    }

    /// The gRPC status code, when the error came from an RPC.
    public var code: RPCError.Code? {
        switch self {
        case .server(let code, _, _): return code
        case .unavailable(let failures): return failures.last?.code ?? .unavailable
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .invalidConfiguration(let message):
            return "invalid client configuration: \(message)"
        case .invalidArgument(let message):
            return "invalid argument: \(message)"
        case .invalidEndpoint(let endpoint, let reason):
            return "invalid endpoint '\(endpoint)': \(reason)"
        case .server(_, let message, _):
            return message
        case .unavailable(let failures):
            if failures.isEmpty { return "cannot reach any endpoint" }
            return "cannot reach any endpoint (\(failures.map(\.description).joined(separator: ", ")))"
        case .watchCanceled(let reason, let compactRevision):
            if compactRevision > 0 {
                return "watch canceled: required revision has been compacted (compact revision \(compactRevision))"
            }
            return reason.isEmpty ? "watch canceled by the server" : "watch canceled: \(reason)"
        case .invalidResponse(let message):
            return "invalid response: \(message)"
        case .unknownEndpoint(let endpoint):
            return "'\(endpoint)' is not one of the configured endpoints"
        }
    }
}
