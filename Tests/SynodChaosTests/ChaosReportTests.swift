import Foundation
import XCTest

@testable import SynodChaos

final class ChaosReportTests: XCTestCase {
    private var scratch = ""

    override func setUpWithError() throws {
        scratch = NSTemporaryDirectory() + "synod-chaos-report-\(UUID().uuidString)"
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: scratch)
    }

    private func read(_ path: String) throws -> String {
        try String(contentsOfFile: path, encoding: .utf8)
    }

    private func sampleOperations() -> [ChaosOperation] {
        [
            ChaosOperation(id: 2, client: 1, kind: .write, key: "k\"1\"", value: "line1\nline2 \"quoted\" ünïcødé 🦀",
                           invokedNanos: 2_000_000, completedNanos: 9_000_000, status: .ok, revision: 7,
                           endpoint: "http://127.0.0.1:2379"),
            ChaosOperation(id: 1, client: 0, kind: .read, key: "k1", invokedNanos: 1_000_000,
                           completedNanos: 3_000_000, status: .ok, readValue: nil, revision: 6),
            ChaosOperation(id: 3, client: 0, kind: .cas, key: "k1", value: "<script>alert(1)</script>",
                           expected: nil, invokedNanos: 4_000_000, status: .unknown, error: "deadline exceeded\t&"),
            ChaosOperation(id: 4, client: 2, kind: .delete, key: "", invokedNanos: 4_000_000,
                           completedNanos: 5_000_000, status: .fail, error: "no leader"),
            ChaosOperation(id: 5, client: 2, kind: .read, key: "k1", invokedNanos: 10_000_000,
                           completedNanos: 12_000_000, status: .ok, readValue: "x", casSucceeded: nil, revision: 9,
                           modRevision: 8, final: true),
            ChaosOperation(id: 6, client: 1, kind: .cas, key: "k1", value: "y", expected: "x",
                           invokedNanos: 10_000_000, completedNanos: 11_000_000, status: .ok, casSucceeded: true),
        ]
    }

    private func sampleNemesis() -> [NemesisEvent] {
        [
            NemesisEvent(id: 0, kind: "kill", nodes: [1], detail: "SIGKILL n2", startNanos: 1_000_000,
                         endNanos: 5_000_000),
            NemesisEvent(id: 1, kind: "partition-isolate", nodes: [0], detail: "n1 <-> {n2, n3} cut",
                         startNanos: 6_000_000, endNanos: 9_000_000),
            NemesisEvent(id: 2, kind: "crash-all", nodes: [0, 1, 2], detail: "SIGKILL all", startNanos: 10_000_000),
        ]
    }

    private func sampleVerdict(failed: Bool) -> ChaosVerdict {
        ChaosVerdict(linearizable: failed ? false : true, violation: failed ? "read of k1 saw \"x\" <bad>" : nil,
                     violationOperationIDs: failed ? [5] : [], lostAcknowledgedWrites: failed ? 1 : 0,
                     lostOperationIDs: failed ? [2] : [], replicaHashesEqual: true, hashRevision: 9,
                     replicaHashes: ["n1": 0xDEADBEEF, "n2": 0xDEADBEEF, "n3": 0x1],
                     alarms: failed ? ["CORRUPT on n3"] : [],
                     operationCounts: ["read": ["ok": 2], "write": ["ok": 1], "cas": ["ok": 1, "unknown": 1],
                                       "delete": ["fail": 1]],
                     nemesisCounts: ["kill": 1, "partition-isolate": 1, "crash-all": 1], durationSeconds: 0.015,
                     seed: 42,
                     line: failed ? "linearizable: false, lost acknowledged writes: 1" :
                        "linearizable: true, lost acknowledged writes: 0",
                     failed: failed)
    }

    func testHistoryRoundTrip() throws {
        let writer = ChaosReportWriter(directory: scratch + "/a/b")
        let operations = sampleOperations()
        try writer.writeHistory(operations)
        let back = try ChaosReportWriter.readHistory(from: writer.path(ChaosReportWriter.historyFileName))
        let expected = operations.sorted { ($0.invokedNanos, $0.id) < ($1.invokedNanos, $1.id) }
        XCTAssertEqual(back, expected)
        XCTAssertEqual(back.map(\.id), [1, 2, 3, 4, 5, 6])

        let text = try read(writer.path(ChaosReportWriter.historyFileName))
        let lines = text.split(separator: "\n")
        XCTAssertEqual(lines.count, operations.count)
        XCTAssertTrue(lines[0].hasPrefix("{\"client\":0,"), String(lines[0]))

        try writer.writeNemesis(sampleNemesis())
        XCTAssertEqual(try ChaosReportWriter.readNemesis(from: writer.path(ChaosReportWriter.nemesisFileName)),
                       sampleNemesis())
    }

    func testMalformedLineNamesLineNumber() throws {
        let writer = ChaosReportWriter(directory: scratch)
        try writer.writeHistory(sampleOperations())
        let path = writer.path(ChaosReportWriter.historyFileName)
        var lines = try read(path).split(separator: "\n").map(String.init)
        lines[2] = "{\"id\": 3, \"client\": "
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ChaosReportWriter.readHistory(from: path)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("line 3"), text)
            XCTAssertTrue(text.contains(path), text)
        }

        // A well-formed JSON line missing a field is also named.
        lines[2] = "{\"id\": 3}"
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ChaosReportWriter.readHistory(from: path)) { error in
            XCTAssertTrue("\(error)".contains("line 3"), "\(error)")
        }

        XCTAssertThrowsError(try ChaosReportWriter.readHistory(from: scratch + "/missing.jsonl")) { error in
            XCTAssertTrue("\(error)".contains("missing.jsonl"), "\(error)")
        }
    }

    func testUnwritableDirectoryErrorNamesPath() throws {
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        let blocker = scratch + "/file"
        try "x".write(toFile: blocker, atomically: true, encoding: .utf8)
        let writer = ChaosReportWriter(directory: blocker + "/report")
        XCTAssertThrowsError(try writer.writeVerdict(sampleVerdict(failed: false))) { error in
            XCTAssertTrue("\(error)".contains(blocker), "\(error)")
        }
        let onFile = ChaosReportWriter(directory: blocker)
        XCTAssertThrowsError(try onFile.writeHistory([])) { error in
            XCTAssertTrue("\(error)".contains("not a directory"), "\(error)")
        }
    }

    func testVerdictFiles() throws {
        let writer = ChaosReportWriter(directory: scratch)
        let verdict = sampleVerdict(failed: true)
        try writer.writeVerdict(verdict)
        let text = try read(writer.path(ChaosReportWriter.verdictTextFileName))
        XCTAssertEqual(text.split(separator: "\n", omittingEmptySubsequences: false).first.map(String.init), verdict.line)
        XCTAssertTrue(text.contains("0xdeadbeef"), text)
        XCTAssertTrue(text.contains("CORRUPT on n3"), text)
        XCTAssertTrue(text.contains("lost operation ids: 2"), text)
        XCTAssertTrue(text.contains("read of k1 saw"), text)
        XCTAssertTrue(text.contains("partition-isolate"), text)

        let data = try Data(contentsOf: URL(fileURLWithPath: writer.path(ChaosReportWriter.verdictJSONFileName)))
        XCTAssertEqual(try JSONDecoder().decode(ChaosVerdict.self, from: data), verdict)
    }

    func testHTMLContent() throws {
        let writer = ChaosReportWriter(directory: scratch)
        let verdict = sampleVerdict(failed: true)
        try writer.writeAll(operations: sampleOperations(), nemesis: sampleNemesis(), verdict: verdict,
                            nodeNames: ["n1", "n2", "n3"], title: "chaos <run> & test")
        for file in [ChaosReportWriter.historyFileName, ChaosReportWriter.nemesisFileName,
                     ChaosReportWriter.verdictJSONFileName, ChaosReportWriter.verdictTextFileName] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: writer.path(file)), file)
        }
        let html = try read(writer.path(ChaosReportWriter.htmlFileName))

        XCTAssertTrue(html.contains("<div id=\"verdict\" class=\"verdict failed\">linearizable: false, lost acknowledged writes: 1</div>"))
        XCTAssertTrue(html.contains("chaos &lt;run&gt; &amp; test"))
        XCTAssertFalse(html.contains("chaos <run>"))
        for client in 0...2 { XCTAssertTrue(html.contains(">c\(client)</text>"), "lane c\(client)") }
        XCTAssertEqual(occurrences(of: "class=\"label lane-label\"", in: html), 3)
        // Two fault windows as bands, the instant crash-all as a line.
        XCTAssertEqual(occurrences(of: "class=\"nemesis-band\"", in: html), 2)
        XCTAssertEqual(occurrences(of: "class=\"nemesis-instant\"", in: html), 1)
        // Every event in the fault row, with its kind and detail in a tooltip.
        XCTAssertEqual(occurrences(of: "class=\"fault-mark\"", in: html), 3)
        XCTAssertTrue(html.contains("n1 &lt;-&gt; {n2, n3} cut"))
        XCTAssertTrue(html.contains("data-kind=\"partition-isolate\""))
        // Node strip: kill n2, isolate n1, crash-all n1..n3.
        XCTAssertEqual(occurrences(of: "class=\"node-fault\"", in: html), 5)
        // Escaping.
        XCTAssertFalse(html.contains("<script>alert"))
        XCTAssertTrue(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
        XCTAssertFalse(html.contains("<bad>"))
        // Violation and lost operations are highlighted and listed.
        XCTAssertTrue(html.contains("class=\"bad\" data-op=\"5\""))
        XCTAssertTrue(html.contains("class=\"bad\" data-op=\"2\""))
        XCTAssertEqual(occurrences(of: "data-op=", in: html), 2)
        XCTAssertTrue(html.contains("<tr class=\"bad-op\" id=\"op-5\">"))
        XCTAssertTrue(html.contains("<tr class=\"bad-op\" id=\"op-2\">"))
        // Node log links.
        for name in ["n1", "n2", "n3"] { XCTAssertTrue(html.contains("href=\"nodes/\(name).log\""), name) }
        // Self-contained.
        XCTAssertFalse(html.contains("src="))
        XCTAssertFalse(html.contains("https://"))
        XCTAssertTrue(html.hasSuffix("</html>\n"))

        let passed = sampleVerdict(failed: false)
        try writer.writeHTML(operations: sampleOperations(), nemesis: [], verdict: passed, nodeNames: [], title: "t")
        let passedHTML = try read(writer.path(ChaosReportWriter.htmlFileName))
        XCTAssertTrue(passedHTML.contains("class=\"verdict passed\">linearizable: true"))
        XCTAssertFalse(passedHTML.contains("data-op="))
    }

    func testEmptyRun() throws {
        let writer = ChaosReportWriter(directory: scratch)
        try writer.writeAll(operations: [], nemesis: [], verdict: ChaosVerdict(linearizable: nil, replicaHashesEqual: true),
                            nodeNames: [], title: "")
        let html = try read(writer.path(ChaosReportWriter.htmlFileName))
        XCTAssertTrue(html.contains("no operations"))
        XCTAssertEqual(try ChaosReportWriter.readHistory(from: writer.path(ChaosReportWriter.historyFileName)), [])
    }

    func testLargeHistoryStaysSmall() throws {
        var generator = SplitMix64(seed: 7)
        let clients = 10
        let span: UInt64 = 30 * 60 * 1_000_000_000
        let perClient = 10_000
        var operations: [ChaosOperation] = []
        operations.reserveCapacity(clients * perClient)
        var id = 0
        for client in 0..<clients {
            let slot = span / UInt64(perClient)
            for index in 0..<perClient {
                let invoked = UInt64(index) * slot + generator.next() % (slot / 4)
                let roll = generator.next() % 100
                let status: ChaosOperationStatus = roll < 90 ? .ok : (roll < 96 ? .fail : .unknown)
                let latency = roll < 2 ? slot * 5 : generator.next() % (slot / 2) + 1
                let kind = ChaosOperationKind.allCases[Int(generator.next() % 4)]
                operations.append(ChaosOperation(
                    id: id, client: client, kind: kind, key: "key-\(generator.next() % 64)",
                    value: kind == .read || kind == .delete ? nil : "value-\(id)", invokedNanos: invoked,
                    completedNanos: status == .unknown ? nil : invoked + latency, status: status,
                    readValue: kind == .read ? "value-\(generator.next() % UInt64(max(id, 1)))" : nil,
                    error: status == .ok ? nil : "context deadline exceeded"))
                id += 1
            }
        }
        var nemesis: [NemesisEvent] = []
        for index in 0..<180 {
            let start = UInt64(index) * 10_000_000_000
            let kinds = ["kill", "pause", "partition-split", "netem", "failpoint", "crash-all"]
            nemesis.append(NemesisEvent(id: index, kind: kinds[index % kinds.count], nodes: [index % 5],
                                        detail: "event \(index)", startNanos: start,
                                        endNanos: index % 7 == 0 ? nil : start + 4_000_000_000))
        }
        let verdict = ChaosVerdict(linearizable: false, violation: "synthetic", violationOperationIDs: [17, 50_001],
                                   lostAcknowledgedWrites: 1, lostOperationIDs: [99_998], replicaHashesEqual: true,
                                   durationSeconds: 1800, seed: 1, line: "linearizable: false", failed: true)
        let writer = ChaosReportWriter(directory: scratch)
        try writer.writeAll(operations: operations, nemesis: nemesis, verdict: verdict,
                            nodeNames: ["n1", "n2", "n3", "n4", "n5"], title: "large")
        let htmlPath = writer.path(ChaosReportWriter.htmlFileName)
        let size = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: htmlPath)[.size] as? NSNumber).intValue
        print("ChaosReportTests: 100k-op index.html is \(size) bytes")
        XCTAssertLessThan(size, 15 * 1024 * 1024)
        let html = try read(htmlPath)
        for opID in [17, 50_001, 99_998] { XCTAssertTrue(html.contains("data-op=\"\(opID)\""), "op \(opID)") }
        XCTAssertEqual(occurrences(of: "class=\"label lane-label\"", in: html), clients)
        XCTAssertTrue(html.contains("<g class=\"agg\">"))
        let back = try ChaosReportWriter.readHistory(from: writer.path(ChaosReportWriter.historyFileName))
        XCTAssertEqual(back.count, operations.count)
    }

    private func occurrences(of needle: String, in haystack: String) -> Int {
        haystack.components(separatedBy: needle).count - 1
    }
}

private struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
