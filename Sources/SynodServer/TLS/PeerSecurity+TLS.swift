import Logging
import NIOCore
import NIOSSL
import SynodTransport

extension PeerSecurity {
    /// Mutual TLS between members: both sides present the member's peer certificate; the
    /// accepting side verifies the dialer's (`--peer-client-cert-auth`), CN included
    /// (`--peer-cert-allowed-cn`), the dialing side verifies the acceptor's against the
    /// trusted CA and the address it dialed (skipped with `--peer-auto-tls`).
    static func tls(source: TLSContextSource, logger: Logger) -> PeerSecurity {
        let refusals = RefusalLog(logger: logger)
        return PeerSecurity(
            accept: { channel in
                try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: source.serverContext()))
                try channel.pipeline.syncOperations.addHandler(TLSIdentityHandler(source: source, refusals: refusals, what: "peer"))
            },
            dial: { channel in
                let promise = channel.eventLoop.makePromise(of: Void.self)
                do {
                    let ssl = try NIOSSLClientHandler(context: source.clientContext(), serverHostname: nil)
                    try channel.pipeline.syncOperations.addHandlers([ssl, TLSHandshakeWaiter(promise: promise)], position: .first)
                } catch {
                    promise.fail(error)
                }
                return promise.futureResult
            })
    }
}
