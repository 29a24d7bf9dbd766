import Foundation
import SynodServer

/// The certificates of `synod bench compare --tls`, made by `LocalPKI` under
/// `<out>/pki`: a CA, one certificate per TLS member (its client and its peer listener, and
/// what it presents when it dials a peer) and the load generator's client certificate `bench`.
/// Every certificate carries localhost, 127.0.0.1 and ::1 and is usable by servers and clients.
public struct ComparePKI: Codable, Sendable, Equatable {
    /// The load generator's certificate (CN = user name, as etcd reads it).
    public static let clientUser = "bench"

    public var directory: String

    public init(directory: String) {
        self.directory = directory
    }

    public var caFile: String { directory + "/ca.crt" }
    public func certFile(_ name: String) -> String { "\(directory)/\(name).crt" }
    public func keyFile(_ name: String) -> String { "\(directory)/\(name).key" }

    /// The load generator's TLS: trusts the CA, presents `bench.crt`.
    public var clientTLS: BenchTLS {
        BenchTLS(caFile: caFile, certFile: certFile(Self.clientUser), keyFile: keyFile(Self.clientUser))
    }

    /// etcd's flags (Synod takes the same) for mutual TLS on the client and the peer port, as
    /// kubeadm runs etcd: both ports require a client certificate signed by the CA.
    public func serverFlags(member name: String) -> [String] {
        [
            "--cert-file", certFile(name), "--key-file", keyFile(name),
            "--trusted-ca-file", caFile, "--client-cert-auth",
            "--peer-cert-file", certFile(name), "--peer-key-file", keyFile(name),
            "--peer-trusted-ca-file", caFile, "--peer-client-cert-auth",
        ]
    }

    /// Makes (or, when its files exist, keeps) the CA and the certificates of `members` and of
    /// ``clientUser`` in `directory`.
    public static func make(directory: String, members: [String]) throws(CompareError) -> ComparePKI {
        do {
            try LocalPKI.write(directory: directory, members: members, clientUsers: [clientUser])
        } catch {
            throw CompareError("cannot make the certificates in \(directory): \(error)")
        }
        return ComparePKI(directory: directory)
    }
}
