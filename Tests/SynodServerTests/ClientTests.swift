import Foundation
import SynodClient
import XCTest

/// Client-side pieces that need no server: the txn script parser, endpoint parsing, key ranges.
final class ClientTxnScriptTests: XCTestCase {
    func testFullScript() throws {
        let script = """
            value("k") = "v1"
            version("counter") > "1"
            create("c") != "0"
            mod("m") < "7"
            lease("l") = "694d7a5b3c1e9a0b"

            put k "new value"
            get counter
            del k --prev-kv

            get k --prefix
            put other 'single quoted'

            """
        let request = try SynodTxnScript.parse(script)
        XCTAssertEqual(request.compare.count, 5)
        XCTAssertEqual(request.compare[0], .value("k", .equal, "v1"))
        XCTAssertEqual(request.compare[1], .version("counter", .greater, 1))
        XCTAssertEqual(request.compare[2], .createRevision("c", .notEqual, 0))
        XCTAssertEqual(request.compare[3], .modRevision("m", .less, 7))
        XCTAssertEqual(request.compare[4], .lease("l", .equal, 0x694d_7a5b_3c1e_9a0b))
        XCTAssertEqual(request.success, [.put("k", "new value"), .get("counter"), .delete("k", prevKV: true)])
        XCTAssertEqual(request.failure, [.get("k", prefix: true), .put("other", "single quoted")])
    }

    func testShortTargetsEscapesAndRawStrings() throws {
        let request = try SynodTxnScript.parse(
            #"val("a\"b") = "x\ty\\z"   "# + "\n" + #"ver(`raw\key`) = 3"# + "\n" + #"c("k") > "0""# + "\n" + #"m("k") > "0""#)
        XCTAssertEqual(request.compare[0], .value("a\"b", .equal, "x\ty\\z"))
        XCTAssertEqual(request.compare[1], .version(#"raw\key"#, .equal, 3))
        XCTAssertEqual(request.compare[2].target, .create)
        XCTAssertEqual(request.compare[3].target, .mod)
        XCTAssertTrue(request.success.isEmpty)
        XCTAssertTrue(request.failure.isEmpty)
    }

    func testMissingSectionsAreEmptyAndCRLFIsAccepted() throws {
        let onlyOps = try SynodTxnScript.parse("\r\nput a b\r\n")
        XCTAssertTrue(onlyOps.compare.isEmpty)
        XCTAssertEqual(onlyOps.success, [.put("a", "b")])
        XCTAssertTrue(try SynodTxnScript.parse("").compare.isEmpty)
        let failureOnly = try SynodTxnScript.parse("\n\ndelete a z\n\n\n")
        XCTAssertEqual(failureOnly.failure, [.delete("a", rangeEnd: "z")])
    }

    func testOperationFlags() throws {
        var op = try SynodTxnScript.parseOperation("put k v --lease=ff --prev-kv")
        XCTAssertEqual(op, .put("k", "v", lease: 255, prevKV: true))
        op = try SynodTxnScript.parseOperation("get a --from-key --limit=2 --keys-only")
        XCTAssertEqual(op.requestRange.rangeEnd, Data([0]))
        XCTAssertEqual(op.requestRange.limit, 2)
        XCTAssertTrue(op.requestRange.keysOnly)
        op = try SynodTxnScript.parseOperation("get a --count-only --rev=4 --serializable")
        XCTAssertTrue(op.requestRange.countOnly)
        XCTAssertEqual(op.requestRange.revision, 4)
        XCTAssertTrue(op.requestRange.serializable)
        op = try SynodTxnScript.parseOperation(#"put "key with space" "a \"quoted\" value""#)
        XCTAssertEqual(op, .put("key with space", #"a "quoted" value"#))
        op = try SynodTxnScript.parseOperation("put k --ignore-value")
        XCTAssertTrue(op.requestPut.ignoreValue)
    }

    func testMalformedCompares() {
        let cases: [(String, String)] = [
            (#"value"k" = "v""#, "expected TARGET"),
            (#"value(k) = "v""#, "quoted"),
            (#"value("k" = "v""#, "expected ')'"),
            (#"value("k") "v""#, "missing operator"),
            (#"value("k") =="#, "missing value"),
            (#"value("k") ~ "v""#, "unknown operator"),
            (#"size("k") = "1""#, "unknown target"),
            (#"version("k") = "one""#, "not a integer"),
            (#"lease("k") = "xyz""#, "hexadecimal"),
            (#"value("k") = "v" extra"#, "unexpected text"),
            (#"value("k) = "v""#, "expected ')'"),
            (#"value("k\q") = "v""#, "unknown escape"),
            (#"value("k") = "unterminated"#, "unterminated"),
            (#"("k") = "v""#, "missing target"),
        ]
        for (line, expected) in cases {
            XCTAssertThrowsError(try SynodTxnScript.parse(line), line) { error in
                guard let error = error as? SynodTxnScriptError else { return XCTFail("\(error)") }
                XCTAssertEqual(error.line, 1, line)
                XCTAssertEqual(error.text, line)
                XCTAssertTrue(error.reason.contains(expected), "\(line): \(error.reason)")
            }
        }
    }

    func testMalformedOperations() {
        let cases: [(String, String)] = [
            ("put k", "a key and a value"),
            ("put k v extra", "a key and a value"),
            ("get", "a key"),
            ("get a b c", "a key"),
            ("get a --prefix --from-key", "cannot be combined"),
            ("get a z --prefix", "range end"),
            ("del a --limit=3", "unknown flag --limit"),
            ("put k v --lease=zz", "not a number"),
            ("get k --limit", "needs a value"),
            ("get k --prefix=maybe", "takes no value"),
            ("watch k", "unknown operation"),
            (#"put k "v"#, "unterminated"),
            ("put k 'v", "unterminated"),
        ]
        for (op, expected) in cases {
            let script = "\n" + op + "\n"
            XCTAssertThrowsError(try SynodTxnScript.parse(script), op) { error in
                guard let error = error as? SynodTxnScriptError else { return XCTFail("\(error)") }
                XCTAssertEqual(error.line, 2, op)
                XCTAssertTrue(error.reason.contains(expected), "\(op): \(error.reason)")
            }
        }
    }

    func testContentAfterFailureSectionIsRejected() {
        XCTAssertThrowsError(try SynodTxnScript.parse("\nput a 1\n\nput b 2\n\nput c 3\n")) { error in
            XCTAssertEqual((error as? SynodTxnScriptError)?.line, 6)
        }
    }
}

final class ClientEndpointTests: XCTestCase {
    func testAcceptedForms() throws {
        let plain = try SynodEndpoint(parsing: "127.0.0.1:2379")
        XCTAssertEqual(plain.host, "127.0.0.1")
        XCTAssertEqual(plain.port, 2379)
        XCTAssertEqual(plain.hostKind, .ipv4)
        let url = try SynodEndpoint(parsing: "http://127.0.0.1:22379/")
        XCTAssertEqual(url.port, 22379)
        XCTAssertEqual(url.original, "http://127.0.0.1:22379/")
        let v6 = try SynodEndpoint(parsing: "http://[::1]:2379")
        XCTAssertEqual(v6.host, "::1")
        XCTAssertEqual(v6.hostKind, .ipv6)
        let name = try SynodEndpoint(parsing: "localhost:2379")
        XCTAssertEqual(name.hostKind, .dns)
    }

    func testRejectedForms() {
        let bad = [
            "", "127.0.0.1", "http://127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:70000", "127.0.0.1:23a",
            "unix:///tmp/sock", "::1:2379", "[::1]2379", "[::1:2379",
            "http://127.0.0.1:2379/v3", "bad host:2379", "300.1.1.1:2379", ":2379",
        ]
        for text in bad {
            XCTAssertThrowsError(try SynodEndpoint(parsing: text), text) { error in
                guard case SynodClientError.invalidEndpoint(let endpoint, _)? = error as? SynodClientError else {
                    return XCTFail("\(text): \(error)")
                }
                XCTAssertEqual(endpoint, text)
            }
        }
    }

    func testHTTPSEndpointNeedsTLSSettings() throws {
        XCTAssertTrue(try SynodEndpoint(parsing: "https://127.0.0.1:2379").isHTTPS)
        XCTAssertFalse(try SynodEndpoint(parsing: "127.0.0.1:2379").isHTTPS)
        XCTAssertThrowsError(try SynodClient(configuration: .init(endpoints: ["https://127.0.0.1:2379"]))) { error in
            XCTAssertTrue("\(error)".contains("https:// needs TLS settings"), "\(error)")
        }
        var configuration = SynodClientConfiguration(endpoints: ["https://127.0.0.1:2379"])
        configuration.tls = SynodClientTLS(insecureSkipVerify: true)
        XCTAssertNoThrow(try SynodClient(configuration: configuration))
    }

    func testClientValidatesConfiguration() {
        XCTAssertThrowsError(try SynodClient(configuration: .init(endpoints: [])))
        XCTAssertThrowsError(try SynodClient(configuration: .init(endpoints: ["127.0.0.1:1", "http://127.0.0.1:1"])))
        XCTAssertThrowsError(try SynodClient(configuration: .init(endpoints: ["127.0.0.1:1"], requestTimeout: .zero)))
        XCTAssertThrowsError(try SynodClient(configuration: .init(endpoints: ["127.0.0.1:x"]))) { error in
            XCTAssertTrue("\(error)".contains("invalid endpoint '127.0.0.1:x'"))
        }
        XCTAssertNoThrow(try SynodClient(configuration: .init(endpoints: ["127.0.0.1:2379", "localhost:22379"])))
    }

    func testUnreachableEndpointsFailWithTheirReason() async throws {
        // Port 1 on loopback refuses connections.
        let configuration = SynodClientConfiguration(endpoints: ["127.0.0.1:1"], requestTimeout: .milliseconds(500))
        do {
            _ = try await withSynodClient(configuration) { client in try await client.get("k") }
            XCTFail("expected an error")
        } catch let error as SynodClientError {
            guard case .unavailable(let failures) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(failures.map(\.endpoint), ["127.0.0.1:1"])
            XCTAssertTrue(error.description.hasPrefix("cannot reach any endpoint (127.0.0.1:1: "), error.description)
        }
    }
}

final class ClientKeyRangeTests: XCTestCase {
    func testEmptyKeyWithPrefixOrFromKeyMeansEverything() throws {
        let all = Etcdserverpb_RequestOp.get("", prefix: true)
        XCTAssertEqual(all.requestRange.key, Data([0]))
        XCTAssertEqual(all.requestRange.rangeEnd, Data([0]))
        let fromStart = try SynodTxnScript.parseOperation(#"del "" --from-key"#)
        XCTAssertEqual(fromStart.requestDeleteRange.key, Data([0]))
        XCTAssertEqual(fromStart.requestDeleteRange.rangeEnd, Data([0]))
        XCTAssertEqual(Etcdserverpb_RequestOp.get("a", prefix: true).requestRange.rangeEnd, Data("b".utf8))
    }

    func testPrefixEnd() {
        XCTAssertEqual(SynodKeyRange.prefixEnd(Data("abc".utf8)), Data("abd".utf8))
        XCTAssertEqual(SynodKeyRange.prefixEnd(Data([0x61, 0xff])), Data([0x62]))
        XCTAssertEqual(SynodKeyRange.prefixEnd(Data([0xff, 0xff])), Data([0]))
        XCTAssertEqual(SynodKeyRange.prefixEnd(Data()), Data([0]))
    }
}
