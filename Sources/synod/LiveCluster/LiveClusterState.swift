import Foundation

/// What the supervisor knows of one member's process, apart from what the member says.
enum LiveMemberProcess: Sendable, Equatable {
    /// Running as far as the supervisor knows: the member's own document says the rest.
    case running
    /// Stopped with SIGSTOP from the cluster page.
    case paused
    /// Killed from the cluster page and not restarted since.
    case killed
    /// Ended by itself with this status (the supervisor stops the cluster on such an exit; the
    /// page may still catch it in between).
    case exited(Int32)
}

/// One member as the aggregation sees it: the supervisor's knowledge and the answer of its
/// `GET /ui/state?self=1`.
struct LiveMemberInput: Sendable {
    var name: String
    var clientURL: String
    var process: LiveMemberProcess
    /// The member's state document, or why there is none (nil: not asked, as for a member
    /// known to be down).
    var answer: Result<LiveJSON, LiveFetchError>?
}

/// Why a member's state could not be had.
struct LiveFetchError: Error, Sendable, Equatable, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The cluster page's state document as the supervisor serves it: every member's own document
/// (from `GET /ui/state?self=1`), in name order, with what only the supervisor knows (killed,
/// paused) and a leader the reachable members agree on. Pure: tests feed it documents.
enum LiveClusterState {
    /// The controls the page offers (member actions; `put` takes a key and a value).
    static let actions = ["kill", "pause", "resume", "restart", "isolate", "heal", "move-leader"]

    /// The aggregated document. `tour` is the guided tours' list (nil: none).
    static func aggregate(_ inputs: [LiveMemberInput], token: String?, nowMs: Int64, tour: LiveJSON? = nil) -> LiveJSON {
        let ordered = inputs.sorted { memberOrder($0.name, $1.name) }
        var members: [LiveJSON] = []
        var timeouts: [Double] = []
        var leases: [Double] = []
        for input in ordered {
            let (entry, document) = memberEntry(input)
            members.append(entry)
            if let document {
                if let value = document["electionTimeoutMs"]?.number { timeouts.append(value) }
                if let value = document["leaseMs"]?.number { leases.append(value) }
            }
        }
        var state: [String: LiveJSON] = [
            "version": 1,
            "servedBy": "synod cluster",
            "time": .number(Double(nowMs)),
            "electionTimeoutMs": timeouts.max().map(LiveJSON.number) ?? .null,
            "leaseMs": leases.max().map(LiveJSON.number) ?? .null,
            "leader": agreedLeader(members).map(LiveJSON.string) ?? .null,
            "members": .array(members),
            "tour": tour ?? .null,
            "controls": .null,
        ]
        if let token {
            state["controls"] = ["token": .string(token), "actions": .array(actions.map(LiveJSON.string))]
        }
        return .object(state)
    }

    /// The member's entry and, when it answered, its whole document.
    static func memberEntry(_ input: LiveMemberInput) -> (LiveJSON, LiveJSON?) {
        func down(_ role: String, _ error: String) -> LiveJSON {
            ["name": .string(input.name), "clientURL": .string(input.clientURL), "reachable": false,
             "role": .string(role), "error": .string(error), "leader": .null]
        }
        switch input.process {
        case .killed: return (down("down", "killed from the cluster page"), nil)
        case .exited(let status): return (down("down", "exited with status \(status)"), nil)
        case .paused: return (down("paused", "paused (SIGSTOP)"), nil)
        case .running: break
        }
        switch input.answer {
        case nil:
            return (down("down", "not asked"), nil)
        case .failure(let error):
            return (down("down", error.description), nil)
        case .success(let document):
            let listed = document["members"]?.array ?? []
            let own: LiveJSON? = listed.first { $0["name"]?.string == input.name } ?? (listed.count == 1 ? listed.first : nil)
            guard var fields = own?.object else {
                return (down("down", "its /ui/state has no entry for \(input.name)"), nil)
            }
            fields["name"] = .string(input.name)
            if fields["clientURL"] == nil { fields["clientURL"] = .string(input.clientURL) }
            fields["reachable"] = true
            return (.object(fields), document)
        }
    }

    /// A member document made from etcd's Status and MemberList answers (the JSON gateway's
    /// `POST /v3/maintenance/status` and `/v3/cluster/member/list`), for a member that serves
    /// no `/ui/state` (a build before the live page): role, leader, chosen and applied indexes
    /// and revision only. Marked `"source": "status"`; nil when the answers do not fit.
    static func statusDocument(name: String, clientURL: String, status: LiveJSON, memberList: LiveJSON) -> LiveJSON? {
        func id(_ value: LiveJSON?) -> UInt64? {
            switch value {
            case .string(let text)?: return UInt64(text)
            case .number(let number)?: return number >= 0 && number < 1.8e19 ? UInt64(number) : nil
            case nil: return 0 // protobuf JSON leaves zero values out
            default: return nil
            }
        }
        func count(_ value: LiveJSON?) -> LiveJSON {
            id(value).map { .number(Double($0)) } ?? .null
        }
        guard status.object != nil, let own = id(status["header"]?["member_id"]), own != 0,
              let leader = id(status["leader"]) else { return nil }
        var names: [UInt64: String] = [:]
        for member in memberList["members"]?.array ?? [] {
            if let memberID = id(member["ID"]), let memberName = member["name"]?.string { names[memberID] = memberName }
        }
        let role = status["isLearner"] == .bool(true) ? "learner" : leader == own ? "leader" : leader == 0 ? "candidate" : "follower"
        let entry: LiveJSON = [
            "name": .string(name), "id": .string(String(own, radix: 16)), "clientURL": .string(clientURL),
            "role": .string(role), "leader": leader == 0 ? .null : names[leader].map(LiveJSON.string) ?? .null,
            "ballot": .null, "promised": .null,
            "chosenThrough": count(status["raftIndex"]), "appliedThrough": count(status["raftAppliedIndex"]),
            "revision": count(status["header"]?["revision"]), "isolated": false, "source": "status",
        ]
        return ["version": 1, "servedBy": .string(name), "leader": entry["leader"] ?? .null, "members": [entry]]
    }

    /// The leader named by the most reachable members, counting only a leader that is itself
    /// reachable (followers keep naming a killed leader until they time out); nil on a tie or
    /// when none is named.
    static func agreedLeader(_ members: [LiveJSON]) -> String? {
        let reachable = members.filter { $0["reachable"] == .bool(true) }
        let live = Set(reachable.compactMap { $0["name"]?.string })
        var votes: [String: Int] = [:]
        for member in reachable {
            guard let leader = member["leader"]?.string, live.contains(leader) else { continue }
            votes[leader, default: 0] += 1
        }
        guard let best = votes.values.max() else { return nil }
        let winners = votes.filter { $0.value == best }
        return winners.count == 1 ? winners.first?.key : nil
    }

    /// n2 before n10: names compare by their digits as numbers.
    static func memberOrder(_ a: String, _ b: String) -> Bool {
        a.compare(b, options: [.numeric]) == .orderedAscending
    }
}
