import Foundation
import XCTest

@testable import synod

/// The cluster page's server logic without sockets: control requests checked (token, origin,
/// size, action, JSON, member) and the state document put together from member documents and
/// what the supervisor knows.
final class LiveClusterTests: XCTestCase {
    private let token = "0123456789abcdef0123456789abcdef"
    private let names = ["n1", "n2", "n3"]

    private func validate(_ action: String, _ body: String, headers: [(String, String)]? = nil,
                          bodyBytes: Int? = nil) -> Result<LiveControlCommand, LiveControlRejection> {
        let bytes = Array(body.utf8)
        return LiveControl.validate(action: action, headers: headers ?? [("X-Synod-Control-Token", token)], body: bytes,
                                    bodyBytes: bodyBytes ?? bytes.count, token: token, port: 2378, members: names)
    }

    private func status(_ result: Result<LiveControlCommand, LiveControlRejection>) -> Int {
        switch result {
        case .success: 200
        case .failure(let rejection): rejection.status
        }
    }

    // MARK: control requests

    func testAWellFormedRequestBecomesItsCommand() {
        XCTAssertEqual(try validate("kill", #"{"member":"n2"}"#).get(), .kill("n2"))
        XCTAssertEqual(try validate("move-leader", #"{"member":"n3"}"#).get(), .moveLeader("n3"))
        XCTAssertEqual(try validate("isolate", #"{"member":"n1"}"#).get(), .isolate("n1"))
        XCTAssertEqual(try validate("put", #"{"key":"k","value":"v"}"#).get(), .put(key: "k", value: "v"))
        XCTAssertEqual(try validate("put", #"{"key":"k","value":""}"#).get(), .put(key: "k", value: ""))
        // The header's name is case-insensitive; the page's own origin is allowed by both names.
        XCTAssertEqual(status(validate("pause", #"{"member":"n1"}"#, headers: [("x-synod-control-token", token),
                                                                               ("origin", "http://localhost:2378")])), 200)
        XCTAssertEqual(status(validate("pause", #"{"member":"n1"}"#, headers: [("X-Synod-Control-Token", token),
                                                                               ("Origin", "http://127.0.0.1:2378")])), 200)
    }

    func testAWrongOrMissingTokenIsRefused() {
        let body = #"{"member":"n1"}"#
        XCTAssertEqual(status(validate("kill", body, headers: [])), 403)
        XCTAssertEqual(status(validate("kill", body, headers: [("X-Synod-Control-Token", "")])), 403)
        XCTAssertEqual(status(validate("kill", body, headers: [("X-Synod-Control-Token", String(token.dropLast()))])), 403)
        XCTAssertEqual(status(validate("kill", body, headers: [("X-Synod-Control-Token", token + "0")])), 403)
        XCTAssertEqual(status(validate("kill", body, headers: [("X-Synod-Control-Token", String(token.dropLast()) + "0")])), 403)
        // Two tokens (one right) are refused too.
        XCTAssertEqual(status(validate("kill", body, headers: [("X-Synod-Control-Token", token), ("X-Synod-Control-Token", "x")])), 403)
        // Refused before anything else is looked at.
        XCTAssertEqual(status(validate("nonsense", "not json", headers: [])), 403)
    }

    func testConstantTimeComparison() {
        XCTAssertTrue(LiveControl.constantTimeEqual(token, token))
        XCTAssertTrue(LiveControl.constantTimeEqual("", ""))
        XCTAssertFalse(LiveControl.constantTimeEqual(token, ""))
        XCTAssertFalse(LiveControl.constantTimeEqual("", token))
        XCTAssertFalse(LiveControl.constantTimeEqual("ab", "abc"))
        XCTAssertFalse(LiveControl.constantTimeEqual("abd", "abc"))
        XCTAssertFalse(LiveControl.constantTimeEqual("abc\u{0}", "abc"))
    }

    func testAnotherSitesOriginIsRefused() {
        let body = #"{"member":"n1"}"#
        for origin in ["http://evil.example", "http://127.0.0.1:2379", "https://127.0.0.1:2378", "null", "http://127.0.0.1:23780"] {
            XCTAssertEqual(status(validate("kill", body, headers: [("X-Synod-Control-Token", token), ("Origin", origin)])), 403, origin)
        }
        // One good and one bad origin header: refused.
        XCTAssertEqual(status(validate("kill", body, headers: [("X-Synod-Control-Token", token), ("Origin", "http://127.0.0.1:2378"),
                                                               ("Origin", "http://evil.example")])), 403)
    }

    func testTheHostHeaderMustNameLoopback() {
        XCTAssertTrue(LiveControl.hostAllowed("127.0.0.1:2378", port: 2378))
        XCTAssertTrue(LiveControl.hostAllowed("localhost:2378", port: 2378))
        XCTAssertTrue(LiveControl.hostAllowed("LOCALHOST:2378", port: 2378))
        XCTAssertFalse(LiveControl.hostAllowed("evil.example:2378", port: 2378))
        XCTAssertFalse(LiveControl.hostAllowed("127.0.0.1:2379", port: 2378))
        XCTAssertFalse(LiveControl.hostAllowed("127.0.0.1", port: 2378))
    }

    func testUnknownActionsMembersAndBadBodiesAre400() {
        XCTAssertEqual(status(validate("reboot", #"{"member":"n1"}"#)), 400)
        XCTAssertEqual(status(validate("", #"{"member":"n1"}"#)), 400)
        XCTAssertEqual(status(validate("kill/../put", #"{"member":"n1"}"#)), 400)
        XCTAssertEqual(status(validate("kill", #"{"member":"n9"}"#)), 400)
        XCTAssertEqual(status(validate("kill", #"{"member":1}"#)), 400)
        XCTAssertEqual(status(validate("kill", #"{}"#)), 400)
        XCTAssertEqual(status(validate("kill", "")), 400)
        XCTAssertEqual(status(validate("kill", #"{"member":"n1""#)), 400)
        XCTAssertEqual(status(validate("kill", #"["n1"]"#)), 400)
        XCTAssertEqual(status(validate("kill", "\u{FF}\u{FE}")), 400)
        XCTAssertEqual(status(validate("put", #"{"key":"","value":"v"}"#)), 400)
        XCTAssertEqual(status(validate("put", #"{"key":"k"}"#)), 400)
        XCTAssertEqual(status(validate("put", #"{"key":"k","value":5}"#)), 400)
        if case .failure(let rejection) = validate("reboot", "{}") {
            XCTAssertTrue(rejection.message.contains("move-leader"), rejection.message)
        }
    }

    func testAnOversizeBodyIs413() {
        let big = #"{"key":"k","value":""# + String(repeating: "x", count: LiveControl.maxBodyBytes) + #""}"#
        XCTAssertEqual(status(validate("put", big)), 413)
        // The handler keeps only the first bytes of a long body: the full length decides.
        XCTAssertEqual(status(validate("put", #"{"key":"k","value":"v"}"#, bodyBytes: LiveControl.maxBodyBytes + 1)), 413)
        XCTAssertEqual(status(validate("put", #"{"key":"k","value":"v"}"#, bodyBytes: LiveControl.maxBodyBytes)), 200)
    }

    func testAnswersAndTokens() {
        XCTAssertEqual(LiveControl.answer(ok: true, "n1 \"killed\""), #"{"message":"n1 \"killed\"","ok":true}"#)
        let a = LiveControl.makeToken(), b = LiveControl.makeToken()
        XCTAssertEqual(a.count, 32)
        XCTAssertTrue(a.allSatisfy(\.isHexDigit))
        XCTAssertNotEqual(a, b)
    }

    // MARK: JSON

    func testJSONRoundTripKeepsTypes() throws {
        let text = #"{"b":true,"n":null,"i":1700000000123,"f":-1.5,"s":"a<b\n","a":[0,false,{}],"o":{"z":"1"}}"#
        let value = try XCTUnwrap(LiveJSON.parse(Array(text.utf8)))
        XCTAssertEqual(value["b"], .bool(true))
        XCTAssertEqual(value["i"], .number(1_700_000_000_123))
        XCTAssertEqual(value["o"]?["z"], .string("1"))
        XCTAssertEqual(value.text, #"{"a":[0,false,{}],"b":true,"f":-1.5,"i":1700000000123,"n":null,"o":{"z":"1"},"s":"a\u003cb\n"}"#)
        XCTAssertEqual(LiveJSON.parse(Array(value.text.utf8)), value)
        XCTAssertNil(LiveJSON.parse(Array("{".utf8)))
    }

    // MARK: aggregation

    private func document(_ name: String, role: String, leader: String?, extra: [String: LiveJSON] = [:],
                          timeout: Int = 1000) -> LiveJSON {
        var member: [String: LiveJSON] = ["name": .string(name), "id": "1", "clientURL": .string("http://x/\(name)"),
                                          "reachable": true, "role": .string(role),
                                          "leader": leader.map(LiveJSON.string) ?? .null, "chosenThrough": 7]
        for (key, value) in extra { member[key] = value }
        return ["version": 1, "servedBy": .string(name), "electionTimeoutMs": .number(Double(timeout)), "leaseMs": .null,
                "leader": leader.map(LiveJSON.string) ?? .null, "members": [.object(member)]]
    }

    private func input(_ name: String, _ process: LiveMemberProcess = .running,
                       _ answer: Result<LiveJSON, LiveFetchError>? = nil) -> LiveMemberInput {
        LiveMemberInput(name: name, clientURL: "http://127.0.0.1/\(name)", process: process, answer: answer)
    }

    private func members(_ state: LiveJSON) -> [LiveJSON] { state["members"]?.array ?? [] }

    func testAggregationOrdersMembersAndAddsWhatTheSupervisorKnows() {
        let state = LiveClusterState.aggregate([
            input("n3", .killed),
            input("n2", .running, .success(document("n2", role: "follower", leader: "n1", extra: ["slots": [["slot": 4]]], timeout: 1500))),
            input("n1", .running, .success(document("n1", role: "leader", leader: "n1"))),
        ], token: token, nowMs: 42)
        XCTAssertEqual(members(state).map { $0["name"]?.string }, ["n1", "n2", "n3"])
        XCTAssertEqual(state["leader"], .string("n1"))
        XCTAssertEqual(state["servedBy"], .string("synod cluster"))
        XCTAssertEqual(state["version"], .number(1))
        XCTAssertEqual(state["time"], .number(42))
        XCTAssertEqual(state["electionTimeoutMs"], .number(1500))
        XCTAssertEqual(state["tour"], .null)
        XCTAssertEqual(state["controls"]?["token"], .string(token))
        XCTAssertEqual(state["controls"]?["actions"]?.array?.compactMap(\.string),
                       ["kill", "pause", "resume", "restart", "isolate", "heal", "move-leader"])
        let n3 = members(state)[2]
        XCTAssertEqual(n3["reachable"], .bool(false))
        XCTAssertEqual(n3["role"], .string("down"))
        XCTAssertEqual(n3["error"], .string("killed from the cluster page"))
        XCTAssertEqual(n3["clientURL"], .string("http://127.0.0.1/n3"))
        // A member's fields pass through, unknown ones included.
        XCTAssertEqual(members(state)[1]["slots"], [["slot": 4]])
        XCTAssertEqual(members(state)[1]["chosenThrough"], .number(7))
        XCTAssertEqual(members(state)[0]["role"], .string("leader"))
        XCTAssertEqual(LiveClusterState.aggregate([], token: nil, nowMs: 0)["controls"], .null)
    }

    func testPausedExitedAndUnreachableMembers() {
        let state = LiveClusterState.aggregate([
            input("n1", .paused, .success(document("n1", role: "leader", leader: "n1"))),
            input("n2", .exited(3)),
            input("n3", .running, .failure(LiveFetchError("cannot connect to 127.0.0.1:32379: connection refused"))),
            input("n10", .running, .success(["version": 1, "members": []])),
        ], token: token, nowMs: 0)
        let list = members(state)
        XCTAssertEqual(list.map { $0["name"]?.string }, ["n1", "n2", "n3", "n10"])
        XCTAssertEqual(list[0]["role"], .string("paused"))
        XCTAssertEqual(list[0]["reachable"], .bool(false))
        XCTAssertEqual(list[0]["error"], .string("paused (SIGSTOP)"))
        XCTAssertEqual(list[1]["role"], .string("down"))
        XCTAssertEqual(list[1]["error"], .string("exited with status 3"))
        XCTAssertEqual(list[2]["role"], .string("down"))
        XCTAssertEqual(list[2]["error"], .string("cannot connect to 127.0.0.1:32379: connection refused"))
        XCTAssertEqual(list[3]["reachable"], .bool(false))
        // A paused leader is no leader on the page, and no timeouts are known.
        XCTAssertEqual(state["leader"], .null)
        XCTAssertEqual(state["electionTimeoutMs"], .null)
    }

    func testTheLeaderIsTheOneMostReachableMembersNameIfItIsReachable() {
        func leader(_ inputs: [LiveMemberInput]) -> LiveJSON? {
            LiveClusterState.aggregate(inputs, token: nil, nowMs: 0)["leader"]
        }
        // The killed leader is still named by the followers until they time out: none shown.
        XCTAssertEqual(leader([input("n1", .killed),
                               input("n2", .running, .success(document("n2", role: "follower", leader: "n1"))),
                               input("n3", .running, .success(document("n3", role: "follower", leader: "n1")))]), .null)
        // Two against one.
        XCTAssertEqual(leader([input("n1", .running, .success(document("n1", role: "leader", leader: "n1"))),
                               input("n2", .running, .success(document("n2", role: "leader", leader: "n2"))),
                               input("n3", .running, .success(document("n3", role: "follower", leader: "n2")))]), .string("n2"))
        // A tie: none.
        XCTAssertEqual(leader([input("n1", .running, .success(document("n1", role: "leader", leader: "n1"))),
                               input("n2", .running, .success(document("n2", role: "leader", leader: "n2")))]), .null)
        // Members that name no leader do not count against one that is named.
        XCTAssertEqual(leader([input("n1", .running, .success(document("n1", role: "leader", leader: "n1"))),
                               input("n2", .running, .success(document("n2", role: "candidate", leader: nil))),
                               input("n3", .running, .success(document("n3", role: "candidate", leader: nil)))]), .string("n1"))
    }

    func testADocumentListingSeveralMembersGivesTheServingOne() {
        var many = document("n2", role: "follower", leader: "n1")
        if case .object(var fields) = many {
            fields["members"] = [["name": "n1", "role": "leader"], ["name": "n2", "role": "follower"]]
            many = .object(fields)
        }
        let state = LiveClusterState.aggregate([input("n2", .running, .success(many))], token: nil, nowMs: 0)
        XCTAssertEqual(members(state).first?["role"], .string("follower"))
        XCTAssertEqual(members(state).first?["reachable"], .bool(true))
    }

    func testAMemberWithoutTheLivePageIsDescribedFromItsStatus() throws {
        let status = LiveJSON.parse(Array(#"{"header":{"cluster_id":"9","member_id":"22","revision":"5","raft_term":"2"},"leader":"11","raftIndex":"17","raftAppliedIndex":"16"}"#.utf8))
        let list = LiveJSON.parse(Array(#"{"members":[{"ID":"11","name":"n1"},{"ID":"22","name":"n2"}]}"#.utf8))
        let document = try XCTUnwrap(LiveClusterState.statusDocument(name: "n2", clientURL: "http://c", status: try XCTUnwrap(status),
                                                                     memberList: try XCTUnwrap(list)))
        let entry = try XCTUnwrap(document["members"]?.array?.first)
        XCTAssertEqual(entry["role"], .string("follower"))
        XCTAssertEqual(entry["leader"], .string("n1"))
        XCTAssertEqual(entry["chosenThrough"], .number(17))
        XCTAssertEqual(entry["appliedThrough"], .number(16))
        XCTAssertEqual(entry["revision"], .number(5))
        XCTAssertEqual(entry["id"], .string("16"))
        XCTAssertEqual(entry["source"], .string("status"))
        let leading = LiveJSON.parse(Array(#"{"header":{"member_id":"11"},"leader":"11"}"#.utf8))
        let leader = LiveClusterState.statusDocument(name: "n1", clientURL: "http://c", status: try XCTUnwrap(leading), memberList: try XCTUnwrap(list))
        XCTAssertEqual(leader?["members"]?.array?.first?["role"], .string("leader"))
        XCTAssertEqual(leader?["members"]?.array?.first?["chosenThrough"], .number(0))
        XCTAssertNil(LiveClusterState.statusDocument(name: "n1", clientURL: "http://c", status: ["error": "x"], memberList: [:]))
    }
}
