import Foundation
import NIOHTTP1
import SynodClient
import SynodProcess

/// The members of `synod cluster` and what the cluster page did to them: which process runs
/// each, which were killed or paused on purpose, and the page's actions.
///
/// A member killed from the page stays down until restarted from the page; the cluster keeps
/// running. A member that exits by itself still stops the whole cluster, as before the page
/// existed: ``expectedChildren()`` lists exactly the processes whose exit is a failure.
actor ClusterSupervisor {
    struct Member: Sendable {
        var name: String
        var clientURL: String
        var command: ChildCommand
        var child: ChildProcess?
        var process: LiveMemberProcess
    }

    private var members: [String: Member]
    private let registry: ChildRegistry
    let token: String
    private let http: LiveHTTPClient
    private let client: SynodClientConfiguration
    /// Tests only (`SYNOD_LIVE_BREAK`): `kill-noop` makes kill answer ok without killing, to
    /// show that the browser test notices.
    private let breakMode: String?

    init(members: [Member], registry: ChildRegistry, token: String, http: LiveHTTPClient,
         client: SynodClientConfiguration, breakMode: String?) {
        self.members = Dictionary(uniqueKeysWithValues: members.map { ($0.name, $0) })
        self.registry = registry
        self.token = token
        self.http = http
        self.client = client
        self.breakMode = breakMode
    }

    var names: [String] { members.keys.sorted { LiveClusterState.memberOrder($0, $1) } }

    /// The processes whose exit is unexpected: every member not killed from the page.
    func expectedChildren() -> [ChildProcess] {
        members.values.compactMap { $0.process == .killed ? nil : $0.child }
    }

    /// Every member process still there (running or paused), to stop at the end.
    func allChildren() -> [ChildProcess] {
        members.values.compactMap { $0.child }.filter(\.isRunning)
    }

    /// Each member's name, client URL and process state, for the aggregation.
    func snapshot() -> [(name: String, clientURL: String, process: LiveMemberProcess)] {
        members.values.map { member in
            var process = member.process
            if process != .killed, let status = member.child?.exitStatus { process = .exited(status) }
            return (member.name, member.clientURL, process)
        }
    }

    /// Starts every member, in name order.
    func launchAll() throws(ChildLaunchError) {
        for name in names {
            guard let member = members[name] else { continue }
            members[name]?.child = try registry.launch(member.command, name: name)
            members[name]?.process = .running
        }
    }

    /// Carries out a checked command: `(ok, message)` for the page.
    func perform(_ command: LiveControlCommand) async -> (ok: Bool, message: String) {
        switch command {
        case .kill(let name): return await kill(name)
        case .pause(let name): return signal(name, pause: true)
        case .resume(let name): return signal(name, pause: false)
        case .restart(let name): return await restart(name)
        case .isolate(let name): return await isolation(name, action: "isolate")
        case .heal(let name): return await isolation(name, action: "heal")
        case .moveLeader(let name): return await moveLeader(to: name)
        case .put(let key, let value): return await put(key, value)
        }
    }

    private func kill(_ name: String) async -> (ok: Bool, message: String) {
        guard let member = members[name] else { return (false, "no member \(name)") }
        guard let child = member.child, child.isRunning, member.process != .killed else {
            return (false, "\(name) is not running")
        }
        if breakMode == "kill-noop" { return (true, "\(name) killed (not really: SYNOD_LIVE_BREAK=kill-noop)") }
        // Marked first, so the exit is never taken for a failure.
        members[name]?.process = .killed
        await child.killAndWait(timeout: .seconds(5))
        return (true, "\(name) killed (SIGKILL); restart brings it back with its data")
    }

    private func signal(_ name: String, pause: Bool) -> (ok: Bool, message: String) {
        guard let member = members[name], let child = member.child, child.isRunning, member.process != .killed else {
            return (false, "\(name) is not running")
        }
        if pause {
            guard member.process == .running else { return (false, "\(name) is already paused") }
            child.pause()
            members[name]?.process = .paused
            return (true, "\(name) paused (SIGSTOP): it holds its sockets but runs no code")
        }
        guard member.process == .paused else { return (false, "\(name) is not paused") }
        child.resume()
        members[name]?.process = .running
        return (true, "\(name) resumed (SIGCONT)")
    }

    private func restart(_ name: String) async -> (ok: Bool, message: String) {
        guard let member = members[name] else { return (false, "no member \(name)") }
        members[name]?.process = .killed
        if let child = member.child, child.isRunning {
            await child.killAndWait(timeout: .seconds(5))
        }
        if let log = member.command.logPath {
            ChildLog.append("--- synod cluster: \(name) restarted from the cluster page ---\n", to: log)
        }
        do {
            let child = try registry.launch(member.command, name: name)
            members[name]?.child = child
            members[name]?.process = .running
            return (true, "\(name) restarted (pid \(child.pid)); it catches up from the others")
        } catch {
            return (false, "cannot restart \(name): \(error)")
        }
    }

    private func isolation(_ name: String, action: String) async -> (ok: Bool, message: String) {
        guard let member = members[name] else { return (false, "no member \(name)") }
        guard member.process == .running else { return (false, "\(name) is not running") }
        let answer = await http.request(.POST, member.clientURL + "/ui/control/" + action,
                                        headers: [(LiveControl.tokenHeader, token)], timeout: .seconds(2))
        switch answer {
        case .failure(let error):
            return (false, "\(name): \(error)")
        case .success(let response) where response.status == 200:
            let isolated = LiveJSON.parse(response.body)?["isolated"]
            let state = isolated == .bool(true) ? "isolated (its peer messages are dropped)" : "not isolated"
            return (true, "\(name) is \(state)")
        case .success(let response) where response.status == 404:
            return (false, "\(name) has no /ui/control/\(action) (this build's members cannot isolate)")
        case .success(let response):
            let text = String(decoding: response.body.prefix(200), as: UTF8.self)
            return (false, "\(name) answered \(response.status): \(text)")
        }
    }

    /// A client of the members that are running (a paused one would only cost a timeout).
    private func liveClient() -> SynodClientConfiguration? {
        let live = members.values.filter { $0.process == .running }.map(\.clientURL)
        guard !live.isEmpty else { return nil }
        var configuration = client
        configuration.endpoints = live.sorted()
        return configuration
    }

    private func moveLeader(to name: String) async -> (ok: Bool, message: String) {
        guard let configuration = liveClient() else { return (false, "no member is running") }
        do {
            let moved = try await withSynodClient(configuration) { client -> (from: String, to: UInt64, same: Bool)? in
                let list = try await client.memberList()
                guard let target = list.members.first(where: { $0.name == name }) else { return nil }
                let transfer = try await client.moveLeader(to: target.id)
                let from = list.members.first { $0.id == transfer.previousLeader }?.name ?? String(transfer.previousLeader, radix: 16)
                return (from, transfer.newLeader, transfer.previousLeader == transfer.newLeader)
            }
            guard let moved else { return (false, "\(name) is not in the member list") }
            if moved.same { return (true, "\(name) leads already") }
            return (true, "leadership moved from \(moved.from) to \(name) (\(String(moved.to, radix: 16)))")
        } catch {
            return (false, "move-leader to \(name) failed: \(error)")
        }
    }

    private func put(_ key: String, _ value: String) async -> (ok: Bool, message: String) {
        guard let configuration = liveClient() else { return (false, "no member is running") }
        do {
            let response = try await withSynodClient(configuration) { client in try await client.put(key, value) }
            return (true, "put \(key) at revision \(response.header.revision)")
        } catch {
            return (false, "put failed: \(error)")
        }
    }
}
