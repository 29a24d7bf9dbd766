import Crypto
import Foundation
import SwiftASN1
import X509

/// A small certificate authority for local clusters (`synod cluster --tls`) and for
/// `--auto-tls`: ECDSA P-256 keys, certificates usable by servers and clients alike (members
/// present the same certificate when they accept and when they dial).
public struct CertificateAuthority: Sendable {
    /// A certificate and its private key, both PEM.
    public struct Issued: Sendable, Hashable {
        public var certificatePEM: String
        public var privateKeyPEM: String
    }

    public let certificate: Certificate
    private let key: P256.Signing.PrivateKey

    /// The CA's own certificate (self-signed) and key.
    public var issued: Issued {
        get throws {
            Issued(certificatePEM: try certificate.serializeAsPEM().pemString, privateKeyPEM: key.pemRepresentation)
        }
    }

    /// A new CA named `commonName`, valid from an hour ago for `years`.
    public init(commonName: String, years: Int = 10) throws {
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName {
            OrganizationName("Synod")
            CommonName(commonName)
        }
        let now = Date()
        certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
            notValidBefore: now - 3600, notValidAfter: now + Double(years) * 365 * 86_400,
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(digitalSignature: true, keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: .init(key.publicKey))
            },
            issuerPrivateKey: .init(key))
        self.key = key
    }

    /// Loads a CA from its PEM certificate and PKCS#8 (or SEC1) PEM key.
    public init(certificatePEM: String, privateKeyPEM: String) throws {
        certificate = try Certificate(pemEncoded: certificatePEM)
        key = try P256.Signing.PrivateKey(pemRepresentation: privateKeyPEM)
    }

    /// A certificate for `commonName`, valid for the DNS names and IP addresses given (as
    /// subject alternative names), for TLS servers and clients.
    public func issue(commonName: String, dnsNames: [String] = [], ipAddresses: [String] = [], years: Int = 5) throws -> Issued {
        let key = P256.Signing.PrivateKey()
        var names: [GeneralName] = dnsNames.map { .dnsName($0) }
        for address in ipAddresses {
            guard let bytes = Self.ipBytes(address) else {
                throw ServeConfigurationError("'\(address)' is not an IPv4 or IPv6 address")
            }
            names.append(.ipAddress(ASN1OctetString(contentBytes: ArraySlice(bytes))))
        }
        let now = Date()
        let leaf = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
            notValidBefore: now - 3600, notValidAfter: now + Double(years) * 365 * 86_400,
            issuer: certificate.subject,
            subject: try DistinguishedName {
                OrganizationName("Synod")
                CommonName(commonName)
            },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true, keyEncipherment: true))
                try ExtendedKeyUsage([.serverAuth, .clientAuth])
                if !names.isEmpty { SubjectAlternativeNames(names) }
                AuthorityKeyIdentifier(keyIdentifier: try certificate.extensions.subjectKeyIdentifier?.keyIdentifier)
            },
            issuerPrivateKey: .init(self.key))
        return Issued(certificatePEM: try leaf.serializeAsPEM().pemString, privateKeyPEM: key.pemRepresentation)
    }

    /// A self-signed certificate (its own issuer) for `--auto-tls`.
    public static func selfSigned(commonName: String, dnsNames: [String], ipAddresses: [String]) throws -> Issued {
        let ca = try CertificateAuthority(commonName: commonName + " (self-signed)", years: 1)
        return try ca.issue(commonName: commonName, dnsNames: dnsNames, ipAddresses: ipAddresses, years: 1)
    }

    static func ipBytes(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }

    /// The subject's common name of a DER certificate (the first CN), if any.
    public static func commonName(derEncoded bytes: [UInt8]) -> String? {
        guard let certificate = try? Certificate(derEncoded: bytes) else { return nil }
        for rdn in certificate.subject {
            for attribute in rdn where attribute.type == .RDNAttributeType.commonName {
                if let name = String(attribute.value) { return name }
            }
        }
        return nil
    }

    /// The certificate's serial number bytes (big-endian, as in a CRL).
    static func serialNumber(derEncoded bytes: [UInt8]) -> [UInt8]? {
        guard let certificate = try? Certificate(derEncoded: bytes) else { return nil }
        return Array(certificate.serialNumber.bytes)
    }
}

/// Writes the files of a local secure cluster: a CA, one certificate per member (usable for
/// both its client and its peer listener), and client certificates (CN = user name).
public enum LocalPKI {
    /// `directory/ca.crt`, `ca.key`, `<member>.crt/.key` for each member, `<user>.crt/.key` for
    /// each client user. Keys are written readable by their owner only. Existing files are kept
    /// (a restarted `synod cluster --tls` reuses its CA).
    public static func write(directory: String, members: [String], clientUsers: [String]) throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let caCert = directory + "/ca.crt"
        let caKey = directory + "/ca.key"
        let ca: CertificateAuthority
        if fm.fileExists(atPath: caCert), fm.fileExists(atPath: caKey) {
            ca = try CertificateAuthority(certificatePEM: try String(contentsOfFile: caCert, encoding: .utf8),
                                          privateKeyPEM: try String(contentsOfFile: caKey, encoding: .utf8))
        } else {
            ca = try CertificateAuthority(commonName: "Synod local cluster CA")
            try save(try ca.issued, certificate: caCert, key: caKey)
        }
        for name in members + clientUsers {
            let cert = "\(directory)/\(name).crt"
            let key = "\(directory)/\(name).key"
            if fm.fileExists(atPath: cert), fm.fileExists(atPath: key) { continue }
            try save(try ca.issue(commonName: name, dnsNames: ["localhost"], ipAddresses: ["127.0.0.1", "::1"]),
                     certificate: cert, key: key)
        }
    }

    static func save(_ issued: CertificateAuthority.Issued, certificate: String, key: String) throws {
        try Data(issued.certificatePEM.utf8).write(to: URL(fileURLWithPath: certificate))
        let fm = FileManager.default
        _ = fm.createFile(atPath: key, contents: nil, attributes: [.posixPermissions: 0o600])
        try Data(issued.privateKeyPEM.utf8).write(to: URL(fileURLWithPath: key))
    }
}
