import Foundation
import Logging
import NIOCore
import NIOSSL
import SwiftASN1
import Synchronization

/// The TLS contexts of one listener, rebuilt when its certificate, key, CA or CRL files
/// change: a background task looks at the files' modification times once a second (never on
/// an event loop: accepting a connection only reads the current context). New connections
/// get the new context; connections already open keep the one they started with, as etcd's
/// do. A file that fails to load keeps the previous context (and says why, once per change).
/// The task ends when the source is released.
public final class TLSContextSource: Sendable {
    public let settings: TLSSettings
    /// Application protocols offered and accepted (ALPN): `h2` on the client port.
    let alpn: [String]
    private let logger: Logger
    private let state: Mutex<State>

    private struct State {
        var server: NIOSSLContext
        var client: NIOSSLContext
        var revokedSerials: Set<[UInt8]>
        var stamps: [String: Date]
    }

    /// How often the files are looked at.
    static let checkInterval = Duration.seconds(1)

    /// Loads the files now; throws with one line naming the file that fails.
    public init(settings: TLSSettings, alpn: [String], logger: Logger) throws {
        self.settings = settings
        self.alpn = alpn
        self.logger = logger
        let built = try Self.build(settings, alpn: alpn)
        state = Mutex(State(server: built.server, client: built.client, revokedSerials: built.revoked,
                            stamps: Self.stamps(settings)))
        Task.detached { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: Self.checkInterval)
                guard let self else { return }
                self.reloadIfChanged()
            }
        }
    }

    /// The context for accepting a connection.
    public func serverContext() -> NIOSSLContext { state.withLock { $0.server } }

    /// The context for dialing (members dial each other with their peer certificate).
    public func clientContext() -> NIOSSLContext { state.withLock { $0.client } }

    /// Whether a certificate with this serial number is on the revocation list.
    func isRevoked(serial: [UInt8]) -> Bool {
        state.withLock { $0.revokedSerials.contains(Self.trimmed(serial)) }
    }

    /// Rebuilds the contexts if a file's modification time changed (the background task's step).
    func reloadIfChanged() {
        let stamps = Self.stamps(settings)
        guard stamps != state.withLock({ $0.stamps }) else { return }
        do {
            let built = try Self.build(settings, alpn: alpn)
            state.withLock { state in
                state.server = built.server
                state.client = built.client
                state.revokedSerials = built.revoked
                state.stamps = stamps
            }
            logger.info("TLS files changed: new connections use them", metadata: ["cert-file": "\(settings.certFile ?? "")"])
        } catch {
            state.withLock { $0.stamps = stamps }
            logger.warning("TLS files changed but cannot be loaded; keeping the previous ones", metadata: ["error": "\(error)"])
        }
    }

    private static func stamps(_ settings: TLSSettings) -> [String: Date] {
        var stamps: [String: Date] = [:]
        for path in [settings.certFile, settings.keyFile, settings.trustedCAFile, settings.crlFile].compactMap({ $0 }) {
            let attributes = try? FileManager.default.attributesOfItem(atPath: path)
            stamps[path] = (attributes?[.modificationDate] as? Date) ?? .distantPast
        }
        return stamps
    }

    private static func build(_ settings: TLSSettings, alpn: [String]) throws
        -> (server: NIOSSLContext, client: NIOSSLContext, revoked: Set<[UInt8]>) {
        guard let certFile = settings.certFile, let keyFile = settings.keyFile else {
            throw ServeConfigurationError("TLS needs a certificate and a key file")
        }
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certFile)
        } catch {
            throw ServeConfigurationError("cannot load certificate \(certFile): \(error)")
        }
        guard !chain.isEmpty else { throw ServeConfigurationError("no certificate in \(certFile)") }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: keyFile, format: .pem)
        } catch {
            throw ServeConfigurationError("cannot load private key \(keyFile): \(error)")
        }
        var trust: NIOSSLTrustRoots?
        if let caFile = settings.trustedCAFile {
            do {
                trust = .certificates(try NIOSSLCertificate.fromPEMFile(caFile))
            } catch {
                throw ServeConfigurationError("cannot load trusted CA \(caFile): \(error)")
            }
        }
        var revoked: Set<[UInt8]> = []
        if let crlFile = settings.crlFile {
            guard let data = FileManager.default.contents(atPath: crlFile) else {
                throw ServeConfigurationError("cannot read certificate revocation list \(crlFile)")
            }
            do {
                revoked = try RevocationList.serials(Array(data))
            } catch {
                throw ServeConfigurationError("cannot parse certificate revocation list \(crlFile): \(error)")
            }
        }
        let minimum: TLSVersion = settings.minimumVersion == "TLS1.3" ? .tlsv13 : .tlsv12
        let ciphers = settings.cipherSuites.compactMap { TLSSettings.cipherNames[$0] }

        var server = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        server.minimumTLSVersion = minimum
        if !ciphers.isEmpty { server.cipherSuiteValues = ciphers }
        server.applicationProtocols = alpn
        if settings.requiresClientCertificate, trust != nil {
            server.certificateVerification = .noHostnameVerification
            server.trustRoots = trust
        } else {
            server.certificateVerification = .none
        }

        var client = TLSConfiguration.makeClientConfiguration()
        client.certificateChain = chain.map { .certificate($0) }
        client.privateKey = .privateKey(key)
        client.minimumTLSVersion = minimum
        if !ciphers.isEmpty { client.cipherSuiteValues = ciphers }
        client.applicationProtocols = alpn
        if settings.autoTLS || trust == nil {
            // Self-signed peers (etcd's --peer-auto-tls skips verification the same way).
            client.certificateVerification = .none
        } else {
            client.trustRoots = trust
            client.certificateVerification = .fullVerification
        }
        do {
            return (try NIOSSLContext(configuration: server), try NIOSSLContext(configuration: client), revoked)
        } catch {
            throw ServeConfigurationError("cannot use the certificate \(certFile) with key \(keyFile): \(error)")
        }
    }

    static func trimmed(_ serial: [UInt8]) -> [UInt8] {
        var bytes = serial[...]
        while bytes.count > 1, bytes.first == 0 { bytes = bytes.dropFirst() }
        return Array(bytes)
    }
}

/// The revoked serial numbers of an X.509 certificate revocation list (RFC 5280 5.1: PEM or
/// DER). The list's signature is not checked: the operator put the file there.
enum RevocationList {
    static func serials(_ bytes: [UInt8]) throws -> Set<[UInt8]> {
        var der = bytes
        if let text = String(bytes: bytes, encoding: .utf8), text.contains("-----BEGIN") {
            let document = try PEMDocument(pemString: text)
            der = Array(document.derBytes)
        }
        let root = try DER.parse(der)
        guard case .constructed(let list) = root.content else { throw ServeConfigurationError("not a certificate list") }
        var listIterator = list.makeIterator()
        guard let tbsNode = listIterator.next(), case .constructed(let tbs) = tbsNode.content else {
            throw ServeConfigurationError("not a certificate list")
        }
        var serials: Set<[UInt8]> = []
        // TBSCertList: version?, signature, issuer, thisUpdate, nextUpdate?, revokedCertificates?, extensions[0]?
        // The revoked list is the only SEQUENCE whose elements are SEQUENCEs starting with an INTEGER.
        var index = 0
        for node in tbs {
            defer { index += 1 }
            guard index >= 3, node.identifier == ASN1Identifier.sequence, case .constructed(let entries) = node.content else { continue }
            for entry in entries {
                guard case .constructed(let fields) = entry.content else { continue }
                var fieldIterator = fields.makeIterator()
                guard let serialNode = fieldIterator.next(), serialNode.identifier == ASN1Identifier.integer,
                      case .primitive(let serial) = serialNode.content else { continue }
                serials.insert(TLSContextSource.trimmed(Array(serial)))
            }
        }
        return serials
    }
}

extension TLSContextSource {
    /// The source for one listener of a member; with `--auto-tls` (`--peer-auto-tls`) first
    /// makes a self-signed certificate under `<data-dir>/fixtures/<role>` (kept across
    /// restarts), as etcd does.
    static func make(settings: TLSSettings, dataDirectory: String, role: String, hosts: [String],
                     alpn: [String], logger: Logger) throws -> TLSContextSource {
        var settings = settings
        if settings.autoTLS {
            let directory = "\(dataDirectory)/fixtures/\(role)"
            let cert = directory + "/cert.pem"
            let key = directory + "/key.pem"
            if !FileManager.default.fileExists(atPath: cert) || !FileManager.default.fileExists(atPath: key) {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o700])
                let ips = hosts.filter { CertificateAuthority.ipBytes($0) != nil }
                let names = hosts.filter { CertificateAuthority.ipBytes($0) == nil } + ["localhost"]
                let issued = try CertificateAuthority.selfSigned(commonName: "synod-\(role)", dnsNames: names,
                                                                 ipAddresses: Array(Set(ips + ["127.0.0.1"])).sorted())
                try LocalPKI.save(issued, certificate: cert, key: key)
            }
            settings.certFile = cert
            settings.keyFile = key
        }
        return try TLSContextSource(settings: settings, alpn: alpn, logger: logger)
    }
}
