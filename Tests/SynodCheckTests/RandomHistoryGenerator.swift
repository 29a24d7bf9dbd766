import SynodCheck

/// Deterministic, seedable generator so randomized tests are reproducible.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Generates histories that are linearizable by construction: every operation
/// gets a linearization point inside its interval, and outcomes are computed by
/// applying the operations to a plain dictionary in linearization-point order.
/// Timed-out operations take effect at a point after their invocation (possibly
/// long after the client gave up) or not at all.
struct RandomHistoryGenerator {
    var clients = 5
    var keys = 3
    var operationCount = 200
    var unknownProbability = 0.05
    var maxDuration: UInt64 = 40

    private struct Effect {
        var point: UInt64
        var operation: Int
    }

    func generate(seed: UInt64) -> [HistoryOperation] {
        var random = SplitMix64(seed: seed)
        var clientFreeAt = [UInt64](repeating: 0, count: clients)
        var writtenValues: [String: [String]] = [:]
        var operations: [HistoryOperation] = []
        var effects: [Effect] = []

        for id in 0..<operationCount {
            // The least busy client issues next, which keeps all clients overlapping.
            let client = clientFreeAt.indices.min { clientFreeAt[$0] < clientFreeAt[$1] } ?? 0
            let key = "k\(Int.random(in: 0..<keys, using: &random))"
            let invokedAt = clientFreeAt[client] + UInt64.random(in: 0...5, using: &random)
            let completedAt = invokedAt + UInt64.random(in: 1...maxDuration, using: &random)
            let value = "\(key)-c\(client)-\(id)"
            let operation: KVOperation
            switch Int.random(in: 0..<10, using: &random) {
            case 0..<4:
                operation = .read(key: key)
            case 4..<7:
                operation = .write(key: key, value: value)
                writtenValues[key, default: []].append(value)
            case 7..<9:
                // Usually expect a recent value so that some CASes succeed.
                let candidates = writtenValues[key, default: []].suffix(3)
                let expected = Bool.random(using: &random) ? nil : candidates.randomElement(using: &random)
                operation = .compareAndSet(key: key, expected: expected, new: value)
                writtenValues[key, default: []].append(value)
            default:
                operation = .delete(key: key)
            }

            let isUnknown = Double.random(in: 0..<1, using: &random) < unknownProbability
            if isUnknown {
                operations.append(HistoryOperation(
                    id: id, client: client, operation: operation,
                    invokedAt: invokedAt, completedAt: nil, outcome: .unknown))
                if Bool.random(using: &random) {
                    let delay = UInt64.random(in: 0...(maxDuration * 10), using: &random)
                    effects.append(Effect(point: invokedAt + delay, operation: id))
                }
                clientFreeAt[client] = completedAt + maxDuration  // the client's timeout
            } else {
                operations.append(HistoryOperation(
                    id: id, client: client, operation: operation,
                    invokedAt: invokedAt, completedAt: completedAt, outcome: .written))
                effects.append(Effect(
                    point: UInt64.random(in: invokedAt...completedAt, using: &random), operation: id))
                clientFreeAt[client] = completedAt + 1
            }
        }

        // Equal points may be applied in either order: two operations sharing a
        // point either overlap or touch at an endpoint, which counts as concurrent.
        effects.sort { ($0.point, $0.operation) < ($1.point, $1.operation) }
        var store: [String: String] = [:]
        for effect in effects {
            let index = effect.operation  // ids equal indices here
            let isUnknown = operations[index].outcome == .unknown
            let outcome: KVOutcome
            switch operations[index].operation {
            case .read(let key):
                outcome = .read(store[key])
            case .write(let key, let value):
                store[key] = value
                outcome = .written
            case .delete(let key):
                store[key] = nil
                outcome = .written
            case .compareAndSet(let key, let expected, let new):
                let succeeded = store[key] == expected
                if succeeded {
                    store[key] = new
                }
                outcome = .compareAndSet(succeeded)
            }
            if !isUnknown {
                operations[index].outcome = outcome
            }
        }
        return operations
    }
}
