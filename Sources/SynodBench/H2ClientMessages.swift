import Foundation
import NIOCore
import SwiftProtobuf
import SynodEtcdAPI

/// A gRPC-framed request encoded once, whose key bytes are patched in per call: every key of a
/// run has the same length, so the encoding of the request for any key differs from the
/// template only in the key bytes.
///
/// The key positions are found by encoding the request with two keys that differ in every
/// byte and comparing the encodings, so no knowledge of the protobuf layout is assumed.
struct H2KeyedRequest: Sendable {
    let template: ByteBuffer
    let keyOffsets: [Int]
    let keyLength: Int

    /// Nil when the two encodings do not line up (then encode each request instead).
    init?(keyLength: Int, encode: (Data) throws -> [UInt8]) {
        guard keyLength > 0,
              let a = try? encode(Data(repeating: 0x55, count: keyLength)),
              let b = try? encode(Data(repeating: 0xAA, count: keyLength)),
              a.count == b.count
        else { return nil }
        var offsets: [Int] = []
        var index = 0
        while index < a.count {
            if a[index] == b[index] {
                index += 1
                continue
            }
            guard index + keyLength <= a.count,
                  (index..<index + keyLength).allSatisfy({ a[$0] == 0x55 && b[$0] == 0xAA })
            else { return nil }
            offsets.append(5 + index)  // after the gRPC prefix
            index += keyLength
        }
        guard !offsets.isEmpty else { return nil }
        self.template = H2Framing.frame(a)
        self.keyOffsets = offsets
        self.keyLength = keyLength
    }

    /// The framed request for `key` (which must be ``keyLength`` bytes long).
    @inline(__always)
    func body(key: [UInt8]) -> ByteBuffer {
        var body = template
        for offset in keyOffsets { body.setBytes(key, at: offset) }
        return body
    }
}

/// The requests of a KV workload, encoded once for the whole run.
struct H2KVRequests: Sendable {
    let keys: [[UInt8]]
    let put: H2KeyedRequest?
    let range: H2KeyedRequest?
    let putMessage: Etcdserverpb_PutRequest
    let rangeMessage: Etcdserverpb_RangeRequest

    init(keys: [Data], value: Data, serializable: Bool) {
        self.keys = keys.map { [UInt8]($0) }
        var put = Etcdserverpb_PutRequest()
        put.value = value
        var range = Etcdserverpb_RangeRequest()
        range.serializable = serializable
        self.putMessage = put
        self.rangeMessage = range
        let length = keys.first?.count ?? 0
        let uniform = keys.allSatisfy { $0.count == length }
        self.put = uniform ? H2KeyedRequest(keyLength: length) { key in
            var message = put
            message.key = key
            return try message.serializedBytes()
        } : nil
        self.range = uniform ? H2KeyedRequest(keyLength: length) { key in
            var message = range
            message.key = key
            return try message.serializedBytes()
        } : nil
    }

    func putBody(key index: Int) -> ByteBuffer {
        if let put { return put.body(key: keys[index]) }
        var message = putMessage
        message.key = Data(keys[index])
        return Self.frame(message)
    }

    func rangeBody(key index: Int) -> ByteBuffer {
        if let range { return range.body(key: keys[index]) }
        var message = rangeMessage
        message.key = Data(keys[index])
        return Self.frame(message)
    }

    /// `if mod_revision(key) == expected then put else range key`.
    func casBody(key index: Int, expected: Int64) -> ByteBuffer {
        let key = Data(keys[index])
        var compare = Etcdserverpb_Compare()
        compare.key = key
        compare.target = .mod
        compare.result = .equal
        compare.modRevision = expected
        var put = putMessage
        put.key = key
        var success = Etcdserverpb_RequestOp()
        success.requestPut = put
        var read = Etcdserverpb_RangeRequest()
        read.key = key
        var failure = Etcdserverpb_RequestOp()
        failure.requestRange = read
        var txn = Etcdserverpb_TxnRequest()
        txn.compare = [compare]
        txn.success = [success]
        txn.failure = [failure]
        return Self.frame(txn)
    }

    /// A Txn putting keys `range` (for pre-filling the key space).
    func populateBody(_ range: Range<Int>) -> ByteBuffer {
        var txn = Etcdserverpb_TxnRequest()
        txn.success.reserveCapacity(range.count)
        for index in range {
            var put = putMessage
            put.key = Data(keys[index])
            var operation = Etcdserverpb_RequestOp()
            operation.requestPut = put
            txn.success.append(operation)
        }
        return Self.frame(txn)
    }

    /// Frames an encoded message. Encoding a message built here cannot fail (no unknown
    /// fields, no required fields); an empty body would make the server answer with an error.
    static func frame(_ message: some SwiftProtobuf.Message) -> ByteBuffer {
        let bytes: [UInt8] = (try? message.serializedBytes()) ?? []
        return H2Framing.frame(bytes)
    }
}

/// The etcd v3 method paths the load generator calls.
enum H2Paths {
    static let put = "/etcdserverpb.KV/Put"
    static let range = "/etcdserverpb.KV/Range"
    static let txn = "/etcdserverpb.KV/Txn"
}
