import GRPCCore
import GRPCNIOTransportHTTP2
import SynodEtcdAPI

/// Why a load-generator run could not start. One line each, for the command line.
public struct LoadGeneratorError: Error, CustomStringConvertible, Sendable, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// One `host:port` endpoint of the run.
struct BenchEndpoint: Sendable, Equatable {
    var original: String
    var host: String
    var port: Int
    var isIPv6: Bool

    /// Accepts `host:port`, `http://host:port` and `[v6]:port`.
    init(parsing text: String) throws(LoadGeneratorError) {
        var rest = Substring(text)
        while rest.first == " " { rest = rest.dropFirst() }
        while rest.last == " " || rest.last == "/" { rest = rest.dropLast() }
        if rest.hasPrefix("http://") {
            rest = rest.dropFirst("http://".count)
        } else if rest.contains("://") {
            throw LoadGeneratorError("endpoint '\(text)': only plaintext http://host:port is supported")
        }
        let hostPart: Substring
        let portPart: Substring
        var v6 = false
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]"), rest[rest.index(after: close)...].hasPrefix(":") else {
                throw LoadGeneratorError("endpoint '\(text)': expected [address]:port")
            }
            hostPart = rest[rest.index(after: rest.startIndex)..<close]
            portPart = rest[rest.index(close, offsetBy: 2)...]
            v6 = true
        } else {
            guard let colon = rest.lastIndex(of: ":") else {
                throw LoadGeneratorError("endpoint '\(text)': missing port (expected host:port)")
            }
            hostPart = rest[..<colon]
            portPart = rest[rest.index(after: colon)...]
        }
        guard !hostPart.isEmpty, !hostPart.contains("/"), !hostPart.contains(":") || v6 else {
            throw LoadGeneratorError("endpoint '\(text)': invalid host")
        }
        guard let port = Int(portPart), (1...65535).contains(port) else {
            throw LoadGeneratorError("endpoint '\(text)': invalid port '\(portPart)'")
        }
        self.original = text
        self.host = String(hostPart)
        self.port = port
        self.isIPv6 = v6
    }

    var address: String { isIPv6 ? "[\(host)]:\(port)" : "\(host):\(port)" }

    func makeClient() throws(LoadGeneratorError) -> GRPCClient<HTTP2ClientTransport.Posix> {
        let target: any ResolvableTarget
        if isIPv6 {
            target = ResolvableTargets.IPv6(addresses: [.init(host: host, port: port)])
        } else if host.allSatisfy({ $0 == "." || ($0.isASCII && $0.isNumber) }) {
            target = ResolvableTargets.IPv4(addresses: [.init(host: host, port: port)])
        } else {
            target = ResolvableTargets.DNS(host: host, port: port)
        }
        do {
            let transport = try HTTP2ClientTransport.Posix(
                target: target,
                transportSecurity: .plaintext,
                config: .defaults { config in
                    config.backoff.initial = .milliseconds(100)
                    config.backoff.max = .seconds(1)
                    config.http2.maxFrameSize = 1 << 20
                }
            )
            return GRPCClient(transport: transport)
        } catch {
            throw LoadGeneratorError("endpoint '\(original)': \(error)")
        }
    }
}

/// Error-count keys: the gRPC status code name ("unavailable", "deadlineExceeded", ...).
func errorKind(_ error: any Error) -> String {
    if let rpc = error as? RPCError { return String(describing: rpc.code) }
    if error is CancellationError { return "cancelled" }
    return "other"
}

/// A short reason for a failed connection attempt ("connection refused", "timed out", ...).
func connectFailureReason(_ error: any Error) -> String {
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
    for known in ["connection refused", "connection reset", "no route to host", "network is unreachable"]
    where joined.contains(known) {
        return known
    }
    if let rpc = error as? RPCError, rpc.code == .deadlineExceeded { return "timed out" }
    return texts.first(where: { !$0.isEmpty }) ?? String(describing: error)
}

/// Status of every endpoint within a bounded time, to find the leader (and to fail fast and
/// clearly when an endpoint cannot be reached).
enum EndpointDiscovery {
    /// Time allowed for connecting to and asking every endpoint.
    static let timeout: Duration = .seconds(5)

    struct Answer: Sendable {
        var index: Int
        var memberID: UInt64
        var leaderID: UInt64
    }

    /// Returns the endpoints the run should use: the leader's alone (`.leader`) or all of them.
    static func targets(_ endpoints: [BenchEndpoint], target: BenchTarget) async throws -> [BenchEndpoint] {
        var clients: [GRPCClient<HTTP2ClientTransport.Posix>] = []
        for endpoint in endpoints { clients.append(try endpoint.makeClient()) }
        let probeClients = clients
        let outcomes: [Int: Result<Answer, any Error>] = await withThrowingTaskGroup(of: Void.self) { group in
            for client in probeClients {
                group.addTask { try await client.runConnections() }
            }
            let outcomes = await withTaskGroup(of: (Int, Result<Answer, any Error>).self) { asks in
                for (index, client) in probeClients.enumerated() {
                    asks.addTask {
                        var options = CallOptions.defaults
                        options.timeout = timeout
                        do {
                            let status = try await Etcdserverpb_Maintenance.Client(wrapping: client)
                                .status(Etcdserverpb_StatusRequest(), options: options)
                            return (index, .success(Answer(index: index, memberID: status.header.memberID,
                                                           leaderID: status.leader)))
                        } catch {
                            return (index, .failure(error))
                        }
                    }
                }
                var all: [Int: Result<Answer, any Error>] = [:]
                for await (index, outcome) in asks { all[index] = outcome }
                return all
            }
            for client in probeClients { client.beginGracefulShutdown() }
            group.cancelAll()
            return outcomes
        }
        var answers: [Answer] = []
        var failures: [String] = []
        for index in endpoints.indices {
            switch outcomes[index] {
            case .success(let answer)?: answers.append(answer)
            case .failure(let error)?: failures.append("\(endpoints[index].original) (\(connectFailureReason(error)))")
            case nil: failures.append("\(endpoints[index].original) (no answer)")
            }
        }
        switch target {
        case .all:
            guard failures.isEmpty else {
                throw LoadGeneratorError("cannot reach \(failures.joined(separator: ", "))")
            }
            return endpoints
        case .leader:
            guard !answers.isEmpty else {
                throw LoadGeneratorError("cannot reach any endpoint: \(failures.joined(separator: ", "))")
            }
            if let leader = answers.first(where: { $0.leaderID != 0 && $0.memberID == $0.leaderID }) {
                return [endpoints[leader.index]]
            }
            let named = answers.first(where: { $0.leaderID != 0 })
            if let named {
                throw LoadGeneratorError(
                    "no leader among the reachable endpoints: they name member \(String(named.leaderID, radix: 16)) as leader, "
                        + "which is not one of them (add its endpoint or use --target all)")
            }
            throw LoadGeneratorError("no leader found: the reachable endpoints report no leader")
        }
    }
}
