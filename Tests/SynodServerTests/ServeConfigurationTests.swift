import SynodCore
import XCTest
@testable import SynodServer

final class ServeConfigurationTests: XCTestCase {
    private func configuration(_ edit: (inout ServeConfiguration) -> Void = { _ in }) -> ServeConfiguration {
        var c = ServeConfiguration()
        c.name = "n2"
        c.listenClientURLs = "http://127.0.0.1:22379"
        c.listenPeerURLs = "http://127.0.0.1:22380"
        c.initialCluster = "n1=http://127.0.0.1:2380,n2=http://127.0.0.1:22380,n3=http://127.0.0.1:32380"
        edit(&c)
        return c
    }

    private func error(_ edit: (inout ServeConfiguration) -> Void) -> String {
        do {
            _ = try configuration(edit).validate()
            return "no error"
        } catch {
            return error.message
        }
    }

    func testValidClusterGivesEveryMemberTheSameIDs() throws {
        let options = try configuration().validate()
        XCTAssertEqual(options.members.map(\.name), ["n1", "n2", "n3"])
        XCTAssertEqual(options.local.nodeID, NodeID(2))
        XCTAssertEqual(options.dataDirectory, "n2.synod")
        XCTAssertNil(options.metricsListen, "no extra listener unless --listen-metrics-urls is given")
        // Another member listing the cluster in another order derives the same ids.
        let other = try configuration {
            $0.name = "n3"
            $0.listenPeerURLs = "http://127.0.0.1:32380"
            $0.listenClientURLs = "http://127.0.0.1:32379"
            $0.initialCluster = "n3=http://127.0.0.1:32380,n1=http://127.0.0.1:2380,n2=http://127.0.0.1:22380"
        }.validate()
        XCTAssertEqual(other.clusterID, options.clusterID)
        XCTAssertEqual(other.members.map(\.memberID), options.members.map(\.memberID))
        XCTAssertEqual(other.members.map(\.nodeID), options.members.map(\.nodeID))
        let otherToken = try configuration { $0.initialClusterToken = "other" }.validate()
        XCTAssertNotEqual(otherToken.clusterID, options.clusterID, "the token separates clusters")
    }

    func testTimingsBecomeTicks() throws {
        let protocolConfiguration = try configuration().validate().protocolConfiguration()
        XCTAssertNoThrow(try protocolConfiguration.validate())
        XCTAssertEqual(protocolConfiguration.heartbeatIntervalTicks, 10)
        XCTAssertEqual(protocolConfiguration.electionTimeoutTicks, 100)
    }

    func testEveryBadSettingGetsOneClearLine() {
        XCTAssertEqual(error { $0.name = "n9" }, "--name 'n9' is not in --initial-cluster (n1, n2, n3)")
        XCTAssertEqual(error { $0.listenClientURLs = "127.0.0.1:2379" },
                       "--listen-client-urls: '127.0.0.1:2379' is not a URL like http://127.0.0.1:2379 or https://127.0.0.1:2379")
        XCTAssertEqual(error { $0.listenClientURLs = "https://127.0.0.1:22379" },
                       "--listen-client-urls: https://127.0.0.1:22379 is https:// but --cert-file and --key-file are not both given (or use --auto-tls)")
        XCTAssertEqual(error { $0.peerTLS.certFile = "/etc/hostname" },
                       "--listen-peer-urls: http://127.0.0.1:22380 is http:// but TLS flags are given (--peer-cert-file, --peer-key-file, --peer-trusted-ca-file, --peer-client-cert-auth or --peer-auto-tls): use https:// or drop them")
        XCTAssertEqual(error {
            $0.listenPeerURLs = "https://127.0.0.1:22380"
            $0.peerTLS.autoTLS = true
        }, "--initial-cluster: member n1 has http://127.0.0.1:2380 but --listen-peer-urls is https://127.0.0.1:22380: every peer URL must be http:// or every one https://")
        XCTAssertEqual(error {
            $0.listenClientURLs = "https://127.0.0.1:22379"
            $0.clientTLS.certFile = "/etc/hostname"
            $0.clientTLS.keyFile = "/etc/hostname"
            $0.clientTLS.clientCertAuth = true
        }, "--client-cert-auth needs --trusted-ca-file (the CA that signs the certificates to accept)")
        XCTAssertEqual(error {
            $0.listenClientURLs = "https://127.0.0.1:22379"
            $0.clientTLS.autoTLS = true
            $0.clientTLS.cipherSuites = ["TLS_NULL"]
        }, "--cipher-suites: unknown cipher suite 'TLS_NULL' (use IANA names such as TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)")
        XCTAssertEqual(error {
            $0.listenClientURLs = "https://127.0.0.1:22379"
            $0.clientTLS.certFile = "/nonexistent/cert.pem"
            $0.clientTLS.keyFile = "/etc/hostname"
        }, "--cert-file: cannot read /nonexistent/cert.pem")
        XCTAssertEqual(error { $0.listenPeerURLs = "http://127.0.0.1:99999" },
                       "--listen-peer-urls: 'http://127.0.0.1:99999' needs a host and a port between 1 and 65535")
        XCTAssertEqual(error { $0.initialCluster = "n1=http://127.0.0.1:2380,n2" },
                       "--initial-cluster: 'n2' is not name=http://host:port")
        XCTAssertEqual(error { $0.initialCluster = "n2=http://127.0.0.1:22380,n2=http://127.0.0.1:2380" },
                       "--initial-cluster: member 'n2' appears more than once")
        XCTAssertEqual(error { $0.listenPeerURLs = "http://127.0.0.1:22381" },
                       "--initial-cluster gives n2 the peer URL http://127.0.0.1:22380, but this member advertises http://127.0.0.1:22381")
        XCTAssertEqual(error { $0.initialClusterState = "old" }, "--initial-cluster-state: 'old' must be 'new' or 'existing'")
        XCTAssertEqual(error { $0.electionTimeoutMilliseconds = 300 },
                       "--election-timeout (300 ms) must be at least 5 times --heartbeat-interval (100 ms)")
        XCTAssertEqual(error { $0.readMode = "fast" }, "--read-mode: 'fast' must be one of lease, read-index")
        XCTAssertEqual(error { $0.maxRequestBytes = 10 }, "--max-request-bytes: 10 must be between 1024 and 33554432")
    }

    func testDurationsParseLikeEtcdFlags() throws {
        XCTAssertEqual(try ServeConfiguration.milliseconds("10m", flag: "--x"), 600_000)
        XCTAssertEqual(try ServeConfiguration.milliseconds("1m30s", flag: "--x"), 90_000)
        XCTAssertEqual(try ServeConfiguration.milliseconds("250ms", flag: "--x"), 250)
        for bad in ["", "10", "5x", "m", "-1s"] {
            XCTAssertThrowsError(try ServeConfiguration.milliseconds(bad, flag: "--x"), bad)
        }
    }
}
