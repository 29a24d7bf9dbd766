import GRPCCore
import GRPCNIOTransportHTTP2
import SynodClient
import SynodEtcdAPI

/// Why a load-generator run could not start. One line each, for the command line.
public struct LoadGeneratorError: Error, CustomStringConvertible, Sendable, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// One `host:port` endpoint of the run: SynodClient's endpoint, with the run's error type.
struct BenchEndpoint: Sendable, Equatable {
    let endpoint: SynodEndpoint

    /// Accepts what SynodClient accepts: `host:port`, `http://host:port` and `[v6]:port`.
    init(parsing text: String) throws(LoadGeneratorError) {
        do {
            endpoint = try SynodEndpoint(parsing: text)
        } catch {
            throw LoadGeneratorError("\(error)")
        }
    }

    var original: String { endpoint.original }
    var host: String { endpoint.host }
    var port: Int { endpoint.port }
    var isIPv6: Bool { endpoint.hostKind == .ipv6 }
    var address: String { isIPv6 ? "[\(host)]:\(port)" : "\(host):\(port)" }
    /// Written as `https://` (the run needs ``BenchOptions/tls``).
    var isHTTPS: Bool { endpoint.isHTTPS }

    /// A grpc-swift client of this endpoint; TLS (with ALPN h2) when `tls` is given.
    func makeClient(tls: BenchTLS? = nil) throws(LoadGeneratorError) -> GRPCClient<HTTP2ClientTransport.Posix> {
        do {
            let clientTLS = tls.map { SynodClientTLS(caFile: $0.caFile, certFile: $0.certFile, keyFile: $0.keyFile) }
            return GRPCClient(transport: try endpoint.makeTransport(maxBackoff: .seconds(1), tls: clientTLS))
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
func connectFailureReason(_ error: any Error) -> String { SynodClient.reason(for: error) }

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
    static func targets(_ endpoints: [BenchEndpoint], target: BenchTarget, tls: BenchTLS? = nil) async throws -> [BenchEndpoint] {
        var clients: [GRPCClient<HTTP2ClientTransport.Posix>] = []
        for endpoint in endpoints { clients.append(try endpoint.makeClient(tls: tls)) }
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
