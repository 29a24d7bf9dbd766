/// Binary encoding of the membership types, shared by the WAL, snapshot files and the peer
/// codec so that all three agree byte for byte. Little-endian; strings and lists carry a
/// 32-bit length. Layouts (every blob starts with format version 1):
///
///     member         id: UInt32 | isLearner: UInt8 | memberID: UInt64 | name: string
///                    | peerURLs: count UInt32, strings
///     membership     nextNodeID: UInt32 | phase1Quorum: UInt32 | phase2Quorum: UInt32
///                    | members: count UInt32, members
///     history        version: UInt8 = 1 | epochs: count UInt32, (chosenAt: UInt64,
///                    activeFrom: UInt64, membership)
///     change         kind: UInt8 (1 add, 2 remove, 3 promote, 4 update) | fields:
///                    add: isLearner UInt8, memberID UInt64, peerURLs; remove/promote: id UInt32;
///                    update: id UInt32, peerURLs, hasName UInt8 [, name]
///     reconfiguration version: UInt8 = 1 | origin: UInt32 | requestID: UInt64 | change
///                    | membership | activeFrom: UInt64
///     error          kind: UInt8 | reason string (transferFailed only)
public enum MembershipCoding {
    public static let version: UInt8 = 1
    /// Bounds that keep a corrupt or hostile blob from allocating without limit.
    public static let membersMax = 1024
    public static let stringBytesMax = 4096
    public static let urlsMax = 64
    public static let epochsMax = 1024
}

/// A membership blob that does not decode.
public struct MembershipDecodingError: Error, Hashable, Sendable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { "malformed membership data: \(reason)" }
}

struct MembershipWriter {
    var bytes: [UInt8] = []
    mutating func u8(_ value: UInt8) { bytes.append(value) }
    mutating func u32(_ value: UInt32) { for shift in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) } }
    mutating func u64(_ value: UInt64) { for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) } }
    mutating func string(_ value: String) {
        let utf8 = Array(value.utf8)
        u32(UInt32(truncatingIfNeeded: utf8.count))
        bytes.append(contentsOf: utf8)
    }
    mutating func strings(_ values: [String]) {
        u32(UInt32(truncatingIfNeeded: values.count))
        for value in values { string(value) }
    }
    mutating func member(_ member: Member) {
        u32(member.id.rawValue)
        u8(member.isLearner ? 1 : 0)
        u64(member.memberID)
        string(member.name)
        strings(member.peerURLs)
    }
    mutating func membership(_ membership: Membership) {
        u32(membership.nextNodeID)
        u32(UInt32(truncatingIfNeeded: membership.phase1Quorum))
        u32(UInt32(truncatingIfNeeded: membership.phase2Quorum))
        u32(UInt32(truncatingIfNeeded: membership.members.count))
        for member in membership.members { self.member(member) }
    }
    mutating func change(_ change: MembershipChange) {
        switch change {
        case .add(let urls, let isLearner, let memberID):
            u8(1); u8(isLearner ? 1 : 0); u64(memberID); strings(urls)
        case .remove(let id): u8(2); u32(id.rawValue)
        case .promote(let id): u8(3); u32(id.rawValue)
        case .update(let id, let urls, let name):
            u8(4); u32(id.rawValue); strings(urls)
            if let name { u8(1); string(name) } else { u8(0) }
        }
    }
}

struct MembershipReader {
    let bytes: [UInt8]
    var offset = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func u8(_ what: String) throws(MembershipDecodingError) -> UInt8 {
        guard offset < bytes.count else { throw MembershipDecodingError("truncated at \(what)") }
        defer { offset += 1 }
        return bytes[offset]
    }
    mutating func u32(_ what: String) throws(MembershipDecodingError) -> UInt32 {
        guard bytes.count - offset >= 4 else { throw MembershipDecodingError("truncated at \(what)") }
        var value: UInt32 = 0
        for index in 0..<4 { value |= UInt32(bytes[offset + index]) << UInt32(8 * index) }
        offset += 4
        return value
    }
    mutating func u64(_ what: String) throws(MembershipDecodingError) -> UInt64 {
        guard bytes.count - offset >= 8 else { throw MembershipDecodingError("truncated at \(what)") }
        var value: UInt64 = 0
        for index in 0..<8 { value |= UInt64(bytes[offset + index]) << UInt64(8 * index) }
        offset += 8
        return value
    }
    mutating func count(_ what: String, max: Int) throws(MembershipDecodingError) -> Int {
        let count = Int(try u32(what))
        guard count <= max else { throw MembershipDecodingError("\(what) \(count) exceeds \(max)") }
        return count
    }
    mutating func string(_ what: String) throws(MembershipDecodingError) -> String {
        let length = try count(what, max: MembershipCoding.stringBytesMax)
        guard bytes.count - offset >= length else { throw MembershipDecodingError("truncated at \(what)") }
        defer { offset += length }
        return String(decoding: bytes[offset..<(offset + length)], as: UTF8.self)
    }
    mutating func strings(_ what: String) throws(MembershipDecodingError) -> [String] {
        let count = try count(what, max: MembershipCoding.urlsMax)
        var result: [String] = []
        for _ in 0..<count { result.append(try string(what)) }
        return result
    }
    mutating func nodeID(_ what: String) throws(MembershipDecodingError) -> NodeID {
        let raw = try u32(what)
        guard raw >= 1 else { throw MembershipDecodingError("\(what) is 0") }
        return NodeID(raw)
    }
    mutating func member() throws(MembershipDecodingError) -> Member {
        let id = try nodeID("member id")
        let learner = try u8("learner flag") != 0
        let memberID = try u64("member id (etcd)")
        let name = try string("member name")
        let urls = try strings("peer URLs")
        return Member(id: id, isLearner: learner, name: name, peerURLs: urls, memberID: memberID)
    }
    mutating func membership() throws(MembershipDecodingError) -> Membership {
        let next = try u32("next node id")
        let q1 = Int(try u32("phase-1 quorum"))
        let q2 = Int(try u32("phase-2 quorum"))
        let count = try count("members", max: MembershipCoding.membersMax)
        var members: [Member] = []
        for _ in 0..<count { members.append(try member()) }
        guard Set(members.map(\.id)).count == members.count else { throw MembershipDecodingError("a member is listed twice") }
        let voters = members.filter { !$0.isLearner }.count
        guard voters >= 1, (1...voters).contains(q1), (1...voters).contains(q2) else {
            throw MembershipDecodingError("quorums \(q1)/\(q2) do not fit \(voters) voters")
        }
        guard members.allSatisfy({ $0.id.rawValue < next }) else { throw MembershipDecodingError("next node id \(next) is not above every member") }
        return Membership(members: members, nextNodeID: next, phase1Quorum: q1, phase2Quorum: q2)
    }
    mutating func change() throws(MembershipDecodingError) -> MembershipChange {
        switch try u8("change kind") {
        case 1:
            let learner = try u8("learner flag") != 0
            let memberID = try u64("member id (etcd)")
            return .add(peerURLs: try strings("peer URLs"), isLearner: learner, memberID: memberID)
        case 2: return .remove(try nodeID("removed id"))
        case 3: return .promote(try nodeID("promoted id"))
        case 4:
            let id = try nodeID("updated id")
            let urls = try strings("peer URLs")
            let name: String? = try u8("name flag") != 0 ? try string("name") : nil
            return .update(id, peerURLs: urls, name: name)
        case let kind: throw MembershipDecodingError("unknown change kind \(kind)")
        }
    }
    func finish() throws(MembershipDecodingError) {
        guard offset == bytes.count else { throw MembershipDecodingError("\(bytes.count - offset) trailing bytes") }
    }
}

extension MembershipHistory {
    public func encoded() -> [UInt8] {
        var writer = MembershipWriter()
        writer.u8(MembershipCoding.version)
        writer.u32(UInt32(truncatingIfNeeded: epochs.count))
        for epoch in epochs {
            writer.u64(epoch.chosenAt)
            writer.u64(epoch.activeFrom)
            writer.membership(epoch.membership)
        }
        return writer.bytes
    }

    public init(decoding bytes: [UInt8]) throws(MembershipDecodingError) {
        var reader = MembershipReader(bytes)
        let version = try reader.u8("version")
        guard version == MembershipCoding.version else { throw MembershipDecodingError("unknown version \(version)") }
        let count = try reader.count("epochs", max: MembershipCoding.epochsMax)
        guard count >= 1 else { throw MembershipDecodingError("no epochs") }
        var epochs: [MembershipEpoch] = []
        for _ in 0..<count {
            let chosenAt = try reader.u64("chosen slot")
            let activeFrom = try reader.u64("active slot")
            guard activeFrom > chosenAt, activeFrom >= (epochs.last?.activeFrom ?? 1) else {
                throw MembershipDecodingError("epoch active from \(activeFrom) out of order")
            }
            epochs.append(MembershipEpoch(chosenAt: chosenAt, activeFrom: activeFrom, membership: try reader.membership()))
        }
        try reader.finish()
        self.init(epochs: epochs)
    }
}

extension Reconfiguration {
    public func encoded() -> [UInt8] {
        var writer = MembershipWriter()
        writer.u8(MembershipCoding.version)
        writer.u32(origin.rawValue)
        writer.u64(requestID)
        writer.change(change)
        writer.membership(membership)
        writer.u64(activeFrom)
        return writer.bytes
    }

    public init(decoding bytes: [UInt8]) throws(MembershipDecodingError) {
        var reader = MembershipReader(bytes)
        let version = try reader.u8("version")
        guard version == MembershipCoding.version else { throw MembershipDecodingError("unknown version \(version)") }
        let origin = try reader.nodeID("origin")
        let requestID = try reader.u64("request id")
        let change = try reader.change()
        let membership = try reader.membership()
        let activeFrom = try reader.u64("active slot")
        try reader.finish()
        self.init(origin: origin, requestID: requestID, change: change, membership: membership, activeFrom: activeFrom)
    }
}

extension MembershipChange {
    public func encoded() -> [UInt8] {
        var writer = MembershipWriter()
        writer.change(self)
        return writer.bytes
    }

    public init(decoding bytes: [UInt8]) throws(MembershipDecodingError) {
        var reader = MembershipReader(bytes)
        let change = try reader.change()
        try reader.finish()
        self = change
    }
}

extension ReconfigurationError {
    private var code: UInt8 {
        switch self {
        case .notLeader: return 1
        case .memberNotFound: return 2
        case .peerURLExists: return 3
        case .notLearner: return 4
        case .learnerNotReady: return 5
        case .tooManyLearners: return 6
        case .unhealthy: return 7
        case .lastVoter: return 8
        case .nonMajorityQuorums: return 9
        case .busy: return 10
        case .transferFailed: return 11
        case .leaderChanged: return 12
        }
    }

    public func encoded() -> [UInt8] {
        var writer = MembershipWriter()
        writer.u8(code)
        if case .transferFailed(let reason) = self { writer.string(reason) }
        return writer.bytes
    }

    public init(decoding bytes: [UInt8]) throws(MembershipDecodingError) {
        var reader = MembershipReader(bytes)
        let value: ReconfigurationError
        switch try reader.u8("error kind") {
        case 1: value = .notLeader
        case 2: value = .memberNotFound
        case 3: value = .peerURLExists
        case 4: value = .notLearner
        case 5: value = .learnerNotReady
        case 6: value = .tooManyLearners
        case 7: value = .unhealthy
        case 8: value = .lastVoter
        case 9: value = .nonMajorityQuorums
        case 10: value = .busy
        case 11: value = .transferFailed(try reader.string("reason"))
        case 12: value = .leaderChanged
        case let kind: throw MembershipDecodingError("unknown error kind \(kind)")
        }
        try reader.finish()
        self = value
    }
}
