import Foundation
import SynodClient
import SynodCore
import XCTest
@testable import SynodServer

/// The live cluster page at a member: `/ui` (self-contained), `/ui/state` (its own entry and
/// the other members' fetched from them; `?self=1`), the `/ui/events` feed, and the
/// isolate/heal control enabled by a token.
final class LivePageTests: XCTestCase {
    struct Answer {
        var status: Int
        var head: String
        var body: String
    }

    /// One HTTP/1.0 request (the connection closes after the answer).
    static func http(_ port: Int, _ method: String, _ path: String, headers: [String: String] = [:]) throws -> Answer {
        let connection = try RawHTTPConnection(port: port, timeoutSeconds: 5)
        defer { connection.close() }
        let extra = headers.map { "\($0.key): \($0.value)\r\n" }.joined()
        try connection.send("\(method) \(path) HTTP/1.0\r\nHost: 127.0.0.1\r\n\(extra)Content-Length: 0\r\n\r\n")
        let text = String(decoding: connection.readToEnd(), as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n"), let status = Int(text.split(separator: " ").dropFirst().first ?? "") else {
            throw NodeError.timedOut
        }
        return Answer(status: status, head: String(text[..<split.lowerBound]), body: String(text[split.upperBound...]))
    }

    static func state(_ port: Int, selfOnly: Bool = false) throws -> [String: Any] {
        let answer = try http(port, "GET", selfOnly ? "/ui/state?self=1" : "/ui/state")
        guard answer.status == 200 else { throw NodeError.timedOut }
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [String: Any])
    }

    static func members(_ state: [String: Any]) -> [[String: Any]] { state["members"] as? [[String: Any]] ?? [] }

    static func member(_ state: [String: Any], _ name: String) -> [String: Any]? {
        members(state).first { $0["name"] as? String == name }
    }

    static func int(_ member: [String: Any]?, _ key: String) -> Int { member?[key] as? Int ?? -1 }

    func testPageStateFeedAndADownMember() async throws {
        let cluster = try InProcessCluster(nodes: 3)
        for i in 0..<3 { try cluster.start(i) }
        defer { Task { await cluster.stopAll() } }
        let ports = try (0..<3).map { try cluster.configurations[$0].validate().clientListen.port }
        let metricsPort = try XCTUnwrap(try cluster.configurations[0].validate().metricsListen?.port)

        // The page: HTML, nothing loaded from another origin.
        let page = try Self.http(ports[0], "GET", "/ui")
        XCTAssertEqual(page.status, 200)
        XCTAssertTrue(page.head.lowercased().contains("content-type: text/html; charset=utf-8"), page.head)
        XCTAssertEqual(page.body, LiveClusterPage.html)
        let external = try NSRegularExpression(pattern: #"(src|href|action)\s*=\s*["']?\s*(https?:)?//"#, options: [.caseInsensitive])
        XCTAssertEqual(external.numberOfMatches(in: page.body, range: NSRange(page.body.startIndex..., in: page.body)), 0)
        XCTAssertFalse(page.body.contains("@import"), "no external CSS")
        for needle in ["id=\"leader\"", "id=\"members\"", "id=\"slots\"", "id=\"messages\"", "id=\"throughput\"", "id=\"alarms\"",
                       "id=\"feed-status\"", "EventSource('/ui/events')".replacingOccurrences(of: "'", with: "\"")] {
            XCTAssertTrue(page.body.contains(needle), needle)
        }

        // Every member through n1, a leader, then a write shows up as chosen, in slots and as Accept/Accepted.
        let before = try await eventually {
            let state = try Self.state(ports[0])
            guard state["leader"] is String, Self.members(state).count == 3,
                  Self.members(state).allSatisfy({ $0["reachable"] as? Bool == true }) else { throw NodeError.timedOut }
            return state
        }
        XCTAssertEqual(before["version"] as? Int, 1)
        XCTAssertEqual(before["servedBy"] as? String, "n1")
        XCTAssertTrue(before["controls"] is NSNull)
        XCTAssertEqual(Self.members(before).map { $0["name"] as? String }, ["n1", "n2", "n3"])
        let leader = try XCTUnwrap(before["leader"] as? String)
        XCTAssertEqual(Self.member(before, leader)?["role"] as? String, "leader")
        let chosenBefore = Self.int(Self.member(before, "n1"), "chosenThrough")
        try await withClient(try cluster.client()) { client in
            for i in 0..<5 { _ = try await eventually { try await client.put("live\(i)", "v\(i)") } }
        }
        let after = try await eventually {
            let state = try Self.state(ports[0])
            guard Self.members(state).allSatisfy({ Self.int($0, "chosenThrough") >= chosenBefore + 5 }) else { throw NodeError.timedOut }
            return state
        }
        let leaderEntry = try XCTUnwrap(Self.member(after, leader))
        let slots = try XCTUnwrap(leaderEntry["slots"] as? [[String: Any]])
        XCTAssertFalse(slots.isEmpty)
        XCTAssertLessThanOrEqual(slots.count, 32)
        XCTAssertTrue(slots.allSatisfy { ["accepted", "chosen", "applied"].contains($0["state"] as? String ?? "") })
        XCTAssertTrue(slots.contains { $0["kind"] as? String == "put" }, "\(slots)")
        XCTAssertEqual(slots.map { $0["slot"] as? Int ?? 0 }, slots.map { $0["slot"] as? Int ?? 0 }.sorted())
        let types = Set(Self.members(after).flatMap { ($0["messages"] as? [[String: Any]] ?? []).compactMap { $0["type"] as? String } })
        XCTAssertTrue(types.isSuperset(of: ["Accept", "Accepted"]), "\(types)")
        let leaderOut = (leaderEntry["messages"] as? [[String: Any]] ?? []).filter { $0["dir"] as? String == "out" }
        XCTAssertTrue(leaderOut.contains { $0["type"] as? String == "Accept" && $0["slot"] is Int }, "the leader sent Accepts")
        XCTAssertEqual(leaderEntry["heartbeatSampling"] as? Int, LiveMessageLog.heartbeatSampling)

        // ?self=1: only the serving member; the metrics listener serves the same paths.
        let own = try Self.state(ports[1], selfOnly: true)
        XCTAssertEqual(Self.members(own).map { $0["name"] as? String }, ["n2"])
        XCTAssertEqual(Self.members(try Self.state(metricsPort, selfOnly: true)).map { $0["name"] as? String }, ["n1"])
        let stateAnswer = try Self.http(ports[0], "GET", "/ui/state")
        XCTAssertTrue(stateAnswer.head.lowercased().contains("cache-control: no-store"), stateAnswer.head)

        // The control does not exist without a token.
        XCTAssertEqual(try Self.http(ports[0], "POST", "/ui/control/isolate", headers: ["X-Synod-Control-Token": "x"]).status, 404)

        // The feed: retry, then one state event per half second; hanging up ends its timer.
        let live = try XCTUnwrap(cluster.servers[0]?.live)
        XCTAssertEqual(live.activeFeeds, 0)
        let feed = try RawHTTPConnection(port: ports[0], timeoutSeconds: 5)
        try feed.send("GET /ui/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
        let lines = try feed.readLines(7)
        XCTAssertTrue(feed.head.lowercased().contains("content-type: text/event-stream"), feed.head)
        XCTAssertTrue(feed.head.lowercased().contains("cache-control: no-store"), feed.head)
        XCTAssertEqual(Array(lines[0...2]), ["retry: 1000", "", "event: state"])
        XCTAssertEqual(lines[4...5], ["", "event: state"])
        for line in [lines[3], lines[6]] {
            XCTAssertTrue(line.hasPrefix("data: {"), line)
            let event = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.dropFirst(6).utf8)) as? [String: Any])
            XCTAssertEqual(Self.members(event).count, 3)
        }
        XCTAssertEqual(live.activeFeeds, 1)
        feed.close()
        _ = try await eventually(5) { if live.activeFeeds != 0 { throw NodeError.timedOut } }

        // A stopped member shows as down through another.
        await cluster.stop(2)
        let down = try await eventually {
            let state = try Self.state(ports[0])
            guard let n3 = Self.member(state, "n3"), n3["reachable"] as? Bool == false else { throw NodeError.timedOut }
            return n3
        }
        XCTAssertEqual(down["role"] as? String, "down")
        XCTAssertEqual(down["clientURL"] as? String, cluster.configurations[2].listenClientURLs)
        XCTAssertFalse((down["error"] as? String ?? "").isEmpty)
        XCTAssertNil(down["slots"])
    }

    func testIsolateAndHeal() async throws {
        let cluster = try InProcessCluster(nodes: 3)
        cluster.uiControlToken = "secret-token"
        for i in 0..<3 { try cluster.start(i) }
        defer { Task { await cluster.stopAll() } }
        let ports = try (0..<3).map { try cluster.configurations[$0].validate().clientListen.port }
        let state = try await eventually {
            let state = try Self.state(ports[0])
            guard state["leader"] is String, Self.members(state).allSatisfy({ $0["reachable"] as? Bool == true }) else {
                throw NodeError.timedOut
            }
            return state
        }
        // Isolate the leader: the other two must elect one of themselves.
        let leader = try XCTUnwrap(state["leader"] as? String)
        let isolated = try XCTUnwrap(Int(leader.dropFirst())) - 1
        let others = (0..<3).filter { $0 != isolated }

        XCTAssertEqual(try Self.http(ports[isolated], "POST", "/ui/control/isolate").status, 403)
        let wrong = try Self.http(ports[isolated], "POST", "/ui/control/isolate", headers: ["X-Synod-Control-Token": "secret-tokex"])
        XCTAssertEqual(wrong.status, 403)
        XCTAssertTrue(wrong.body.contains("\"error\""), wrong.body)
        XCTAssertEqual(try Self.http(ports[isolated], "GET", "/ui/control/isolate", headers: ["X-Synod-Control-Token": "secret-token"]).status,
                       405)
        let cut = try Self.http(ports[isolated], "POST", "/ui/control/isolate", headers: ["X-Synod-Control-Token": "secret-token"])
        XCTAssertEqual(cut.status, 200)
        XCTAssertEqual(cut.body, #"{"isolated":true}"#)
        let isolatedEntry = try XCTUnwrap(Self.members(try Self.state(ports[isolated], selfOnly: true)).first)
        XCTAssertEqual(isolatedEntry["isolated"] as? Bool, true)
        let stuckAt = Self.int(isolatedEntry, "chosenThrough")

        // Writes go on through the other two, under a leader among them.
        try await withClient(try cluster.client(others)) { client in
            for i in 0..<10 { _ = try await eventually { try await client.put("iso\(i)", "v\(i)") } }
        }
        let majority = try Self.state(ports[others[0]])
        let newLeader = try XCTUnwrap(majority["leader"] as? String)
        XCTAssertNotEqual(newLeader, leader)
        XCTAssertEqual(Self.member(majority, newLeader)?["role"] as? String, "leader")
        let advanced = Self.int(Self.member(majority, "n\(others[0] + 1)"), "chosenThrough")
        XCTAssertGreaterThanOrEqual(advanced, stuckAt + 10)
        try await Task.sleep(for: .milliseconds(300))
        let stillStuck = try XCTUnwrap(Self.members(try Self.state(ports[isolated], selfOnly: true)).first)
        XCTAssertEqual(Self.int(stillStuck, "chosenThrough"), stuckAt, "an isolated member learns nothing")

        // Heal: it catches up.
        let healed = try Self.http(ports[isolated], "POST", "/ui/control/heal", headers: ["X-Synod-Control-Token": "secret-token"])
        XCTAssertEqual(healed.body, #"{"isolated":false}"#)
        _ = try await eventually {
            let entry = Self.members(try Self.state(ports[isolated], selfOnly: true)).first
            guard entry?["isolated"] as? Bool == false, Self.int(entry, "chosenThrough") >= advanced else { throw NodeError.timedOut }
        }
    }
}

/// The pieces of the live page's state that need no cluster.
final class LivePagePartsTests: XCTestCase {
    func testTheMessageRingKeepsTheNewestInOrderAndSamplesHeartbeats() {
        var log = LiveMessageLog()
        let ballot = Ballot(round: 2, node: NodeID(1))
        let accepts = (1...130).map { Envelope(from: NodeID(1), to: NodeID(2), message: .accept(ballot: ballot, slot: Slot($0), value: .noop, chosenThrough: 0)) }
        log.record(accepts, outgoing: true, wallMicros: 1_000)
        let recent = log.recent(100)
        XCTAssertEqual(recent.map { $0.slot ?? 0 }, (31...130).map { Slot($0) })
        XCTAssertTrue(recent.allSatisfy { $0.outgoing && $0.peer == NodeID(2) && $0.type == "Accept" && $0.ballot == ballot })
        XCTAssertEqual(log.recent(1000).count, LiveMessageLog.capacity)

        var beats = LiveMessageLog()
        let heartbeats = (0..<(3 * LiveMessageLog.heartbeatSampling)).map {
            Envelope(from: NodeID(2), to: NodeID(1), message: .heartbeat(ballot: ballot, chosenThrough: Slot($0), sequence: UInt64($0)))
        }
        beats.record(heartbeats, outgoing: false, wallMicros: 5)
        beats.record([Envelope(from: NodeID(2), to: NodeID(1), message: .accepted(ballot: ballot, slot: 9))], outgoing: false, wallMicros: 6)
        XCTAssertEqual(beats.recent(100).map(\.type), ["Heartbeat", "Heartbeat", "Heartbeat", "Accepted"])
        XCTAssertTrue(beats.recent(100).allSatisfy { !$0.outgoing && $0.peer == NodeID(2) })
    }

    func testAFetchedEntryIsTakenOnlyWhenItIsExactlyTheNamedMember() {
        let one = #"{"version":1,"members":[{"name":"n2","role":"leader"}]}"#
        XCTAssertEqual(LiveUI.ownEntry(of: one, name: "n2"), #"{"name":"n2","role":"leader"}"#)
        XCTAssertNil(LiveUI.ownEntry(of: one, name: "n3"))
        XCTAssertNil(LiveUI.ownEntry(of: #"{"members":[{"name":"n2"},{"name":"n3"}]}"#, name: "n2"))
        XCTAssertNil(LiveUI.ownEntry(of: #"{"members":[{"name":"n2"}}"#, name: "n2"))
        XCTAssertNil(LiveUI.ownEntry(of: "<html>", name: "n2"))
    }
}
