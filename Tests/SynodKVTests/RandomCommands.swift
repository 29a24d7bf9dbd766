import SynodCore
@testable import SynodKV

/// Seeded generator of plausible commands over a small key space (so keys collide often).
struct RandomCommands {
    var rng: SplitMix64

    init(seed: UInt64) { rng = SplitMix64(seed: seed) }

    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &rng) }
    mutating func key() -> [UInt8] { [UInt8(ascii: "a") + UInt8(int(0...7))] }
    mutating func value() -> [UInt8] { (0..<int(0...3)).map { _ in UInt8(int(0...255)) } }
    mutating func bool() -> Bool { int(0...1) == 1 }

    mutating func rangeEnd() -> [UInt8] {
        switch int(0...3) {
        case 0: return [0]
        case 1: return key()
        default: return []
        }
    }

    mutating func rangeRequest() -> RangeRequest {
        RangeRequest(key: key(), rangeEnd: rangeEnd(), limit: Int64(int(0...3)), revision: Int64(int(0...3)),
                     sortOrder: RangeRequest.SortOrder.allCases[int(0...2)],
                     sortTarget: RangeRequest.SortTarget.allCases[int(0...4)], keysOnly: bool(), countOnly: bool(),
                     minModRevision: Int64(int(0...2)), maxModRevision: 0, minCreateRevision: 0,
                     maxCreateRevision: Int64(int(0...2)))
    }

    mutating func putRequest() -> PutRequest {
        PutRequest(key: key(), value: value(), lease: int(0...3) == 0 ? Int64(int(1...3)) : 0, prevKv: bool())
    }

    mutating func compare() -> Compare {
        let target: Compare.Target
        switch int(0...4) {
        case 0: target = .version(Int64(int(0...3)))
        case 1: target = .createRevision(Int64(int(0...20)))
        case 2: target = .modRevision(Int64(int(0...20)))
        case 3: target = .value(value())
        default: target = .lease(Int64(int(0...3)))
        }
        return Compare(key: key(), rangeEnd: int(0...3) == 0 ? rangeEnd() : [],
                       result: Compare.Result.allCases[int(0...3)], target: target)
    }

    mutating func ops(depth: Int) -> [RequestOp] {
        (0..<int(0...3)).map { _ in
            switch int(0...(depth < 2 ? 3 : 2)) {
            case 0: return .range(rangeRequest())
            case 1: return .put(putRequest())
            case 2: return .deleteRange(DeleteRangeRequest(key: key(), rangeEnd: rangeEnd(), prevKv: bool()))
            default: return .txn(txn(depth: depth + 1))
            }
        }
    }

    mutating func txn(depth: Int = 0) -> TxnRequest {
        TxnRequest(compare: (0..<int(0...2)).map { _ in compare() }, success: ops(depth: depth),
                   failure: ops(depth: depth))
    }

    mutating func command() -> KVCommand {
        switch int(0...9) {
        case 0...3: return .put(putRequest())
        case 4: return .deleteRange(DeleteRangeRequest(key: key(), rangeEnd: rangeEnd(), prevKv: bool()))
        case 5, 6: return .txn(txn())
        case 7: return .compact(revision: Int64(int(0...30)))
        case 8: return .leaseGrant(id: Int64(int(1...3)), ttlSeconds: Int64(int(1...100)))
        default: return .leaseRevoke(id: Int64(int(1...3)))
        }
    }
}
