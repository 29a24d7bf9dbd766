import Foundation
import Synchronization
import SynodProcess

/// How to run one member of a cluster.
public struct CompareMemberSpec: Sendable, Equatable {
    public var name: String
    public var executable: String
    public var arguments: [String]
    public var dataDirectory: String
    /// `127.0.0.1:port` of its etcd v3 gRPC endpoint.
    public var clientEndpoint: String
    /// Every port it listens on, with what for (checked to be free before the start).
    public var ports: [(port: Int, role: String)]
    public var logPath: String

    public static func == (lhs: CompareMemberSpec, rhs: CompareMemberSpec) -> Bool {
        lhs.name == rhs.name && lhs.executable == rhs.executable && lhs.arguments == rhs.arguments
            && lhs.dataDirectory == rhs.dataDirectory && lhs.clientEndpoint == rhs.clientEndpoint
            && lhs.ports.map(\.port) == rhs.ports.map(\.port) && lhs.logPath == rhs.logPath
    }
}

/// The command lines of the two 3-member clusters.
public enum CompareClusterLayout {
    static let host = "127.0.0.1"

    /// etcd 3.4: clients on base+1..3, peers on base+11..13; fsync on (the default); a backend
    /// quota of 8 GiB so the memory phase never hits the 2 GiB default.
    public static func etcd(binary: String, basePort: Int, directory: String) -> [CompareMemberSpec] {
        (0..<3).map { etcdMember(index: $0, of: 3, joining: false, binary: binary, basePort: basePort, directory: directory) }
    }

    /// Ports of the clusters with TLS: the plaintext layout shifted by this much (etcd clients
    /// base+51..53, peers base+61..63; Synod clients base+71..73, peers base+81..83, metrics
    /// base+91..93).
    public static let tlsPortOffset = 50

    /// Member names of a cluster with TLS: `s1-tls`, `e1-tls`, ... (also their certificates' CNs).
    static func memberName(_ prefix: String, index: Int, tls: Bool) -> String { "\(prefix)\(index + 1)" + (tls ? "-tls" : "") }

    /// The member names of the clusters with TLS (the certificates `--tls` makes).
    public static var tlsMemberNames: [String] {
        ["s", "e"].flatMap { prefix in (0..<3).map { memberName(prefix, index: $0, tls: true) } }
    }

    /// etcd 3.4 with mutual TLS on its client and peer ports (kubeadm's flags: `--client-cert-auth`
    /// and `--peer-client-cert-auth`, every URL https://), ports shifted by ``tlsPortOffset``.
    public static func etcdTLS(binary: String, basePort: Int, directory: String, pki: ComparePKI) -> [CompareMemberSpec] {
        (0..<3).map { etcdMember(index: $0, of: 3, joining: false, binary: binary, basePort: basePort, directory: directory, pki: pki) }
    }

    /// The fourth etcd member the join phase adds (client base+4, peer base+14).
    public static func etcdJoiner(binary: String, basePort: Int, directory: String) -> CompareMemberSpec {
        etcdMember(index: 3, of: 4, joining: true, binary: binary, basePort: basePort, directory: directory)
    }

    /// Where member `index` of one system listens: base + offset + index for clients and peers,
    /// shifted by ``tlsPortOffset`` with TLS; its name, URLs and the endpoint clients dial.
    struct MemberAddress {
        let name: String
        let base: Int
        let clientPort: Int
        let peerPort: Int
        let secure: Bool

        init(prefix: String, index: Int, basePort: Int, clientOffset: Int, peerOffset: Int, tls: Bool) {
            name = CompareClusterLayout.memberName(prefix, index: index, tls: tls)
            base = basePort + (tls ? CompareClusterLayout.tlsPortOffset : 0)
            clientPort = base + clientOffset + index
            peerPort = base + peerOffset + index
            secure = tls
        }

        var scheme: String { secure ? "https" : "http" }
        var clientURL: String { "\(scheme)://\(host):\(clientPort)" }
        var peerURL: String { "\(scheme)://\(host):\(peerPort)" }
        /// What the load generator dials: the URL with TLS, `host:port` without.
        var endpoint: String { secure ? clientURL : "\(host):\(clientPort)" }
    }

    static func etcdAddress(_ index: Int, basePort: Int, tls: Bool) -> MemberAddress {
        MemberAddress(prefix: "e", index: index, basePort: basePort, clientOffset: 1, peerOffset: 11, tls: tls)
    }

    static func synodAddress(_ index: Int, basePort: Int, tls: Bool) -> MemberAddress {
        MemberAddress(prefix: "s", index: index, basePort: basePort, clientOffset: 21, peerOffset: 31, tls: tls)
    }

    /// `--initial-cluster` for members 0..<count.
    static func initialCluster(_ count: Int, _ address: (Int) -> MemberAddress) -> String {
        (0..<count).map { "\(address($0).name)=\(address($0).peerURL)" }.joined(separator: ",")
    }

    private static func etcdMember(
        index: Int, of count: Int, joining: Bool, binary: String, basePort: Int, directory: String, pki: ComparePKI? = nil
    ) -> CompareMemberSpec {
        let secure = pki != nil
        let address = etcdAddress(index, basePort: basePort, tls: secure)
        let (name, client, peer) = (address.name, address.clientURL, address.peerURL)
        let cluster = initialCluster(count) { etcdAddress($0, basePort: basePort, tls: secure) }
        let data = "\(directory)/data/etcd-\(name)"
        let token = secure ? "synod-bench-etcd-tls" : "synod-bench-etcd"
        let state = joining ? "existing" : "new"
        var arguments: [String] = [
            "--name", name, "--data-dir", data,
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", cluster, "--initial-cluster-state", state,
            "--initial-cluster-token", token,
            "--quota-backend-bytes", String(8 << 30), "--logger", "zap", "--log-outputs", "stderr",
        ]
        if let pki { arguments += pki.serverFlags(member: name) }
        return CompareMemberSpec(
            name: name, executable: binary,
            arguments: arguments,
            dataDirectory: data, clientEndpoint: address.endpoint,
            ports: [(address.clientPort, "etcd \(name) client"), (address.peerPort, "etcd \(name) peer")],
            logPath: "\(directory)/logs/etcd-\(name).log")
    }

    /// Synod: clients on base+21..23, peers on base+31..33, metrics on base+41..43; fsync on
    /// (always); heartbeat and election timeout as etcd's defaults (100 ms, 1 s).
    public static func synod(binary: String, basePort: Int, directory: String) -> [CompareMemberSpec] {
        (0..<3).map { synodMember(index: $0, of: 3, joining: false, binary: binary, basePort: basePort, directory: directory) }
    }

    /// Synod with mutual TLS on its client and peer ports (etcd's flags, as for ``etcdTLS``),
    /// ports shifted by ``tlsPortOffset``; metrics stay plain HTTP.
    public static func synodTLS(binary: String, basePort: Int, directory: String, pki: ComparePKI) -> [CompareMemberSpec] {
        (0..<3).map { synodMember(index: $0, of: 3, joining: false, binary: binary, basePort: basePort, directory: directory, pki: pki) }
    }

    /// The fourth Synod member the join phase adds (client base+24, peer base+34, metrics base+44).
    public static func synodJoiner(binary: String, basePort: Int, directory: String) -> CompareMemberSpec {
        synodMember(index: 3, of: 4, joining: true, binary: binary, basePort: basePort, directory: directory)
    }

    private static func synodMember(
        index: Int, of count: Int, joining: Bool, binary: String, basePort: Int, directory: String, pki: ComparePKI? = nil
    ) -> CompareMemberSpec {
        let secure = pki != nil
        let address = synodAddress(index, basePort: basePort, tls: secure)
        let (name, client, peer) = (address.name, address.clientURL, address.peerURL)
        let cluster = initialCluster(count) { synodAddress($0, basePort: basePort, tls: secure) }
        let metricsPort = address.base + 41 + index
        let data = "\(directory)/data/synod-\(name)"
        let token = secure ? "synod-bench-tls" : "synod-bench"
        let state = joining ? "existing" : "new"
        var arguments: [String] = [
            "serve", "--name", name, "--data-dir", data,
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", cluster, "--initial-cluster-state", state,
            "--initial-cluster-token", token,
            "--listen-metrics-urls", "http://\(host):\(metricsPort)", "--log-level", "notice",
        ]
        if let pki { arguments += pki.serverFlags(member: name) }
        return CompareMemberSpec(
            name: name, executable: binary,
            arguments: arguments,
            dataDirectory: data, clientEndpoint: address.endpoint,
            ports: [
                (address.clientPort, "Synod \(name) client"), (address.peerPort, "Synod \(name) peer"),
                (metricsPort, "Synod \(name) metrics"),
            ],
            logPath: "\(directory)/logs/synod-\(name).log")
    }

    /// Throws one line naming the first port of `members` that something else listens on.
    public static func checkPortsFree(_ members: [CompareMemberSpec]) throws(CompareError) {
        for member in members {
            for (port, role) in member.ports where !portIsFree(port) {
                throw CompareError("port \(port) (\(role)) is in use; stop what listens there or pick another --base-port")
            }
        }
    }

    /// `host` (dotted quad) and `port` as a socket address.
    static func ipv4Address(_ host: String, port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(truncatingIfNeeded: port).bigEndian)
        address.sin_addr.s_addr = inet_addr(host)
        return address
    }

    /// Whether 127.0.0.1:`port` can be bound (with SO_REUSEADDR, as the servers bind).
    public static func portIsFree(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var yes: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = ipv4Address(host, port: port)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        return result == 0
    }
}

/// The running processes of one cluster, children of `registry`.
public final class CompareCluster: Sendable {
    public let system: CompareSystem
    public let members: [CompareMemberSpec]
    public let registry: ChildRegistry
    /// The certificates of a cluster with mutual TLS (nil: plaintext).
    public let pki: ComparePKI?
    private let processes: Mutex<[ChildProcess?]>

    public init(system: CompareSystem, members: [CompareMemberSpec], registry: ChildRegistry = .shared, pki: ComparePKI? = nil) {
        self.system = system
        self.members = members
        self.registry = registry
        self.pki = pki
        self.processes = Mutex(Array(repeating: nil, count: members.count))
    }

    public var endpoints: [String] { members.map(\.clientEndpoint) }
    public var isTLS: Bool { pki != nil }
    /// "synod", "etcd", "synod tls", "etcd tls".
    public var label: String { system.rawValue + (isTLS ? " tls" : "") }
    /// What the load generator and the runner's own calls need for this cluster.
    public var benchTLS: BenchTLS? { pki?.clientTLS }

    /// Starts member `index` (output appended to its log); a no-op when it runs already.
    public func start(_ index: Int) throws(CompareError) {
        let member = members[index]
        try processes.withLock { (processes: inout [ChildProcess?]) throws(CompareError) in
            guard !registry.shuttingDown else { throw CompareError("interrupted") }
            if processes[index]?.isRunning == true { return }
            let directory = (member.logPath as NSString).deletingLastPathComponent
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                try FileManager.default.createDirectory(atPath: member.dataDirectory, withIntermediateDirectories: true)
            } catch {
                throw CompareError("cannot create \(member.dataDirectory): \(error.localizedDescription)")
            }
            ChildLog.append("--- compare: starting \(member.name) at \(CompareMachineInfo.isoDate())\n", to: member.logPath)
            let command = ChildCommand(executable: member.executable, arguments: member.arguments, logPath: member.logPath)
            do throws(ChildLaunchError) {
                processes[index] = try registry.launch(command, name: member.name)
            } catch {
                switch error {
                case .shuttingDown: throw CompareError("interrupted")
                case .cannotWriteLog: throw CompareError("cannot write \(member.logPath)")
                case .cannotStart(_, let underlying):
                    throw CompareError("cannot start \(member.executable): \(underlying.localizedDescription)")
                }
            }
        }
    }

    public func startAll() throws(CompareError) {
        for index in members.indices { try start(index) }
    }

    /// The pid of member `index` while it runs.
    public func pid(_ index: Int) -> Int32? {
        processes.withLock { processes in
            guard let process = processes[index], process.isRunning else { return nil }
            return process.pid
        }
    }

    /// Members that exited on their own: (name, exit status).
    public func exited() -> [(name: String, status: Int32)] {
        processes.withLock { processes in
            processes.indices.compactMap { index in
                guard let status = processes[index]?.exitStatus else { return nil }
                return (members[index].name, status)
            }
        }
    }

    /// Every member's memory now.
    public func memory() -> [CompareMemberMemory] {
        members.indices.map { index in
            let reading: (peak: Int?, current: Int?) = pid(index).map { CompareMachineInfo.memory(pid: $0) } ?? (nil, nil)
            return CompareMemberMemory(system: system, name: members[index].name, peakRSSBytes: reading.peak, rssBytes: reading.current)
        }
    }

    /// SIGKILLs member `index` and waits until it is gone.
    public func kill9(_ index: Int) async {
        await processes.withLock { $0[index] }?.killAndWait(timeout: .seconds(10))
    }

    /// SIGTERM to every member, SIGKILL to those still running after `graceSeconds`.
    public func stop(graceSeconds: Double = 10) async {
        let all = processes.withLock { $0.compactMap { $0 } }
        await ChildProcess.stop(all, grace: .seconds(graceSeconds))
    }

    /// SIGKILLs every member without waiting (error paths).
    public func killNow() {
        for process in processes.withLock({ $0.compactMap { $0 } }) { process.kill() }
    }
}
