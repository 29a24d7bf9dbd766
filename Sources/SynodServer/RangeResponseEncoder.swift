import GRPCCore
import NIOCore
import SwiftProtobuf
import SynodEtcdAPI
import SynodKV

/// Writes etcd's `RangeResponse` protobuf straight from the key-value store's answer into the
/// one buffer that goes on the wire, behind the 5-byte gRPC message prefix. Going through
/// `Etcdserverpb_RangeResponse` copied every value three times before it left (into `Data`,
/// into the serialized bytes, into the outgoing buffer): a range over 1 GiB of values raised
/// the member's resident set by 3.3 GiB. The bytes are the ones SwiftProtobuf writes for the
/// same response (fields in number order, proto3 defaults omitted), which `RangeEncoderTests`
/// checks against it.
///
/// Field numbers (etcd's rpc.proto and kv.proto): RangeResponse header = 1, kvs = 2, more = 3,
/// count = 4; KeyValue key = 1, create_revision = 2, mod_revision = 3, version = 4, value = 5,
/// lease = 6.
enum RangeResponseEncoder {
    /// The largest message a gRPC length prefix can announce that clients accept (2 GiB - 1).
    static let messageBytesMax = Int(Int32.max)

    /// The gRPC-framed response (prefix and message) in one buffer.
    /// - Throws: `RPCError` `resourceExhausted` when the message would exceed `messageBytesMax`.
    static func framed(_ response: RangeResponse, header: Etcdserverpb_ResponseHeader,
                       allocator: ByteBufferAllocator) throws -> ByteBuffer {
        var headerMessage = header
        headerMessage.revision = response.revision
        let headerBytes: [UInt8] = try headerMessage.serializedBytes()
        var size = 1 + varintSize(UInt64(headerBytes.count)) + headerBytes.count
        for kv in response.kvs {
            let body = keyValueSize(kv)
            size += 1 + varintSize(UInt64(body)) + body
        }
        if response.more { size += 2 }
        if response.count != 0 { size += 1 + varintSize(UInt64(bitPattern: response.count)) }
        guard size <= messageBytesMax else {
            throw RPCError(code: .resourceExhausted,
                           message: "etcdserver: range response of \(size) bytes exceeds the \(messageBytesMax)-byte message limit; narrow the range or use --limit")
        }
        var buffer = allocator.buffer(capacity: size + 5)
        FrameGRPCHandler.writePrefix(length: size, into: &buffer)
        writeTag(1, wire: 2, into: &buffer)
        writeVarint(UInt64(headerBytes.count), into: &buffer)
        buffer.writeBytes(headerBytes)
        for kv in response.kvs {
            writeTag(2, wire: 2, into: &buffer)
            writeVarint(UInt64(keyValueSize(kv)), into: &buffer)
            writeBytesField(1, kv.key, into: &buffer)
            writeIntField(2, kv.createRevision, into: &buffer)
            writeIntField(3, kv.modRevision, into: &buffer)
            writeIntField(4, kv.version, into: &buffer)
            writeBytesField(5, kv.value, into: &buffer)
            writeIntField(6, kv.lease, into: &buffer)
        }
        if response.more {
            writeTag(3, wire: 0, into: &buffer)
            buffer.writeInteger(UInt8(1))
        }
        writeIntField(4, response.count, into: &buffer)
        return buffer
    }

    static func keyValueSize(_ kv: KeyValue) -> Int {
        bytesFieldSize(kv.key) + intFieldSize(kv.createRevision) + intFieldSize(kv.modRevision)
            + intFieldSize(kv.version) + bytesFieldSize(kv.value) + intFieldSize(kv.lease)
    }

    private static func bytesFieldSize(_ bytes: [UInt8]) -> Int {
        bytes.isEmpty ? 0 : 1 + varintSize(UInt64(bytes.count)) + bytes.count
    }

    private static func intFieldSize(_ value: Int64) -> Int {
        value == 0 ? 0 : 1 + varintSize(UInt64(bitPattern: value))
    }

    static func varintSize(_ value: UInt64) -> Int {
        var value = value
        var size = 1
        while value >= 0x80 { value >>= 7; size += 1 }
        return size
    }

    private static func writeTag(_ field: UInt8, wire: UInt8, into buffer: inout ByteBuffer) {
        buffer.writeInteger(field << 3 | wire)
    }

    private static func writeVarint(_ value: UInt64, into buffer: inout ByteBuffer) {
        var value = value
        while value >= 0x80 {
            buffer.writeInteger(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        buffer.writeInteger(UInt8(value))
    }

    private static func writeBytesField(_ field: UInt8, _ bytes: [UInt8], into buffer: inout ByteBuffer) {
        guard !bytes.isEmpty else { return }
        writeTag(field, wire: 2, into: &buffer)
        writeVarint(UInt64(bytes.count), into: &buffer)
        buffer.writeBytes(bytes)
    }

    private static func writeIntField(_ field: UInt8, _ value: Int64, into buffer: inout ByteBuffer) {
        guard value != 0 else { return }
        writeTag(field, wire: 0, into: &buffer)
        writeVarint(UInt64(bitPattern: value), into: &buffer)
    }
}
