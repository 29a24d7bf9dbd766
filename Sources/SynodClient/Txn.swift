import Foundation

/// Builders for transaction requests.
///
/// ```swift
/// let request = SynodTxn.request(
///     compare: [.value("k", .equal, "v1")],
///     success: [.put("k", "v2")],
///     failure: [.get("k")]
/// )
/// let response = try await client.txn(request)
/// ```
public enum SynodTxn {
    /// A transaction request from its three parts.
    public static func request(
        compare: [Etcdserverpb_Compare],
        success: [Etcdserverpb_RequestOp],
        failure: [Etcdserverpb_RequestOp] = []
    ) -> Etcdserverpb_TxnRequest {
        var request = Etcdserverpb_TxnRequest()
        request.compare = compare
        request.success = success
        request.failure = failure
        return request
    }
}

extension Etcdserverpb_Compare {
    private static func make(
        _ key: some SynodByteString, _ target: CompareTarget, _ result: CompareResult, _ union: OneOf_TargetUnion
    ) -> Self {
        var compare = Self()
        compare.key = key.synodBytes
        compare.target = target
        compare.result = result
        compare.targetUnion = union
        return compare
    }

    /// Compares the key's value (bytes).
    public static func value(_ key: some SynodByteString, _ result: CompareResult, _ value: some SynodByteString) -> Self {
        make(key, .value, result, .value(value.synodBytes))
    }

    /// Compares the key's version (number of puts since creation; 0 if the key is absent).
    public static func version(_ key: some SynodByteString, _ result: CompareResult, _ version: Int64) -> Self {
        make(key, .version, result, .version(version))
    }

    /// Compares the revision at which the key was created (0 if the key is absent).
    public static func createRevision(_ key: some SynodByteString, _ result: CompareResult, _ revision: Int64) -> Self {
        make(key, .create, result, .createRevision(revision))
    }

    /// Compares the revision of the key's last modification (0 if the key is absent).
    public static func modRevision(_ key: some SynodByteString, _ result: CompareResult, _ revision: Int64) -> Self {
        make(key, .mod, result, .modRevision(revision))
    }

    /// Compares the lease the key is attached to (0 if none).
    public static func lease(_ key: some SynodByteString, _ result: CompareResult, _ lease: Int64) -> Self {
        make(key, .lease, result, .lease(lease))
    }
}

extension Etcdserverpb_RequestOp {
    /// A put inside a transaction.
    public static func put(
        _ key: some SynodByteString, _ value: some SynodByteString, lease: Int64 = 0, prevKV: Bool = false
    ) -> Self {
        var put = Etcdserverpb_PutRequest()
        put.key = key.synodBytes
        put.value = value.synodBytes
        put.lease = lease
        put.prevKv = prevKV
        var op = Self()
        op.request = .requestPut(put)
        return op
    }

    /// A range read inside a transaction (a single key unless `rangeEnd` or `prefix` is given).
    public static func get(
        _ key: some SynodByteString,
        rangeEnd: (any SynodByteString)? = nil,
        prefix: Bool = false,
        limit: Int64 = 0,
        keysOnly: Bool = false,
        countOnly: Bool = false
    ) -> Self {
        var range = Etcdserverpb_RangeRequest()
        (range.key, range.rangeEnd) = SynodClient.range(key: key.synodBytes, rangeEnd: rangeEnd, prefix: prefix)
        range.limit = limit
        range.keysOnly = keysOnly
        range.countOnly = countOnly
        var op = Self()
        op.request = .requestRange(range)
        return op
    }

    /// A delete inside a transaction (a single key unless `rangeEnd` or `prefix` is given).
    public static func delete(
        _ key: some SynodByteString,
        rangeEnd: (any SynodByteString)? = nil,
        prefix: Bool = false,
        prevKV: Bool = false
    ) -> Self {
        var delete = Etcdserverpb_DeleteRangeRequest()
        (delete.key, delete.rangeEnd) = SynodClient.range(key: key.synodBytes, rangeEnd: rangeEnd, prefix: prefix)
        delete.prevKv = prevKV
        var op = Self()
        op.request = .requestDeleteRange(delete)
        return op
    }
}
