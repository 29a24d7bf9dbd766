import Foundation
import SynodCore
import SynodTransport

/// A `synod serve` configuration problem, as one line naming the flag.
public struct ServeConfigurationError: Error, Hashable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The settings of `synod serve`, named after etcd's flags where the meaning is the same.
public struct ServeConfiguration: Sendable, Hashable {
    public var name = "default"
    /// Default: `<name>.synod` in the working directory (etcd uses `<name>.etcd`).
    public var dataDir: String?
    public var listenClientURLs = "http://127.0.0.1:2379"
    public var advertiseClientURLs: String?
    public var listenPeerURLs = "http://127.0.0.1:2380"
    public var initialAdvertisePeerURLs: String?
    /// `name=http://host:port,...`; default: this member alone at its peer URL.
    public var initialCluster: String?
    /// `new`: a member of a new cluster (or a restart); `existing`: join a running cluster
    /// after MemberAdd with an empty data directory (or restart a member that joined one).
    public var initialClusterState = "new"
    public var initialClusterToken = "synod-cluster"
    /// A separate HTTP/1.1 listener for /health, /metrics and /version (which the client port
    /// serves anyway); none unless given.
    public var listenMetricsURLs: String?
    public var heartbeatIntervalMilliseconds = 100
    public var electionTimeoutMilliseconds = 1000
    public var maxRequestBytes = 1_572_864
    public var readMode = "lease"
    /// etcd's `--pre-vote`: a member asks the voters before it campaigns (see `Configuration.preVote`).
    public var preVote = true
    public var snapshotCount = 10_000
    /// etcd's `--experimental-watch-progress-notify-interval`, a duration like `10m`, `5s`, `500ms`.
    public var watchProgressNotifyInterval = "10m"
    /// etcd's `--experimental-corrupt-check-time`: how often the leader starts a replicated
    /// integrity check (`0s` turns them off).
    public var corruptCheckTime = "5s"
    /// `frames` or `grpc-swift` (see `GRPCTransportKind`).
    public var grpcTransport = "frames"
    /// Event-loop threads; 0 picks one per core (at least 2).
    public var eventLoopThreads = 0
    /// TLS on the client port (`--cert-file`, `--key-file`, `--trusted-ca-file`,
    /// `--client-cert-auth`, `--client-crl-file`, `--auto-tls`); used when
    /// `--listen-client-urls` is https://.
    public var clientTLS = TLSSettings()
    /// TLS between members (the `--peer-` forms); used when the peer URLs are https://.
    public var peerTLS = TLSSettings()
    /// etcd's `--auth-token-ttl` (seconds).
    public var authTokenTTLSeconds = 300
    /// etcd's `--bcrypt-cost`: the cost of stored password hashes (scrypt, N = 2^(cost+4)).
    public var bcryptCost = 10
    /// etcd's `--auth-token`: `simple` (the only kind; any `simple,...` options are ignored).
    public var authTokenKind = "simple"

    public init() {}

    /// Parses a duration like `500ms`, `5s`, `10m`, `1h` (or `1m30s`) into milliseconds.
    public static func milliseconds(_ text: String, flag: String) throws(ServeConfigurationError) -> Int {
        var total = 0
        var number = ""
        var rest = Substring(text)
        guard !rest.isEmpty else { throw ServeConfigurationError("\(flag): empty duration") }
        while let c = rest.first {
            if c.isNumber { number.append(c); rest = rest.dropFirst(); continue }
            let unit: String
            if rest.hasPrefix("ms") { unit = "ms" } else if "smh".contains(c) { unit = String(c) } else {
                throw ServeConfigurationError("\(flag): '\(text)' is not a duration like 500ms, 5s, 10m or 1h")
            }
            rest = rest.dropFirst(unit.count)
            guard let value = Int(number), value <= 1_000_000 else {
                throw ServeConfigurationError("\(flag): '\(text)' is not a duration like 500ms, 5s, 10m or 1h")
            }
            total += value * ["ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000][unit, default: 0]
            number = ""
        }
        guard number.isEmpty, total > 0 else {
            throw ServeConfigurationError("\(flag): '\(text)' is not a duration like 500ms, 5s, 10m or 1h")
        }
        return total
    }

    /// Whether a URL (or the first of a comma-separated list) is https://.
    public static func isHTTPS(_ urls: String) -> Bool {
        (urls.split(separator: ",").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? "").hasPrefix("https://")
    }

    /// Parses `http://host:port` or `https://host:port` (the first of a comma-separated list).
    public static func address(_ urls: String, flag: String) throws(ServeConfigurationError) -> (url: String, address: PeerAddress) {
        let first = urls.split(separator: ",").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        let scheme = first.hasPrefix("https://") ? "https://" : "http://"
        guard first.hasPrefix(scheme) else {
            throw ServeConfigurationError("\(flag): '\(first)' is not a URL like http://127.0.0.1:2379 or https://127.0.0.1:2379")
        }
        var rest = first.dropFirst(scheme.count)
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        let host: Substring
        let portText: Substring
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]"), rest[rest.index(after: close)...].hasPrefix(":") else {
                throw ServeConfigurationError("\(flag): '\(first)' has no port")
            }
            host = rest[rest.index(after: rest.startIndex)..<close]
            portText = rest[rest.index(close, offsetBy: 2)...]
        } else {
            guard let colon = rest.lastIndex(of: ":") else { throw ServeConfigurationError("\(flag): '\(first)' has no port") }
            host = rest[..<colon]
            portText = rest[rest.index(after: colon)...]
        }
        guard !host.isEmpty, let port = Int(portText), (1...65535).contains(port) else {
            throw ServeConfigurationError("\(flag): '\(first)' needs a host and a port between 1 and 65535")
        }
        let hostName = host == "localhost" ? "127.0.0.1" : String(host)
        return (first, PeerAddress(host: hostName, port: port))
    }

    /// Checks everything and derives the node's options.
    public func validate() throws(ServeConfigurationError) -> NodeOptions {
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." }) else {
            throw ServeConfigurationError("--name: '\(name)' must be letters, digits, '-', '_' or '.'")
        }
        let client = try Self.address(listenClientURLs, flag: "--listen-client-urls")
        let peer = try Self.address(listenPeerURLs, flag: "--listen-peer-urls")
        let advertisedPeer = try Self.address(initialAdvertisePeerURLs ?? listenPeerURLs, flag: "--initial-advertise-peer-urls")
        let advertised = (advertiseClientURLs ?? listenClientURLs).split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        for url in advertised { _ = try Self.address(url, flag: "--advertise-client-urls") }
        // TLS: each listener's flags must agree with the scheme of its URLs, and every URL of
        // one kind must use the same scheme (a member cannot talk TLS to one peer and plaintext
        // to another).
        let clientHTTPS = Self.isHTTPS(listenClientURLs)
        try clientTLS.validate(prefix: "", urlFlag: "--listen-client-urls", url: client.url, isHTTPS: clientHTTPS)
        for url in advertised where Self.isHTTPS(url) != clientHTTPS {
            throw ServeConfigurationError(
                "--advertise-client-urls: \(url) and --listen-client-urls \(client.url) must both be http:// or both https://")
        }
        let peerHTTPS = Self.isHTTPS(listenPeerURLs)
        try peerTLS.validate(prefix: "peer-", urlFlag: "--listen-peer-urls", url: peer.url, isHTTPS: peerHTTPS)
        if Self.isHTTPS(advertisedPeer.url) != peerHTTPS {
            throw ServeConfigurationError(
                "--initial-advertise-peer-urls: \(advertisedPeer.url) and --listen-peer-urls \(peer.url) must both be http:// or both https://")
        }
        if !clientTLS.allowedCommonNames.isEmpty {
            throw ServeConfigurationError("allowed common names apply to peers only (--peer-cert-allowed-cn)")
        }
        // As etcd: /health, /metrics and /version are served on the client port; a separate
        // (plaintext HTTP/1.1) listener only when asked for.
        var metrics: PeerAddress?
        if let listenMetricsURLs {
            metrics = try Self.address(listenMetricsURLs, flag: "--listen-metrics-urls").address
        }
        guard initialClusterState == "new" || initialClusterState == "existing" else {
            throw ServeConfigurationError("--initial-cluster-state: '\(initialClusterState)' must be 'new' or 'existing'")
        }
        guard heartbeatIntervalMilliseconds >= 10 else {
            throw ServeConfigurationError("--heartbeat-interval: \(heartbeatIntervalMilliseconds) ms is below the 10 ms minimum")
        }
        guard electionTimeoutMilliseconds >= 5 * heartbeatIntervalMilliseconds else {
            throw ServeConfigurationError(
                "--election-timeout (\(electionTimeoutMilliseconds) ms) must be at least 5 times --heartbeat-interval (\(heartbeatIntervalMilliseconds) ms)")
        }
        guard electionTimeoutMilliseconds <= 50_000 else {
            throw ServeConfigurationError("--election-timeout: \(electionTimeoutMilliseconds) ms is above the 50000 ms maximum")
        }
        guard (1024...(32 << 20)).contains(maxRequestBytes) else {
            throw ServeConfigurationError("--max-request-bytes: \(maxRequestBytes) must be between 1024 and 33554432")
        }
        guard let mode = ReadMode(rawValue: readMode) else {
            throw ServeConfigurationError("--read-mode: '\(readMode)' must be one of \(ReadMode.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard snapshotCount >= 100 else {
            throw ServeConfigurationError("--snapshot-count: \(snapshotCount) is below the minimum of 100")
        }

        // --initial-cluster: name=url pairs; names sorted give every member the same node ids.
        let clusterText = initialCluster ?? "\(name)=\(advertisedPeer.url)"
        var entries: [(name: String, url: String, address: PeerAddress)] = []
        for part in clusterText.split(separator: ",") {
            let pair = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard pair.count == 2, !pair[0].isEmpty else {
                throw ServeConfigurationError("--initial-cluster: '\(part)' is not name=http://host:port")
            }
            let parsed = try Self.address(pair[1], flag: "--initial-cluster (member \(pair[0]))")
            if Self.isHTTPS(parsed.url) != peerHTTPS {
                throw ServeConfigurationError(
                    "--initial-cluster: member \(pair[0]) has \(parsed.url) but --listen-peer-urls is \(peer.url): every peer URL must be http:// or every one https://")
            }
            entries.append((pair[0], parsed.url, parsed.address))
        }
        let names = entries.map(\.name)
        if let duplicate = names.first(where: { name in names.filter { $0 == name }.count > 1 }) {
            throw ServeConfigurationError("--initial-cluster: member '\(duplicate)' appears more than once")
        }
        guard let me = entries.first(where: { $0.name == name }) else {
            if initialClusterState == "existing" {
                throw ServeConfigurationError(
                    "--name '\(name)' is not in --initial-cluster (\(names.joined(separator: ", "))); to join a running cluster, list its current members and this one")
            }
            throw ServeConfigurationError("--name '\(name)' is not in --initial-cluster (\(names.joined(separator: ", ")))")
        }
        guard me.address == advertisedPeer.address else {
            throw ServeConfigurationError(
                "--initial-cluster gives \(name) the peer URL \(me.url), but this member advertises \(advertisedPeer.url)")
        }
        guard entries.count <= 15 else {
            throw ServeConfigurationError("--initial-cluster: \(entries.count) members; at most 15 are supported")
        }
        let sortedEntries = entries.sorted { $0.name < $1.name }
        let canonical = sortedEntries.map { "\($0.name)=\($0.url)" }.joined(separator: ",")
        let clusterID = stableHash64("synod-cluster/\(initialClusterToken)/\(canonical)")
        var members: [MemberInfo] = []
        for (index, entry) in sortedEntries.enumerated() {
            members.append(MemberInfo(
                name: entry.name, nodeID: NodeID(UInt32(index + 1)),
                memberID: stableHash64("synod-member/\(initialClusterToken)/\(entry.name)/\(entry.url)"),
                peerURL: entry.url, peerAddress: entry.address,
                clientURLs: entry.name == name ? advertised : []))
        }
        var options = NodeOptions(name: name, dataDirectory: dataDir ?? "\(name).synod", members: members,
                                  clusterID: clusterID, clientListen: client.address,
                                  advertiseClientURLs: advertised, peerListen: peer.address)
        options.metricsListen = metrics
        options.heartbeatMilliseconds = heartbeatIntervalMilliseconds
        options.electionTimeoutMilliseconds = electionTimeoutMilliseconds
        options.tickMilliseconds = max(1, min(10, heartbeatIntervalMilliseconds / 5))
        options.readMode = mode
        options.preVote = preVote
        options.maxRequestBytes = maxRequestBytes
        options.snapshotEverySlots = snapshotCount
        options.joinExisting = initialClusterState == "existing"
        options.watchProgressNotifyMilliseconds = try Self.milliseconds(
            watchProgressNotifyInterval, flag: "--experimental-watch-progress-notify-interval")
        options.integrityCheckMilliseconds = try Self.milliseconds(corruptCheckTime, flag: "--experimental-corrupt-check-time")
        guard let transport = GRPCTransportKind(rawValue: grpcTransport) else {
            throw ServeConfigurationError("--grpc-transport: '\(grpcTransport)' must be frames or grpc-swift")
        }
        options.grpcTransport = transport
        guard (0...64).contains(eventLoopThreads) else {
            throw ServeConfigurationError("--event-loop-threads: \(eventLoopThreads) must be in 0...64")
        }
        options.eventLoopThreads = eventLoopThreads
        if clientHTTPS {
            guard transport == .frames else {
                throw ServeConfigurationError("--grpc-transport grpc-swift serves plaintext only; TLS on the client port needs the default (frames)")
            }
            options.clientTLS = clientTLS
        }
        if peerHTTPS { options.peerTLS = peerTLS }
        guard (1...86_400 * 7).contains(authTokenTTLSeconds) else {
            throw ServeConfigurationError("--auth-token-ttl: \(authTokenTTLSeconds) must be between 1 and 604800 seconds")
        }
        guard (4...12).contains(bcryptCost) else {
            throw ServeConfigurationError("--bcrypt-cost: \(bcryptCost) must be between 4 and 12 (scrypt with N = 2^(cost+4))")
        }
        guard authTokenKind == "simple" || authTokenKind.hasPrefix("simple,") else {
            throw ServeConfigurationError("--auth-token: '\(authTokenKind)' is not supported; use simple (Synod's simple tokens are signed, valid on every member)")
        }
        options.authTokenTTLSeconds = authTokenTTLSeconds
        options.bcryptCost = bcryptCost
        return options
    }
}

