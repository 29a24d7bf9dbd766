import ArgumentParser
import Foundation
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
        var children: [ChildProcess] = []
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
            ] : []), logPath: logPath)
            do {
                children.append(try registry.launch(command, name: member.name))
            } catch .cannotStart(_, let underlying) {
                throw underlying
            } catch {
                throw ValidationError(error.description)
            }
        }
        let endpoints = members.map(\.clientURL).joined(separator: ",")
        let certificates = tls ? " --cacert=\(pki)/ca.crt --cert=\(pki)/client.crt --key=\(pki)/client.key" : ""
        print("""
            Synod: \(nodes)-node local cluster started (data and logs in \(dataDir)/).
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
        let reason: String
        switch await ChildProcess.waitForSignalOrExit(children) {
        case .signal(let number): reason = number == SIGINT ? "interrupted" : "terminated"
        case .exited(let child, let status): reason = "\(child.name) exited with status \(status); see its log"
        case nil: reason = "stopped"
        }
        print("\nstopping (\(reason))...")
        await ChildProcess.stop(children, grace: .seconds(10)) { child in
            print("\(child.name) did not stop within 10 s; killing it")
        }
        print("stopped.")
    }
}
