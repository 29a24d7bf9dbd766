import Logging
import NIOCore
import NIOSSL
import NIOTLS
import Synchronization

/// What a connection's TLS handshake proved about the other side, sent down the pipeline as a
/// user event once the handshake completed (the client API uses the common name as the user
/// name when a request carries no token, as etcd does with `--client-cert-auth`).
struct TLSPeerIdentity: Sendable {
    var commonName: String?
}

/// Remembers which remote hosts were already told about in the log, so a member that keeps
/// redialing with a wrong certificate is logged once, not on every attempt.
final class RefusalLog: Sendable {
    private let seen = Mutex<Set<String>>([])
    private let logger: Logger

    init(logger: Logger) { self.logger = logger }

    func refuse(_ what: String, remote: String, reason: String) {
        let host = Self.host(remote)
        let first = seen.withLock { seen -> Bool in
            if seen.count > 4096 { seen.removeAll() }
            return seen.insert("\(what)/\(host)").inserted
        }
        if first {
            logger.warning("refused a \(what) connection (said once per host)", metadata: ["remote": "\(host)", "reason": "\(reason)"])
        } else {
            logger.debug("refused a \(what) connection", metadata: ["remote": "\(remote)", "reason": "\(reason)"])
        }
    }

    static func host(_ remote: String) -> String {
        // "[IPv4]127.0.0.1/127.0.0.1:4321" -> the part before the last colon
        guard let colon = remote.lastIndex(of: ":") else { return remote }
        return String(remote[..<colon])
    }
}

/// Sits right after `NIOSSLServerHandler`: once the handshake completed, refuses a
/// certificate that is revoked (CRL) or whose common name is not allowed, and passes the
/// verified identity on as a `TLSPeerIdentity` event. A failed handshake is logged once per
/// host and the connection closed.
final class TLSIdentityHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private let source: TLSContextSource
    private let refusals: RefusalLog
    private let what: String

    init(source: TLSContextSource, refusals: RefusalLog, what: String) {
        self.source = source
        self.refusals = refusals
        self.what = what
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent {
            var commonName: String?
            if let ssl = try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self),
               let certificate = ssl.peerCertificate, let der = try? certificate.toDERBytes() {
                commonName = CertificateAuthority.commonName(derEncoded: der)
                if let serial = CertificateAuthority.serialNumber(derEncoded: der), source.isRevoked(serial: serial) {
                    refusals.refuse(what, remote: remote(context), reason: "certificate \(commonName ?? "?") is revoked (CRL)")
                    context.close(promise: nil)
                    return
                }
            } else if source.settings.requiresClientCertificate, source.settings.trustedCAFile != nil {
                refusals.refuse(what, remote: remote(context), reason: "no client certificate")
                context.close(promise: nil)
                return
            }
            let allowed = source.settings.allowedCommonNames
            if !allowed.isEmpty, !(commonName.map { allowed.contains($0) } ?? false) {
                refusals.refuse(what, remote: remote(context),
                                reason: "certificate common name '\(commonName ?? "")' is not allowed (\(allowed.joined(separator: ",")))")
                context.close(promise: nil)
                return
            }
            context.fireUserInboundEventTriggered(event)
            context.fireUserInboundEventTriggered(TLSPeerIdentity(commonName: commonName))
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is NIOSSLError || error is BoringSSLError {
            refusals.refuse(what, remote: remote(context), reason: "TLS handshake failed: \(error)")
            context.close(promise: nil)
            return
        }
        context.fireErrorCaught(error)
    }

    private func remote(_ context: ChannelHandlerContext) -> String {
        context.channel.remoteAddress.map { "\($0)" } ?? "unknown"
    }
}

/// Completes `promise` when the client side's TLS handshake completed, fails it when the
/// connection fails or closes first; then removes itself.
final class TLSHandshakeWaiter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    private let promise: EventLoopPromise<Void>
    private var done = false

    init(promise: EventLoopPromise<Void>) { self.promise = promise }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent, !done {
            done = true
            promise.succeed(())
            context.fireUserInboundEventTriggered(event)
            context.pipeline.syncOperations.removeHandler(self, promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !done {
            done = true
            promise.fail(error)
            context.close(promise: nil)
            return
        }
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !done {
            done = true
            promise.fail(ChannelError.eof)
        }
        context.fireChannelInactive()
    }
}
