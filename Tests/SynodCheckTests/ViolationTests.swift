import SynodCheck
import XCTest

/// Hand-made histories with no valid linearization: the report must name the
/// right key and include the operation that cannot be placed.
final class ViolationTests: XCTestCase {
    func testStaleReadAfterCompletedWrite() {
        var h = HistoryBuilder()
        h.write("k1", "v1", client: 1, 0, 10)
        h.write("k1", "v2", client: 1, 20, 30)
        let stale = h.read("k1", "v1", client: 2, 40, 50)
        let violation = assertViolation(h.operations, key: "k1", including: stale)
        let explanation = violation?.explanation ?? ""
        XCTAssertTrue(explanation.hasPrefix(#"op #3 read(k1) -> "v1" by client 2 at [40, 50] cannot be linearized"#),
                      explanation)
        XCTAssertTrue(explanation.contains(#"the value is "v2""#), explanation)
        XCTAssertTrue(explanation.contains(#"write(k1, "v2")"#), explanation)
    }

    func testReadOfValueNeverWritten() {
        var h = HistoryBuilder()
        h.write("k1", "v1", client: 1, 0, 10)
        h.write("k2", "v1", client: 1, 0, 10)
        let bogus = h.read("k2", "ghost", client: 2, 5, 50)
        h.read("k1", "v1", client: 3, 20, 30)
        assertViolation(h.operations, key: "k2", including: bogus)
    }

    func testLostCompareAndSet() {
        var h = HistoryBuilder()
        h.cas("k", nil, "a", succeeded: true, client: 1, 0, 10)
        let read = h.read("k", nil, client: 2, 20, 30)
        assertViolation(h.operations, key: "k", including: read)
    }

    func testTwoCompareAndSetsSucceedFromSameExpectedValue() {
        var h = HistoryBuilder()
        let first = h.cas("k", nil, "a", succeeded: true, client: 1, 0, 10)
        let second = h.cas("k", nil, "b", succeeded: true, client: 2, 0, 10)
        let violation = assertViolation(h.operations, key: "k")
        let involved = violation?.operations ?? []
        XCTAssertTrue(involved.contains(first) && involved.contains(second), "\(String(describing: violation))")
    }

    func testFailedCompareAndSetMustHaveSeenADifferentValue() {
        var h = HistoryBuilder()
        h.write("k", "a", client: 1, 0, 10)
        let failed = h.cas("k", "a", "b", succeeded: false, client: 2, 20, 30)
        let violation = assertViolation(h.operations, key: "k", including: failed)
        XCTAssertTrue(violation?.explanation.contains(#"needs a value other than "a""#) ?? false,
                      "\(String(describing: violation))")
    }

    func testReadGoingBackInTime() {
        var h = HistoryBuilder()
        h.write("k", "a", client: 1, 0, 10)
        h.write("k", "b", client: 2, 5, 30)
        h.read("k", "b", client: 3, 40, 50)
        let backwards = h.read("k", "a", client: 4, 60, 70)
        assertViolation(h.operations, key: "k", including: backwards)
    }

    func testReadAfterDeleteSeesOldValue() {
        var h = HistoryBuilder()
        h.write("k", "a", client: 1, 0, 10)
        h.delete("k", client: 1, 20, 30)
        let read = h.read("k", "a", client: 2, 31, 40)
        assertViolation(h.operations, key: "k", including: read)
    }

    func testViolationOnOneKeyAmongManyHealthyKeys() {
        var h = HistoryBuilder()
        for index in 0..<5 {
            let key = "key\(index)"
            let base = UInt64(index) * 100
            h.write(key, "v\(index)", client: index, base, base + 10)
            h.read(key, "v\(index)", client: index + 1, base + 20, base + 30)
        }
        h.write("key3", "later", client: 9, 400, 410)
        let stale = h.read("key3", "v3", client: 8, 420, 430)
        assertViolation(h.operations, key: "key3", including: stale)
    }

    func testDescriptionListsInvolvedOperations() {
        var h = HistoryBuilder()
        h.write("k", "a", client: 1, 0, 10)
        h.read("k", nil, client: 2, 20, 30)
        guard let violation = assertViolation(h.operations, key: "k") else { return }
        let lines = violation.description.split(separator: "\n")
        XCTAssertEqual(lines.first.map(String.init), #"Linearizability violation on key "k": "# + violation.explanation)
        XCTAssertEqual(lines.count, 2 + violation.operations.count, violation.description)
        XCTAssertTrue(violation.description.contains(#"op #2 read(k) -> absent by client 2 at [20, 30]"#))
    }
}
