import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SynodClient
import SynodEtcdAPI

/// The few etcd v3 calls `compare` makes itself (besides the load generator): cluster status,
/// a bulk loader of distinct keys, and polling a restarted member.
enum CompareClient {
    typealias Client = GRPCClient<HTTP2ClientTransport.Posix>

    /// A client of one `127.0.0.1:port` endpoint that reconnects quickly (`fastReconnect`: every
    /// 10 ms, for timing a restart).
    static func withClient<Result: Sendable>(
        _ endpoint: String, fastReconnect: Bool = false, tls: BenchTLS? = nil, _ body: (Client) async throws -> Result
    ) async throws -> Result {
        if let tls {
            // `https://host:port` of a cluster with TLS: SynodClient's transport (ALPN h2).
            let transport = try BenchEndpoint(parsing: endpoint).endpoint.makeTransport(
                maxBackoff: .milliseconds(fastReconnect ? 20 : 500),
                tls: SynodClientTLS(caFile: tls.caFile, certFile: tls.certFile, keyFile: tls.keyFile))
            return try await withGRPCClient(transport: transport, handleClient: body)
        }
        guard let colon = endpoint.lastIndex(of: ":"), let port = Int(endpoint[endpoint.index(after: colon)...]) else {
            throw CompareError("bad endpoint '\(endpoint)'")
        }
        let host = String(endpoint[..<colon])
        let transport = try HTTP2ClientTransport.Posix(
            target: .ipv4(address: host, port: port),
            transportSecurity: .plaintext,
            config: .defaults { config in
                config.backoff.initial = .milliseconds(fastReconnect ? 10 : 100)
                config.backoff.max = .milliseconds(fastReconnect ? 20 : 500)
                config.backoff.jitter = 0
                config.http2.maxFrameSize = 1 << 20
            }
        )
        return try await withGRPCClient(transport: transport, handleClient: body)
    }

    static func callOptions(timeout: Duration) -> CallOptions {
        var options = CallOptions.defaults
        options.timeout = timeout
        options.waitForReady = false
        return options
    }

    /// (member id, leader id) as the member at `endpoint` reports them.
    static func status(_ client: Client) async throws -> (member: UInt64, leader: UInt64) {
        let maintenance = Etcdserverpb_Maintenance.Client(wrapping: client)
        let response = try await maintenance.status(Etcdserverpb_StatusRequest(), options: callOptions(timeout: .seconds(1)))
        return (response.header.memberID, response.leader)
    }

    /// Waits until every member names the same leader; returns each member's id and the leader's.
    static func waitForLeader(_ endpoints: [String], timeoutSeconds: Double, tls: BenchTLS? = nil) async throws -> (members: [UInt64], leader: UInt64) {
        let deadline = ContinuousClock.now + .milliseconds(Int(timeoutSeconds * 1_000))
        var lastProblem = "no answer"
        while ContinuousClock.now < deadline {
            try Task.checkCancellation()
            var members: [UInt64] = []
            var leaders: Set<UInt64> = []
            for endpoint in endpoints {
                do {
                    let answer = try await withClient(endpoint, tls: tls) { try await status($0) }
                    members.append(answer.member)
                    leaders.insert(answer.leader)
                } catch {
                    lastProblem = "\(endpoint): \(error)"
                    break
                }
            }
            if members.count == endpoints.count, leaders.count == 1, let leader = leaders.first, leader != 0, members.contains(leader) {
                return (members, leader)
            }
            if members.count == endpoints.count { lastProblem = "members disagree on the leader" }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw CompareError("no leader within \(Int(timeoutSeconds)) s (\(lastProblem))")
    }

    /// Key `index` of `keyCount` keys: the prefix and a zero-padded index, every key one length
    /// (the load generator's layout, so preloaded keys are the ones it reads).
    static func key(prefix: String, index: Int, keyCount: Int) -> Data {
        let width = String(max(0, keyCount - 1)).count
        let digits = String(index)
        return Data((prefix + String(repeating: "0", count: max(0, width - digits.count)) + digits).utf8)
    }

    /// Puts keys 0..<keys (prefix `prefix`) through `endpoint` with `workers` concurrent writers
    /// over `conns` connections; worker w writes its own contiguous slice in order. Each put is
    /// retried a few times (a fresh leader may still be taking over). Returns the seconds taken.
    static func load(endpoint: String, prefix: String, keys: Int, valueBytes: Int, workers: Int, conns: Int) async throws -> Double {
        guard keys > 0 else { return 0 }
        let value = Data(repeating: UInt8(ascii: "v"), count: valueBytes)
        let workers = max(1, min(workers, keys))
        let conns = max(1, min(conns, workers))
        let start = ContinuousClock.now
        try await withClients(Array(repeating: endpoint, count: conns)) { clients in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<workers {
                    let kv = Etcdserverpb_KV.Client(wrapping: clients[worker % clients.count])
                    let slice = (keys * worker / workers)..<(keys * (worker + 1) / workers)
                    group.addTask {
                        for index in slice {
                            var request = Etcdserverpb_PutRequest()
                            request.key = key(prefix: prefix, index: index, keyCount: keys)
                            request.value = value
                            try await putRetrying(kv, request)
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        return seconds(since: start)
    }

    private static func putRetrying(_ kv: Etcdserverpb_KV.Client<HTTP2ClientTransport.Posix>, _ request: Etcdserverpb_PutRequest) async throws {
        var attempt = 0
        while true {
            do {
                _ = try await kv.put(request, options: callOptions(timeout: .seconds(10)))
                return
            } catch {
                attempt += 1
                if attempt >= 20 || Task.isCancelled { throw CompareError("loading \(String(decoding: request.key, as: UTF8.self)): \(error)") }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    /// Runs `body` with one client per endpoint (each its own connection).
    static func withClients<Result: Sendable>(_ endpoints: [String], _ body: ([Client]) async throws -> Result) async throws -> Result {
        func nest(_ index: Int, _ opened: [Client]) async throws -> Result {
            if index == endpoints.count { return try await body(opened) }
            return try await withClient(endpoints[index]) { client in try await nest(index + 1, opened + [client]) }
        }
        return try await nest(0, [])
    }

    /// Polls `client` every 10 ms with a serializable get of `key` until it returns the key;
    /// returns the seconds from `since`.
    static func pollUntilServed(_ client: Client, key: Data, since: ContinuousClock.Instant, timeoutSeconds: Double) async throws -> Double {
        let kv = Etcdserverpb_KV.Client(wrapping: client)
        var request = Etcdserverpb_RangeRequest()
        request.key = key
        request.serializable = true
        let deadline = since + .milliseconds(Int(timeoutSeconds * 1_000))
        while ContinuousClock.now < deadline {
            try Task.checkCancellation()
            if let response = try? await kv.range(request, options: callOptions(timeout: .milliseconds(500))), !response.kvs.isEmpty {
                return seconds(since: since)
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw CompareError("the restarted member did not serve the last key within \(Int(timeoutSeconds)) s")
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }
}
