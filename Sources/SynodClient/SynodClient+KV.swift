import Foundation
import GRPCCore

/// Sort options of a range request.
public struct SynodSort: Sendable, Hashable {
    public var target: Etcdserverpb_RangeRequest.SortTarget
    public var order: Etcdserverpb_RangeRequest.SortOrder

    public init(target: Etcdserverpb_RangeRequest.SortTarget = .key, order: Etcdserverpb_RangeRequest.SortOrder) {
        self.target = target
        self.order = order
    }
}

extension SynodClient {
    /// Stores `value` under `key`.
    ///
    /// - Parameters:
    ///   - lease: attach the key to this lease (0: none).
    ///   - prevKV: return the previous key-value pair in `prevKv`.
    /// - Note: against Synod, retries on failover are applied at most once; against etcd a
    ///   retried write may apply twice (see ``SynodClient``).
    public func put(
        _ key: some SynodByteString,
        _ value: some SynodByteString,
        lease: Int64 = 0,
        prevKV: Bool = false
    ) async throws -> Etcdserverpb_PutResponse {
        var request = Etcdserverpb_PutRequest()
        request.key = key.synodBytes
        request.value = value.synodBytes
        request.lease = lease
        request.prevKv = prevKV
        return try await self.put(request)
    }

    /// Sends a prepared put request.
    public func put(_ request: Etcdserverpb_PutRequest) async throws -> Etcdserverpb_PutResponse {
        let metadata = Self.requestMetadata()
        return try await self.withFailover { [request] connection, options in
            try await Etcdserverpb_KV.Client(wrapping: connection.grpc).put(request, metadata: metadata, options: options)
        }
    }

    /// Reads a key, a range `[key, rangeEnd)`, or every key starting with `key` (`prefix: true`).
    ///
    /// - Parameters:
    ///   - rangeEnd: end of the range (exclusive); ignored when `prefix` is true.
    ///     `"\0"` means "every key >= key".
    ///   - revision: read at this revision (0: the latest).
    ///   - limit: at most this many keys (0: no limit).
    ///   - serializable: read from the endpoint's local state without a quorum round
    ///     (faster, possibly stale); the default is a linearizable read.
    public func get(
        _ key: some SynodByteString,
        rangeEnd: (any SynodByteString)? = nil,
        prefix: Bool = false,
        revision: Int64 = 0,
        limit: Int64 = 0,
        serializable: Bool = false,
        keysOnly: Bool = false,
        countOnly: Bool = false,
        sort: SynodSort? = nil
    ) async throws -> Etcdserverpb_RangeResponse {
        var request = Etcdserverpb_RangeRequest()
        (request.key, request.rangeEnd) = SynodClient.range(key: key.synodBytes, rangeEnd: rangeEnd, prefix: prefix)
        request.revision = revision
        request.limit = limit
        request.serializable = serializable
        request.keysOnly = keysOnly
        request.countOnly = countOnly
        if let sort {
            request.sortTarget = sort.target
            request.sortOrder = sort.order
        }
        return try await self.range(request)
    }

    /// Sends a prepared range request.
    public func range(_ request: Etcdserverpb_RangeRequest) async throws -> Etcdserverpb_RangeResponse {
        try await self.withFailover { [request] connection, options in
            try await Etcdserverpb_KV.Client(wrapping: connection.grpc).range(request, options: options)
        }
    }

    /// Deletes a key, a range `[key, rangeEnd)`, or every key starting with `key`.
    /// `deleted` in the response counts the keys removed.
    public func delete(
        _ key: some SynodByteString,
        rangeEnd: (any SynodByteString)? = nil,
        prefix: Bool = false,
        prevKV: Bool = false
    ) async throws -> Etcdserverpb_DeleteRangeResponse {
        var request = Etcdserverpb_DeleteRangeRequest()
        (request.key, request.rangeEnd) = SynodClient.range(key: key.synodBytes, rangeEnd: rangeEnd, prefix: prefix)
        request.prevKv = prevKV
        return try await self.deleteRange(request)
    }

    /// Sends a prepared delete-range request.
    public func deleteRange(_ request: Etcdserverpb_DeleteRangeRequest) async throws -> Etcdserverpb_DeleteRangeResponse {
        let metadata = Self.requestMetadata()
        return try await self.withFailover { [request] connection, options in
            try await Etcdserverpb_KV.Client(wrapping: connection.grpc).deleteRange(request, metadata: metadata, options: options)
        }
    }

    /// Runs a transaction: if every compare holds, the `success` operations run, otherwise the
    /// `failure` ones, atomically. Build one with ``SynodTxn`` or parse etcdctl's text format
    /// with ``SynodTxnScript/parse(_:)``.
    public func txn(_ request: Etcdserverpb_TxnRequest) async throws -> Etcdserverpb_TxnResponse {
        let metadata = Self.requestMetadata()
        return try await self.withFailover { [request] connection, options in
            try await Etcdserverpb_KV.Client(wrapping: connection.grpc).txn(request, metadata: metadata, options: options)
        }
    }

    /// Compacts the key-value history up to `revision`: older revisions can no longer be read
    /// or watched from.
    @discardableResult
    public func compact(_ revision: Int64, physical: Bool = false) async throws -> Etcdserverpb_CompactionResponse {
        var request = Etcdserverpb_CompactionRequest()
        request.revision = revision
        request.physical = physical
        return try await self.withFailover { [request] connection, options in
            try await Etcdserverpb_KV.Client(wrapping: connection.grpc).compact(request, options: options)
        }
    }

    /// The key and range end of a request, following etcd's client: with `prefix` the end is
    /// the prefix end; an empty key with a range end of `"\0"` (every key, or every key from
    /// the start) becomes `"\0"` too, since etcd rejects empty keys.
    static func range(key: Data, rangeEnd: (any SynodByteString)?, prefix: Bool) -> (key: Data, rangeEnd: Data) {
        let end = prefix ? SynodKeyRange.prefixEnd(key) : (rangeEnd?.synodBytes ?? Data())
        if key.isEmpty && end == Data([0]) { return (Data([0]), end) }
        return (key, end)
    }
}

extension SynodClient {
    /// The `synod-request-id` header: one random id per logical write, sent with every attempt,
    /// so a Synod server applies a retried write at most once. etcd ignores it.
    static func requestMetadata() -> Metadata {
        var metadata = Metadata()
        let id = UInt64.random(in: 1 ... .max)
        let hex = String(id, radix: 16)
        metadata.addString(String(repeating: "0", count: 16 - hex.count) + hex, forKey: "synod-request-id")
        return metadata
    }
}
