import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A fault-injecting network of Linux network namespaces (root only): each node runs in its own
/// namespace `synod-<runID>-n<k>` with its own address `10.199.<x>.<k>`, joined by a bridge
/// `sb<runID>` in the host namespace (address `.254`, through which the harness reaches the
/// nodes). Faults are kernel packet drops, so unlike the proxy a cut link is *silent*: no
/// reset, the sender's TCP just retransmits into the void.
///
/// - `cut(from: i, to: j)`: in j's namespace, `iptables -A INPUT -s <i> -p tcp --dport 2380 -j DROP`
///   drops i's peer connection to j (SYNs and data) but not j's connection to i, whose ACKs
///   from i carry source port 2380.
/// - `degrade(node: i, ...)`: loss is `-m statistic --mode random` DROP of everything from i
///   in every other node's INPUT (peers only; harness traffic is untouched); delay and jitter
///   are a `tc netem` qdisc on i's interface (egress; this also delays i's replies to the
///   harness). Kernels without netem (`supportsDelay == false`) refuse a delay.
/// - `heal()` flushes the rules and removes the qdiscs; `teardown()` deletes the namespaces,
///   the veth pairs and the bridge.
///
/// Needs the tools `ip` (iproute2), `iptables` and, for delay, `tc` (iproute2).
public final class NamespaceNetwork: ChaosNetwork {
    public var name: String { "netns" }

    public static let clientPort = 2379
    public static let peerPort = 2380
    public static let metricsPort = 2381

    /// The sanitized run id used in every name.
    public let runID: String

    private struct State {
        var nodeCount = 0
        var subnetOctet = 0
        var prepared = false
        var tornDown = false
        var netemAvailable = false
        var cuts: Set<ProxyNetworkLink> = []
        var netemNodes: Set<Int> = []
        var lossRules = false
        /// The host FORWARD rule added when bridged traffic goes through the host's iptables.
        var hostForwardRule: [String]?
    }

    private let state = ProxyNetworkLockedBox(State())

    /// - Parameter runID: makes the names unique; only lowercase letters and digits are kept,
    ///   at most 6 (interface names are limited to 15 characters). Empty → random.
    public init(runID: String) {
        var cleaned = String(runID.lowercased().filter { ($0.isASCII && $0.isLetter) || ($0.isASCII && $0.isNumber) }.prefix(6))
        if cleaned.isEmpty {
            cleaned = String(UInt16.random(in: 0...UInt16.max), radix: 16)
        }
        self.runID = cleaned
    }

    // MARK: - Names

    public func namespaceName(node index: Int) -> String { "synod-\(runID)-n\(index + 1)" }
    var bridgeName: String { "sb\(runID)" }
    func hostVethName(node index: Int) -> String { "sv\(runID)n\(index + 1)" }
    func nodeVethName(node index: Int) -> String { "sp\(runID)n\(index + 1)" }

    /// The address of node `index` (valid after `prepare`).
    public func address(node index: Int) -> String {
        "10.199.\(state.withLockedValue { $0.subnetOctet }).\(index + 1)"
    }

    var bridgeAddress: String {
        "10.199.\(state.withLockedValue { $0.subnetOctet }).254"
    }

    /// Whether `degrade` can add delay (the kernel has the netem qdisc); known after `prepare`.
    public var supportsDelay: Bool {
        state.withLockedValue { $0.netemAvailable }
    }

    // MARK: - ChaosNetwork

    public func prepare(nodeCount: Int) async throws -> [ChaosNodeAddresses] {
        guard nodeCount >= 1, nodeCount <= MembershipPlanner.nodesMax else {
            throw ChaosNetworkError("netns: node count \(nodeCount) out of range 1...\(MembershipPlanner.nodesMax)")
        }
        let refused = state.withLockedValue { state in
            defer { state.prepared = true }
            return state.prepared || state.tornDown
        }
        guard !refused else {
            throw ChaosNetworkError("netns: prepare called twice (or after teardown)")
        }
        do {
            try await NamespaceNetworkCommand.offload { [self] in
                try self.build(nodeCount: nodeCount)
            }
        } catch {
            await NamespaceNetworkCommand.offloadQuietly { [self] in self.destroy() }
            throw error
        }
        let octet = state.withLockedValue { $0.subnetOctet }
        return (0..<nodeCount).map { index in
            let ip = "10.199.\(octet).\(index + 1)"
            return ChaosNodeAddresses(
                index: index,
                listenClientURL: "http://\(ip):\(Self.clientPort)",
                clientURL: "http://\(ip):\(Self.clientPort)",
                listenPeerURL: "http://\(ip):\(Self.peerPort)",
                advertisePeerURL: "http://\(ip):\(Self.peerPort)",
                metricsURL: "http://\(ip):\(Self.metricsPort)")
        }
    }

    public func launchPrefix(node index: Int) -> [String] {
        [NamespaceNetworkCommand.locate("ip") ?? "ip", "netns", "exec", namespaceName(node: index)]
    }

    public func cut(from: Int, to: Int) async throws {
        try checkNode(from)
        try checkNode(to)
        guard from != to else {
            throw ChaosNetworkError("netns: cannot cut a node's link to itself (n\(from + 1))")
        }
        let link = ProxyNetworkLink(from: from, to: to)
        let isNew = state.withLockedValue { $0.cuts.insert(link).inserted }
        guard isNew else { return }
        do {
            try await NamespaceNetworkCommand.runAsync(
                inNamespace(to, ["iptables", "-w", "10", "-A", "INPUT", "-s", "\(address(node: from))/32", "-p", "tcp",
                                 "--dport", "\(Self.peerPort)", "-j", "DROP"]))
        } catch {
            _ = state.withLockedValue { $0.cuts.remove(link) }
            throw error
        }
    }

    public func degrade(node index: Int, delayMilliseconds: Int, jitterMilliseconds: Int, lossPercent: Double) async throws {
        try checkNode(index)
        guard delayMilliseconds >= 0, jitterMilliseconds >= 0, lossPercent >= 0, lossPercent <= 100 else {
            throw ChaosNetworkError(
                "netns: invalid degradation delay=\(delayMilliseconds)ms jitter=\(jitterMilliseconds)ms loss=\(lossPercent)%")
        }
        let (nodeCount, netem) = state.withLockedValue { ($0.nodeCount, $0.netemAvailable) }
        let wantsDelay = delayMilliseconds > 0 || jitterMilliseconds > 0
        if wantsDelay, !netem {
            throw ChaosNetworkError(
                "netns: this kernel has no netem qdisc (CONFIG_NET_SCH_NETEM), so delay is unavailable; degrade with loss only")
        }
        var commands: [[String]] = []
        if wantsDelay {
            var netemArguments = ["tc", "qdisc", "replace", "dev", nodeVethName(node: index), "root", "netem",
                                  "delay", "\(delayMilliseconds)ms"]
            if jitterMilliseconds > 0 { netemArguments.append("\(jitterMilliseconds)ms") }
            commands.append(inNamespace(index, netemArguments))
        }
        if lossPercent > 0 {
            let probability = String(format: "%.6f", lossPercent / 100)
            for peer in 0..<nodeCount where peer != index {
                commands.append(inNamespace(peer, [
                    "iptables", "-w", "10", "-A", "INPUT", "-s", "\(address(node: index))/32",
                    "-m", "statistic", "--mode", "random", "--probability", probability, "-j", "DROP",
                ]))
            }
        }
        state.withLockedValue { state in
            if wantsDelay { state.netemNodes.insert(index) }
            if lossPercent > 0 { state.lossRules = true }
        }
        let toRun = commands
        try await NamespaceNetworkCommand.offload {
            for command in toRun { try NamespaceNetworkCommand.run(command) }
        }
    }

    public func heal() async throws {
        let (nodeCount, netemNodes, prepared) = state.withLockedValue { state in
            defer {
                state.cuts.removeAll()
                state.netemNodes.removeAll()
                state.lossRules = false
            }
            return (state.nodeCount, state.netemNodes, state.prepared && !state.tornDown)
        }
        guard prepared, nodeCount > 0 else { return }
        try await NamespaceNetworkCommand.offload { [self] in
            var failures: [String] = []
            for index in 0..<nodeCount {
                do {
                    try NamespaceNetworkCommand.run(self.inNamespace(index, ["iptables", "-w", "10", "-F", "INPUT"]))
                } catch {
                    failures.append("\(error)")
                }
                if netemNodes.contains(index) {
                    NamespaceNetworkCommand.runIgnoringFailure(
                        self.inNamespace(index, ["tc", "qdisc", "del", "dev", self.nodeVethName(node: index), "root"]))
                }
            }
            if !failures.isEmpty {
                throw ChaosNetworkError(failures.joined(separator: "; "))
            }
        }
    }

    public func teardown() async {
        let alreadyDown = state.withLockedValue { state in
            defer { state.tornDown = true }
            return state.tornDown
        }
        guard !alreadyDown else { return }
        await NamespaceNetworkCommand.offloadQuietly { [self] in self.destroy() }
    }

    // MARK: - Probing and stale state

    /// Nil when netns mode can run here, else a one-line reason why not.
    public static func probe() -> String? {
        let uid = geteuid()
        guard uid == 0 else {
            return "netns mode needs root (running as uid \(uid))"
        }
        guard NamespaceNetworkCommand.locate("ip") != nil else {
            return "netns mode needs `ip` (Debian package iproute2)"
        }
        guard NamespaceNetworkCommand.locate("iptables") != nil else {
            return "netns mode needs `iptables` (Debian package iptables)"
        }
        let namespace = "synod-probe\(getpid() % 100_000)-n1"
        NamespaceNetworkCommand.runIgnoringFailure(["ip", "netns", "del", namespace])
        defer { NamespaceNetworkCommand.runIgnoringFailure(["ip", "netns", "del", namespace]) }
        do {
            try NamespaceNetworkCommand.run(["ip", "netns", "add", namespace])
            try NamespaceNetworkCommand.run(["ip", "-n", namespace, "link", "add", "sprobea", "type", "veth", "peer", "name", "sprobeb"])
            try NamespaceNetworkCommand.run(["ip", "-n", namespace, "link", "add", "sprobebr", "type", "bridge"])
            try NamespaceNetworkCommand.run(
                ["ip", "netns", "exec", namespace, "iptables", "-w", "10", "-A", "INPUT", "-s", "10.199.0.1/32", "-p", "tcp",
                 "--dport", "\(peerPort)", "-j", "DROP"])
            try NamespaceNetworkCommand.run(
                ["ip", "netns", "exec", namespace, "iptables", "-w", "10", "-A", "INPUT", "-s", "10.199.0.2/32",
                 "-m", "statistic", "--mode", "random", "--probability", "0.5", "-j", "DROP"])
        } catch {
            return "\(error)"
        }
        return nil
    }

    /// Deletes the namespaces and bridges a previous run left behind (`synod-*` namespaces,
    /// `sb*` bridges holding a 10.199.x.254 address), only those of `runID` when given. Without
    /// a run id it also removes those of a run still going on: call it so only when no other
    /// chaos run uses this host. Returns what it deleted.
    @discardableResult
    public static func cleanupStale(runID: String? = nil) -> [String] {
        let namespacePrefix = runID.map { "synod-\(NamespaceNetwork(runID: $0).runID)-" } ?? "synod-"
        let bridgeFilter = runID.map { "sb\(NamespaceNetwork(runID: $0).runID)" }
        var removed: [String] = []
        if let list = try? NamespaceNetworkCommand.run(["ip", "netns", "list"]) {
            for line in list.split(separator: "\n") {
                guard let name = line.split(separator: " ").first.map(String.init),
                      name.hasPrefix(namespacePrefix) else { continue }
                NamespaceNetworkCommand.runIgnoringFailure(["ip", "netns", "del", name])
                removed.append(name)
            }
        }
        if let addresses = try? NamespaceNetworkCommand.run(["ip", "-o", "-4", "addr", "show"]) {
            for line in addresses.split(separator: "\n") {
                let fields = line.split(separator: " ")
                guard fields.count > 3 else { continue }
                let device = String(fields[1])
                guard device.hasPrefix("sb"), bridgeFilter == nil || bridgeFilter == device, fields.contains(where: { $0.hasPrefix("10.199.") && $0.hasSuffix(".254/24") })
                else { continue }
                NamespaceNetworkCommand.runIgnoringFailure(["ip", "link", "del", device])
                removed.append(device)
                Self.removeHostForwardRule(bridge: device)
            }
        }
        return removed
    }

    // MARK: - Internals

    private func checkNode(_ index: Int) throws {
        let (count, usable) = state.withLockedValue { ($0.nodeCount, $0.prepared && !$0.tornDown) }
        guard usable, index >= 0, index < count else {
            throw ChaosNetworkError("netns: node index \(index) out of range (\(count) nodes prepared)")
        }
    }

    /// `arguments` run inside node `index`'s namespace.
    func inNamespace(_ index: Int, _ arguments: [String]) -> [String] {
        ["ip", "netns", "exec", namespaceName(node: index)] + arguments
    }

    /// Creates the bridge, the namespaces and the veth pairs (blocking).
    private func build(nodeCount: Int) throws {
        // Leftovers of an earlier run with the same id.
        destroyNames(nodeCount: MembershipPlanner.nodesMax)
        let octet = try Self.freeSubnetOctet(seed: runID)
        state.withLockedValue { state in
            state.nodeCount = nodeCount
            state.subnetOctet = octet
        }
        let subnetPrefix = "10.199.\(octet)"
        let bridge = bridgeName
        try NamespaceNetworkCommand.run(["ip", "link", "add", bridge, "type", "bridge"])
        try NamespaceNetworkCommand.run(["ip", "addr", "add", "\(subnetPrefix).254/24", "dev", bridge])
        try NamespaceNetworkCommand.run(["ip", "link", "set", bridge, "up"])
        // With br_netfilter, bridged frames traverse the host's FORWARD chain (Docker sets its
        // policy to DROP): let node-to-node traffic through.
        if Self.bridgedTrafficIsFiltered(), NamespaceNetworkCommand.locate("iptables") != nil {
            let rule = ["-i", bridge, "-o", bridge, "-j", "ACCEPT"]
            try NamespaceNetworkCommand.run(["iptables", "-w", "10", "-I", "FORWARD"] + rule)
            state.withLockedValue { $0.hostForwardRule = rule }
        }
        for index in 0..<nodeCount {
            let namespace = namespaceName(node: index)
            let hostVeth = hostVethName(node: index)
            let nodeVeth = nodeVethName(node: index)
            try NamespaceNetworkCommand.run(["ip", "netns", "add", namespace])
            try NamespaceNetworkCommand.run(["ip", "link", "add", hostVeth, "type", "veth", "peer", "name", nodeVeth])
            try NamespaceNetworkCommand.run(["ip", "link", "set", nodeVeth, "netns", namespace])
            try NamespaceNetworkCommand.run(["ip", "link", "set", hostVeth, "master", bridge])
            try NamespaceNetworkCommand.run(["ip", "link", "set", hostVeth, "up"])
            try NamespaceNetworkCommand.run(["ip", "-n", namespace, "link", "set", "lo", "up"])
            try NamespaceNetworkCommand.run(["ip", "-n", namespace, "addr", "add", "\(subnetPrefix).\(index + 1)/24", "dev", nodeVeth])
            try NamespaceNetworkCommand.run(["ip", "-n", namespace, "link", "set", nodeVeth, "up"])
        }
        let netem = Self.netemWorks(namespace: namespaceName(node: 0))
        state.withLockedValue { $0.netemAvailable = netem }
    }

    /// Deletes everything this run may have created (blocking, ignores failures).
    private func destroy() {
        let (nodeCount, forwardRule) = state.withLockedValue { state in
            defer { state.hostForwardRule = nil }
            return (state.nodeCount, state.hostForwardRule)
        }
        destroyNames(nodeCount: max(nodeCount, 1))
        if let forwardRule {
            NamespaceNetworkCommand.runIgnoringFailure(["iptables", "-w", "10", "-D", "FORWARD"] + forwardRule)
        }
    }

    private func destroyNames(nodeCount: Int) {
        for index in 0..<nodeCount {
            // Deleting the host end removes the pair even if a process keeps the namespace alive.
            NamespaceNetworkCommand.runIgnoringFailure(["ip", "link", "del", hostVethName(node: index)])
            NamespaceNetworkCommand.runIgnoringFailure(["ip", "netns", "del", namespaceName(node: index)])
        }
        NamespaceNetworkCommand.runIgnoringFailure(["ip", "link", "del", bridgeName])
    }

    private static func removeHostForwardRule(bridge: String) {
        let rule = ["-i", bridge, "-o", bridge, "-j", "ACCEPT"]
        guard NamespaceNetworkCommand.locate("iptables") != nil else { return }
        for _ in 0..<4 {
            guard (try? NamespaceNetworkCommand.run(["iptables", "-w", "10", "-D", "FORWARD"] + rule)) != nil else { return }
        }
    }

    private static func bridgedTrafficIsFiltered() -> Bool {
        guard let value = try? String(contentsOfFile: "/proc/sys/net/bridge/bridge-nf-call-iptables", encoding: .utf8)
        else { return false }
        return value.trimmingCharacters(in: .whitespacesAndNewlines) == "1"
    }

    private static func netemWorks(namespace: String) -> Bool {
        guard NamespaceNetworkCommand.locate("tc") != nil else { return false }
        let added = (try? NamespaceNetworkCommand.run(
            ["ip", "netns", "exec", namespace, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"])) != nil
        if added {
            NamespaceNetworkCommand.runIgnoringFailure(["ip", "netns", "exec", namespace, "tc", "qdisc", "del", "dev", "lo", "root"])
        }
        return added
    }

    /// A third octet x for 10.199.x.0/24, derived from `seed`, that no host interface uses.
    private static func freeSubnetOctet(seed: String) throws -> Int {
        var hash: UInt32 = 2_166_136_261
        for byte in seed.utf8 {
            hash = (hash ^ UInt32(byte)) &* 16_777_619
        }
        let used = (try? NamespaceNetworkCommand.run(["ip", "-o", "-4", "addr", "show"])) ?? ""
        let routes = (try? NamespaceNetworkCommand.run(["ip", "-4", "route", "show"])) ?? ""
        for attempt in 0..<250 {
            let octet = 1 + Int((hash &+ UInt32(attempt)) % 250)
            let prefix = "10.199.\(octet)."
            if !used.contains(prefix), !routes.contains(prefix) {
                return octet
            }
        }
        throw ChaosNetworkError("netns: no free 10.199.x.0/24 subnet on this host")
    }
}

extension NamespaceNetworkCommand {
    /// Runs a blocking body off the caller's thread, ignoring errors.
    static func offloadQuietly(_ body: @escaping @Sendable () -> Void) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                body()
                continuation.resume()
            }
        }
    }
}
