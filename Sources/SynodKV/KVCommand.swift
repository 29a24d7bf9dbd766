import SynodBytes

/// A write to the replicated key space: what `SynodCore.Command.payload` carries.
///
/// Reads are not commands: they are served from the applied state (after a read index or
/// under the leader lease). Lease expiry is decided by the leader and proposed as `leaseRevoke`.
public enum KVCommand: Hashable, Sendable {
    case put(PutRequest)
    case deleteRange(DeleteRangeRequest)
    case txn(TxnRequest)
    case compact(revision: Int64)
    /// `id` is chosen by the leader (never 0) before proposing.
    case leaseGrant(id: Int64, ttlSeconds: Int64)
    case leaseRevoke(id: Int64)
    /// Proves the lease exists and renews it: every replica restarts its local expiry timer
    /// for the lease when this applies (only the leader acts on expiry). Changes no key.
    case leaseKeepAlive(id: Int64)
    /// A member announces its name and client URLs (etcd publishes member attributes through
    /// its log the same way), so every member can answer `MemberList` with them.
    case publishMember(memberID: UInt64, attributes: MemberAttributes)
    /// The replicated integrity check, proposed by the leader every few seconds: every replica
    /// records its own state hash at this point of the log under `id`, then reports it with
    /// `integrityReport`. See `KVStateMachine.applyIntegrityReport`.
    case integrityCheck(id: UInt64)
    /// One member's hash at check `checkID`. Once more than half of `voters` agree on a hash,
    /// every member that reported another one gets the CORRUPT alarm.
    case integrityReport(checkID: UInt64, memberID: UInt64, hash: UInt64, voters: UInt64)
    /// An `integrityReport` written by a version whose state hashes were FNV-1a based (tag 10):
    /// only ever read back from an older log. Counted with the reports of its own kind only, so
    /// a check that straddles an upgrade never compares hashes of two algorithms.
    case integrityReportFNV(checkID: UInt64, memberID: UInt64, hash: UInt64, voters: UInt64)
    /// etcd's alarms (Maintenance.Alarm): raised and cleared through the log so every member
    /// reports the same set.
    case alarm(action: AlarmAction, member: AlarmMember)
    /// A change to users, roles, permissions or whether auth is enabled (etcd's `Auth*`
    /// requests). While auth is enabled it must come `authorized` by a user with the role
    /// `root`.
    case auth(AuthCommand)
    /// A client's write with the caller the server authenticated: `user` and the auth revision
    /// `authRevision` its token carries. When it applies with auth enabled, the caller's
    /// permissions are checked against the auth state of that moment (`AuthStore`); with auth
    /// disabled `command` applies as is. `command` is never itself `authorized`.
    indirect case authorized(user: String, authRevision: UInt64, command: KVCommand)

    /// Format version written as the first byte.
    ///
    /// Layout v1: `[version: u8][tag: u8][body]`, tags put=0, deleteRange=1, txn=2, compact=3,
    /// leaseGrant=4, leaseRevoke=5, leaseKeepAlive=6, publishMember=7, integrityCheck=8, alarm=9,
    /// integrityReportFNV=10 (the report tag before state hashes used XXH64), integrityReport=11,
    /// auth=12 (body: `AuthCommand`'s, see `LittleEndianWriter.authCommand`), authorized=13
    /// (body: `[user string][authRevision u64][command data]`, the data being the inner
    /// command's whole encoding, version byte included); bodies use `LittleEndianWriter`'s
    /// primitives in field order. Tags 12 and 13 were added without a version change: older
    /// builds never wrote them.
    public static let encodingVersion: UInt8 = 1

    /// The versioned binary encoding.
    public func encoded() -> [UInt8] {
        var writer = LittleEndianWriter()
        writer.writeUInt8(Self.encodingVersion)
        switch self {
        case .put(let r): writer.writeUInt8(0); writer.putRequest(r)
        case .deleteRange(let r): writer.writeUInt8(1); writer.deleteRangeRequest(r)
        case .txn(let r): writer.writeUInt8(2); writer.txnRequest(r)
        case .compact(let revision): writer.writeUInt8(3); writer.writeInt64(revision)
        case .leaseGrant(let id, let ttl): writer.writeUInt8(4); writer.writeInt64(id); writer.writeInt64(ttl)
        case .leaseRevoke(let id): writer.writeUInt8(5); writer.writeInt64(id)
        case .leaseKeepAlive(let id): writer.writeUInt8(6); writer.writeInt64(id)
        case .publishMember(let memberID, let attributes):
            writer.writeUInt8(7); writer.writeUInt64(memberID); writer.memberAttributes(attributes)
        case .integrityCheck(let id):
            writer.writeUInt8(8); writer.writeUInt64(id)
        case .integrityReport(let checkID, let memberID, let hash, let voters):
            writer.writeUInt8(11); writer.writeUInt64(checkID); writer.writeUInt64(memberID); writer.writeUInt64(hash); writer.writeUInt64(voters)
        case .integrityReportFNV(let checkID, let memberID, let hash, let voters):
            writer.writeUInt8(10); writer.writeUInt64(checkID); writer.writeUInt64(memberID); writer.writeUInt64(hash); writer.writeUInt64(voters)
        case .alarm(let action, let member):
            writer.writeUInt8(9); writer.writeUInt8(action.rawValue); writer.writeUInt64(member.memberID); writer.writeUInt8(member.alarm.rawValue)
        case .auth(let command):
            writer.writeUInt8(12); writer.authCommand(command)
        case .authorized(let user, let authRevision, let command):
            return Self.encodedAuthorized(user: user, authRevision: authRevision, encodedCommand: command.encoded())
        }
        return writer.bytes
    }

    /// `.authorized(user, authRevision, command).encoded()` from the command's encoding, for a
    /// caller that already has it (the server encodes off its loop, learns the caller on it).
    public static func encodedAuthorized(user: String, authRevision: UInt64, encodedCommand: [UInt8]) -> [UInt8] {
        var writer = LittleEndianWriter()
        writer.writeUInt8(encodingVersion)
        writer.writeUInt8(13); writer.writeString(user); writer.writeUInt64(authRevision); writer.writeBytes(encodedCommand)
        return writer.bytes
    }

    /// Decodes `encoded()` output; any other input throws (never traps).
    public init(decoding bytes: [UInt8]) throws(KVDecodingError) {
        self = try LittleEndianReader.read(bytes) { (reader) throws(KVDecodingError) in try KVCommand(reading: &reader) }
    }

    private init(reading reader: inout LittleEndianReader) throws(KVDecodingError) {
        let version = try reader.u8()
        guard version == Self.encodingVersion else { throw .unsupportedVersion(version) }
        switch try reader.u8() {
        case 0: self = .put(try reader.putRequest())
        case 1: self = .deleteRange(try reader.deleteRangeRequest())
        case 2: self = .txn(try reader.txnRequest(depth: 0))
        case 3: self = .compact(revision: try reader.i64())
        case 4: self = .leaseGrant(id: try reader.i64(), ttlSeconds: try reader.i64())
        case 5: self = .leaseRevoke(id: try reader.i64())
        case 6: self = .leaseKeepAlive(id: try reader.i64())
        case 7: self = .publishMember(memberID: try reader.u64(), attributes: try reader.memberAttributes())
        case 8: self = .integrityCheck(id: try reader.u64())
        case let tag where tag == 10 || tag == 11:
            let checkID = try reader.u64()
            let memberID = try reader.u64()
            let hash = try reader.u64()
            let voters = try reader.u64()
            guard voters >= 1, voters <= 1024 else { throw .invalid }
            self = tag == 11 ? .integrityReport(checkID: checkID, memberID: memberID, hash: hash, voters: voters)
                : .integrityReportFNV(checkID: checkID, memberID: memberID, hash: hash, voters: voters)
        case 9:
            guard let action = AlarmAction(rawValue: try reader.u8()) else { throw .invalid }
            let memberID = try reader.u64()
            guard let alarm = AlarmType(rawValue: try reader.u8()), alarm != .none else { throw .invalid }
            self = .alarm(action: action, member: AlarmMember(memberID: memberID, alarm: alarm))
        case 12: self = .auth(try reader.authCommand())
        case 13:
            let user = try reader.authText()
            let authRevision = try reader.u64()
            let inner = try KVCommand(decoding: try reader.data())
            if case .authorized = inner { throw .invalid }
            self = .authorized(user: user, authRevision: authRevision, command: inner)
        default: throw .invalid
        }
        try reader.finish()
    }
}

/// The answer to one applied `KVCommand`.
public enum KVResponse: Hashable, Sendable {
    case put(PutResponse)
    case deleteRange(DeleteRangeResponse)
    case txn(TxnResponse)
    /// Compaction takes no revision; `revision` is the header revision.
    case compact(revision: Int64)
    case leaseGrant(id: Int64, ttlSeconds: Int64, revision: Int64)
    case leaseRevoke(revision: Int64)
    case leaseKeepAlive(id: Int64, ttlSeconds: Int64, revision: Int64)
    case publishMember(revision: Int64)
    /// Integrity checks and alarm changes: nothing but the header revision.
    case maintenance(revision: Int64)
    /// An applied `AuthCommand`: nothing but the header revision (the key space's; the auth
    /// revision is `AuthStore.revision`).
    case auth(revision: Int64)

    /// The response header's revision: the store's revision once the command applied.
    public var revision: Int64 {
        switch self {
        case .put(let r): return r.revision
        case .deleteRange(let r): return r.revision
        case .txn(let r): return r.revision
        case .compact(let revision): return revision
        case .leaseGrant(_, _, let revision): return revision
        case .leaseRevoke(let revision): return revision
        case .leaseKeepAlive(_, _, let revision): return revision
        case .publishMember(let revision): return revision
        case .maintenance(let revision): return revision
        case .auth(let revision): return revision
        }
    }
}

/// A member's self-published attributes (replicated, part of snapshots).
public struct MemberAttributes: Hashable, Sendable {
    public static let clientURLsMax = 16
    public static let textBytesMax = 1024
    public var name: String
    public var clientURLs: [String]

    public init(name: String, clientURLs: [String]) {
        self.name = name
        self.clientURLs = clientURLs
    }
}

extension LittleEndianWriter {
    mutating func memberAttributes(_ attributes: MemberAttributes) {
        writeString(attributes.name)
        writeCount(attributes.clientURLs.count)
        for url in attributes.clientURLs { writeString(url) }
    }
}

extension LittleEndianReader {
    mutating func memberAttributes() throws(KVDecodingError) -> MemberAttributes {
        let name = try text()
        let urlCount = try count(elementBytesMin: 4)
        guard urlCount <= MemberAttributes.clientURLsMax else { throw .invalid }
        var urls: [String] = []
        for _ in 0..<urlCount { urls.append(try text()) }
        return MemberAttributes(name: name, clientURLs: urls)
    }

    private mutating func text() throws(KVDecodingError) -> String {
        let bytes = try data()
        guard bytes.count <= MemberAttributes.textBytesMax else { throw .invalid }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// etcd's alarm types (`AlarmType` in rpc.proto, same numbers).
public enum AlarmType: UInt8, Hashable, Sendable, Comparable {
    case none = 0
    case noSpace = 1
    case corrupt = 2

    public static func < (lhs: AlarmType, rhs: AlarmType) -> Bool { lhs.rawValue < rhs.rawValue }
    /// etcd's name, as in "alarm:CORRUPT".
    public var name: String {
        switch self {
        case .none: return "NONE"
        case .noSpace: return "NOSPACE"
        case .corrupt: return "CORRUPT"
        }
    }
}

/// Raise or clear (etcd's ACTIVATE / DEACTIVATE).
public enum AlarmAction: UInt8, Hashable, Sendable {
    case activate = 1
    case deactivate = 2
}

/// One raised alarm: which member, which alarm.
public struct AlarmMember: Hashable, Sendable, Comparable {
    public var memberID: UInt64
    public var alarm: AlarmType

    public init(memberID: UInt64, alarm: AlarmType) {
        self.memberID = memberID
        self.alarm = alarm
    }

    public static func < (lhs: AlarmMember, rhs: AlarmMember) -> Bool {
        (lhs.memberID, lhs.alarm) < (rhs.memberID, rhs.alarm)
    }
}
