import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import SynodClient
import XCTest
@testable import SynodServer

/// Mutual TLS on the client and peer ports of an in-process cluster, with certificates made
/// by `LocalPKI` (as `synod cluster --tls` makes them).
final class TLSClusterTests: XCTestCase {
    /// Turns every URL of member `i` into https://.
    private func useHTTPS(_ cluster: InProcessCluster, _ i: Int) {
        let https = { (url: String) in url.replacingOccurrences(of: "http://", with: "https://") }
        cluster.configurations[i].listenClientURLs = https(cluster.configurations[i].listenClientURLs)
        cluster.configurations[i].listenPeerURLs = https(cluster.configurations[i].listenPeerURLs)
        cluster.configurations[i].initialCluster = cluster.configurations[i].initialCluster.map(https)
    }

    /// Turns the cluster's URLs into https:// and gives every member its certificate.
    private func secure(_ cluster: InProcessCluster, pki: String, requireClientCertificates: Bool = true) {
        for i in cluster.configurations.indices {
            useHTTPS(cluster, i)
            var c = cluster.configurations[i]
            for tls in [\ServeConfiguration.clientTLS, \ServeConfiguration.peerTLS] {
                c[keyPath: tls].certFile = "\(pki)/\(c.name).crt"
                c[keyPath: tls].keyFile = "\(pki)/\(c.name).key"
                c[keyPath: tls].trustedCAFile = "\(pki)/ca.crt"
                c[keyPath: tls].clientCertAuth = requireClientCertificates
            }
            cluster.configurations[i] = c
        }
    }

    private func client(_ cluster: InProcessCluster, pki: String, user: String?) -> SynodClientConfiguration {
        var configuration = SynodClientConfiguration(endpoints: cluster.endpoints, requestTimeout: .seconds(4))
        configuration.tls = SynodClientTLS(caFile: "\(pki)/ca.crt", certFile: user.map { "\(pki)/\($0).crt" },
                                           keyFile: user.map { "\(pki)/\($0).key" })
        return configuration
    }

    func testMutualTLSClusterServesOnlyClientsWithCertificates() async throws {
        let cluster = try InProcessCluster(nodes: 3)
        let pki = cluster.root + "/pki"
        try LocalPKI.write(directory: pki, members: ["n1", "n2", "n3"], clientUsers: ["alice"])
        secure(cluster, pki: pki)
        for i in 0..<3 { try cluster.start(i) }
        defer { Task { await cluster.stopAll() } }

        // The members elected a leader over mutual TLS and serve a client with a certificate.
        try await withSynodClient(client(cluster, pki: pki, user: "alice")) { client in
            _ = try await client.put("tls/key", "over tls")
            let response = try await client.get("tls/key")
            XCTAssertEqual(response.kvs.first.map { String(decoding: $0.value, as: UTF8.self) }, "over tls")
        }
        // Without a client certificate the handshake is refused, on every member.
        var anonymous = client(cluster, pki: pki, user: nil)
        anonymous.requestTimeout = .seconds(2)
        do {
            try await withSynodClient(anonymous) { client in _ = try await client.get("tls/key") }
            XCTFail("a client without a certificate was served")
        } catch let error as SynodClientError {
            guard case .unavailable = error else { return XCTFail("\(error)") }
        }
        // Plaintext HTTP/2 to the TLS port is not served either.
        var plaintext = SynodClientConfiguration(endpoints: cluster.endpoints.map { $0.replacingOccurrences(of: "https://", with: "http://") },
                                                 requestTimeout: .seconds(2))
        plaintext.tls = nil
        do {
            try await withSynodClient(plaintext) { client in _ = try await client.get("tls/key") }
            XCTFail("a plaintext client was served on the TLS port")
        } catch let error as SynodClientError {
            guard case .unavailable = error else { return XCTFail("\(error)") }
        }
    }

    /// `--auto-tls` and `--peer-auto-tls`: self-signed certificates made in the data directory;
    /// members talk TLS without verifying each other, clients connect without a CA. With
    /// `--tls-min-version TLS1.3` a client that offers at most TLS 1.2 is refused.
    func testAutoTLSClusterAndMinimumVersion() async throws {
        let cluster = try InProcessCluster(nodes: 3)
        for i in cluster.configurations.indices {
            useHTTPS(cluster, i)
            var c = cluster.configurations[i]
            c.clientTLS.autoTLS = true
            c.peerTLS.autoTLS = true
            c.clientTLS.minimumVersion = "TLS1.3"
            c.peerTLS.minimumVersion = "TLS1.3"
            cluster.configurations[i] = c
        }
        for i in 0..<3 { try cluster.start(i) }
        defer { Task { await cluster.stopAll() } }
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(cluster.root)/n1/fixtures/client/cert.pem"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(cluster.root)/n1/fixtures/peer/cert.pem"))
        var configuration = SynodClientConfiguration(endpoints: cluster.endpoints, requestTimeout: .seconds(4))
        configuration.tls = SynodClientTLS(insecureSkipVerify: true)
        try await withSynodClient(configuration) { client in
            _ = try await client.put("auto", "tls")
            let count = try await client.get("auto").kvs.count
            XCTAssertEqual(count, 1)
        }
        // A TLS 1.2-only client is refused by the TLS 1.3 minimum.
        var old = TLSConfiguration.makeClientConfiguration()
        old.maximumTLSVersion = .tlsv12
        old.certificateVerification = .none
        old.applicationProtocols = ["h2"]
        let port = try cluster.configurations[0].validate().clientListen.port
        do {
            _ = try await servedCommonName(port: port, configuration: old)
            XCTFail("a TLS 1.2 client was served")
        } catch {}
        var current = old
        current.maximumTLSVersion = nil
        let name = try await servedCommonName(port: port, configuration: current)
        XCTAssertEqual(name, "synod-client")
    }

    func testCertificateFilesAreReloadedForNewConnections() async throws {
        let cluster = try InProcessCluster(nodes: 1)
        let pki = cluster.root + "/pki"
        try LocalPKI.write(directory: pki, members: ["n1"], clientUsers: [])
        secure(cluster, pki: pki, requireClientCertificates: false)
        try cluster.start(0)
        defer { Task { await cluster.stopAll() } }
        guard let port = try cluster.configurations[0].validate().clientListen.port as Int? else { return }
        try await eventually { try await self.servedCommonName(port: port, caFile: "\(pki)/ca.crt") == "n1" }

        // Replace the member's certificate (same CA, another name) while it runs.
        let ca = try CertificateAuthority(certificatePEM: String(contentsOfFile: "\(pki)/ca.crt", encoding: .utf8),
                                          privateKeyPEM: String(contentsOfFile: "\(pki)/ca.key", encoding: .utf8))
        let renewed = try ca.issue(commonName: "n1-renewed", dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"])
        try LocalPKI.save(renewed, certificate: "\(pki)/n1.crt", key: "\(pki)/n1.key")
        try await eventually { try await self.servedCommonName(port: port, caFile: "\(pki)/ca.crt") == "n1-renewed" }

        // A broken file keeps the last good certificate.
        try Data("not a certificate".utf8).write(to: URL(fileURLWithPath: "\(pki)/n1.crt"))
        try await Task.sleep(for: .milliseconds(1_200))
        let served = try await servedCommonName(port: port, caFile: "\(pki)/ca.crt")
        XCTAssertEqual(served, "n1-renewed")
    }

    /// The common name of the certificate served on `port` (a TLS handshake, then close).
    private func servedCommonName(port: Int, caFile: String) async throws -> String? {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .file(caFile)
        configuration.applicationProtocols = ["h2"]
        return try await servedCommonName(port: port, configuration: configuration)
    }

    private func servedCommonName(port: Int, configuration: TLSConfiguration) async throws -> String? {
        let context = try NIOSSLContext(configuration: configuration)
        let group = MultiThreadedEventLoopGroup.singleton
        let promise = group.next().makePromise(of: String?.self)
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: group)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let ssl = try NIOSSLClientHandler(context: context, serverHostname: nil)
                        try channel.pipeline.syncOperations.addHandler(ssl)
                        try channel.pipeline.syncOperations.addHandler(HandshakeReporter(promise: promise))
                    }
                }
                .connect(host: "127.0.0.1", port: port).get()
        } catch {
            promise.fail(error)  // a promise must be completed before it goes away
            throw error
        }
        defer { channel.close(promise: nil) }
        return try await promise.futureResult.get()
    }

    private func eventually(_ condition: @escaping () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if (try? await condition()) == true { return }
            try await Task.sleep(for: .milliseconds(200))
        }
        XCTFail("condition not met within 10 s")
    }
}

/// Reports the server certificate's common name once the handshake completed.
private final class HandshakeReporter: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = NIOAny
    let promise: EventLoopPromise<String?>
    var done = false
    init(promise: EventLoopPromise<String?>) { self.promise = promise }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if !done, let ssl = try? context.pipeline.syncOperations.handler(type: NIOSSLClientHandler.self),
           let der = try? ssl.peerCertificate?.toDERBytes() {
            done = true
            promise.succeed(CertificateAuthority.commonName(derEncoded: der))
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !done { done = true; promise.fail(error) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !done { done = true; promise.fail(ChannelError.eof) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        if !done { done = true; promise.fail(ChannelError.eof) }
    }
}
