import SynodBytes

/// Binary encoding of the membership types, shared by the WAL, snapshot files and the peer
/// codec so that all three agree byte for byte. Little-endian, through SynodBytes' writer and
/// reader; strings (UTF-8) and lists carry a 32-bit length. Layouts (every history and
/// reconfiguration blob starts with format version 1):
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

extension MembershipCoding {
    /// Decodes a whole blob with `body`, which must consume all of it. The reader's reasons
    /// (which field was truncated or out of bounds) become the `MembershipDecodingError`.
    static func decode<T>(
        _ bytes: [UInt8], _ body: (inout LittleEndianReader) throws(ByteDecodingError) -> T
    ) throws(MembershipDecodingError) -> T {
        do {
            return try LittleEndianReader.read(bytes) { (reader) throws(ByteDecodingError) -> T in
                let value = try body(&reader)
                guard reader.remaining == 0 else { throw ByteDecodingError("\(reader.remaining) trailing bytes") }
                return value
            }
        } catch {
            throw MembershipDecodingError(error.reason)
        }
    }

    /// The smallest encodings of the repeated elements (a member with an empty name and no
    /// URLs; an epoch with an empty member list), so a hostile count is refused before any
    /// array grows.
    static let memberLengthMin = 4 + 1 + 8 + 4 + 4
    static let epochLengthMin = 8 + 8 + 4 * 4
}

extension LittleEndianWriter {
    mutating func writeStrings(_ values: [String]) {
        writeCount(values.count)
        for value in values { writeString(value) }
    }

    mutating func writeMember(_ member: Member) {
        writeUInt32(member.id.rawValue)
        writeBool(member.isLearner)
        writeUInt64(member.memberID)
        writeString(member.name)
        writeStrings(member.peerURLs)
    }

    mutating func writeMembership(_ membership: Membership) {
        writeUInt32(membership.nextNodeID)
        writeCount(membership.phase1Quorum)
        writeCount(membership.phase2Quorum)
        writeCount(membership.members.count)
        for member in membership.members { writeMember(member) }
    }

    mutating func writeChange(_ change: MembershipChange) {
        switch change {
        case .add(let urls, let isLearner, let memberID):
            writeUInt8(1); writeBool(isLearner); writeUInt64(memberID); writeStrings(urls)
        case .remove(let id): writeUInt8(2); writeUInt32(id.rawValue)
        case .promote(let id): writeUInt8(3); writeUInt32(id.rawValue)
        case .update(let id, let urls, let name):
            writeUInt8(4); writeUInt32(id.rawValue); writeStrings(urls)
            if let name { writeUInt8(1); writeString(name) } else { writeUInt8(0) }
        }
    }
}

// Flags are read as "non-zero is set" (not strictly 0/1): that is how these blobs have
// always been read, and a stricter reader could refuse a directory an older build accepted.
extension LittleEndianReader {
    mutating func readStrings(_ field: StaticString) throws(ByteDecodingError) -> [String] {
        let count = try readCount(field, limit: MembershipCoding.urlsMax, elementLengthMin: 4)
        var result: [String] = []
        for _ in 0..<count { result.append(try readString(field, limit: MembershipCoding.stringBytesMax)) }
        return result
    }

    mutating func readNodeID(_ field: StaticString) throws(ByteDecodingError) -> NodeID {
        let raw = try readUInt32(field)
        guard raw >= 1 else { throw ByteDecodingError("\(field) is 0") }
        return NodeID(raw)
    }

    mutating func readMember() throws(ByteDecodingError) -> Member {
        let id = try readNodeID("member id")
        let learner = try readUInt8("learner flag") != 0
        let memberID = try readUInt64("member id (etcd)")
        let name = try readString("member name", limit: MembershipCoding.stringBytesMax)
        let urls = try readStrings("peer URLs")
        return Member(id: id, isLearner: learner, name: name, peerURLs: urls, memberID: memberID)
    }

    mutating func readMembership() throws(ByteDecodingError) -> Membership {
        let next = try readUInt32("next node id")
        let q1 = Int(try readUInt32("phase-1 quorum"))
        let q2 = Int(try readUInt32("phase-2 quorum"))
        let count = try readCount("members", limit: MembershipCoding.membersMax, elementLengthMin: MembershipCoding.memberLengthMin)
        var members: [Member] = []
        for _ in 0..<count { members.append(try readMember()) }
        guard Set(members.map(\.id)).count == members.count else { throw ByteDecodingError("a member is listed twice") }
        let voters = members.filter { !$0.isLearner }.count
        guard voters >= 1, (1...voters).contains(q1), (1...voters).contains(q2) else {
            throw ByteDecodingError("quorums \(q1)/\(q2) do not fit \(voters) voters")
        }
        guard members.allSatisfy({ $0.id.rawValue < next }) else { throw ByteDecodingError("next node id \(next) is not above every member") }
        return Membership(members: members, nextNodeID: next, phase1Quorum: q1, phase2Quorum: q2)
    }

    mutating func readChange() throws(ByteDecodingError) -> MembershipChange {
        switch try readUInt8("change kind") {
        case 1:
            let learner = try readUInt8("learner flag") != 0
            let memberID = try readUInt64("member id (etcd)")
            return .add(peerURLs: try readStrings("peer URLs"), isLearner: learner, memberID: memberID)
        case 2: return .remove(try readNodeID("removed id"))
        case 3: return .promote(try readNodeID("promoted id"))
        case 4:
            let id = try readNodeID("updated id")
            let urls = try readStrings("peer URLs")
            let name: String? = try readUInt8("name flag") != 0 ? try readString("name", limit: MembershipCoding.stringBytesMax) : nil
            return .update(id, peerURLs: urls, name: name)
        case let kind: throw ByteDecodingError("unknown change kind \(kind)")
        }
    }

    /// The version byte every history and reconfiguration blob starts with.
    mutating func readMembershipVersion() throws(ByteDecodingError) {
        let version = try readUInt8("version")
        guard version == MembershipCoding.version else { throw ByteDecodingError("unknown version \(version)") }
    }
}

extension MembershipHistory {
    public func encoded() -> [UInt8] {
        var writer = LittleEndianWriter()
        writer.writeUInt8(MembershipCoding.version)
        writer.writeCount(epochs.count)
        for epoch in epochs {
            writer.writeUInt64(epoch.chosenAt)
            writer.writeUInt64(epoch.activeFrom)
            writer.writeMembership(epoch.membership)
        }
        return writer.bytes
    }

    public init(decoding bytes: [UInt8]) throws(MembershipDecodingError) {
        let epochs = try MembershipCoding.decode(bytes) { (reader) throws(ByteDecodingError) -> [MembershipEpoch] in
            try reader.readMembershipVersion()
            let count = try reader.readCount("epochs", limit: MembershipCoding.epochsMax, elementLengthMin: MembershipCoding.epochLengthMin)
            guard count >= 1 else { throw ByteDecodingError("no epochs") }
            var epochs: [MembershipEpoch] = []
            for _ in 0..<count {
                let chosenAt = try reader.readUInt64("chosen slot")
                let activeFrom = try reader.readUInt64("active slot")
                guard activeFrom > chosenAt, activeFrom >= (epochs.last?.activeFrom ?? 1) else {
                    throw ByteDecodingError("epoch active from \(activeFrom) out of order")
                }
                epochs.append(MembershipEpoch(chosenAt: chosenAt, activeFrom: activeFrom, membership: try reader.readMembership()))
            }
            return epochs
        }
        self.init(epochs: epochs)
    }
}

extension Reconfiguration {
    public func encoded() -> [UInt8] {
        var writer = LittleEndianWriter()
        writer.writeUInt8(MembershipCoding.version)
        writer.writeUInt32(origin.rawValue)
        writer.writeUInt64(requestID)
        writer.writeChange(change)
        writer.writeMembership(membership)
        writer.writeUInt64(activeFrom)
        return writer.bytes
    }

    public init(decoding bytes: [UInt8]) throws(MembershipDecodingError) {
        self = try MembershipCoding.decode(bytes) { (reader) throws(ByteDecodingError) -> Reconfiguration in
            try reader.readMembershipVersion()
            let origin = try reader.readNodeID("origin")
            let requestID = try reader.readUInt64("request id")
            let change = try reader.readChange()
            let membership = try reader.readMembership()
            let activeFrom = try reader.readUInt64("active slot")
            return Reconfiguration(origin: origin, requestID: requestID, change: change, membership: membership, activeFrom: activeFrom)
        }
    }
}

extension MembershipChange {
    public func encoded() -> [UInt8] {
        var writer = LittleEndianWriter()
        writer.writeChange(self)
        return writer.bytes
    }

    public init(decoding bytes: [UInt8]) throws(MembershipDecodingError) {
        self = try MembershipCoding.decode(bytes) { (reader) throws(ByteDecodingError) in try reader.readChange() }
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
        var writer = LittleEndianWriter()
        writer.writeUInt8(code)
        if case .transferFailed(let reason) = self { writer.writeString(reason) }
        return writer.bytes
    }

    public init(decoding bytes: [UInt8]) throws(MembershipDecodingError) {
        self = try MembershipCoding.decode(bytes) { (reader) throws(ByteDecodingError) -> ReconfigurationError in
            switch try reader.readUInt8("error kind") {
            case 1: return .notLeader
            case 2: return .memberNotFound
            case 3: return .peerURLExists
            case 4: return .notLearner
            case 5: return .learnerNotReady
            case 6: return .tooManyLearners
            case 7: return .unhealthy
            case 8: return .lastVoter
            case 9: return .nonMajorityQuorums
            case 10: return .busy
            case 11: return .transferFailed(try reader.readString("reason", limit: MembershipCoding.stringBytesMax))
            case 12: return .leaderChanged
            case let kind: throw ByteDecodingError("unknown error kind \(kind)")
            }
        }
    }
}
