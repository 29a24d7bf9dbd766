import Foundation
import SynodClient
import SynodProcess
import XCTest
@testable import SynodChaos

/// `synod serve` as an ordinary user: the release blocker of the last review (socket options
/// that need privileges made every connection fail for a normal user, while every test ran as
/// root). When the tests run as root, the servers are started as `nobody` through setpriv (the
/// same path as `synod chaos --serve-user`); otherwise as the user running the tests.
final class UnprivilegedServeTests: XCTestCase {
    /// The real and effective uids of a running process, from /proc.
    private static func uids(of pid: Int32) -> [String] {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Uid:") }) else { return [] }
        return line.split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().map(String.init)
    }

    func testThreeMembersServeAnOrdinaryUser() async throws {
        guard let binary = ChaosRunnerTests.synodBinary() else { throw XCTSkip("no synod binary") }
        ChildRegistry.shared.reset()
        let user = getuid() == 0 ? try ServeUser(name: "nobody") : nil
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("synod-unprivileged-\(getpid())").path
        try? FileManager.default.removeItem(atPath: root)
        try FileManager.default.createDirectory(atPath: "\(root)/data", withIntermediateDirectories: true)
        if let user { XCTAssertEqual(chown("\(root)/data", user.uid, user.gid), 0) }
        let network = ProxyNetwork()
        let addresses = try await network.prepare(nodeCount: 3)
        let processes = ClusterProcesses(binary: binary, addresses: addresses,
                                         launchPrefixes: Array(repeating: user?.setprivPrefix ?? [], count: 3),
                                         reportDirectory: root, clusterToken: "unprivileged", snapshotCount: 10_000,
                                         brokenReads: false, clock: ChaosClock())
        defer { processes.killAllNow() }
        for index in 0..<3 { try processes.start(index) }
        let configuration = SynodClientConfiguration(endpoints: addresses.map(\.clientURL), requestTimeout: .seconds(20),
                                                     attemptTimeout: .seconds(2))
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
            let logs = (0..<3).map { (try? String(contentsOfFile: processes.logPath($0), encoding: .utf8)) ?? "" }
            XCTFail("the cluster did not serve: \(error)\n\(logs.joined(separator: "\n---\n").suffix(4000))")
        }
        let expected = user.map { String($0.uid) } ?? String(getuid())
        for index in 0..<3 {
            let pid = try XCTUnwrap(processes.pid(index))
            XCTAssertEqual(Set(Self.uids(of: pid)), [expected], "the server must not run as root")
        }
        processes.killAllNow()
        await network.teardown()
        try? FileManager.default.removeItem(atPath: root)
    }
}
