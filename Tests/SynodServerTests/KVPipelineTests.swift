import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import SynodClient
import SynodEtcdAPI
import XCTest
@testable import SynodServer

/// Both client transports run the one KV pipeline: the same script against a member on the
/// frame-level fast path and against one on grpc-swift's services gives the same answers,
/// the same etcd errors and the same request metrics.
final class KVPipelineTests: XCTestCase {
    func testBothTransportsAnswerTheSameScriptTheSameWay() async throws {
        let frames = try await transcript(.frames)
        let services = try await transcript(.grpcSwift)
        // The script's answers, asserted outright (so that two equally wrong paths still fail).
        XCTAssertEqual(frames.answers, [
            "put rev 2 prev -",
            "put rev 3 prev v1",
            "get rev 3 count 1 [a=v2@3]",
            "txn rev 4 succeeded true",
            "txn rev 4 succeeded false",
            "get rev 4 count 2 [a=v3@4, b=w@4]",
            "delete rev 5 deleted 1",
            "compact rev 5",
            "error Compact outOfRange etcdserver: mvcc: required revision is a future revision",
            "error Range outOfRange etcdserver: mvcc: required revision has been compacted",
            "error Put invalidArgument etcdserver: key is not provided",
        ])
        XCTAssertEqual(frames.answers, services.answers)
        XCTAssertEqual(frames.metrics, services.metrics)
        XCTAssertTrue(frames.metrics.contains(#"synod_grpc_requests_total{method="Put",code="OK"} 2"#), frames.metrics.joined(separator: "\n"))
        XCTAssertTrue(frames.metrics.contains(#"synod_grpc_requests_total{method="Range",code="outOfRange"} 1"#),
                      frames.metrics.joined(separator: "\n"))
    }

    private func transcript(_ transport: GRPCTransportKind) async throws -> (answers: [String], metrics: [String]) {
        let cluster = try InProcessCluster(nodes: 1)
        cluster.grpcTransport = transport
        try cluster.start(0)
        var answers: [String] = []
        do {
            try await withClient(try cluster.client()) { client in
                func text(_ bytes: Data) -> String { String(decoding: bytes, as: UTF8.self) }
                func record(_ method: String, _ body: () async throws -> String) async {
                    do {
                        answers.append(try await body())
                    } catch SynodClientError.server(let code, let message, _) {
                        answers.append("error \(method) \(code) \(message)")
                    } catch {
                        answers.append("error \(method) \(error)")
                    }
                }
                let first = try await eventually { try await client.put("a", "v1", prevKV: true) }
                answers.append("put rev \(first.header.revision) prev \(first.hasPrevKv ? text(first.prevKv.value) : "-")")
                await record("Put") {
                    let r = try await client.put("a", "v2", prevKV: true)
                    return "put rev \(r.header.revision) prev \(r.hasPrevKv ? text(r.prevKv.value) : "-")"
                }
                func get(_ key: String, prefix: Bool = false) async throws -> String {
                    let r = try await client.get(key, prefix: prefix)
                    let kvs = r.kvs.map { "\(text($0.key))=\(text($0.value))@\($0.modRevision)" }.joined(separator: ", ")
                    return "get rev \(r.header.revision) count \(r.count) [\(kvs)]"
                }
                await record("Range") { try await get("a") }
                func casTxn(expect: String) -> Etcdserverpb_TxnRequest {
                    var compare = Etcdserverpb_Compare()
                    compare.key = Data("a".utf8)
                    compare.target = .value
                    compare.result = .equal
                    compare.value = Data(expect.utf8)
                    var putA = Etcdserverpb_PutRequest()
                    putA.key = Data("a".utf8)
                    putA.value = Data("v3".utf8)
                    var putB = Etcdserverpb_PutRequest()
                    putB.key = Data("b".utf8)
                    putB.value = Data("w".utf8)
                    var txn = Etcdserverpb_TxnRequest()
                    txn.compare = [compare]
                    txn.success = [.with { $0.requestPut = putA }, .with { $0.requestPut = putB }]
                    return txn
                }
                await record("Txn") {
                    let r = try await client.txn(casTxn(expect: "v2"))
                    return "txn rev \(r.header.revision) succeeded \(r.succeeded)"
                }
                await record("Txn") {
                    let r = try await client.txn(casTxn(expect: "v2"))  // read-only now: the compare fails
                    return "txn rev \(r.header.revision) succeeded \(r.succeeded)"
                }
                await record("Range") { try await get("", prefix: true) }
                await record("DeleteRange") {
                    let r = try await client.delete("b")
                    return "delete rev \(r.header.revision) deleted \(r.deleted)"
                }
                await record("Compact") {
                    let r = try await client.compact(5)
                    return "compact rev \(r.header.revision)"
                }
                await record("Compact") {
                    let r = try await client.compact(99)
                    return "compact rev \(r.header.revision)"
                }
                await record("Range") { "get \(try await client.get("a", revision: 2).count)" }
                await record("Put") { "put \(try await client.put("", "x").header.revision)" }
            }
        } catch {
            await cluster.stopAll()
            throw error
        }
        let url = try XCTUnwrap(URL(string: (cluster.configurations[0].listenMetricsURLs ?? "") + "/metrics"))
        let body = String(decoding: try await URLSession.shared.data(from: url).0, as: UTF8.self)
        await cluster.stopAll()
        let metrics = body.split(separator: "\n").map(String.init).filter { $0.hasPrefix("synod_grpc_requests_total{") }.sorted()
        return (answers, metrics)
    }
}
