/// etcd `RangeRequest`. Zero means "unset" for `limit`, `revision` and the four filters.
public struct RangeRequest: Hashable, Sendable {
    /// Order of the results (etcd `RangeRequest.SortOrder`).
    public enum SortOrder: UInt8, Hashable, Sendable, CaseIterable {
        case none = 0, ascend = 1, descend = 2
    }

    /// Field the results are sorted by (etcd `RangeRequest.SortTarget`).
    public enum SortTarget: UInt8, Hashable, Sendable, CaseIterable {
        case key = 0, version = 1, create = 2, mod = 3, value = 4
    }

    /// The key, or the first key of the range; never empty in a valid request.
    public var key: [UInt8]
    /// Empty: only `key`; `[0]`: every key `>= key`; otherwise `[key, rangeEnd)`.
    public var rangeEnd: [UInt8]
    /// Most keys returned; `<= 0` means no limit.
    public var limit: Int64
    /// Read at this revision; `<= 0` reads at the latest.
    public var revision: Int64
    /// Order of `kvs`.
    public var sortOrder: SortOrder
    /// Field `kvs` are sorted by.
    public var sortTarget: SortTarget
    /// Return keys without values.
    public var keysOnly: Bool
    /// Return only `count`.
    public var countOnly: Bool
    /// Drop keys modified before this revision (0: no bound).
    public var minModRevision: Int64
    /// Drop keys modified after this revision (0: no bound).
    public var maxModRevision: Int64
    /// Drop keys created before this revision (0: no bound).
    public var minCreateRevision: Int64
    /// Drop keys created after this revision (0: no bound).
    public var maxCreateRevision: Int64

    public init(key: [UInt8], rangeEnd: [UInt8] = [], limit: Int64 = 0, revision: Int64 = 0,
                sortOrder: SortOrder = .none, sortTarget: SortTarget = .key, keysOnly: Bool = false,
                countOnly: Bool = false, minModRevision: Int64 = 0, maxModRevision: Int64 = 0,
                minCreateRevision: Int64 = 0, maxCreateRevision: Int64 = 0) {
        self.key = key
        self.rangeEnd = rangeEnd
        self.limit = limit
        self.revision = revision
        self.sortOrder = sortOrder
        self.sortTarget = sortTarget
        self.keysOnly = keysOnly
        self.countOnly = countOnly
        self.minModRevision = minModRevision
        self.maxModRevision = maxModRevision
        self.minCreateRevision = minCreateRevision
        self.maxCreateRevision = maxCreateRevision
    }
}

/// etcd `RangeResponse`; `revision` is the header revision (the store's current revision).
public struct RangeResponse: Hashable, Sendable {
    /// The response header revision.
    public var revision: Int64
    /// Matching keys, after filters, sorting and limit.
    public var kvs: [KeyValue]
    /// More keys matched than `limit` allowed to return.
    public var more: Bool
    /// Keys in the range at the read revision, before `limit` and the revision filters.
    public var count: Int64

    public init(revision: Int64, kvs: [KeyValue], more: Bool, count: Int64) {
        self.revision = revision
        self.kvs = kvs
        self.more = more
        self.count = count
    }
}

/// etcd `PutRequest`.
public struct PutRequest: Hashable, Sendable {
    /// The key, or the first key of the range; never empty in a valid request.
    public var key: [UInt8]
    /// The new value (must be empty with `ignoreValue`).
    public var value: [UInt8]
    /// Lease to attach, 0 for none (must be 0 with `ignoreLease`).
    public var lease: Int64
    /// Return the previous key-value pair(s).
    public var prevKv: Bool
    /// Keep the current value; the key must exist.
    public var ignoreValue: Bool
    /// Keep the current lease; the key must exist.
    public var ignoreLease: Bool

    public init(key: [UInt8], value: [UInt8] = [], lease: Int64 = 0, prevKv: Bool = false,
                ignoreValue: Bool = false, ignoreLease: Bool = false) {
        self.key = key
        self.value = value
        self.lease = lease
        self.prevKv = prevKv
        self.ignoreValue = ignoreValue
        self.ignoreLease = ignoreLease
    }
}

/// etcd `PutResponse`.
public struct PutResponse: Hashable, Sendable {
    /// The response header revision.
    public var revision: Int64
    /// The key before the put, if requested and it existed.
    public var prevKv: KeyValue?

    public init(revision: Int64, prevKv: KeyValue?) {
        self.revision = revision
        self.prevKv = prevKv
    }
}

/// etcd `DeleteRangeRequest`.
public struct DeleteRangeRequest: Hashable, Sendable {
    /// The key, or the first key of the range; never empty in a valid request.
    public var key: [UInt8]
    /// Same convention as `RangeRequest.rangeEnd`.
    public var rangeEnd: [UInt8]
    /// Return the previous key-value pair(s).
    public var prevKv: Bool

    public init(key: [UInt8], rangeEnd: [UInt8] = [], prevKv: Bool = false) {
        self.key = key
        self.rangeEnd = rangeEnd
        self.prevKv = prevKv
    }
}

/// etcd `DeleteRangeResponse`.
public struct DeleteRangeResponse: Hashable, Sendable {
    /// The response header revision.
    public var revision: Int64
    /// Number of keys deleted.
    public var deleted: Int64
    /// The deleted keys, if requested, in key order.
    public var prevKvs: [KeyValue]

    public init(revision: Int64, deleted: Int64, prevKvs: [KeyValue]) {
        self.revision = revision
        self.deleted = deleted
        self.prevKvs = prevKvs
    }
}

/// etcd `Compare`: one guard of a txn.
public struct Compare: Hashable, Sendable {
    /// How the key's field must relate to the operand.
    public enum Result: UInt8, Hashable, Sendable, CaseIterable {
        case equal = 0, greater = 1, less = 2, notEqual = 3
    }

    /// What is compared, with the operand.
    public enum Target: Hashable, Sendable {
        case version(Int64)
        case createRevision(Int64)
        case modRevision(Int64)
        case value([UInt8])
        case lease(Int64)
    }

    /// The key, or the first key of the range; never empty in a valid request.
    public var key: [UInt8]
    /// Same convention as `RangeRequest.rangeEnd`; every key in the range must satisfy the compare.
    public var rangeEnd: [UInt8]
    /// The relation that must hold.
    public var result: Result
    /// The field and operand.
    public var target: Target

    public init(key: [UInt8], rangeEnd: [UInt8] = [], result: Result, target: Target) {
        self.key = key
        self.rangeEnd = rangeEnd
        self.result = result
        self.target = target
    }
}

/// etcd `RequestOp`: one operation of a txn branch.
public enum RequestOp: Hashable, Sendable {
    case range(RangeRequest)
    case put(PutRequest)
    case deleteRange(DeleteRangeRequest)
    case txn(TxnRequest)
}

/// etcd `ResponseOp`.
public enum ResponseOp: Hashable, Sendable {
    case range(RangeResponse)
    case put(PutResponse)
    case deleteRange(DeleteRangeResponse)
    case txn(TxnResponse)
}

/// etcd `TxnRequest`: if every compare holds, run `success`, else `failure`.
public struct TxnRequest: Hashable, Sendable {
    /// Guards; all must hold for `success` to run.
    public var compare: [Compare]
    /// Run if every compare holds.
    public var success: [RequestOp]
    /// Run otherwise.
    public var failure: [RequestOp]

    public init(compare: [Compare] = [], success: [RequestOp] = [], failure: [RequestOp] = []) {
        self.compare = compare
        self.success = success
        self.failure = failure
    }
}

/// etcd `TxnResponse`.
public struct TxnResponse: Hashable, Sendable {
    /// The response header revision.
    public var revision: Int64
    /// Whether every compare held.
    public var succeeded: Bool
    /// One response per operation of the taken branch.
    public var responses: [ResponseOp]

    public init(revision: Int64, succeeded: Bool, responses: [ResponseOp]) {
        self.revision = revision
        self.succeeded = succeeded
        self.responses = responses
    }
}

/// One lease's replicated state, as reported by `LeaseTimeToLive` (minus the remaining time,
/// which only the leader's clock knows).
public struct LeaseInfo: Hashable, Sendable {
    /// The lease id.
    public var id: Int64
    /// TTL in seconds the lease was granted with.
    public var grantedTTL: Int64
    /// Attached keys in key order.
    public var keys: [[UInt8]]

    public init(id: Int64, grantedTTL: Int64, keys: [[UInt8]]) {
        self.id = id
        self.grantedTTL = grantedTTL
        self.keys = keys
    }
}
