import ArgumentParser
import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import SynodServer

/// `synod serve`: one node. Flags follow etcd's names where the meaning is the same.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run one Synod node (etcd v3 API on the client URL).",
        discussion: """
            Example (one of three members):
              synod serve --name n1 --data-dir n1.synod \\
                --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \\
                --listen-peer-urls http://127.0.0.1:2380 \\
                --initial-cluster n1=http://127.0.0.1:2380,n2=http://127.0.0.1:22380,n3=http://127.0.0.1:32380
            To add a member to a running cluster: `member add n4 --peer-urls=http://127.0.0.1:42380` (etcdctl
            or synod), then start it with --initial-cluster-state existing, an empty data directory and
            --initial-cluster listing the current members and itself.
            A config file (--config-file, YAML or TOML) may carry the same keys; flags given on the
            command line win.
            """
    )

    @Option(help: "Human-readable name of this member (must appear in --initial-cluster).")
    var name: String = "default"
    @Option(help: "Directory for the write-ahead log and snapshots (default: <name>.synod).")
    var dataDir: String?
    @Option(help: "URL to serve clients (etcd v3 gRPC) on.")
    var listenClientUrls: String = "http://127.0.0.1:2379"
    @Option(help: "Client URLs to advertise to the cluster (default: --listen-client-urls).")
    var advertiseClientUrls: String?
    @Option(help: "URL to listen on for peer traffic.")
    var listenPeerUrls: String = "http://127.0.0.1:2380"
    @Option(help: "This member's peer URL as the cluster knows it (default: --listen-peer-urls).")
    var initialAdvertisePeerUrls: String?
    @Option(help: "All members: name=http://host:port,... (default: this member alone).")
    var initialCluster: String?
    @Option(help: ArgumentHelp(
        "new (bootstrap a new cluster, or restart) or existing (join a running cluster, or restart a member that joined one).",
        discussion: """
            existing with an empty data directory joins a running cluster: run `member add` first, then list \
            the current members and this one in --initial-cluster; the member asks them who it is over \
            the peer port and fetches their snapshot. With data, it restarts from it.
            """))
    var initialClusterState: String = "new"
    @Option(help: "Cluster token: clusters with different tokens never talk to each other.")
    var initialClusterToken: String = "synod-cluster"
    @Option(help: "An extra plaintext HTTP listener for /health, /metrics and /version (the client port serves them anyway; default: none).")
    var listenMetricsUrls: String?
    @Option(help: "Milliseconds between leader heartbeats.")
    var heartbeatInterval: Int = 100
    @Option(help: "Milliseconds without a leader before an election.")
    var electionTimeout: Int = 1000
    @Option(help: "Largest client request in bytes.")
    var maxRequestBytes: Int = 1_572_864
    @Option(help: "How linearizable reads are confirmed: lease or read-index.")
    var readMode: String = "lease"
    @Option(help: "Ask the voters before campaigning, so a member back from a partition does not depose the leader (true or false).")
    var preVote: Bool = true
    @Option(help: "Applied log slots between snapshots.")
    var snapshotCount: Int = 10_000
    @Option(name: .customLong("experimental-watch-progress-notify-interval"),
            help: "How often watches created with progress_notify get a progress response (e.g. 10m, 5s).")
    var watchProgressNotifyInterval: String = "10m"
    @Option(name: .customLong("experimental-corrupt-check-time"),
            help: "How often the leader runs the replicated integrity check (0s: off).")
    var corruptCheckTime: String = "5s"
    @Option(help: "How the etcd gRPC API is served: frames (HTTP/2 frames, KV fast path) or grpc-swift (for comparison).")
    var grpcTransport: String = "frames"
    @Option(help: "Event-loop threads (client API, peers, node); 0 = one per core, at least 2.")
    var eventLoopThreads: Int = 0
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    // TLS, as etcd names the flags (https:// client or peer URLs need them).
    @Option(help: "Client port: PEM certificate (chain) this member presents.")
    var certFile: String?
    @Option(help: "Client port: PEM private key of --cert-file.")
    var keyFile: String?
    @Option(help: "Client port: PEM CA bundle that client certificates must chain to.")
    var trustedCaFile: String?
    @Option(help: "Client port: require a client certificate signed by --trusted-ca-file (true or false; bare flag = true).")
    var clientCertAuth: Bool = false
    @Option(help: "Client port: certificate revocation list (PEM or DER); certificates it lists are refused.")
    var clientCrlFile: String?
    @Option(help: "Client port: a self-signed certificate made in the data directory (for tests; bare flag = true).")
    var autoTls: Bool = false
    @Option(help: "Peer port: PEM certificate (chain) this member presents to other members, both ways.")
    var peerCertFile: String?
    @Option(help: "Peer port: PEM private key of --peer-cert-file.")
    var peerKeyFile: String?
    @Option(help: "Peer port: PEM CA bundle that members' certificates must chain to.")
    var peerTrustedCaFile: String?
    @Option(help: "Peer port: require a member certificate signed by --peer-trusted-ca-file (bare flag = true).")
    var peerClientCertAuth: Bool = false
    @Option(help: "Peer port: certificate revocation list (PEM or DER).")
    var peerCrlFile: String?
    @Option(help: "Peer port: the common names member certificates may have (comma-separated; default any).")
    var peerCertAllowedCn: String?
    @Option(help: "Peer port: self-signed certificates, no verification (for tests; bare flag = true).")
    var peerAutoTls: Bool = false
    @Option(help: "Allowed TLS cipher suites, IANA names, comma-separated (default: the TLS library's).")
    var cipherSuites: String?
    @Option(help: "Lowest TLS version accepted: TLS1.2 or TLS1.3.")
    var tlsMinVersion: String = "TLS1.2"

    // Auth (etcd's Auth service).
    @Option(help: "Seconds an Authenticate token stays valid (etcd's --auth-token-ttl).")
    var authTokenTtl: Int = 300
    @Option(help: "Cost of stored password hashes, 4...12 (etcd's flag; Synod hashes with scrypt, N = 2^(cost+4)).")
    var bcryptCost: Int = 10
    @Option(help: "Token kind; only 'simple' is accepted (Synod's tokens are signed and valid on every member).")
    var authToken: String = "simple"
    @Option(help: "YAML or TOML file with the same keys as these flags.")
    var configFile: String?

    static let configKeys: Set<String> = [
        "name", "data-dir", "listen-client-urls", "advertise-client-urls", "listen-peer-urls",
        "initial-advertise-peer-urls", "initial-cluster", "initial-cluster-state", "initial-cluster-token",
        "listen-metrics-urls", "heartbeat-interval", "election-timeout", "max-request-bytes", "read-mode", "pre-vote",
        "snapshot-count", "log-level", "experimental-watch-progress-notify-interval",
        "experimental-corrupt-check-time", "grpc-transport", "event-loop-threads",
        "cert-file", "key-file", "trusted-ca-file", "client-cert-auth", "client-crl-file", "auto-tls",
        "peer-cert-file", "peer-key-file", "peer-trusted-ca-file", "peer-client-cert-auth", "peer-crl-file",
        "peer-cert-allowed-cn", "peer-auto-tls", "cipher-suites", "tls-min-version",
        "auth-token-ttl", "bcrypt-cost", "auth-token",
    ]

    /// Flags etcd lets stand alone for true (`--client-cert-auth`); Synod's take a value, so a
    /// bare one gets `true` (and `--client-cert-auth=false` works as in etcd).
    static let bareBooleanFlags: Set<String> = ["--client-cert-auth", "--peer-client-cert-auth", "--auto-tls", "--peer-auto-tls"]

    static func normalizedArguments(_ arguments: [String]) -> [String] {
        var result: [String] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            result.append(argument)
            if bareBooleanFlags.contains(argument) {
                let next = index + 1 < arguments.count ? arguments[index + 1] : nil
                if next != "true" && next != "false" { result.append("true") }
            }
            index += 1
        }
        return result
    }

    var serveConfiguration: ServeConfiguration {
        var c = ServeConfiguration()
        c.name = name
        c.dataDir = dataDir
        c.listenClientURLs = listenClientUrls
        c.advertiseClientURLs = advertiseClientUrls
        c.listenPeerURLs = listenPeerUrls
        c.initialAdvertisePeerURLs = initialAdvertisePeerUrls
        c.initialCluster = initialCluster
        c.initialClusterState = initialClusterState
        c.initialClusterToken = initialClusterToken
        c.listenMetricsURLs = listenMetricsUrls
        c.heartbeatIntervalMilliseconds = heartbeatInterval
        c.electionTimeoutMilliseconds = electionTimeout
        c.maxRequestBytes = maxRequestBytes
        c.readMode = readMode
        c.preVote = preVote
        c.snapshotCount = snapshotCount
        c.watchProgressNotifyInterval = watchProgressNotifyInterval
        c.corruptCheckTime = corruptCheckTime
        c.grpcTransport = grpcTransport
        c.eventLoopThreads = eventLoopThreads
        c.clientTLS.certFile = certFile
        c.clientTLS.keyFile = keyFile
        c.clientTLS.trustedCAFile = trustedCaFile
        c.clientTLS.clientCertAuth = clientCertAuth
        c.clientTLS.crlFile = clientCrlFile
        c.clientTLS.autoTLS = autoTls
        c.peerTLS.certFile = peerCertFile
        c.peerTLS.keyFile = peerKeyFile
        c.peerTLS.trustedCAFile = peerTrustedCaFile
        c.peerTLS.clientCertAuth = peerClientCertAuth
        c.peerTLS.crlFile = peerCrlFile
        c.peerTLS.autoTLS = peerAutoTls
        c.peerTLS.allowedCommonNames = (peerCertAllowedCn ?? "").split(separator: ",").map {
            $0.trimmingCharacters(in: .whitespaces)
        }.filter { !$0.isEmpty }
        let suites = (cipherSuites ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        c.clientTLS.cipherSuites = suites
        c.peerTLS.cipherSuites = suites
        c.clientTLS.minimumVersion = tlsMinVersion
        c.peerTLS.minimumVersion = tlsMinVersion
        c.authTokenTTLSeconds = authTokenTtl
        c.bcryptCost = bcryptCost
        c.authTokenKind = authToken
        return c
    }

    /// Re-parses the command line with the config file's values below the explicit flags.
    func withConfigFile() throws -> ServeCommand {
        guard let configFile else { return self }
        let values = try ConfigFile.load(path: configFile)
        try ConfigFile.validate(values, allowedKeys: Self.configKeys, path: configFile)
        let explicit = Self.normalizedArguments(Array(CommandLine.arguments.drop { $0 != "serve" }.dropFirst()))
        let merged = try ConfigFile.merge(fileValues: values, into: explicit, path: configFile)
        var command: ServeCommand
        do {
            command = try ServeCommand.parse(merged)
        } catch {
            // One line naming the key, as for a bad flag (not the parser's internal error).
            throw ServeConfigurationError("\(configFile): \(ServeCommand.message(for: error))")
        }
        command.configFile = nil
        return command
    }

    func run() async throws {
        do {
            try await withConfigFile().serve()
        } catch let error as ExitCode {
            throw error
        } catch is MemberRemovedError {
            // Exit status 0, as etcd does: a supervisor that restarts on failure must not
            // restart a member that was removed on purpose (its data directory refuses anyway).
            FileHandle.standardError.write(Data("synod serve: the member has been permanently removed from the cluster; exiting\n".utf8))
        } catch {
            FileHandle.standardError.write(Data("synod serve: error: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }

    func serve() async throws {
        guard let level = Logger.Level(rawValue: logLevel) else {
            throw ServeConfigurationError("--log-level: '\(logLevel)' must be one of trace, debug, info, notice, warning, error, critical")
        }
        var options = try serveConfiguration.validate()
        options.failpoints = try Failpoints.fromEnvironment()
        // The live page's isolate/heal control exists only when this is set (`synod cluster`
        // sets it with a random token for the members it launches).
        if let token = ProcessInfo.processInfo.environment["SYNOD_UI_CONTROL_TOKEN"], !token.isEmpty {
            options.uiControlToken = token
        }
        options.onStorageFailure = { reason in
            FileHandle.standardError.write(Data("synod serve: fatal: storage failed: \(reason)\n".utf8))
            Foundation.exit(70)
        }
        options.onSafetyHalt = { reason in
            FileHandle.standardError.write(Data("synod serve: fatal: safety violation, halted: \(reason)\n".utf8))
            Foundation.exit(Node.safetyHaltExitStatus)
        }
        let memberName = name
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            handler.metadata["member"] = "\(memberName)"
            return handler
        }
        let logger = Logger(label: "synod")
        let threads = options.eventLoopThreads > 0 ? options.eventLoopThreads : max(2, System.coreCount)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let server = try await SynodNodeServer.make(options: options, logger: logger, group: group)
        let services = ServiceGroup(configuration: .init(
            services: [.init(service: server, successTerminationBehavior: .gracefullyShutdownGroup,
                             failureTerminationBehavior: .gracefullyShutdownGroup)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        try await services.run()
        try? await group.shutdownGracefully()
    }
}
