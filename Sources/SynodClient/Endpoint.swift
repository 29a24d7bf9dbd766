import GRPCCore
import GRPCNIOTransportHTTP2

/// One server address the client may talk to, parsed from `http://host:port` or `host:port`.
public struct SynodEndpoint: Sendable, Hashable, CustomStringConvertible {
    /// How the host was written.
    public enum HostKind: Sendable, Hashable {
        case ipv4
        case ipv6
        case dns
    }

    /// The endpoint exactly as configured (used in messages).
    public let original: String
    /// Host name or address literal (IPv6 without brackets).
    public let host: String
    /// TCP port.
    public let port: Int
    /// Whether ``host`` is an IPv4 literal, an IPv6 literal or a name to resolve.
    public let hostKind: HostKind
    /// Written as `https://`: the client must use TLS (``SynodClientTLS``) for it.
    public let isHTTPS: Bool

    public var description: String { original }

    /// Parses an endpoint. Accepted forms: `http://127.0.0.1:2379`, `127.0.0.1:2379`,
    /// `localhost:2379`, `http://[::1]:2379`, `[::1]:2379`. A trailing `/` is ignored.
    /// `https://host:port` needs TLS settings in the configuration; `unix://` is rejected.
    public init(parsing text: String) throws(SynodClientError) {
        func fail(_ reason: String) -> SynodClientError {
            .invalidEndpoint(endpoint: text, reason: reason)
        }
        var rest = Substring(text.trimmingWhitespace())
        if rest.isEmpty { throw fail("empty endpoint") }
        var https = false
        if let schemeRange = rest.range(of: "://") {
            let scheme = rest[..<schemeRange.lowerBound].lowercased()
            guard scheme == "http" || scheme == "https" else {
                throw fail("unsupported scheme '\(scheme)'; use http://host:port, https://host:port or host:port")
            }
            https = scheme == "https"
            rest = rest[schemeRange.upperBound...]
        }
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        if rest.contains("/") { throw fail("a path is not allowed; use http://host:port") }

        let hostPart: Substring
        let portPart: Substring
        var kind: HostKind
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw fail("missing ']' after IPv6 address") }
            hostPart = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            guard after.hasPrefix(":") else { throw fail("missing port (expected [address]:port)") }
            portPart = after.dropFirst()
            kind = .ipv6
        } else {
            guard let colon = rest.lastIndex(of: ":") else { throw fail("missing port (expected host:port)") }
            hostPart = rest[..<colon]
            portPart = rest[rest.index(after: colon)...]
            if hostPart.contains(":") { throw fail("an IPv6 address must be written in brackets: [address]:port") }
            kind = Self.isIPv4(hostPart) ? .ipv4 : .dns
        }
        if hostPart.isEmpty { throw fail("missing host") }
        guard !portPart.isEmpty, portPart.allSatisfy({ $0.isASCII && $0.isNumber }), let port = Int(portPart),
            (1...65535).contains(port)
        else { throw fail("invalid port '\(portPart)' (expected 1-65535)") }
        if kind == .dns {
            let allowed = hostPart.allSatisfy { ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "-" || $0 == "." }
            if !allowed { throw fail("invalid host name '\(hostPart)'") }
            if hostPart.allSatisfy({ $0.isNumber || $0 == "." }) { throw fail("invalid IPv4 address '\(hostPart)'") }
        }
        self.original = text
        self.host = String(hostPart)
        self.port = port
        self.hostKind = kind
        self.isHTTPS = https
    }

    private static func isIPv4(_ s: Substring) -> Bool {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return false }
        return parts.allSatisfy { part in
            !part.isEmpty && part.count <= 3 && part.allSatisfy { $0.isASCII && $0.isNumber }
                && (Int(part) ?? 256) <= 255
        }
    }
}

extension String {
    func trimmingWhitespace() -> Substring {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s = s.dropFirst() }
        while let l = s.last, l.isWhitespace { s = s.dropLast() }
        return s
    }
}

/// The gRPC transport SynodClient's connections use (for tools that make raw calls).
public typealias SynodGRPCTransport = HTTP2ClientTransport.Posix

extension SynodEndpoint {
    /// An HTTP/2 gRPC transport to this endpoint (IPv4, IPv6 or DNS), TLS when `tls` is given,
    /// reconnecting with backoff from 100 ms up to `maxBackoff`.
    public func makeTransport(maxBackoff: Duration, tls: SynodClientTLS? = nil) throws -> HTTP2ClientTransport.Posix {
        let target: any ResolvableTarget
        switch hostKind {
        case .ipv4: target = ResolvableTargets.IPv4(addresses: [.init(host: host, port: port)])
        case .ipv6: target = ResolvableTargets.IPv6(addresses: [.init(host: host, port: port)])
        case .dns: target = ResolvableTargets.DNS(host: host, port: port)
        }
        return try HTTP2ClientTransport.Posix(
            target: target,
            transportSecurity: tls.map { $0.transportSecurity } ?? .plaintext,
            config: .defaults { config in
                config.backoff.initial = .milliseconds(100)
                config.backoff.max = maxBackoff
                config.http2.maxFrameSize = 1 << 20
            }
        )
    }
}

/// TLS for the client (etcdctl's `--cacert`, `--cert`, `--key`, `--insecure-skip-tls-verify`).
public struct SynodClientTLS: Sendable, Hashable {
    /// PEM CA bundle that verifies the server's certificate (nil: the system's roots).
    public var caFile: String?
    /// PEM client certificate (chain) for servers that require one (`--client-cert-auth`).
    public var certFile: String?
    /// PEM private key of `certFile`.
    public var keyFile: String?
    /// Accept any server certificate (tests only).
    public var insecureSkipVerify = false

    public init(caFile: String? = nil, certFile: String? = nil, keyFile: String? = nil, insecureSkipVerify: Bool = false) {
        self.caFile = caFile
        self.certFile = certFile
        self.keyFile = keyFile
        self.insecureSkipVerify = insecureSkipVerify
    }

    var transportSecurity: HTTP2ClientTransport.Posix.TransportSecurity {
        .tls { config in
            if let caFile { config.trustRoots = .certificates([.file(path: caFile, format: .pem)]) }
            if let certFile, let keyFile {
                config.certificateChain = [.file(path: certFile, format: .pem)]
                config.privateKey = .file(path: keyFile, format: .pem)
            }
            if insecureSkipVerify { config.serverCertificateVerification = .noVerification }
        }
    }
}
