import SynodCore
import SynodKV
import XCTest
@testable import SynodNode

/// A tiny deterministic harness for `NodeDriver`s: one shared clock, persist batches durable
/// at once, messages delivered in send order, snapshots encoded on the spot. It records every
/// answer by token, and checks after every step that the replica's invariants hold and that
/// no two drivers applied different values for a slot.
struct DriverCluster {
    var drivers: [NodeID: NodeDriver] = [:]
    var ids: [NodeID]
    var clock = ClockTime(nanoseconds: 1_000_000_000)
    var network: [Envelope] = []
    var isolated: Set<NodeID> = []
    var nextToken: UInt64 = 1
    var writes: [UInt64: Result<KVResponse, NodeError>] = [:]
    var reads: [UInt64: NodeError?] = [:]
    var reconfigurations: [UInt64: Result<Reconfiguration, any Error>] = [:]
    var events: [NodeID: [DriverEvent]] = [:]
    var halted: [NodeID: String] = [:]
    var removed: Set<NodeID> = []
    var probeAnswers: [NodeID] = []
    var agreed: [Slot: Value] = [:]
    var problems: [String] = []

    /// Each member's role as a shell would publish it: read when an output says
    /// `peersChanged` (other threads' API admission uses that copy).
    var publishedRoles: [NodeID: LocalRole] = [:]
    /// Each member's governing membership as a shell would publish it (discovery answers it).
    var publishedGoverning: [NodeID: Membership] = [:]

    init(nodes: Int = 3, configure: (inout Configuration, inout DriverSettings) -> Void = { _, _ in },
         filters: [NodeID: any ApplyFilter] = [:]) throws {
        ids = (1...nodes).map { NodeID(UInt32($0)) }
        for id in ids {
            var configuration = Configuration(members: ids)
            var settings = DriverSettings(name: "n\(id.rawValue)", advertiseClientURLs: ["http://n\(id.rawValue)"],
                                          memberID: 100 + UInt64(id.rawValue))
            settings.reportApplies = true
            configure(&configuration, &settings)
            let initial = Membership(members: ids.map { Member(id: $0, name: "n\($0.rawValue)", memberID: 100 + UInt64($0.rawValue)) })
            let replica = try Replica(id: id, configuration: configuration, seed: UInt64(id.rawValue), initialMembership: initial)
            drivers[id] = NodeDriver(replica: replica, settings: settings, seed: 7 &+ UInt64(id.rawValue),
                                     applyFilter: filters[id] ?? ApplyAsChosen())
        }
        for id in ids { step(id, .start) }
    }

    /// Starts a member that joins (it was added to the membership): a joining replica that
    /// knows only the first members as voters to ask, as a server started with
    /// `--initial-cluster-state existing` does.
    mutating func startJoiner(_ id: NodeID) throws {
        let voters = Array(ids.prefix(3))
        let configuration = Configuration(members: voters)
        let settings = DriverSettings(name: "n\(id.rawValue)", advertiseClientURLs: ["http://n\(id.rawValue)"],
                                      memberID: 100 + UInt64(id.rawValue))
        let replica = try Replica(id: id, configuration: configuration, seed: UInt64(id.rawValue), joining: true)
        drivers[id] = NodeDriver(replica: replica, settings: settings, seed: 7 &+ UInt64(id.rawValue), applyFilter: ApplyAsChosen())
        ids.append(id)
        step(id, .start)
    }

    /// Snapshot decodes asked for while `holdDecodes` is on, not answered yet.
    var holdDecodes = false
    var heldDecodes: [(NodeID, SnapshotDecodeRequest)] = []

    /// Answers the held decodes, in the order they were asked for.
    mutating func finishDecodes() {
        let held = heldDecodes
        heldDecodes.removeAll()
        for (id, request) in held { step(id, .snapshotDecoded(slot: request.slot, result: request.decode())) }
    }

    var tickNanoseconds: UInt64 { drivers[ids[0]]?.replica.configuration.tickNanoseconds ?? 10_000_000 }

    mutating func token() -> UInt64 {
        defer { nextToken += 1 }
        return nextToken
    }

    // MARK: Driving

    mutating func step(_ id: NodeID, _ input: DriverInput) {
        guard var driver = drivers[id] else { return }
        let output = driver.step(input, clock: clock)
        drivers[id] = driver
        carry(output, at: id)
    }

    private mutating func carry(_ output: DriverOutput, at id: NodeID) {
        if let reason = output.halted { halted[id] = reason }
        if output.removed { removed.insert(id) }
        if output.peersChanged {
            publishedRoles[id] = drivers[id]?.role
            publishedGoverning[id] = drivers[id]?.governingMembership
        }
        events[id, default: []] += output.events
        for (slot, value) in output.applied {
            if let first = agreed[slot], first != value { problems.append("\(id) applied \(value) at \(slot), another \(first)") }
            agreed[slot] = agreed[slot] ?? value
        }
        for (token, result) in output.writes { writes[token] = result }
        for (token, failure) in output.reads { reads[token] = .some(failure) }
        for (token, result) in output.reconfigurations { reconfigurations[token] = result }
        if let problem = drivers[id]?.replica.checkInvariants().first { problems.append("\(id): \(problem)") }
        network += output.send
        // Durable at once: the batches' messages come back through `.durable`.
        if let last = output.persist.last { step(id, .durable(through: last.id)) }
        if let (slot, state) = output.encodeSnapshot { step(id, .snapshotEncoded(slot: slot, bytes: SnapshotBytes(state.snapshot()))) }
        if let request = output.decodeSnapshot {
            // Decoded at once, unless the test holds decodes back (`finishDecodes`).
            if holdDecodes { heldDecodes.append((id, request)) } else { step(id, .snapshotDecoded(slot: request.slot, result: request.decode())) }
        }
        if output.probeMembership { probeAnswers.append(id) }
        if output.flushWanted { step(id, .flush) }
    }

    /// Answers the discovery probes asked so far, as the server's discovery does: the first
    /// other reachable member whose newest and governing memberships both lack the asker.
    mutating func answerProbes() {
        let askers = probeAnswers
        probeAnswers.removeAll()
        for id in askers {
            var answer: Membership?
            for other in ids where other != id && !isolated.contains(other) && !removed.contains(other) {
                guard let peer = drivers[other], let latest = peer.latestMembership else { continue }
                if !latest.contains(id) && peer.governingMembership?.contains(id) != true {
                    answer = latest
                    break
                }
            }
            step(id, .probeAnswered(removedFrom: answer))
        }
    }

    mutating func deliverAll(limit: Int = 100_000) {
        answerProbes()
        var delivered = 0
        while !network.isEmpty && delivered < limit {
            let envelope = network.removeFirst()
            delivered += 1
            guard !isolated.contains(envelope.from), !isolated.contains(envelope.to), drivers[envelope.to] != nil else { continue }
            step(envelope.to, .receive([envelope]))
        }
    }

    /// One tick of every connected node, the clock advancing by one tick, then delivery.
    mutating func cycle(_ rounds: Int = 1) {
        for _ in 0..<rounds {
            clock = clock.adding(nanoseconds: tickNanoseconds)
            for id in ids where !isolated.contains(id) { step(id, .tick) }
            deliverAll()
        }
    }

    /// Runs until some node leads.
    mutating func elect(file: StaticString = #filePath, line: UInt = #line) -> NodeID? {
        for _ in 0..<200 where leader == nil { cycle() }
        XCTAssertNotNil(leader, "no leader", file: file, line: line)
        return leader
    }

    var leader: NodeID? { ids.first { drivers[$0]?.replica.role == .leader && !isolated.contains($0) } }

    // MARK: Requests

    mutating func put(at id: NodeID, _ key: String, _ value: String, requestID: UInt64? = nil) -> UInt64 {
        let token = token()
        step(id, .write(token: token, payload: KVCommand.put(PutRequest(key: Array(key.utf8), value: Array(value.utf8))).encoded(),
                        requestID: requestID))
        step(id, .flush)
        return token
    }

    mutating func read(at id: NodeID, _ consistency: ReadConsistency) -> UInt64 {
        let token = token()
        step(id, .read(token: token, consistency: consistency))
        return token
    }

    func value(_ key: String, at id: NodeID) -> String? {
        guard let store = drivers[id]?.kv.store, let kv = try? store.range(RangeRequest(key: Array(key.utf8))).kvs.first else { return nil }
        return String(decoding: kv.value, as: UTF8.self)
    }

    func assertClean(file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(problems, [], file: file, line: line)
    }
}
