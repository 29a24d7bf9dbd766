import Foundation
@testable import SynodChaos
import XCTest

/// Exercises `NamespaceNetwork` with real namespaces (root only; skipped elsewhere): tiny
/// python3 TCP servers stand in for the nodes' peer ports.
final class NamespaceNetworkTests: XCTestCase {
    /// A server that answers every connection with "ok" and closes it.
    private static let serverScript = """
        import socket, sys
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((sys.argv[1], int(sys.argv[2])))
        s.listen(16)
        while True:
            c, _ = s.accept()
            try:
                c.sendall(b"ok")
            finally:
                c.close()
        """

    /// Connects with a timeout: exit 0 when the server answered "ok", 3 on timeout.
    private static let clientScript = """
        import socket, sys
        try:
            c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
            c.settimeout(float(sys.argv[3]))
            sys.exit(0 if c.recv(2) == b"ok" else 2)
        except socket.timeout:
            sys.exit(3)
        except OSError as e:
            print(e, file=sys.stderr)
            sys.exit(4)
        """

    private func skipUnlessUsable() throws -> String {
        if let reason = NamespaceNetwork.probe() {
            throw XCTSkip("netns mode unavailable: \(reason)")
        }
        guard let python = NamespaceNetworkCommand.locate("/usr/bin/python3") ?? NamespaceNetworkCommand.locate("python3") else {
            throw XCTSkip("python3 not found (stands in for the nodes)")
        }
        return python
    }

    func testCutIsOneWaySilentAndHealRestores() async throws {
        let python = try skipUnlessUsable()
        let runID = String(format: "t%03x", Int.random(in: 0..<4096))
        let network = NamespaceNetwork(runID: runID)
        var servers: [Process] = []
        do {
            let addresses = try await network.prepare(nodeCount: 2)
            XCTAssertEqual(addresses.count, 2)
            XCTAssertEqual(addresses[0].advertisePeerURL, "http://\(network.address(node: 0)):2380")
            XCTAssertEqual(addresses[1].listenPeerURL, addresses[1].advertisePeerURL)
            XCTAssertEqual(Array(network.launchPrefix(node: 1).suffix(3)), ["netns", "exec", "synod-\(network.runID)-n2"])
            let namespaces = try NamespaceNetworkCommand.run(["ip", "netns", "list"])
            XCTAssertTrue(namespaces.contains(network.namespaceName(node: 0)))
            XCTAssertTrue(namespaces.contains(network.namespaceName(node: 1)))

            let ip1 = network.address(node: 0)
            let ip2 = network.address(node: 1)
            for (index, ip) in [ip1, ip2].enumerated() {
                let server = Process()
                server.executableURL = URL(fileURLWithPath: network.launchPrefix(node: index)[0])
                server.arguments = Array(network.launchPrefix(node: index).dropFirst())
                    + [python, "-c", Self.serverScript, ip, "2380"]
                server.standardOutput = FileHandle.nullDevice
                server.standardError = FileHandle.nullDevice
                try server.run()
                servers.append(server)
            }
            // The harness (host namespace) reaches both through the bridge.
            try await waitUntilReachable(python: python, network: network, from: nil, ip: ip1)
            try await waitUntilReachable(python: python, network: network, from: nil, ip: ip2)

            let timeout = 2.0
            var status = try await connect(python: python, network: network, from: 0, ip: ip2, timeout: 10)
            XCTAssertEqual(status, 0, "n1 -> n2 before the cut")

            try await network.cut(from: 0, to: 1)
            status = try await connect(python: python, network: network, from: 0, ip: ip2, timeout: timeout)
            XCTAssertEqual(status, 3, "n1 -> n2 must time out (silent drop), not be refused")
            status = try await connect(python: python, network: network, from: 1, ip: ip1, timeout: 10)
            XCTAssertEqual(status, 0, "n2 -> n1 must still work during the cut")
            status = try await connect(python: python, network: network, from: nil, ip: ip2, timeout: 10)
            XCTAssertEqual(status, 0, "the harness still reaches n2 during the cut")

            // Loss composes with the cut; total loss from n2 blocks n2 -> n1 too.
            try await network.degrade(node: 1, delayMilliseconds: 0, jitterMilliseconds: 0, lossPercent: 100)
            status = try await connect(python: python, network: network, from: 1, ip: ip1, timeout: timeout)
            XCTAssertEqual(status, 3, "n2 -> n1 must time out with 100% loss from n2")
            if !network.supportsDelay {
                do {
                    try await network.degrade(node: 0, delayMilliseconds: 50, jitterMilliseconds: 0, lossPercent: 0)
                    XCTFail("delay without netem must throw")
                } catch is ChaosNetworkError {}
            } else {
                try await network.degrade(node: 0, delayMilliseconds: 50, jitterMilliseconds: 10, lossPercent: 0)
            }

            try await network.heal()
            status = try await connect(python: python, network: network, from: 0, ip: ip2, timeout: 10)
            XCTAssertEqual(status, 0, "n1 -> n2 after heal")
            status = try await connect(python: python, network: network, from: 1, ip: ip1, timeout: 10)
            XCTAssertEqual(status, 0, "n2 -> n1 after heal")
        } catch {
            await Self.stop(servers)
            await network.teardown()
            throw error
        }
        await Self.stop(servers)
        await network.teardown()
        await network.teardown()
        let namespaces = try NamespaceNetworkCommand.run(["ip", "netns", "list"])
        XCTAssertFalse(namespaces.contains("synod-\(network.runID)-"), namespaces)
        let links = try NamespaceNetworkCommand.run(["ip", "-o", "link", "show"])
        XCTAssertFalse(links.contains("sb\(network.runID):"), "bridge left behind")
        XCTAssertFalse(links.contains("sv\(network.runID)n"), "veth left behind")
    }

    func testCleanupStaleRemovesLeftovers() async throws {
        _ = try skipUnlessUsable()
        let network = NamespaceNetwork(runID: String(format: "s%03x", Int.random(in: 0..<4096)))
        _ = try await network.prepare(nodeCount: 1)
        // Simulate a crash: no teardown.
        let removed = NamespaceNetwork.cleanupStale(runID: network.runID)
        XCTAssertTrue(removed.contains(network.namespaceName(node: 0)), "\(removed)")
        XCTAssertTrue(removed.contains("sb\(network.runID)"), "\(removed)")
        let namespaces = try NamespaceNetworkCommand.run(["ip", "netns", "list"])
        XCTAssertFalse(namespaces.contains(network.namespaceName(node: 0)))
        await network.teardown()
    }

    func testRunIDIsSanitized() {
        XCTAssertEqual(NamespaceNetwork(runID: "AB-12_cdEF99").runID, "ab12cd")
        XCTAssertFalse(NamespaceNetwork(runID: "--").runID.isEmpty)
        let network = NamespaceNetwork(runID: "abcdef")
        XCTAssertLessThanOrEqual(network.hostVethName(node: 8).count, 15)
        XCTAssertLessThanOrEqual(network.nodeVethName(node: 8).count, 15)
        XCTAssertLessThanOrEqual(network.bridgeName.count, 15)
    }

    // MARK: - Helpers

    /// SIGKILL, not `terminate()`: children spawned from Swift's thread pool inherit a signal
    /// mask blocking SIGTERM.
    private static func stop(_ servers: [Process]) async {
        for server in servers where server.isRunning {
            kill(server.processIdentifier, SIGKILL)
        }
        for _ in 0..<100 where servers.contains(where: \.isRunning) {
            try? await Task.sleep(nanoseconds: 50_000_000)
        }
    }

    /// Runs the client in node `from`'s namespace (nil = the host) and returns its exit status.
    private func connect(python: String, network: NamespaceNetwork, from: Int?, ip: String, timeout: Double) async throws -> Int32 {
        var arguments = [python, "-c", Self.clientScript, ip, "2380", "\(timeout)"]
        if let from {
            arguments = network.inNamespace(from, arguments)
        }
        let command = arguments
        let output = try await NamespaceNetworkCommand.offload { try NamespaceNetworkCommand.runUnchecked(command) }
        return output.status
    }

    private func waitUntilReachable(python: String, network: NamespaceNetwork, from: Int?, ip: String) async throws {
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if try await connect(python: python, network: network, from: from, ip: ip, timeout: 2) == 0 { return }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        XCTFail("\(ip):2380 never became reachable")
        throw ChaosNetworkError("unreachable \(ip)")
    }
}
