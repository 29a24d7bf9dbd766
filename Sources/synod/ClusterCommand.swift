import ArgumentParser
import Foundation
import NIOPosix
import NIOSSL
import SynodClient
import SynodProcess
import SynodServer

/// `synod cluster` (and `synod` with no arguments): a local 3-node cluster in one command.
struct ClusterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Start a local cluster of `synod serve` processes and stop it on Ctrl-C."
    )

    @Option(help: "Directory for the members' data and logs (default: synod-local, or synod-local-tls with --tls: a cluster's identity includes its URLs' scheme, so the two cannot share data).")
    var dataDir: String?
    @Option(help: "Number of members (1, 3 or 5).")
    var nodes: Int = 3
    @Option(help: "Client port of the first member; the others add 20000, 30000, ... (2379, 22379, 32379, as etcd's Procfile).")
    var basePort: Int = 2379
    @Option(help: "Log level for the members.")
    var logLevel: String = "info"
    @Flag(help: ArgumentHelp(
        "Mutual TLS on the client and peer ports: makes a CA and certificates in <data-dir>/pki (kept across restarts; default data directory synod-local-tls).",
        discussion: "Members require client certificates (--client-cert-auth, --peer-client-cert-auth); pki/root.crt and pki/client.crt are client certificates for the users root and client."))
    var tls = false
    @Option(help: ArgumentHelp(
        "Port of the cluster page on 127.0.0.1 (default: --base-port minus 1, 2378; 0: no page).",
        discussion: "The page shows the members live and has controls: kill, pause, resume, restart, isolate, heal, move-leader, put."))
    var uiPort: Int?

    /// The cluster page's port; nil when it is off.
    var pagePort: Int? {
        let port = uiPort ?? basePort - 1
        return port == 0 ? nil : port
    }

    struct Member {
        var name: String
        var clientPort: Int
        var peerPort: Int
        var metricsPort: Int
        var scheme = "http"
        var clientURL: String { "\(scheme)://127.0.0.1:\(clientPort)" }
        var peerURL: String { "\(scheme)://127.0.0.1:\(peerPort)" }
    }

    func validate() throws {
        guard [1, 3, 5].contains(nodes) else { throw ValidationError("--nodes must be 1, 3 or 5, got \(nodes)") }
        guard basePort >= 1024, basePort + nodes * 10000 + 2 <= 65535 else {
            throw ValidationError("--base-port \(basePort) leaves no room for \(nodes) members (member i uses base + (i+1)*10000 and the next two ports)")
        }
        if let uiPort, !(0...65535).contains(uiPort) {
            throw ValidationError("--ui-port must be 0 (no page) or a port number, got \(uiPort)")
        }
    }

    var members: [Member] {
        (0..<nodes).map { i in
            let port = i == 0 ? basePort : basePort + (i + 1) * 10000
            return Member(name: "n\(i + 1)", clientPort: port, peerPort: port + 1, metricsPort: port + 2,
                          scheme: tls ? "https" : "http")
        }
    }

    func run() async throws {
        let dataDir = self.dataDir ?? (tls ? "synod-local-tls" : "synod-local")
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        let members = self.members
        let initialCluster = members.map { "\($0.name)=\($0.peerURL)" }.joined(separator: ",")
        try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
        let pki = URL(fileURLWithPath: dataDir).standardizedFileURL.path + "/pki"
        if tls {
            try LocalPKI.write(directory: pki, members: members.map(\.name), clientUsers: ["root", "client"])
        }
        let registry = ChildRegistry.shared
        let pagePort = self.pagePort
        // The members accept isolate/heal from whoever holds this token: the supervisor, which
        // hands it only to its own loopback page.
        let token = LiveControl.makeToken()
        var environment = ProcessInfo.processInfo.environment
        if pagePort != nil { environment["SYNOD_UI_CONTROL_TOKEN"] = token }
        var supervised: [ClusterSupervisor.Member] = []
        for member in members {
            let logPath = "\(dataDir)/\(member.name).log"
            // Each start begins a fresh log.
            _ = FileManager.default.createFile(atPath: logPath, contents: nil)
            let command = ChildCommand(executable: executable, arguments: [
                "serve", "--name", member.name, "--data-dir", "\(dataDir)/\(member.name)",
                "--listen-client-urls", member.clientURL, "--advertise-client-urls", member.clientURL,
                "--listen-peer-urls", member.peerURL, "--initial-cluster", initialCluster,
                "--listen-metrics-urls", "http://127.0.0.1:\(member.metricsPort)", "--log-level", logLevel,
            ] + (tls ? [
                "--cert-file", "\(pki)/\(member.name).crt", "--key-file", "\(pki)/\(member.name).key",
                "--trusted-ca-file", "\(pki)/ca.crt", "--client-cert-auth",
                "--peer-cert-file", "\(pki)/\(member.name).crt", "--peer-key-file", "\(pki)/\(member.name).key",
                "--peer-trusted-ca-file", "\(pki)/ca.crt", "--peer-client-cert-auth",
            ] : []), environment: environment, logPath: logPath)
            supervised.append(.init(name: member.name, clientURL: member.clientURL, command: command, child: nil, process: .running))
        }
        var clientConfiguration = SynodClientConfiguration(endpoints: members.map(\.clientURL), requestTimeout: .seconds(5),
                                                           attemptTimeout: .seconds(1))
        var memberTLS: NIOSSLContext?
        if tls {
            clientConfiguration.tls = SynodClientTLS(caFile: "\(pki)/ca.crt", certFile: "\(pki)/root.crt", keyFile: "\(pki)/root.key")
            memberTLS = try LiveHTTPClient.tlsContext(caFile: "\(pki)/ca.crt", certFile: "\(pki)/root.crt", keyFile: "\(pki)/root.key")
        }
        let group = MultiThreadedEventLoopGroup.singleton
        let http = LiveHTTPClient(group: group, tls: memberTLS)
        // Tests only: SYNOD_LIVE_BREAK=kill-noop or stale-leader breaks the page on purpose.
        let breakMode = ProcessInfo.processInfo.environment["SYNOD_LIVE_BREAK"]
        let supervisor = ClusterSupervisor(members: supervised, registry: registry, token: token, http: http,
                                           client: clientConfiguration, breakMode: breakMode)
        // The guided tour (synod sim --tour), linked from the page.
        let tour: LiveTourProvider? = .simulatorTour()
        var page: LiveClusterServer?
        if let pagePort {
            let state = LiveStateSource(supervisor: supervisor, http: http, tour: tour, breakMode: breakMode)
            let names = members.map(\.name)
            do {
                page = try await LiveClusterServer.start(group: group, port: pagePort) { port in
                    LiveClusterRoutes(port: port, state: state, supervisor: supervisor, tour: tour, members: names)
                }
            } catch {
                throw ValidationError("cannot serve the cluster page on 127.0.0.1:\(pagePort): \(error) (choose another with --ui-port, or --ui-port 0 for none)")
            }
        }
        do {
            try await supervisor.launchAll()
        } catch .cannotStart(_, let underlying) {
            await page?.close()
            throw underlying
        } catch {
            await page?.close()
            throw ValidationError(error.description)
        }
        let endpoints = members.map(\.clientURL).joined(separator: ",")
        let certificates = tls ? " --cacert=\(pki)/ca.crt --cert=\(pki)/client.crt --key=\(pki)/client.key" : ""
        var banner = "Synod: \(nodes)-node local cluster started (data and logs in \(dataDir)/).\n"
        if let page {
            banner += """

                  Cluster page: http://127.0.0.1:\(page.port)/
                    watch the members live; kill, pause, resume, restart or isolate one, move the leader, put a key.
                  Each member also serves a read-only page at <client URL>/ui: \(members.map { "\($0.clientURL)/ui" }.joined(separator: " "))

                """
            if tls { banner += "    (https: a browser must present a client certificate, such as \(pki)/client.crt)\n" }
            banner += "\n"
        }
        print(banner + """
              client endpoints: \(endpoints)
              metrics/health:   \(members.map { "http://127.0.0.1:\($0.metricsPort)/metrics" }.joined(separator: " "))\n
            """ + (tls ? """
              TLS:              mutual, on client and peer ports; CA and certificates in \(pki)/\n
            """ : "") + """
            Talk to it with etcdctl or synod, e.g.:
              ETCDCTL_API=3 etcdctl --endpoints=\(endpoints)\(certificates) put greeting hello
              synod get greeting --endpoints=\(endpoints)\(certificates)
              synod status --endpoints=\(endpoints)\(certificates)
            Press Ctrl-C to stop.
            """)
        // Shown at once even when standard output is a file or a pipe (tee, a test's log).
        fflush(nil)
        let reason: String
        // A member killed from the page stays down (until restarted there); one that exits by
        // itself stops the cluster.
        switch await ChildProcess.waitForSignalOrExit(watching: { await supervisor.expectedChildren() }) {
        case .signal(let number): reason = number == SIGINT ? "interrupted" : "terminated"
        case .exited(let child, let status): reason = "\(child.name) exited with status \(status); see its log"
        case nil: reason = "stopped"
        }
        print("\nstopping (\(reason))...")
        await page?.close()
        await ChildProcess.stop(await supervisor.allChildren(), grace: .seconds(10)) { child in
            print("\(child.name) did not stop within 10 s; killing it")
        }
        print("stopped.")
    }
}
