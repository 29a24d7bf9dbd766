/// One key's state at some revision, mirroring etcd's `mvccpb.KeyValue`.
public struct KeyValue: Hashable, Sendable {
    /// Never empty for a stored key.
    public var key: [UInt8]
    /// Revision of the put that created the key's current generation.
    public var createRevision: Int64
    /// Revision of the last write to the key.
    public var modRevision: Int64
    /// 1 on creation, +1 per put; reset when the key is deleted.
    public var version: Int64
    /// Empty for a delete event's `kv` and for `keysOnly` ranges.
    public var value: [UInt8]
    /// Attached lease id, 0 for none.
    public var lease: Int64

    public init(key: [UInt8], createRevision: Int64 = 0, modRevision: Int64 = 0, version: Int64 = 0,
                value: [UInt8] = [], lease: Int64 = 0) {
        self.key = key
        self.createRevision = createRevision
        self.modRevision = modRevision
        self.version = version
        self.value = value
        self.lease = lease
    }
}

/// A position in the store's history: the main revision of a write request and the order of
/// the write within it (a txn's writes share the main revision).
public struct Revision: Hashable, Sendable, Comparable {
    /// The request's revision.
    public var main: Int64
    /// Order of the write within the request, from 0.
    public var sub: Int64

    public init(main: Int64, sub: Int64 = 0) {
        self.main = main
        self.sub = sub
    }

    /// Orders by main revision, then sub-revision.
    public static func < (lhs: Revision, rhs: Revision) -> Bool {
        (lhs.main, lhs.sub) < (rhs.main, rhs.sub)
    }
}

/// A change to one key, as delivered to watchers (etcd's `mvccpb.Event`).
public struct WatchEvent: Hashable, Sendable {
    /// etcd `mvccpb.Event.EventType`.
    public enum Kind: UInt8, Hashable, Sendable {
        case put = 0
        case delete = 1
    }

    /// Put or delete.
    public var kind: Kind
    /// For a delete, etcd sends only the key and the deleting `modRevision`.
    public var kv: KeyValue
    /// The key's previous state, when it still exists in history.
    public var prevKv: KeyValue?
    /// Sub-revision inside the main revision `kv.modRevision`; orders events of one txn.
    public var sub: Int64

    public init(kind: Kind, kv: KeyValue, prevKv: KeyValue?, sub: Int64) {
        self.kind = kind
        self.kv = kv
        self.prevKv = prevKv
        self.sub = sub
    }
}

/// Operating errors of the key space. `message` is exactly the string etcd clients expect.
public enum KVError: Error, Hashable, Sendable, CustomStringConvertible {
    case emptyKey
    case keyNotFound
    case valueProvided
    case leaseProvided
    case leaseNotFound
    case leaseExists
    case leaseTTLTooLarge
    case compacted
    case futureRevision
    case duplicateKey
    case tooManyOperations
    /// A command's bytes could not be decoded (never produced by a correct proposer).
    case malformedCommand
    // Auth (etcd's `rpctypes.ErrGRPC…` of the same names).
    case rootUserNotExist
    case rootRoleNotExist
    case userAlreadyExists
    case userEmpty
    case userNotFound
    case roleAlreadyExists
    case roleNotFound
    case roleEmpty
    /// Raised by the server (Authenticate), never by the state machine.
    case authFailed
    case permissionNotGiven
    case permissionDenied
    case roleNotGranted
    case permissionNotGranted
    /// Raised by the server (Authenticate while auth is disabled).
    case authNotEnabled
    /// Raised by the server (a token it cannot verify).
    case invalidAuthToken
    case invalidAuthManagement
    case authOldRevision

    /// etcd's error string (the gRPC status message).
    public var message: String {
        switch self {
        case .emptyKey: return "etcdserver: key is not provided"
        case .keyNotFound: return "etcdserver: key not found"
        case .valueProvided: return "etcdserver: value is provided"
        case .leaseProvided: return "etcdserver: lease is provided"
        case .leaseNotFound: return "etcdserver: requested lease not found"
        case .leaseExists: return "etcdserver: lease already exists"
        case .leaseTTLTooLarge: return "etcdserver: too large lease TTL"
        case .compacted: return "etcdserver: mvcc: required revision has been compacted"
        case .futureRevision: return "etcdserver: mvcc: required revision is a future revision"
        case .duplicateKey: return "etcdserver: duplicate key given in txn request"
        case .tooManyOperations: return "etcdserver: too many operations in txn request"
        case .malformedCommand: return "synod: malformed kv command"
        case .rootUserNotExist: return "etcdserver: root user does not exist"
        case .rootRoleNotExist: return "etcdserver: root user does not have root role"
        case .userAlreadyExists: return "etcdserver: user name already exists"
        case .userEmpty: return "etcdserver: user name is empty"
        case .userNotFound: return "etcdserver: user name not found"
        case .roleAlreadyExists: return "etcdserver: role name already exists"
        case .roleNotFound: return "etcdserver: role name not found"
        case .roleEmpty: return "etcdserver: role name is empty"
        case .authFailed: return "etcdserver: authentication failed, invalid user ID or password"
        case .permissionNotGiven: return "etcdserver: permission not given"
        case .permissionDenied: return "etcdserver: permission denied"
        case .roleNotGranted: return "etcdserver: role is not granted to the user"
        case .permissionNotGranted: return "etcdserver: permission is not granted to the role"
        case .authNotEnabled: return "etcdserver: authentication is not enabled"
        case .invalidAuthToken: return "etcdserver: invalid auth token"
        case .invalidAuthManagement: return "etcdserver: invalid auth management"
        case .authOldRevision: return "etcdserver: revision of auth store is old"
        }
    }

    /// The gRPC status code etcd answers this error with (`codes.Code` numbering).
    public var grpcStatusCode: Int {
        switch self {
        case .emptyKey, .keyNotFound, .valueProvided, .leaseProvided, .duplicateKey, .tooManyOperations,
             .userEmpty, .roleEmpty, .authFailed, .permissionNotGiven, .invalidAuthManagement, .authOldRevision:
            return 3 // InvalidArgument
        case .leaseNotFound: return 5 // NotFound
        case .permissionDenied: return 7 // PermissionDenied
        case .leaseExists, .rootUserNotExist, .rootRoleNotExist, .userAlreadyExists, .userNotFound, .roleAlreadyExists,
             .roleNotFound, .roleNotGranted, .permissionNotGranted, .authNotEnabled:
            return 9 // FailedPrecondition
        case .invalidAuthToken: return 16 // Unauthenticated
        case .leaseTTLTooLarge, .compacted, .futureRevision: return 11 // OutOfRange
        case .malformedCommand: return 13 // Internal: a correct proposer never produces one
        }
    }

    /// etcd's message.
    public var description: String { message }
}
