import Foundation
import NIOSSL

/// One listener's TLS flags, as etcd names them (`--cert-file`, `--key-file`,
/// `--trusted-ca-file`, `--client-cert-auth`, ... and their `--peer-` forms).
public struct TLSSettings: Sendable, Hashable {
    /// PEM certificate chain this member presents (leaf first).
    public var certFile: String?
    /// PEM private key of that certificate.
    public var keyFile: String?
    /// PEM CA bundle that client (or peer) certificates must chain to.
    public var trustedCAFile: String?
    /// Require and verify a certificate from the other side (`--client-cert-auth`,
    /// `--peer-client-cert-auth`).
    public var clientCertAuth = false
    /// PEM or DER certificate revocation list: certificates whose serial numbers it lists are
    /// refused after the handshake.
    public var crlFile: String?
    /// Allowed common names of the other side's certificate (`--peer-cert-allowed-cn`); empty
    /// allows any certificate from the trusted CA.
    public var allowedCommonNames: [String] = []
    /// IANA cipher suite names (`--cipher-suites`); empty keeps the TLS library's defaults.
    public var cipherSuites: [String] = []
    /// `TLS1.2` or `TLS1.3` (`--tls-min-version`).
    public var minimumVersion = "TLS1.2"
    /// Generate a self-signed certificate in the data directory (`--auto-tls`,
    /// `--peer-auto-tls`): encryption without identity, for tests.
    public var autoTLS = false

    public init() {}

    /// Whether the other side must present a certificate that chains to `trustedCAFile`: with
    /// `clientCertAuth`, or (as etcd does) whenever a trusted CA file is given.
    public var requiresClientCertificate: Bool { clientCertAuth || trustedCAFile != nil }

    /// Whether any flag of this listener asks for TLS.
    public var isConfigured: Bool { certFile != nil || keyFile != nil || autoTLS }

    /// The cipher suites etcd accepts by name (Go's names, which are the IANA ones).
    static let cipherNames: [String: NIOTLSCipher] = [
        "TLS_RSA_WITH_AES_128_CBC_SHA": .TLS_RSA_WITH_AES_128_CBC_SHA,
        "TLS_RSA_WITH_AES_256_CBC_SHA": .TLS_RSA_WITH_AES_256_CBC_SHA,
        "TLS_RSA_WITH_AES_128_GCM_SHA256": .TLS_RSA_WITH_AES_128_GCM_SHA256,
        "TLS_RSA_WITH_AES_256_GCM_SHA384": .TLS_RSA_WITH_AES_256_GCM_SHA384,
        "TLS_AES_128_GCM_SHA256": .TLS_AES_128_GCM_SHA256,
        "TLS_AES_256_GCM_SHA384": .TLS_AES_256_GCM_SHA384,
        "TLS_CHACHA20_POLY1305_SHA256": .TLS_CHACHA20_POLY1305_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": .TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
        "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": .TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": .TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
        "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": .TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": .TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": .TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": .TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": .TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": .TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": .TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        // Go's older spellings, which etcd also accepts.
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": .TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": .TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ]

    /// Checks the flags of one listener (`prefix` is "" or "peer-" for the messages) against
    /// the scheme of its URLs: one line naming the flags when they disagree.
    public func validate(prefix: String, urlFlag: String, url: String, isHTTPS: Bool) throws(ServeConfigurationError) {
        if isHTTPS {
            if !autoTLS && (certFile == nil || keyFile == nil) {
                throw ServeConfigurationError(
                    "\(urlFlag): \(url) is https:// but --\(prefix)cert-file and --\(prefix)key-file are not both given (or use --\(prefix)auto-tls)")
            }
        } else if isConfigured || trustedCAFile != nil || clientCertAuth {
            throw ServeConfigurationError(
                "\(urlFlag): \(url) is http:// but TLS flags are given (--\(prefix)cert-file, --\(prefix)key-file, --\(prefix)trusted-ca-file, --\(prefix)client-cert-auth or --\(prefix)auto-tls): use https:// or drop them")
        }
        if autoTLS && (certFile != nil || keyFile != nil) {
            throw ServeConfigurationError("--\(prefix)auto-tls cannot be combined with --\(prefix)cert-file/--\(prefix)key-file")
        }
        if clientCertAuth && trustedCAFile == nil && !autoTLS {
            throw ServeConfigurationError("--\(prefix)client-cert-auth needs --\(prefix)trusted-ca-file (the CA that signs the certificates to accept)")
        }
        for name in cipherSuites where Self.cipherNames[name] == nil {
            throw ServeConfigurationError("--cipher-suites: unknown cipher suite '\(name)' (use IANA names such as TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)")
        }
        guard minimumVersion == "TLS1.2" || minimumVersion == "TLS1.3" else {
            throw ServeConfigurationError("--tls-min-version: '\(minimumVersion)' must be TLS1.2 or TLS1.3")
        }
        let crlFlag = prefix.isEmpty ? "client-crl-file" : "\(prefix)crl-file"
        for (flag, path) in [("--\(prefix)cert-file", certFile), ("--\(prefix)key-file", keyFile),
                             ("--\(prefix)trusted-ca-file", trustedCAFile), ("--\(crlFlag)", crlFile)] {
            if let path, !FileManager.default.isReadableFile(atPath: path) {
                throw ServeConfigurationError("\(flag): cannot read \(path)")
            }
        }
    }
}
