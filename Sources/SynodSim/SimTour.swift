/// The guided tour of `synod sim --tour`: fixed runs, each chosen (by searching seeds) because
/// it shows one thing about Multi-Paxos clearly. `ReplayExportTests` checks each one's replay
/// for what its description claims, so a change to the simulator that makes a seed stop
/// showing it fails a test (and the seed must be searched again: see `ReplayExportTests`).
public struct SimTour: Hashable, Sendable {
    /// A short name for the command line and file names ("failover").
    public var name: String
    public var title: String
    /// One paragraph: what happens and what to look at.
    public var description: String
    /// The run (recording on).
    public var options: SimulationOptions

    public init(name: String, title: String, description: String, options: SimulationOptions) {
        self.name = name
        self.title = title
        self.description = description
        self.options = options
    }

    /// The scenario named `name`, if any.
    public static func named(_ name: String) -> SimTour? { all.first { $0.name == name } }

    /// A quiet run: no loss, no partitions, crashes, stalls or membership changes.
    private static func quiet(seed: UInt64, nodes: Int, seconds: Double = 2) -> SimulationOptions {
        var options = SimulationOptions(seed: seed)
        options.nodes = nodes
        options.durationSeconds = seconds
        options.clients = 3
        options.faults = .none
        options.record = true
        return options
    }

    public static let all: [SimTour] = [
        SimTour(
            name: "election",
            title: "A clean election",
            description: """
                Three nodes start with no leader and a quiet network. The first node whose election \
                timeout runs out asks the others whether they would vote (pre-vote), then sends Prepare \
                with its ballot; each voter promises (on disk first) and reports what it accepted \
                (nothing yet). With promises from a majority, two of three, it leads: clients' \
                commands become Accept messages, and each slot is chosen once a majority accepted it. \
                Watch the log grid fill slot by slot: accepted in the leader's ballot, then chosen, \
                then applied.
                """,
            options: quiet(seed: 1, nodes: 3, seconds: 1)),
        SimTour(
            name: "failover",
            title: "Failover: the new leader re-proposes a value it learned from a promise",
            description: """
                Five nodes; the only faults are crashes of single nodes. The leader crashes with \
                slots accepted by some nodes but not known chosen. A new candidate sends Prepare \
                with a higher ballot, and a Promise reports a value accepted in the old ballot. The \
                new leader must propose that very value again (in its own, higher ballot), not a \
                new command: it may already have been chosen, and Paxos never chooses two values \
                for one slot. Step to the Promise that carries the slot, then to the new leader's \
                Accept for it.
                """,
            options: {
                var options = quiet(seed: 2, nodes: 5, seconds: 3)
                options.faults.crashWeight = 1
                options.faults.nemesisIntervalMillis = 400
                return options
            }()),
        SimTour(
            name: "split-vote",
            title: "A split vote",
            description: """
                Five nodes, a quiet network. Two nodes' election timeouts run out at about the \
                same time and both become candidates, with different ballots: the votes could \
                split. A voter promises only a ballot higher than any it promised, so the \
                candidate with the lower ballot is refused (or hears the higher ballot) and steps \
                down, and the higher ballot wins a majority. Had neither won a majority, each \
                would wait a random time and try again with a higher ballot; this run does not \
                get that far (no seed searched showed a retry in this setting).
                """,
            options: {
                quiet(seed: 5, nodes: 5, seconds: 1)
            }()),
        SimTour(
            name: "partitioned-leader",
            title: "A partitioned leader",
            description: """
                Five nodes. While n1 leads, at 800 ms, the network splits it and n2 from the \
                other three (until 1.9 s). The old leader still believes it leads and keeps proposing, but its \
                Accepts reach only two of five nodes: nothing more is chosen on its side. The three \
                on the other side stop hearing heartbeats, elect a new leader with a higher ballot, \
                and go on choosing values. When the partition heals, the old leader sees the higher \
                ballot, steps down and catches up.
                """,
            options: {
                var options = quiet(seed: 1, nodes: 5, seconds: 4)
                options.partitions = [ScriptedPartition(atMillis: 800, healAtMillis: 1_900, groups: [[1, 2], [3, 4, 5]])]
                return options
            }()),
        SimTour(
            name: "membership",
            title: "A membership change",
            description: """
                Three nodes, a quiet network, and an operator who changes the membership: it adds a \
                new node as a learner (it copies the log, from a snapshot, without voting), promotes \
                it to voter, or removes a voter. Each change is a value chosen in a slot by the old \
                voters' majority, and takes effect only from a later slot on, one change at a time, \
                so the old and new majorities always share a node. Watch the voters and learners in \
                the node panels.
                """,
            options: {
                var options = quiet(seed: 1, nodes: 3, seconds: 4)
                options.faults.reconfigIntervalMillis = 300
                return options
            }()),
        SimTour(
            name: "three-way-split",
            title: "Nine nodes split 3-3-3: no majority anywhere",
            description: """
                Nine nodes; a majority is five. The network splits into three groups of three, none \
                of which holds a majority. No group can elect a leader or choose a value: a candidate \
                gets at most three promises, the leader at most three acceptances. Clients wait, \
                retry and time out. Nothing is chosen until the partition heals; then one node gets \
                a majority of promises and the log moves on.
                """,
            options: {
                var options = quiet(seed: 1, nodes: 9, seconds: 4)
                options.partitions = [ScriptedPartition(atMillis: 800, healAtMillis: 1_800, groups: [[1, 2, 3], [4, 5, 6], [7, 8, 9]])]
                return options
            }()),
    ]
}
