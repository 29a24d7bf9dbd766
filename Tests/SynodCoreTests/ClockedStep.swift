@testable import SynodCore

extension Replica {
    /// For tests that do not model clocks: the clock reads this replica's ticks (a tick's
    /// step already sees the tick it counts). Tests about leases and stalls pass a clock.
    mutating func step(_ input: Input) -> Output {
        var ticks = now
        if case .tick = input { ticks += 1 }
        return step(input, clock: ClockTime(nanoseconds: 1_000_000_000 + ticks * configuration.tickNanoseconds))
    }
}

extension Output {
    /// The pre-votes this step sent, if any.
    var preVotes: [Envelope] {
        messages.filter { if case .preVote = $0.message { return true } else { return false } }
    }
}

extension Replica {
    /// Answers the pre-votes in `output` as voters whose lease guard expired would: granted.
    /// Returns the output of the last answer (the step that starts phase 1, once enough
    /// voters granted), or `output` itself when it sent no pre-vote.
    mutating func grantPreVotes(in output: Output) -> Output {
        var last = output
        for envelope in output.preVotes {
            guard case .preVote(let ballot) = envelope.message, role != .candidate else { continue }
            last = step(.receive(Envelope(from: envelope.to, to: envelope.from,
                                          message: .preVoteReply(ballot: ballot, granted: true, promised: .zero))))
        }
        return last
    }
}
