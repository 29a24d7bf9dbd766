import Foundation
import SynodCore
@testable import SynodSim
import XCTest

/// The structured replay (`SimulationOptions.record`, `synod sim --html`): deterministic, a
/// faithful record of the simulator's state, neutral to the run, and it pins a `--break`
/// run's violation to a step.
final class ReplayExportTests: XCTestCase {
    private func recorded(_ seed: UInt64, _ configure: (inout SimulationOptions) -> Void = { _ in }) -> SimulationOptions {
        var options = SimulationOptions(seed: seed)
        options.durationSeconds = 2
        configure(&options)
        options.record = true
        return options
    }

    func testTheSameSeedGivesTheSameReplay() throws {
        let first = try XCTUnwrap(Simulator.run(recorded(11)).replay)
        let second = try XCTUnwrap(Simulator.run(recorded(11)).replay)
        XCTAssertEqual(first, second)
        XCTAssertGreaterThan(first.steps.count, 100)
        XCTAssertEqual(first.steps.map(\.index), Array(first.steps.indices))
        // Every kind of message of a run, with ballots and slots on the sends.
        let types = Set(first.steps.flatMap(\.messages).map(\.type))
        for type in ["Prepare", "Promise", "Accept", "Accepted"] { XCTAssertTrue(types.contains(type), "\(type) missing: \(types)") }
        let accept = try XCTUnwrap(first.steps.flatMap(\.messages).first { $0.type == "Accept" && $0.fate == .sent })
        XCTAssertNotNil(accept.ballot)
        XCTAssertEqual(accept.slots?.count, 1)
        // Each delivery or loss refers to a message sent (or lost) earlier in the record.
        var sent: Set<Int> = []
        for step in first.steps {
            for message in step.messages {
                switch message.fate {
                case .sent, .dropped: sent.insert(message.id)
                case .delivered: XCTAssertTrue(sent.contains(message.id), "delivery of unsent message \(message.id) at step \(step.index)")
                }
            }
        }
        XCTAssertTrue(first.steps.flatMap(\.notes).contains { $0.kind == .role && $0.text.contains("becomes leader") })
        XCTAssertTrue(first.steps.flatMap(\.notes).contains { $0.kind == .chosen && $0.slot != nil })
        XCTAssertTrue(first.steps.flatMap(\.notes).contains { $0.kind == .client && $0.operation != nil })
    }

    /// Recording changes nothing about the run: same trace hash, same counts, same story.
    func testRecordingDoesNotChangeTheRun() {
        for seed: UInt64 in [3, 12] {
            var plain = SimulationOptions(seed: seed)
            plain.durationSeconds = 2
            plain.trace = true
            var withReplay = plain
            withReplay.record = true
            var a = Simulator.run(plain)
            var b = Simulator.run(withReplay)
            XCTAssertNotNil(b.replay)
            b.replay = nil
            a.replay = nil
            XCTAssertEqual(a, b, "seed \(seed)")
        }
    }

    /// The state the replay shows after step k is the simulator's own state right after step k.
    func testTheStateInTheReplayIsTheSimulatorsState() throws {
        let simulation = Simulation(recorded(5))
        var seen: [Int: [UInt32: [String]]] = [:]
        var cutsAndLogs: [Int: (cuts: [String], logs: [UInt32: [String]])] = [:]
        simulation.recordedStepObserver = { index in
            guard index % 37 == 0 || index < 40 else { return }
            var states: [UInt32: [String]] = [:]
            for node in simulation.nodes {
                let replica = node.replica
                let status = node.refusedToStart ? "refused" : node.removed ? "removed" : !node.up ? "down" : node.stalled ? "stalled" : "up"
                states[node.id.rawValue] = [status, replica.role.rawValue, replica.ownBallot?.description ?? "-", replica.promised.description,
                                            "\(replica.chosenThrough)", "\(replica.appliedThrough)", "\(replica.holdsLease)"]
            }
            seen[index] = states
            let cuts = simulation.blocked.map { "n\($0.from.rawValue)>n\($0.to.rawValue)" }.sorted()
            var logs: [UInt32: [String]] = [:]
            for node in simulation.nodes {
                let replica = node.replica
                logs[node.id.rawValue] = ["snapshot \(replica.snapshot?.slot ?? 0)"] + replica.logSlots(above: replica.chosenThrough).map {
                    "\($0.slot):\($0.acceptedBallot?.description ?? "-"):\($0.chosen)"
                }
            }
            cutsAndLogs[index] = (cuts, logs)
        }
        let replay = try XCTUnwrap(simulation.run().replay)
        XCTAssertGreaterThan(seen.count, 40)
        try checkCutsAndLogs(replay, seen: cutsAndLogs)
        for (index, states) in seen {
            let shown = replay.nodes(atStep: index)
            XCTAssertEqual(Set(shown.map(\.id)), Set(states.keys), "step \(index)")
            for node in shown {
                let fields = [node.status.rawValue, node.role, node.ballot ?? "-", node.promised, "\(node.chosenThrough)", "\(node.appliedThrough)", "\(node.lease)"]
                XCTAssertEqual(fields, states[node.id], "n\(node.id) at step \(index)")
            }
        }
    }

    /// The cut links and each node's log (snapshot boundary, slots above the chosen prefix)
    /// the replay shows after step k are the simulator's at that moment.
    private func checkCutsAndLogs(_ replay: SimReplay, seen: [Int: (cuts: [String], logs: [UInt32: [String]])]) throws {
        var stepsWithOpenSlots = 0
        for (index, expected) in seen {
            let cuts = replay.cuts(atStep: index).map { "n\($0[0])>n\($0[1])" }.sorted()
            XCTAssertEqual(cuts, expected.cuts, "cuts at step \(index)")
            for node in replay.nodes(atStep: index) {
                let log = ["snapshot \(node.snapshotThrough)"] + node.log.map { "\($0.slot):\($0.ballot ?? "-"):\($0.chosen ?? false)" }
                XCTAssertEqual(log, expected.logs[node.id], "n\(node.id)'s log at step \(index)")
                if !node.log.isEmpty { stepsWithOpenSlots += 1 }
            }
        }
        XCTAssertGreaterThan(stepsWithOpenSlots, 0, "no step observed with a slot accepted but not chosen")
    }

    /// A partition, a crash and a stall of a faulty run are in the replay: cuts recorded while
    /// the partition holds and cleared when it heals, the crashed node down, the stalled one stalled.
    func testFaultsAreRecordedOnLinksAndNodes() throws {
        // Seed 7 (4 s): a stall with its links cut, a split, a one-way cut, a heal, crashes.
        let replay = try XCTUnwrap(Simulator.run(recorded(7) { $0.durationSeconds = 4 }).replay)
        var sawCut = false, sawHealAfterCut = false
        for step in replay.steps {
            guard let cuts = step.cuts else { continue }
            if !cuts.isEmpty { sawCut = true } else if sawCut { sawHealAfterCut = true }
        }
        XCTAssertTrue(sawCut, "no cut link recorded")
        XCTAssertTrue(sawHealAfterCut, "no heal recorded after a cut")
        let partitionStep = try XCTUnwrap(replay.steps.first { $0.notes.contains { $0.text.hasPrefix("NEMESIS") && ($0.text.contains("isolates") || $0.text.contains("splits") || $0.text.contains("cuts")) } })
        XCTAssertFalse(replay.cuts(atStep: partitionStep.index).isEmpty, "the partition's step has no cut links")
        let oneWay = try XCTUnwrap(replay.steps.first { $0.notes.contains { $0.text.contains("(one-way)") } })
        let cuts = Set(replay.cuts(atStep: oneWay.index).map { "\($0[0])>\($0[1])" })
        XCTAssertTrue(cuts.contains { cut in !cuts.contains(String(cut.split(separator: ">").reversed().joined(separator: ">"))) },
                      "the one-way cut is recorded one way: \(cuts.sorted())")
        let heal = try XCTUnwrap(replay.steps.first { $0.index > oneWay.index && $0.notes.contains { $0.text == "NEMESIS heals the network" } })
        XCTAssertEqual(replay.cuts(atStep: heal.index), [], "cut links left after the heal")
        let statuses = Set(replay.steps.flatMap(\.nodes).map(\.status))
        XCTAssertTrue(statuses.contains(.down), "no crash recorded: \(statuses)")
        XCTAssertTrue(statuses.contains(.stalled), "no stall recorded: \(statuses)")
    }

    /// Two different values chosen for one slot (phase-1 and phase-2 quorums that need not
    /// intersect): the replay names the slot, both values, who accepted what, and the step.
    func testANonIntersectingQuorumRunsReplayHoldsTheAgreementViolation() throws {
        let result = Simulator.run(recorded(4) { $0.durationSeconds = 4; $0.breaks = [.nonIntersectingQuorums] })
        let replay = try XCTUnwrap(result.replay)
        let violation = try XCTUnwrap(replay.violation)
        XCTAssertEqual(violation.kind, "agreement")
        XCTAssertEqual(violation.text, result.violations.first)
        let slot = try XCTUnwrap(violation.slot)
        XCTAssertEqual(violation.chosenValues.count, 2)
        XCTAssertNotEqual(violation.chosenValues[0], violation.chosenValues[1])
        XCTAssertEqual(violation.chosenSteps.last, violation.step)
        XCTAssertTrue(replay.steps[violation.step].notes.contains { $0.kind == .violation && $0.text.contains("slot \(slot)") })
        XCTAssertTrue(Set(violation.acceptances.map(\.value)).isSuperset(of: violation.chosenValues))
        XCTAssertFalse(violation.messageIDs.isEmpty)
        // The replay stops a little after the violation.
        XCTAssertLessThanOrEqual(replay.steps.count, violation.step + 1 + Simulation.replayStepsAfterViolation)
    }

    /// A stale read from a lease counted in ticks: found by the linearizability check at the
    /// end of the run, pinned to the step where the stale read completed.
    func testATickLeaseRunsReplayHoldsTheStaleRead() throws {
        let result = Simulator.run(recorded(6) { $0.durationSeconds = 4; $0.breaks = [.tickLease] })
        let replay = try XCTUnwrap(result.replay)
        let violation = try XCTUnwrap(replay.violation)
        XCTAssertEqual(violation.kind, "linearizability")
        XCTAssertFalse(violation.operations.isEmpty)
        let last = try XCTUnwrap(violation.operations.compactMap(\.step).max())
        XCTAssertEqual(violation.step, last)
        let completing = try XCTUnwrap(violation.operations.first { $0.step == last })
        XCTAssertTrue(replay.steps[last].notes.contains { $0.kind == .client && $0.operation == completing.id })
        // Two nodes believe they lead at once around the stale read.
        XCTAssertGreaterThanOrEqual(replay.nodes(atStep: last).filter { $0.role == "leader" && $0.status == .up }.count, 2)
    }

    func testTheReplayIsCodable() throws {
        let replay = try XCTUnwrap(Simulator.run(recorded(2) { $0.durationSeconds = 1 }).replay)
        let data = try JSONEncoder().encode(replay)
        XCTAssertEqual(try JSONDecoder().decode(SimReplay.self, from: data), replay)
    }
}

/// The guided tour (`SimTour`): each scenario's run shows what its description claims. When
/// the simulator changes and a seed stops showing it, search again:
/// `SYNOD_TOUR_SEARCH=failover swift test --filter TourSearch` prints seeds that do.
final class TourTests: XCTestCase {
    func testEveryScenarioRunsCleanAndIsNamedOnce() {
        XCTAssertGreaterThanOrEqual(SimTour.all.count, 5)
        XCTAssertEqual(Set(SimTour.all.map(\.name)).count, SimTour.all.count)
        for tour in SimTour.all {
            XCTAssertTrue(tour.options.record, tour.name)
            XCTAssertFalse(tour.description.contains("_"), "\(tour.name): a placeholder is left in the description")
        }
    }

    func testTheElectionScenario() throws { try assertShows("election") }
    func testTheFailoverScenario() throws { try assertShows("failover") }
    func testTheSplitVoteScenario() throws { try assertShows("split-vote") }
    func testThePartitionedLeaderScenario() throws { try assertShows("partitioned-leader") }
    func testTheMembershipScenario() throws { try assertShows("membership") }
    func testTheThreeWaySplitScenario() throws { try assertShows("three-way-split") }

    private func assertShows(_ name: String) throws {
        let tour = try XCTUnwrap(SimTour.named(name))
        let result = Simulator.run(tour.options)
        XCTAssertEqual(result.violations, [], name)
        let replay = try XCTUnwrap(result.replay)
        let problem = TourProperty.check(name, replay)
        XCTAssertNil(problem, "\(name) (seed \(tour.options.seed)): \(problem ?? "")")
    }
}

/// Searches seeds for a scenario (only with SYNOD_TOUR_SEARCH=<name> in the environment).
final class TourSearch: XCTestCase {
    func testSearch() throws {
        guard let name = ProcessInfo.processInfo.environment["SYNOD_TOUR_SEARCH"] else { throw XCTSkip("SYNOD_TOUR_SEARCH not set") }
        let tour = try XCTUnwrap(SimTour.named(name))
        var found = 0
        func say(_ line: String) { FileHandle.standardError.write(Data((line + "\n").utf8)) }
        for seed: UInt64 in 1...200 {
            var options = tour.options
            options.seed = seed
            if name == "partitioned-leader" {
                // The leader at 800 ms, and one follower, on the minority side.
                var probe = options
                probe.partitions = []
                guard let replay = Simulator.run(probe).replay,
                      let at = replay.steps.lastIndex(where: { $0.time <= 800_000 }),
                      let leader = replay.nodes(atStep: at).first(where: { $0.role == "leader" && $0.status == .up }) else { continue }
                let other = replay.initialNodes.first { $0 != leader.id } ?? 1
                let rest = replay.initialNodes.filter { $0 != leader.id && $0 != other }
                options.partitions = [ScriptedPartition(atMillis: 800, healAtMillis: 1_900, groups: [[leader.id, other].sorted(), rest])]
            }
            let result = Simulator.run(options)
            guard result.violations.isEmpty, let replay = result.replay else { continue }
            if let problem = TourProperty.check(name, replay) {
                if seed < 6 { say("seed \(seed): \(problem)") }
                continue
            }
            say("TOUR \(name): seed \(seed) shows it; partitions \(options.partitions.map(\.groups))")
            found += 1
            if found >= 2 { break }
        }
    }
}

/// What each scenario's replay must show; nil when it does, else what is missing.
enum TourProperty {
    static func check(_ name: String, _ replay: SimReplay) -> String? {
        switch name {
        case "election": return election(replay)
        case "failover": return failover(replay)
        case "split-vote": return splitVote(replay)
        case "partitioned-leader": return partitionedLeader(replay)
        case "membership": return membership(replay)
        case "three-way-split": return threeWaySplit(replay)
        default: return "no such scenario"
        }
    }

    /// "b3.1" as (round, node), ordered as ballots are.
    static func ballot(_ text: String?) -> (UInt64, UInt64)? {
        guard let text, text.hasPrefix("b") else { return nil }
        let parts = text.dropFirst().split(separator: ".")
        guard parts.count == 2, let round = UInt64(parts[0]), let node = UInt64(parts[1]) else { return nil }
        return (round, node)
    }

    static func higher(_ a: String?, than b: String?) -> Bool {
        guard let a = ballot(a), let b = ballot(b) else { return false }
        return a > b
    }

    static func sent(_ replay: SimReplay) -> [(step: Int, message: ReplayMessage)] {
        replay.steps.flatMap { step in step.messages.filter { $0.fate == .sent }.map { (step: step.index, message: $0) } }
    }

    static func notes(_ replay: SimReplay) -> [(step: Int, note: ReplayNote)] {
        replay.steps.flatMap { step in step.notes.map { (step: step.index, note: $0) } }
    }

    /// One Prepare ballot in the whole run, its node leads, and values are chosen.
    static func election(_ replay: SimReplay) -> String? {
        let prepares = Set(sent(replay).filter { $0.message.type == "Prepare" }.compactMap(\.message.ballot))
        guard prepares.count == 1, let only = prepares.first else { return "Prepare ballots: \(prepares.sorted())" }
        guard replay.steps.flatMap(\.nodes).contains(where: { $0.role == "leader" && $0.ballot == only }) else { return "nobody leads \(only)" }
        guard !notes(replay).contains(where: { $0.note.kind == .fault }) else { return "a fault happened" }
        guard notes(replay).filter({ $0.note.kind == .chosen }).count >= 3 else { return "fewer than 3 slots chosen" }
        return nil
    }

    /// After the old leader crashed, a Promise reports a value accepted in the old leader's
    /// ballot, and the candidate it was sent to re-proposes that value in an Accept of its
    /// own, higher ballot.
    static func failover(_ replay: SimReplay) -> String? {
        let messages = sent(replay)
        let crashes = notes(replay).filter { $0.note.text.hasPrefix("CRASH ") }
        for (step, promise) in messages where promise.type == "Promise" {
            let slots = promise.slots ?? [], accepted = promise.accepted ?? [], values = promise.values ?? []
            guard slots.count == accepted.count, slots.count == values.count else { continue }
            for index in slots.indices where !accepted[index].isEmpty {
                guard let old = ballot(accepted[index]), higher(promise.ballot, than: accepted[index]) else { continue }
                guard crashes.contains(where: { $0.step < step && $0.note.text.hasPrefix("CRASH n\(old.1) ") }) else { continue }
                if messages.contains(where: {
                    $0.step >= step && $0.message.type == "Accept" && $0.message.from == promise.to && $0.message.ballot == promise.ballot
                        && $0.message.slots == [slots[index]] && $0.message.values == [values[index]]
                }) {
                    return nil
                }
            }
        }
        return "no Promise after a leader's crash reports a value that the candidate re-proposes"
    }

    /// Two candidates at once with different ballots; a candidate that did not win steps down
    /// (it saw the higher ballot) and the first leader after that leads a ballot at least as
    /// high as every competitor's.
    static func splitVote(_ replay: SimReplay) -> String? {
        for step in replay.steps.indices {
            let candidates = replay.nodes(atStep: step).filter { $0.status == .up && $0.role == "candidate" }
            guard candidates.count >= 2 else { continue }
            guard let leader = replay.steps[step...].lazy.flatMap(\.nodes).first(where: { $0.role == "leader" }) else { return "nobody leads after the split" }
            let beaten = candidates.filter { $0.id != leader.id }
            guard !beaten.isEmpty, candidates.allSatisfy({ $0.ballot == leader.ballot || higher(leader.ballot, than: $0.ballot) }) else { continue }
            let steppedDown = beaten.contains { loser in
                replay.steps[step...].contains { $0.notes.contains { $0.text.hasPrefix("n\(loser.id) becomes follower") } }
            }
            if steppedDown { return nil }
        }
        return "no two candidates at once where the loser steps down and the higher ballot leads"
    }

    /// A scripted partition puts the leader on a minority side: nothing is chosen there, the
    /// majority elects a leader of a higher ballot and chooses values; after the heal the old
    /// leader steps down and catches up.
    static func partitionedLeader(_ replay: SimReplay) -> String? {
        guard let start = replay.steps.firstIndex(where: { $0.notes.contains { $0.text.contains("(scripted)") } }),
              let heal = replay.steps.firstIndex(where: { $0.index > start && $0.cuts == [] }) else { return "no scripted partition that heals" }
        let before = replay.nodes(atStep: start)
        guard let old = before.filter({ $0.role == "leader" && $0.status == .up }).max(by: { (ballot($0.ballot) ?? (0, 0)) < (ballot($1.ballot) ?? (0, 0)) })
        else { return "no leader when the partition starts" }
        let cuts = Set(replay.cuts(atStep: start).map { "\($0[0])>\($0[1])" })
        let side = Set(before.map(\.id).filter { $0 == old.id || !cuts.contains("\(old.id)>\($0)") })
        guard side.count * 2 < before.count else { return "the leader n\(old.id) is not on a minority side (\(side.sorted()))" }
        let during = replay.nodes(atStep: heal - 1)
        let minorityChosen = during.filter { side.contains($0.id) }.map(\.chosenThrough).max() ?? 0
        let minorityBefore = before.filter { side.contains($0.id) }.map(\.chosenThrough).max() ?? 0
        // Acceptances already on their way when the partition started may still arrive: the
        // minority may learn slots its leader proposed before it, not more than one window.
        guard minorityChosen <= minorityBefore + 8 else { return "the minority side chose \(minorityBefore) -> \(minorityChosen)" }
        let majorityChosen = during.filter { !side.contains($0.id) }.map(\.chosenThrough).max() ?? 0
        guard majorityChosen > minorityChosen + 2 else { return "the majority side did not move on (\(majorityChosen) vs \(minorityChosen))" }
        guard during.contains(where: { !side.contains($0.id) && $0.role == "leader" && higher($0.ballot, than: old.ballot) }) else {
            return "the majority has no leader of a higher ballot by the heal"
        }
        let after = replay.steps[heal...].contains { step in
            step.nodes.contains { $0.id == old.id && $0.role == "follower" && $0.chosenThrough >= majorityChosen }
        }
        return after ? nil : "the old leader n\(old.id) does not step down and catch up after the heal"
    }

    /// A node that was not there at the start is added, as a learner, and becomes a voter; or
    /// a voter is removed.
    static func membership(_ replay: SimReplay) -> String? {
        guard notes(replay).contains(where: { $0.note.text.hasPrefix("MEMBERSHIP") }) else { return "no membership change chosen" }
        let initial = Set(replay.initialNodes)
        let states = replay.steps.flatMap(\.nodes)
        let learned = states.flatMap(\.learners).filter { !initial.contains($0) }
        let added = learned.first { id in states.contains { $0.voters.contains(id) } }
        let removed = initial.first { id in states.contains { !$0.voters.isEmpty && !$0.voters.contains(id) } }
        return added != nil || removed != nil ? nil : "no learner became a voter and no voter was removed"
    }

    /// Three groups of three while the partition holds: nothing is chosen then (after the
    /// acceptances already on their way arrive), and values are chosen after it heals.
    static func threeWaySplit(_ replay: SimReplay) -> String? {
        guard replay.nodeCount == 9,
              let start = replay.steps.firstIndex(where: { $0.notes.contains { $0.text.contains("(scripted)") } }),
              let heal = replay.steps.firstIndex(where: { $0.index > start && $0.cuts == [] }) else { return "no scripted 9-node partition that heals" }
        guard replay.cuts(atStep: start).count == 9 * 6 else { return "the cuts are not three groups of three" }
        // Chosen anywhere: the highest chosen prefix of any node.
        func chosen(_ step: Int) -> UInt64 { replay.nodes(atStep: step).map(\.chosenThrough).max() ?? 0 }
        // Messages sent before the partition arrive within about a millisecond.
        let settled = replay.steps.firstIndex { $0.index > start && $0.time > replay.steps[start].time + 2_000 } ?? start
        guard chosen(heal - 1) == chosen(settled) else { return "chosen went \(chosen(settled)) -> \(chosen(heal - 1)) during the partition" }
        let chosenNotes = notes(replay).filter { $0.note.kind == .chosen && $0.step > settled && $0.step < heal }
        guard chosenNotes.isEmpty else { return "\(chosenNotes.count) slots chosen during the partition" }
        guard heal - settled > 50 else { return "the partition is short (\(heal - settled) steps)" }
        guard chosen(replay.steps.count - 1) > chosen(heal) + 2 else { return "little is chosen after the heal" }
        return nil
    }
}
