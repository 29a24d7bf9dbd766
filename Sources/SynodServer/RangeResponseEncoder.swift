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

    /// A response larger than this leaves in pieces (`Pieces`) rather than in one buffer.
    static let streamedBytesMin = 4 << 20
    /// The size of each piece of a streamed response (one key-value may make a piece longer).
    static let pieceBytes = 1 << 20

    /// The gRPC-framed response (prefix and message) in one buffer.
    /// - Throws: `RPCError` `resourceExhausted` when the message would exceed `messageBytesMax`.
    static func framed(_ response: RangeResponse, header: Etcdserverpb_ResponseHeader,
                       allocator: ByteBufferAllocator) throws -> ByteBuffer {
        var pieces = try Pieces(response, header: header)
        return pieces.rest(allocator: allocator)
    }

    /// One gRPC-framed range response written out piece by piece: the prefix announces the
    /// whole message's length, then each `next` encodes the following key-values, about
    /// `bytes` at a time, straight from the store's values (which the response shares, not
    /// copies). Whoever sends it asks for the next piece once the previous ones have left, so a
    /// range over 1 GiB holds a few pieces in memory instead of a second copy of the values
    /// (`FrameGRPCHandler` keeps `piecesInFlightMax` pieces queued per stream). The bytes, put
    /// together, are the same whatever the pieces' size.
    struct Pieces: Sendable {
        let response: RangeResponse
        private let headerBytes: [UInt8]
        /// The message's length (without the 5-byte prefix).
        let size: Int
        /// Where the next piece starts: before the prefix, at a key-value, or done.
        private var position: Position = .start

        private enum Position: Sendable { case start, keyValue(Int), done }

        /// - Throws: `RPCError` `resourceExhausted` when the message would exceed `messageBytesMax`.
        init(_ response: RangeResponse, header: Etcdserverpb_ResponseHeader) throws {
            var headerMessage = header
            headerMessage.revision = response.revision
            let headerBytes: [UInt8] = try headerMessage.serializedBytes()
            var size = 1 + varintSize(UInt64(headerBytes.count)) + headerBytes.count
            for kv in response.kvs {
                size += RangeResponseEncoder.keyValueFieldSize(kv)
            }
            size += RangeResponseEncoder.trailerSize(response)
            guard size <= messageBytesMax else {
                throw RPCError(code: .resourceExhausted,
                               message: "etcdserver: range response of \(size) bytes exceeds the \(messageBytesMax)-byte message limit; narrow the range or use --limit")
            }
            self.response = response
            self.headerBytes = headerBytes
            self.size = size
        }

        /// True once every piece has been handed out.
        var isFinished: Bool {
            if case .done = position { return true }
            return false
        }

        /// Everything not yet handed out, in one buffer (the whole framed response when no
        /// piece was taken).
        mutating func rest(allocator: ByteBufferAllocator) -> ByteBuffer {
            next(bytes: .max, allocator: allocator) ?? allocator.buffer(capacity: 0)
        }

        /// The next piece, at least `bytes` long unless it is the last (nil once all were
        /// handed out). The first carries the gRPC prefix and the header, the last `more` and
        /// `count`.
        mutating func next(bytes target: Int, allocator: ByteBufferAllocator) -> ByteBuffer? {
            var first: Int
            var pieceSize = 0
            let opening: Bool
            switch position {
            case .done: return nil
            case .start:
                opening = true
                first = 0
                pieceSize = 5 + 1 + varintSize(UInt64(headerBytes.count)) + headerBytes.count
            case .keyValue(let index):
                opening = false
                first = index
            }
            let kvs = response.kvs
            var end = first
            while end < kvs.count, pieceSize < target {
                pieceSize += RangeResponseEncoder.keyValueFieldSize(kvs[end])
                end += 1
            }
            let closing = end == kvs.count
            if closing { pieceSize += RangeResponseEncoder.trailerSize(response) }
            var buffer = allocator.buffer(capacity: pieceSize)
            if opening {
                FrameGRPCHandler.writePrefix(length: size, into: &buffer)
                writeTag(1, wire: 2, into: &buffer)
                writeVarint(UInt64(headerBytes.count), into: &buffer)
                buffer.writeBytes(headerBytes)
            }
            while first < end {
                RangeResponseEncoder.writeKeyValueField(kvs[first], into: &buffer)
                first += 1
            }
            if closing {
                if response.more {
                    writeTag(3, wire: 0, into: &buffer)
                    buffer.writeInteger(UInt8(1))
                }
                writeIntField(4, response.count, into: &buffer)
                position = .done
            } else {
                position = .keyValue(end)
            }
            return buffer
        }
    }

    private static func keyValueFieldSize(_ kv: KeyValue) -> Int {
        let body = keyValueSize(kv)
        return 1 + varintSize(UInt64(body)) + body
    }

    private static func trailerSize(_ response: RangeResponse) -> Int {
        (response.more ? 2 : 0) + (response.count != 0 ? 1 + varintSize(UInt64(bitPattern: response.count)) : 0)
    }

    private static func writeKeyValueField(_ kv: KeyValue, into buffer: inout ByteBuffer) {
        writeTag(2, wire: 2, into: &buffer)
        writeVarint(UInt64(keyValueSize(kv)), into: &buffer)
        writeBytesField(1, kv.key, into: &buffer)
        writeIntField(2, kv.createRevision, into: &buffer)
        writeIntField(3, kv.modRevision, into: &buffer)
        writeIntField(4, kv.version, into: &buffer)
        writeBytesField(5, kv.value, into: &buffer)
        writeIntField(6, kv.lease, into: &buffer)
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
