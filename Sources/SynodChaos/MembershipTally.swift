import Synchronization

/// Counts of membership changes by outcome, for the verdict.
final class MembershipTally: Sendable {
    private let counts = Mutex<[String: (ok: Int, failed: Int, skipped: Int)]>([:])
    private let killedAfterRemoval = Mutex(0)

    /// A removed member that did not exit by itself (the harness stopped it).
    func noteKilledAfterRemoval() {
        killedAfterRemoval.withLock { $0 += 1 }
    }

    enum Outcome { case ok, failed, skipped }

    func note(_ kind: String, _ outcome: Outcome) {
        counts.withLock { counts in
            var entry = counts[kind] ?? (0, 0, 0)
            switch outcome {
            case .ok: entry.ok += 1
            case .failed: entry.failed += 1
            case .skipped: entry.skipped += 1
            }
            counts[kind] = entry
        }
    }

    /// `add 3/3, promote 3/3, remove 2/3 (1 skipped), move-leader 1/1`: succeeded/attempted;
    /// plus how many removed members had to be killed.
    var summary: String {
        let counts = counts.withLock { $0 }
        let killed = killedAfterRemoval.withLock { $0 }
        let order = ["add", "promote", "remove", "move-leader"]
        return order.compactMap { kind -> String? in
            guard let entry = counts[kind] else { return nil }
            let skipped = entry.skipped > 0 ? " (\(entry.skipped) skipped)" : ""
            return "\(kind) \(entry.ok)/\(entry.ok + entry.failed)\(skipped)"
        }.joined(separator: ", ") + (killed > 0 ? "; \(killed) removed member(s) did not exit by themselves (killed)" : "")
    }

    var failures: Int { counts.withLock { $0.values.map(\.failed).reduce(0, +) } }
}
