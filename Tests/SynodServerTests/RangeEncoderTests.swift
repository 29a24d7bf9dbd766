import NIOCore
import SwiftProtobuf
import SynodCore
import SynodEtcdAPI
import SynodKV
import XCTest
@testable import SynodServer

/// The range response written straight into the outgoing buffer is byte for byte what
/// SwiftProtobuf writes for the same `Etcdserverpb_RangeResponse`, behind a correct gRPC prefix.
final class RangeEncoderTests: XCTestCase {
    private func header(_ random: inout SplitMix64) -> Etcdserverpb_ResponseHeader {
        var header = Etcdserverpb_ResponseHeader()
        header.clusterID = random.next() % 3 == 0 ? 0 : random.next()
        header.memberID = random.next()
        header.raftTerm = random.next() % 1000
        return header
    }

    private func int64(_ random: inout SplitMix64) -> Int64 {
        switch random.next() % 5 {
        case 0: return 0
        case 1: return -Int64(random.next() % 1000) - 1
        case 2: return Int64(bitPattern: random.next())
        default: return Int64(random.next() % 100_000)
        }
    }

    private func bytes(_ random: inout SplitMix64, max: Int) -> [UInt8] {
        let count = random.next() % 4 == 0 ? 0 : Int(random.next() % UInt64(max))
        return (0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) }
    }

    private func check(_ response: RangeResponse, _ header: Etcdserverpb_ResponseHeader, file: StaticString = #filePath, line: UInt = #line) throws {
        var framed = try RangeResponseEncoder.framed(response, header: header, allocator: ByteBufferAllocator())
        let compressed = framed.readInteger(as: UInt8.self)
        let length = framed.readInteger(as: UInt32.self)
        let message = framed.readBytes(length: framed.readableBytes) ?? []
        XCTAssertEqual(compressed, 0, file: file, line: line)
        XCTAssertEqual(length.map(Int.init), message.count, file: file, line: line)
        let expected: [UInt8] = try EtcdConversions.rangeResponse(response, header: header).serializedBytes()
        XCTAssertEqual(message, expected, file: file, line: line)
        let decoded = try Etcdserverpb_RangeResponse(serializedBytes: message)
        XCTAssertEqual(decoded, EtcdConversions.rangeResponse(response, header: header), file: file, line: line)
        // In pieces of any size, the same bytes; every piece but the last reaches the size
        // asked for and passes it by less than one key-value.
        let largest = response.kvs.map { RangeResponseEncoder.keyValueSize($0) + 11 }.max() ?? 0
        for target in [1, 7, 100, 1_000, 5_000] {
            var pieces = try RangeResponseEncoder.Pieces(response, header: header)
            var joined: [UInt8] = []
            var sizes: [Int] = []
            while var piece = pieces.next(bytes: target, allocator: ByteBufferAllocator()) {
                sizes.append(piece.readableBytes)
                joined += piece.readBytes(length: piece.readableBytes) ?? []
            }
            XCTAssertTrue(pieces.isFinished, file: file, line: line)
            XCTAssertEqual(joined, [0] + withUnsafeBytes(of: UInt32(expected.count).bigEndian, Array.init) + expected,
                           "pieces of \(target) bytes", file: file, line: line)
            for size in sizes.dropLast() {
                XCTAssertGreaterThanOrEqual(size, target, file: file, line: line)
                XCTAssertLessThan(size, target + largest + 5 + 64, file: file, line: line)
            }
        }
    }

    func testTheDirectEncodingIsSwiftProtobufs() throws {
        var random = SplitMix64(seed: 7)
        for round in 0..<300 {
            let kvs = (0..<Int(random.next() % 6)).map { _ in
                KeyValue(key: bytes(&random, max: 300), createRevision: int64(&random), modRevision: int64(&random),
                         version: int64(&random), value: bytes(&random, max: 400), lease: int64(&random))
            }
            let response = RangeResponse(revision: int64(&random), kvs: kvs, more: random.next() % 2 == 0, count: int64(&random))
            try check(response, header(&random))
            if round == 0 { try check(RangeResponse(revision: 0, kvs: [], more: false, count: 0), Etcdserverpb_ResponseHeader()) }
        }
    }

    func testAValueLongerThanOneVarintByteOfLengthsAndManyKeys() throws {
        var random = SplitMix64(seed: 9)
        var kvs: [KeyValue] = []
        for index in 0..<2_000 {
            let size = index == 7 ? 3_000_000 : 1_024
            let value = [UInt8](repeating: UInt8(index % 251), count: size)
            kvs.append(KeyValue(key: Array("key/\(index)".utf8), createRevision: Int64(index + 1),
                                modRevision: Int64(index + 2), version: 1, value: value, lease: 0))
        }
        try check(RangeResponse(revision: 5_000, kvs: kvs, more: true, count: 9_999), header(&random))
    }
}
