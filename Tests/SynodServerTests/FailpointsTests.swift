import XCTest
@testable import SynodServer

final class FailpointsTests: XCTestCase {
    func testParsesEveryFailpointAndPrintsItBack() throws {
        let text = "fsync-delay=200ms,crash-before-sync=3%,crash-after-sync=0.5%,crash-in-snapshot=50%,tear-wal-write=2%,tear-on-signal,drop-outgoing=20%,corrupt-apply=10,stale-reads"
        let failpoints = try Failpoints.parse(text)
        XCTAssertEqual(failpoints.fsyncDelayMilliseconds, 200)
        XCTAssertEqual(failpoints.crashBeforeSync, 0.03, accuracy: 1e-9)
        XCTAssertEqual(failpoints.crashAfterSync, 0.005, accuracy: 1e-9)
        XCTAssertEqual(failpoints.crashInSnapshot, 0.5, accuracy: 1e-9)
        XCTAssertEqual(failpoints.tearWALWrite, 0.02, accuracy: 1e-9)
        XCTAssertTrue(failpoints.tearOnSignal)
        XCTAssertEqual(failpoints.dropOutgoing, 0.2, accuracy: 1e-9)
        XCTAssertEqual(failpoints.corruptApplyAfter, 10)
        XCTAssertTrue(failpoints.staleReads)
        XCTAssertEqual(try Failpoints.parse(failpoints.description), failpoints)
        XCTAssertEqual(try Failpoints.parse("fsync-delay=1s").fsyncDelayMilliseconds, 1000)
        XCTAssertEqual(try Failpoints.parse("crash-after-sync").crashAfterSync, 1)
    }

    func testOffUnlessTheVariableNamesThem() throws {
        XCTAssertTrue(try Failpoints.fromEnvironment([:]).isEmpty)
        XCTAssertTrue(try Failpoints.fromEnvironment(["SYNOD_FAILPOINTS": ""]).isEmpty)
        XCTAssertTrue(try Failpoints.fromEnvironment(["SYNOD_FAILPOINTS": "stale-reads"]).staleReads)
    }

    func testBadValuesGiveOneLineNamingThem() {
        for (text, needle) in [("nonsense", "unknown failpoint 'nonsense'"), ("crash-after-sync=200%", "crash-after-sync"),
                               ("fsync-delay", "fsync-delay needs a duration"), ("drop-outgoing=x", "'x' is not a probability"),
                               ("corrupt-apply=-1", "corrupt-apply needs a count")] {
            XCTAssertThrowsError(try Failpoints.parse(text), text) { error in
                let message = "\(error)"
                XCTAssertTrue(message.contains(needle), message)
                XCTAssertTrue(message.hasPrefix("SYNOD_FAILPOINTS"), message)
                XCTAssertFalse(message.contains("\n"))
            }
        }
    }
}
