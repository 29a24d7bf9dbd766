import Foundation
import NIOCore
import Synchronization
import SynodCore

/// The live cluster page's data side at one member: `/ui/state` (this member's protocol state,
/// and the other members' fetched from their own `/ui/state?self=1`), the `/ui/events` feed's
/// count, and the isolate/heal control when a token enables it. See docs/ARCHITECTURE.md.
public final class LiveUI: Sendable {
    /// How long another member's state is reused, and how long its fetch may take.
    static let peerCacheNanoseconds: Int64 = 400_000_000
    static let peerTimeout = TimeAmount.milliseconds(400)
    /// The event feed's period.
    static let feedInterval = TimeAmount.milliseconds(500)

    let node: Node
    let stats: LiveClientStats
    let group: any EventLoopGroup
    /// The isolate/heal control's token; nil: the control paths do not exist.
    let controlToken: String?
    private let feeds = Atomic<Int>(0)

    private struct PeerCache {
        var fetchedAt: Int64 = 0
        /// Each other member's MEMBER object as JSON text, by name.
        var entries: [String: String] = [:]
        var inFlight: Task<[String: String], Never>?
    }
    private let cache = Mutex(PeerCache())

    init(node: Node, stats: LiveClientStats, group: any EventLoopGroup, controlToken: String?) {
        self.node = node
        self.stats = stats
        self.group = group
        self.controlToken = controlToken.flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Event feeds open now (`/ui/events` connections).
    public var activeFeeds: Int { feeds.load(ordering: .relaxed) }
    func feedOpened() { feeds.add(1, ordering: .relaxed) }
    func feedClosed() { feeds.subtract(1, ordering: .relaxed) }

    /// The `/ui/state` document: this member's entry, and unless `selfOnly` every other
    /// member's as fetched from it.
    func stateJSON(selfOnly: Bool) async -> String {
        stats.watched()
        let view: LiveMemberView
        do {
            view = try await node.onCurrentState { [node] in node.liveView() }.get()
        } catch {
            return Self.document(servedBy: node.options.name, leader: nil, node: node, members: [
                Self.downMember(name: node.options.name, memberID: node.memberID, clientURL: node.options.advertiseClientURLs.first,
                                error: "this member cannot show its state: \(error)"),
            ])
        }
        let own = Self.memberJSON(view, clients: stats.summary())
        var members: [String] = []
        if selfOnly {
            members = [own]
        } else {
            let fetched = await peerEntries(view.peers.filter { $0.memberID != view.memberID || $0.name != view.name })
            for peer in view.peers {
                if peer.name == view.name { members.append(own); continue }
                members.append(fetched[peer.name] ?? Self.downMember(name: peer.name, memberID: peer.memberID, clientURL: peer.clientURL,
                                                                      error: "not fetched"))
            }
        }
        return Self.document(servedBy: view.name, leader: view.leader, node: node, members: members)
    }

    /// The other members' entries, fetched at most every `peerCacheNanoseconds`, in parallel.
    private func peerEntries(_ peers: [LivePeer]) async -> [String: String] {
        let now = LiveClientStats.uptimeNanoseconds()
        let task: Task<[String: String], Never> = cache.withLock { cache in
            if now - cache.fetchedAt < Self.peerCacheNanoseconds, Set(cache.entries.keys) == Set(peers.map(\.name)) {
                let entries = cache.entries
                return Task { entries }
            }
            if let inFlight = cache.inFlight { return inFlight }
            let group = self.group
            let fetch = Task<[String: String], Never> {
                await withTaskGroup(of: (String, String).self) { tasks in
                    for peer in peers {
                        tasks.addTask { (peer.name, await Self.fetchMember(peer, group: group)) }
                    }
                    var out: [String: String] = [:]
                    for await (name, json) in tasks { out[name] = json }
                    return out
                }
            }
            cache.inFlight = fetch
            return fetch
        }
        let entries = await task.value
        cache.withLock { cache in
            if cache.inFlight == task {
                cache.inFlight = nil
                cache.entries = entries
                cache.fetchedAt = LiveClientStats.uptimeNanoseconds()
            }
        }
        return entries
    }

    /// One other member's entry from its `/ui/state?self=1`, or a `down` entry saying why not.
    static func fetchMember(_ peer: LivePeer, group: any EventLoopGroup) async -> String {
        guard let url = peer.clientURL else {
            return downMember(name: peer.name, memberID: peer.memberID, clientURL: nil,
                              error: "its client URL is not known here (it has not published it)")
        }
        do {
            let (status, body) = try await LiveHTTPClient.get(url: url, path: "/ui/state?self=1", group: group, timeout: peerTimeout)
            guard status == 200 else {
                return downMember(name: peer.name, memberID: peer.memberID, clientURL: url, error: "\(url)/ui/state answered \(status)")
            }
            guard let entry = ownEntry(of: body, name: peer.name) else {
                return downMember(name: peer.name, memberID: peer.memberID, clientURL: url,
                                  error: "\(url)/ui/state?self=1 did not hold this member's entry")
            }
            return entry
        } catch {
            return downMember(name: peer.name, memberID: peer.memberID, clientURL: url, error: "\(error)")
        }
    }

    /// The single MEMBER object of a `?self=1` document as JSON text, if it is well-formed
    /// and names `name` (the text is checked by parsing it, then passed on as it came).
    static func ownEntry(of document: String, name: String) -> String? {
        guard let start = document.range(of: "\"members\":["), let end = document.range(of: "]", options: .backwards),
              start.upperBound <= end.lowerBound else { return nil }
        let inner = String(document[start.upperBound..<end.lowerBound])
        guard let parsed = try? JSONSerialization.jsonObject(with: Data(("[" + inner + "]").utf8)) as? [Any], parsed.count == 1,
              let object = parsed.first as? [String: Any], object["name"] as? String == name else { return nil }
        return inner
    }

    // MARK: - JSON

    static func document(servedBy: String, leader: String?, node: Node, members: [String]) -> String {
        let options = node.options
        let lease: String
        if options.readMode == .lease {
            let configuration = options.protocolConfiguration()
            lease = "\(configuration.leaseNanoseconds / 1_000_000)"
        } else {
            lease = "null"
        }
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        return "{\"version\":1,\"servedBy\":\(string(servedBy)),\"time\":\(now),"
            + "\"electionTimeoutMs\":\(options.electionTimeoutMilliseconds),\"leaseMs\":\(lease),"
            + "\"controls\":null,\"tour\":null,\"leader\":\(leader.map(string) ?? "null"),"
            + "\"members\":[" + members.joined(separator: ",") + "]}"
    }

    static func downMember(name: String, memberID: UInt64, clientURL: String?, error: String) -> String {
        "{\"name\":\(string(name)),\"id\":\(string(String(memberID, radix: 16))),\"clientURL\":\(clientURL.map(string) ?? "null"),"
            + "\"reachable\":false,\"role\":\"down\",\"error\":\(string(error))}"
    }

    static func memberJSON(_ view: LiveMemberView, clients: LiveClientStats.Summary) -> String {
        func ballot(_ ballot: Ballot?) -> String {
            guard let ballot else { return "null" }
            return "{\"round\":\(ballot.round),\"node\":\(string(view.names[ballot.node] ?? "\(ballot.node)"))}"
        }
        func optional<T>(_ value: T?) -> String { value.map { "\($0)" } ?? "null" }
        var out = "{\"name\":\(string(view.name)),\"id\":\(string(String(view.memberID, radix: 16))),"
        out += "\"clientURL\":\(view.clientURL.map(string) ?? "null"),\"reachable\":true,\"role\":\(string(view.role)),"
        out += "\"leader\":\(view.leader.map(string) ?? "null"),\"ballot\":\(ballot(view.ballot)),\"promised\":\(ballot(view.promised)),"
        out += "\"chosenThrough\":\(view.chosenThrough),\"appliedThrough\":\(view.appliedThrough),"
        out += "\"snapshotSlot\":\(view.snapshotSlot),\"revision\":\(view.revision),"
        out += "\"leaseHeld\":\(view.leaseRemainingNanoseconds != nil),"
        out += "\"leaseRemainingMs\":\(optional(view.leaseRemainingNanoseconds.map { $0 / 1_000_000 })),"
        out += "\"isolated\":\(view.isolated),\"heartbeatSampling\":\(LiveMessageLog.heartbeatSampling),\"slots\":["
        out += view.slots.map { slot in
            "{\"slot\":\(slot.slot),\"ballot\":\(ballot(slot.ballot)),\"state\":\"\(slot.state.name)\",\"kind\":\"\(slot.content.kind)\"}"
        }.joined(separator: ",")
        out += "],\"messages\":["
        out += view.messages.map { message in
            let millis = Double(message.wallMicros) / 1000
            return "{\"t\":\(millis),\"dir\":\"\(message.outgoing ? "out" : "in")\","
                + "\"peer\":\(string(view.names[message.peer] ?? "\(message.peer)")),\"type\":\"\(message.type)\","
                + "\"ballot\":\(ballot(message.ballot)),\"slot\":\(optional(message.slot)),\"slotEnd\":\(optional(message.slotEnd))}"
        }.joined(separator: ",")
        out += "],\"clients\":{\"putsPerSecond\":\(clients.writesPerSecond),\"readsPerSecond\":\(clients.readsPerSecond),"
        out += "\"p50Ms\":\(optional(clients.p50Ms)),\"p99Ms\":\(optional(clients.p99Ms))},"
        out += "\"alarms\":[" + view.alarms.map(string).joined(separator: ",") + "]}"
        return out
    }

    static func string(_ text: String) -> String { "\"" + HTTPStatusServer.jsonEscaped(text) + "\"" }

    // MARK: - Control

    /// Answers a control request: 404 when the control is off, 403 on a wrong token.
    func control(action: String, token: String?) async -> HTTPStatusResponse {
        guard let controlToken else { return .text(.notFound, "404 page not found\n") }
        guard let token, Self.constantTimeEqual(token, controlToken) else {
            return .json(.forbidden, #"{"error":"wrong or missing X-Synod-Control-Token"}"#)
        }
        let isolate: Bool
        switch action {
        case "isolate": isolate = true
        case "heal": isolate = false
        default: return .text(.notFound, "404 page not found\n")
        }
        do {
            try await node.setIsolated(isolate)
        } catch {
            return .json(.serviceUnavailable, "{\"error\":\(Self.string("\(error)"))}")
        }
        return .json(.ok, "{\"isolated\":\(isolate)}")
    }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var difference: UInt8 = 0
        for (p, q) in zip(x, y) { difference |= p ^ q }
        return difference == 0
    }
}

extension SlotInspection.State {
    var name: String {
        switch self {
        case .accepted: return "accepted"
        case .chosen: return "chosen"
        case .applied: return "applied"
        }
    }
}

extension SlotInspection.Content {
    /// What the page calls the slot's content (the first command's, for a batch).
    var kind: String {
        switch self {
        case .noop: return "noop"
        case .reconfiguration: return "config"
        case .commands(_, let prefix):
            // The state machine's encoding: a version byte, then the command's tag.
            guard prefix.count == 2 else { return "command" }
            switch prefix[1] {
            case 0: return "put"
            case 1: return "delete"
            case 2: return "txn"
            case 3: return "compact"
            case 4, 5, 6: return "lease"
            case 7: return "member"
            case 8, 10, 11: return "integrity"
            case 9: return "alarm"
            case 12, 13: return "auth"
            default: return "command"
            }
        }
    }
}
