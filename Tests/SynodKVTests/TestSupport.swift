import SynodCore
import XCTest
@testable import SynodKV

/// Bytes of a string (test keys and values are ASCII).
func b(_ string: String) -> [UInt8] { Array(string.utf8) }

extension KVStore {
    @discardableResult
    mutating func put(_ key: String, _ value: String, lease: Int64 = 0) throws -> PutResponse {
        try put(PutRequest(key: b(key), value: b(value), lease: lease)).0
    }

    func get(_ key: String, revision: Int64 = 0) throws -> KeyValue? {
        try range(RangeRequest(key: b(key), revision: revision)).kvs.first
    }

    func keys(_ request: RangeRequest) throws -> [String] {
        try range(request).kvs.map { String(decoding: $0.key, as: UTF8.self) }
    }
}

/// Asserts that `body` throws exactly `expected`, and that its message is etcd's.
func assertKVError<T>(_ expected: KVError, _ message: String, file: StaticString = #filePath, line: UInt = #line,
                      _ body: () throws -> T) {
    XCTAssertEqual(expected.message, message, file: file, line: line)
    do {
        _ = try body()
        XCTFail("expected \(expected)", file: file, line: line)
    } catch let error as KVError {
        XCTAssertEqual(error, expected, file: file, line: line)
        XCTAssertEqual(error.message, message, file: file, line: line)
    } catch {
        XCTFail("unexpected \(error)", file: file, line: line)
    }
}
