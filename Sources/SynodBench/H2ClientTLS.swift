import NIOCore
import NIOSSL
import NIOTLS

/// TLS for ``H2Connection``: one `NIOSSLContext` per run (BoringSSL parses the CA and the client
/// certificate once), a `NIOSSLClientHandler` in front of the HTTP/2 handler on every connection.
enum H2TLS {
    /// The protocol every TLS connection must negotiate: grpc-go (etcd) serves gRPC only over
    /// HTTP/2 negotiated by ALPN.
    static let alpn = "h2"

    /// A client context trusting `tls.caFile` (else the system's roots), presenting
    /// `tls.certFile`/`tls.keyFile` when given, offering ALPN "h2" only.
    static func context(_ tls: BenchTLS) throws(LoadGeneratorError) -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.applicationProtocols = [alpn]
        do {
            if let caFile = tls.caFile {
                configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile))
            }
            if let certFile = tls.certFile, let keyFile = tls.keyFile {
                configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(certFile).map { .certificate($0) }
                configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyFile, format: .pem))
            }
            return try NIOSSLContext(configuration: configuration)
        } catch {
            let files = [tls.caFile, tls.certFile, tls.keyFile].compactMap { $0 }.joined(separator: ", ")
            throw LoadGeneratorError("cannot load the TLS files (\(files)): \(error)")
        }
    }

    /// The client handler of one connection to `host`: SNI and name verification for DNS names;
    /// for an address literal (no SNI allowed) NIOSSL verifies the certificate's IP SANs against
    /// the address connected to.
    static func handler(_ context: NIOSSLContext, host: String) throws -> NIOSSLClientHandler {
        let isAddress = host.contains(":") || host.allSatisfy { $0.isNumber || $0 == "." }
        return try NIOSSLClientHandler(context: context, serverHostname: isAddress ? nil : host)
    }
}

/// Closes the connection with a clear reason when the TLS handshake completed without ALPN
/// choosing "h2" (a server that would answer HTTP/1.1 on this connection).
final class H2ALPNCheck: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    struct NotNegotiated: Error, CustomStringConvertible {
        var negotiated: String?
        var description: String {
            "the server did not negotiate HTTP/2 by ALPN (it chose \(negotiated.map { "'\($0)'" } ?? "no protocol")); gRPC needs 'h2'"
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted(let negotiated) = event {
            if negotiated != H2TLS.alpn {
                context.fireErrorCaught(NotNegotiated(negotiated: negotiated))
                context.close(promise: nil)
                return
            }
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }
}
