import Foundation
import SynodClient
import XCTest

/// `synod serve` as an ordinary user: the release blocker of the last review (socket options
/// that need privileges made every connection fail for a normal user, while every test ran as
/// root). When the tests run as root, the servers are started as `nobody` through setpriv;
/// otherwise as the user running the tests.
final class UnprivilegedServeTests: XCTestCase {
    private var processes: [Process] = []
    private var root = ""

    override func tearDown() {
        for process in processes where process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        if !root.isEmpty { try? FileManager.default.removeItem(atPath: root) }
    }

    /// The uid of a running process, from /proc (the real and effective ids must both be it).
    private static func uids(of pid: Int32) -> [String] {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Uid:") }) else { return [] }
        return line.split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().map(String.init)
    }

    func testThreeMembersServeAnOrdinaryUser() async throws {
        guard let binary = ChaosRunnerTests.synodBinary() else { throw XCTSkip("no synod binary") }
        let asRoot = getuid() == 0
        let prefix = asRoot ? ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] : []
        if asRoot && !FileManager.default.isExecutableFile(atPath: prefix[0]) { throw XCTSkip("setpriv is missing") }
        root = FileManager.default.temporaryDirectory.appendingPathComponent("synod-unprivileged-\(getpid())").path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        // The data directories' parent must be writable by the server's user.
        XCTAssertEqual(chmod(root, 0o777), 0)
        let ports = ChaosPorts.free(9)
        let names = ["n1", "n2", "n3"]
        let cluster = names.indices.map { "\(names[$0])=http://127.0.0.1:\(ports[3 * $0 + 1])" }.joined(separator: ",")
        var endpoints: [String] = []
        for (index, name) in names.enumerated() {
            let client = "http://127.0.0.1:\(ports[3 * index])"
            endpoints.append(client)
            let process = Process()
            let serve = [binary, "serve", "--name", name, "--data-dir", "\(root)/\(name)",
                         "--listen-client-urls", client, "--advertise-client-urls", client,
                         "--listen-peer-urls", "http://127.0.0.1:\(ports[3 * index + 1])",
                         "--initial-advertise-peer-urls", "http://127.0.0.1:\(ports[3 * index + 1])",
                         "--listen-metrics-urls", "http://127.0.0.1:\(ports[3 * index + 2])",
                         "--initial-cluster", cluster, "--initial-cluster-token", "unprivileged"]
            let argv = prefix + serve
            process.executableURL = URL(fileURLWithPath: argv[0])
            process.arguments = Array(argv.dropFirst())
            let log = FileManager.default.createFile(atPath: "\(root)/\(name).log", contents: nil)
            XCTAssertTrue(log)
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(root)/\(name).log"))
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
            processes.append(process)
        }
        let configuration = SynodClientConfiguration(endpoints: endpoints, requestTimeout: .seconds(20), attemptTimeout: .seconds(2))
        do {
            try await withSynodClient(configuration) { client in
                _ = try await client.put("who", "an ordinary user")
                let response = try await client.get("who")
                XCTAssertEqual(response.kvs.first.map { String(decoding: $0.value, as: UTF8.self) }, "an ordinary user")
                // Every member answers, and all agree on one leader (the peer links work).
                let statuses = await client.statusAll()
                let leaders = Set(statuses.compactMap { try? $0.result.get().leader })
                XCTAssertEqual(statuses.count, 3)
                XCTAssertEqual(leaders.count, 1, "\(statuses)")
                XCTAssertFalse(leaders.contains(0))
            }
        } catch {
            let logs = names.map { (try? String(contentsOfFile: "\(root)/\($0).log", encoding: .utf8)) ?? "" }
            XCTFail("the cluster did not serve: \(error)\n\(logs.joined(separator: "\n---\n").suffix(4000))")
        }
        let expected = asRoot ? "65534" : String(getuid())
        for process in processes {
            XCTAssertTrue(process.isRunning)
            XCTAssertEqual(Set(Self.uids(of: process.processIdentifier)), [expected], "the server must not run as root")
        }
    }
}

/// Free TCP ports on 127.0.0.1 (bound to port 0, then released).
enum ChaosPorts {
    static func free(_ count: Int) -> [Int] {
        var ports: [Int] = []
        var sockets: [Int32] = []
        while ports.count < count {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = 0
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
            _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
            let port = Int(UInt16(bigEndian: address.sin_port))
            sockets.append(fd)
            if !ports.contains(port) { ports.append(port) }
        }
        sockets.forEach { close($0) }
        return ports
    }
}
