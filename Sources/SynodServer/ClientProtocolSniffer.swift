import Logging
import NIOCore
import NIOHTTP1

/// The first handler of a client connection (after TLS, when TLS is on): tells HTTP/2 (gRPC,
/// which starts with the connection preface `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`) from HTTP/1.1
/// (`GET /health`, `/metrics`, `/version`, as etcd serves them on its client port) by the
/// first bytes, installs that protocol's handlers after itself, hands them the bytes it read,
/// and removes itself. Nothing else is ever parsed twice; HTTP/2 connections pay one buffer
/// copy of at most 24 bytes.
final class ClientProtocolSniffer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    static let http2Preface: [UInt8] = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    /// Installs the HTTP/2 handlers after `after` (the frame server's).
    private let installHTTP2: (ChannelPipeline.SynchronousOperations, any ChannelHandler) throws -> Void
    /// Routes of the HTTP/1.1 status endpoints; nil refuses HTTP/1.1 (the connection closes).
    private let http1Routes: HTTPStatusRoutes?
    private let logger: Logger
    private var buffered: ByteBuffer?
    /// Events that arrived before the protocol was known (the TLS identity), replayed to it.
    private var heldEvents: [Any] = []
    private var decided = false

    init(installHTTP2: @escaping (ChannelPipeline.SynchronousOperations, any ChannelHandler) throws -> Void,
         http1Routes: HTTPStatusRoutes?, logger: Logger) {
        self.installHTTP2 = installHTTP2
        self.http1Routes = http1Routes
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if decided {
            context.fireChannelRead(wrapInboundOut(bytes))
            return
        }
        if var held = buffered {
            held.writeBuffer(&bytes)
            buffered = held
        } else {
            buffered = bytes
        }
        guard let seen = buffered, let isHTTP2 = Self.classify(seen) else { return }
        decide(context: context, http2: isHTTP2)
    }

    /// true: HTTP/2; false: something else (HTTP/1.x); nil: too few bytes to tell.
    static func classify(_ buffer: ByteBuffer) -> Bool? {
        let count = min(buffer.readableBytes, http2Preface.count)
        guard let prefix = buffer.getBytes(at: buffer.readerIndex, length: count) else { return nil }
        if prefix != Array(http2Preface[0..<count]) { return false }
        return count == http2Preface.count ? true : nil
    }

    private func decide(context: ChannelHandlerContext, http2: Bool) {
        decided = true
        let pipeline = context.pipeline.syncOperations
        do {
            if http2 {
                try installHTTP2(pipeline, self)
            } else if let routes = http1Routes {
                try pipeline.configureHTTPServerPipeline(position: .after(self), withErrorHandling: true)
                try pipeline.addHandler(HTTPStatusHandler(routes: routes, logger: logger), position: .last)
            } else {
                context.close(promise: nil)
                return
            }
        } catch {
            logger.debug("cannot set up a client connection", metadata: ["error": "\(error)"])
            context.close(promise: nil)
            return
        }
        for event in heldEvents { context.fireUserInboundEventTriggered(event) }
        heldEvents = []
        if let bytes = buffered {
            buffered = nil
            context.fireChannelRead(wrapInboundOut(bytes))
            context.fireChannelReadComplete()
        }
        pipeline.removeHandler(context: context, promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if decided {
            context.fireUserInboundEventTriggered(event)
        } else if event is FrameGRPCHandler.Drain {
            context.close(promise: nil)  // shutting down before the client said anything
        } else {
            heldEvents.append(event)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        buffered = nil
        context.fireChannelInactive()
    }
}
