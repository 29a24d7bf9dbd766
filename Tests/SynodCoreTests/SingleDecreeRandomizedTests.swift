import XCTest
import SynodCore

/// One randomized run of single-decree Paxos: several proposers with increasing ballots against
/// N acceptors, every message delivered in random order, lost or duplicated at random.
///
/// Which values are chosen is decided by an oracle that watches the acceptors, not by what the
/// proposers report: a value is chosen once a phase-2 quorum accepted it in one ballot. So the
/// agreement check does not trust the code under test.
private struct SynodRun {
    enum Mode {
        case correct
        /// Negative control: on finishing phase 1 the proposer sends its own value, ignoring the
        /// values reported in the promises (it skips `valueToPropose`).
        case ignoresPromisedValues
    }

    private enum Packet {
        case prepare(Ballot)
        case prepareReply(SingleDecree.PrepareReply<Int>)
        case accept(Ballot, Int)
        case acceptReply(SingleDecree.AcceptReply)
    }

    /// Between one proposer and one acceptor, in either direction.
    private struct InFlight {
        var proposer: Int
        var acceptor: Int
        var packet: Packet
    }

    struct Result {
        /// Values a phase-2 quorum accepted in some ballot, per the oracle.
        var chosen: Set<Int>
        /// Values the proposers reported as chosen.
        var reported: Set<Int>
    }

    let quorums: SingleDecree.Quorums
    let mode: Mode
    private var random: SplitMix64
    private var acceptors: [SingleDecree.Acceptor<Int>]
    private var proposers: [SingleDecree.Proposer<Int>?]
    private var attempts: [Int]
    private var network: [InFlight] = []
    private var highestRound: UInt64 = 0
    private var acceptances: [SingleDecree.AcceptedValue<Int>: Set<Int>] = [:]
    private var reported: Set<Int> = []

    static let attemptsMax = 3
    static let stepsMax = 400
    static let startPercent = 8
    static let dropPercent = 20
    static let duplicatePercent = 10

    init(seed: UInt64, quorums: SingleDecree.Quorums, proposerCount: Int, mode: Mode) {
        self.quorums = quorums
        self.mode = mode
        self.random = SplitMix64(seed: seed)
        self.acceptors = Array(repeating: SingleDecree.Acceptor(), count: quorums.members.count)
        self.proposers = Array(repeating: nil, count: proposerCount)
        self.attempts = Array(repeating: 0, count: proposerCount)
    }

    private static func proposerID(_ index: Int) -> NodeID { NodeID(UInt32(100 + index)) }
    private static func ownValue(_ index: Int) -> Int { 1000 + index }

    private mutating func roll(_ percent: Int) -> Bool { random.next() % 100 < UInt64(percent) }

    mutating func run() -> Result {
        for _ in 0..<Self.stepsMax {
            let idle = (0..<proposers.count).filter(canStart)
            if !idle.isEmpty && (network.isEmpty || roll(Self.startPercent)) {
                start(idle[Int(random.next() % UInt64(idle.count))])
            } else if !network.isEmpty {
                let message = network.remove(at: Int(random.next() % UInt64(network.count)))
                if roll(Self.dropPercent) { continue }
                if roll(Self.duplicatePercent) { network.append(message) }
                deliver(message)
            } else {
                break
            }
        }
        let chosen = acceptances.filter { $0.value.count >= quorums.phase2 }.map(\.key.value)
        return Result(chosen: Set(chosen), reported: reported)
    }

    /// A proposer may start if it never ran, or retry (with a higher ballot) after a preemption.
    private func canStart(_ index: Int) -> Bool {
        guard attempts[index] < Self.attemptsMax else { return false }
        guard let proposer = proposers[index] else { return true }
        if case .preempted = proposer.phase { return true }
        return false
    }

    private mutating func start(_ index: Int) {
        attempts[index] += 1
        // Ballots increase over the run: each start takes a round above every one used so far.
        highestRound += 1
        let ballot = Ballot(round: highestRound, node: Self.proposerID(index))
        proposers[index] = SingleDecree.Proposer(ballot: ballot, value: Self.ownValue(index), quorums: quorums)
        for acceptor in acceptors.indices {
            network.append(InFlight(proposer: index, acceptor: acceptor, packet: .prepare(ballot)))
        }
    }

    private mutating func deliver(_ message: InFlight) {
        let acceptorID = quorums.members[message.acceptor]
        switch message.packet {
        case .prepare(let ballot):
            let reply = acceptors[message.acceptor].receivePrepare(ballot)
            network.append(InFlight(proposer: message.proposer, acceptor: message.acceptor, packet: .prepareReply(reply)))
        case .accept(let ballot, let value):
            let reply = acceptors[message.acceptor].receiveAccept(ballot, value: value)
            if case .accepted = reply {
                acceptances[SingleDecree.AcceptedValue(ballot: ballot, value: value), default: []].insert(message.acceptor)
            }
            network.append(InFlight(proposer: message.proposer, acceptor: message.acceptor, packet: .acceptReply(reply)))
        case .prepareReply(let reply):
            guard let event = proposers[message.proposer]?.receivePrepareReply(reply, from: acceptorID) else { return }
            handle(event, proposer: message.proposer)
        case .acceptReply(let reply):
            guard let event = proposers[message.proposer]?.receiveAcceptReply(reply, from: acceptorID) else { return }
            handle(event, proposer: message.proposer)
        }
    }

    private mutating func handle(_ event: SingleDecree.Proposer<Int>.Event, proposer index: Int) {
        guard let proposer = proposers[index] else { return }
        switch event {
        case .sendAccept(let value):
            let sent = mode == .correct ? value : proposer.ownValue
            for acceptor in acceptors.indices {
                network.append(InFlight(proposer: index, acceptor: acceptor, packet: .accept(proposer.ballot, sent)))
            }
        case .chosen(let value):
            reported.insert(mode == .correct ? value : proposer.ownValue)
        case .preempted:
            break  // the run loop may restart it with a higher ballot
        }
    }
}

final class SingleDecreeRandomizedTests: XCTestCase {
    private static let seedCount: UInt64 = 400

    private func members(_ count: Int) -> [NodeID] { (1...count).map { NodeID(UInt32($0)) } }

    /// Runs every seed; returns the first seed whose run chose two values, and how many runs chose one.
    private func search(quorums: SingleDecree.Quorums, proposers: Int, mode: SynodRun.Mode,
                        checkReports: Bool) -> (disagreement: (seed: UInt64, values: Set<Int>)?, decided: Int) {
        var decided = 0
        var disagreement: (UInt64, Set<Int>)?
        for seed in 0..<Self.seedCount {
            var run = SynodRun(seed: seed, quorums: quorums, proposerCount: proposers, mode: mode)
            let result = run.run()
            if result.chosen.count == 1 { decided += 1 }
            if result.chosen.count > 1 && disagreement == nil { disagreement = (seed, result.chosen) }
            if checkReports {
                XCTAssertTrue(result.reported.isSubset(of: result.chosen),
                              "seed \(seed): proposers reported \(result.reported), oracle saw \(result.chosen)")
                XCTAssertTrue(result.chosen.allSatisfy { (1000..<1000 + proposers).contains($0) },
                              "seed \(seed): chosen \(result.chosen) was never proposed (validity)")
            }
        }
        return (disagreement, decided)
    }

    func testAgreementWithMajorityQuorums() {
        for (acceptorCount, proposerCount) in [(3, 3), (5, 4)] {
            let outcome = search(quorums: .majority(members(acceptorCount)), proposers: proposerCount,
                                 mode: .correct, checkReports: true)
            XCTAssertNil(outcome.disagreement.map { "seed \($0.seed) chose \($0.values.sorted())" },
                         "\(acceptorCount) acceptors")
            // Not vacuous: most runs do choose a value despite the losses.
            XCTAssertGreaterThan(outcome.decided, Int(Self.seedCount) / 2, "\(acceptorCount) acceptors")
        }
    }

    func testAgreementWithFlexibleQuorums() throws {
        let quorums = try SingleDecree.Quorums(members: members(5), phase1: 4, phase2: 2)
        let outcome = search(quorums: quorums, proposers: 4, mode: .correct, checkReports: true)
        XCTAssertNil(outcome.disagreement.map { "seed \($0.seed) chose \($0.values.sorted())" })
        XCTAssertGreaterThan(outcome.decided, Int(Self.seedCount) / 2)
    }

    /// Negative control: with `q1 + q2 <= n` a proposer can finish phase 1 without hearing of a
    /// chosen value, so the same search must find a seed where two values are chosen.
    func testNegativeControlNonIntersectingQuorumsIsCaught() throws {
        let quorums = try SingleDecree.Quorums(members: members(4), phase1: 2, phase2: 2,
                                               unsafeAllowNonIntersectingQuorums: true)
        let outcome = search(quorums: quorums, proposers: 3, mode: .correct, checkReports: false)
        XCTAssertNotNil(outcome.disagreement, "the agreement check never failed with non-intersecting quorums")
    }

    /// Negative control: a proposer that ignores the values reported in promises breaks Paxos
    /// even with majority quorums; the search must find the disagreement.
    func testNegativeControlProposerIgnoringPromisedValuesIsCaught() {
        let outcome = search(quorums: .majority(members(3)), proposers: 3, mode: .ignoresPromisedValues,
                             checkReports: false)
        XCTAssertNotNil(outcome.disagreement, "the agreement check never failed with a broken proposer")
    }

    func testRunsAreDeterministic() {
        var first = SynodRun(seed: 42, quorums: .majority(members(5)), proposerCount: 4, mode: .correct)
        var second = SynodRun(seed: 42, quorums: .majority(members(5)), proposerCount: 4, mode: .correct)
        let a = first.run(), b = second.run()
        XCTAssertEqual(a.chosen, b.chosen)
        XCTAssertEqual(a.reported, b.reported)
    }
}
