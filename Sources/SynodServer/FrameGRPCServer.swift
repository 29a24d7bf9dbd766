import GRPCCore
import Logging
import NIOCore
import NIOHTTP2
import NIOHPACK
import NIOPosix
import NIOSSL
import Synchronization

/// The etcd v3 gRPC API served straight from HTTP/2 frames.
///
/// grpc-swift's own transport gives every stream a child channel, async sequences and a task;
/// a profile of the leader under load showed that machinery taking more than half of its CPU.
/// This transport keeps one channel handler per connection that reads the frames itself:
///
/// - the hot unary calls (``KVPipeline``: KV Range/Put/DeleteRange/Txn/Compact) are decoded,
///   handed to the node and answered from event-loop callbacks, with no task per request;
/// - every other call becomes an ``RPCStream`` handed to `GRPCServer`, so the generated
///   services (Watch, Lease, Cluster, Maintenance) run unchanged.
///
/// Wire format (gRPC over HTTP/2): a request is HEADERS (`:method POST`, `:path /pkg.Service/Method`,
/// `content-type application/grpc…`), then DATA holding length-prefixed messages (1 byte
/// compressed flag, 4 bytes big-endian length, the protobuf bytes), END_STREAM on the last
/// frame. A response is HEADERS (`:status 200`), DATA messages, and trailers carrying
/// `grpc-status` and `grpc-message` (or only the trailers when it fails at once).
public final class FrameGRPCServerTransport: ServerTransport, Sendable {
    public typealias Bytes = [UInt8]

    public let host: String
    public let port: Int
    let group: any EventLoopGroup
    let maxMessageBytes: Int
    let fastPath: KVPipeline?
    let logger: Logger
    /// TLS on the client port (`https://` in `--listen-client-urls`), or nil for plaintext.
    let tls: TLSContextSource?
    /// `/health`, `/metrics` and `/version` over HTTP/1.1 on the same port, as etcd serves
    /// them on its client port; nil answers only HTTP/2.
    let http1Routes: HTTPStatusRoutes?
    private let refusals: RefusalLog

    /// The client port's HTTP/2 settings. swift-nio-http2's defaults guard against reset
    /// floods ("rapid reset") and are kept, except the rate limit on control frames: its
    /// default (200 PING, SETTINGS or PRIORITY frames per 30 s) ends the connection of etcd's
    /// own Go client with GOAWAY ENHANCE_YOUR_CALM within a second of load, because grpc-go
    /// sizes its receive window with a PING per round trip while answers arrive (its BDP
    /// estimator). Control frames stay bounded by what a client leaves unread
    /// (`maximumBufferedControlFrames`, 10,000 answers not yet written), as in Go's HTTP/2
    /// server, which etcd uses; the rate limit is set far above any client's round trips.
    static var http2Configuration: NIOHTTP2Handler.ConnectionConfiguration {
        var connection = NIOHTTP2Handler.ConnectionConfiguration()
        connection.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: 4096),
            HTTP2Setting(parameter: .maxHeaderListSize, value: 1 << 16),
            HTTP2Setting(parameter: .initialWindowSize, value: FrameGRPCHandler.streamWindow),
            HTTP2Setting(parameter: .maxFrameSize, value: 1 << 20),
        ]
        connection.controlFrameRateLimit.maximumCount = 1_000_000
        connection.controlFrameRateLimit.windowLength = .seconds(10)
        return connection
    }
    private let state = Mutex<ListenState>(ListenState())

    private struct ListenState {
        var channel: (any Channel)?
        var addressPromise: EventLoopPromise<SocketAddress>?
        var rpcs: AsyncStream<IncomingRPC>.Continuation?
        var connections: [ObjectIdentifier: any Channel] = [:]
        var shuttingDown = false
    }

    struct IncomingRPC: Sendable {
        var stream: RPCStream<Inbound, Outbound>
        var context: ServerContext
        /// The call's token and client certificate name; the services read them as
        /// `AuthCredentials.current` (a task-local set around the call's handler).
        var credentials = AuthCredentials.none
    }

    public init(host: String, port: Int, group: any EventLoopGroup, maxMessageBytes: Int,
                fastPath: KVPipeline?, logger: Logger, tls: TLSContextSource? = nil,
                http1Routes: HTTPStatusRoutes? = nil) {
        self.tls = tls
        self.http1Routes = http1Routes
        self.refusals = RefusalLog(logger: logger)
        self.host = host
        self.port = port
        self.group = group
        self.maxMessageBytes = maxMessageBytes
        self.fastPath = fastPath
        self.logger = logger
    }

    /// The bound address once listening (port 0 picks a free port).
    public func listeningAddress() async throws -> SocketAddress {
        let promise = group.next().makePromise(of: SocketAddress.self)
        let existing: SocketAddress? = state.withLock { state in
            if let address = state.channel?.localAddress { return address }
            if let previous = state.addressPromise { previous.futureResult.cascade(to: promise) } else { state.addressPromise = promise }
            return nil
        }
        if let existing { return existing }
        return try await promise.futureResult.get()
    }

    public func listen(
        streamHandler: @escaping @Sendable (_ stream: RPCStream<Inbound, Outbound>, _ context: ServerContext) async -> Void
    ) async throws {
        let (rpcs, continuation) = AsyncStream<IncomingRPC>.makeStream()
        let maxMessageBytes = self.maxMessageBytes
        let fastPath = self.fastPath
        let logger = self.logger
        let tls = self.tls
        let refusals = self.refusals
        let http1Routes = self.http1Routes
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { [weak self] channel in
                guard let self, self.track(channel) else { return channel.close() }
                return channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        // TLS first; the identity handler refuses revoked certificates and
                        // tells the frame handler the client certificate's common name.
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls.serverContext()))
                        try channel.pipeline.syncOperations.addHandler(
                            TLSIdentityHandler(source: tls, refusals: refusals, what: "client"))
                    }
                    // HTTP/2 (gRPC) or HTTP/1.1 (/health, /metrics, /version), told apart
                    // by the first bytes.
                    let remotePeer = channel.remoteAddress.map { "\($0)" } ?? "unknown"
                    let localPeer = channel.localAddress.map { "\($0)" } ?? "unknown"
                    try channel.pipeline.syncOperations.addHandler(ClientProtocolSniffer(
                        installHTTP2: { pipeline, sniffer in
                            let http2 = NIOHTTP2Handler(mode: .server,
                                                        connectionConfiguration: FrameGRPCServerTransport.http2Configuration)
                            let frames = FrameGRPCHandler(maxMessageBytes: maxMessageBytes, fastPath: fastPath, rpcs: continuation,
                                                          remotePeer: remotePeer, localPeer: localPeer, logger: logger,
                                                          statusRoutes: http1Routes)
                            try pipeline.addHandler(http2, position: .after(sniffer))
                            try pipeline.addHandler(frames, position: .after(http2))
                        },
                        http1Routes: http1Routes, logger: logger))
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.bind(host: host, port: port).get()
        } catch {
            continuation.finish()
            state.withLock { $0.addressPromise?.fail(error); $0.addressPromise = nil }
            throw error
        }
        let shutDownEarly: Bool = state.withLock { state in
            state.channel = channel
            state.rpcs = continuation
            if let address = channel.localAddress { state.addressPromise?.succeed(address) }
            state.addressPromise = nil
            return state.shuttingDown
        }
        if shutDownEarly { beginGracefulShutdown() }
        // Ends on graceful shutdown (the stream is finished) or when this task is cancelled.
        await withDiscardingTaskGroup { group in
            for await rpc in rpcs {
                group.addTask {
                    await AuthCredentials.$current.withValue(rpc.credentials) { await streamHandler(rpc.stream, rpc.context) }
                }
            }
        }
        closeAll()
        try? await channel.closeFuture.get()
    }

    /// Stops listening and closes every connection once its calls in flight are answered
    /// (at most 2 s later).
    private func closeAll() {
        let (channel, connections): ((any Channel)?, [any Channel]) = state.withLock { state in
            state.shuttingDown = true
            return (state.channel, Array(state.connections.values))
        }
        channel?.close(promise: nil)
        for connection in connections {
            connection.pipeline.fireUserInboundEventTriggered(FrameGRPCHandler.Drain())
        }
    }

    /// Remembers an accepted connection so shutdown can close it; false once shutting down.
    fileprivate func track(_ channel: any Channel) -> Bool {
        let id = ObjectIdentifier(channel)
        let accepted = state.withLock { state -> Bool in
            guard !state.shuttingDown else { return false }
            state.connections[id] = channel
            return true
        }
        if accepted {
            channel.closeFuture.whenComplete { [weak self] _ in
                _ = self?.state.withLock { $0.connections.removeValue(forKey: id) }
            }
        }
        return accepted
    }

    /// Stops accepting connections and new calls; calls in flight finish.
    public func beginGracefulShutdown() {
        let rpcs = state.withLock { state in
            state.shuttingDown = true
            return state.rpcs
        }
        closeAll()
        rpcs?.finish()
    }
}

/// Per-connection frame handler (event-loop confined).
final class FrameGRPCHandler: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    /// Initial per-stream receive window (SETTINGS_INITIAL_WINDOW_SIZE), and the connection's.
    static let streamWindow = 1 << 21
    static let connectionWindow = 1 << 24

    private let maxMessageBytes: Int
    /// How many pieces of one large answer may wait below this handler (in HTTP/2 flow
    /// control or the socket's queue) before the next is encoded: two keep the socket busy
    /// while bounding what a slow reader makes the member hold.
    private let piecesInFlightMax: Int
    private let fastPath: KVPipeline?
    private let rpcs: AsyncStream<FrameGRPCServerTransport.IncomingRPC>.Continuation
    private let remotePeer: String
    private let localPeer: String
    private let logger: Logger
    private var context: ChannelHandlerContext?
    private var streams: [HTTP2StreamID: StreamState] = [:]
    private var active = true
    private var flushPending = false
    /// Shutting down: no new streams; close once the open ones are answered.
    private var draining = false
    /// Between channelRead and channelReadComplete.
    private var inRead = false
    /// The verified client certificate's common name (TLS with `--client-cert-auth`): the
    /// user of requests that carry no token once auth is enabled, as in etcd.
    private(set) var certificateCommonName: String?
    /// Metadata key under which generic calls learn `certificateCommonName` (a client's own
    /// header of that name is dropped).
    static let commonNameMetadataKey = "synod-tls-common-name"

    /// The auth token a request carries: etcd's clients send it as `token`; the gateway's
    /// `Authorization` header is accepted too (with or without a `Bearer ` prefix).
    static func token(_ headers: HPACKHeaders) -> String? {
        if let token = headers.first(name: "token"), !token.isEmpty { return token }
        guard var value = headers.first(name: "authorization"), !value.isEmpty else { return nil }
        if value.lowercased().hasPrefix("bearer ") { value = String(value.dropFirst(7)) }
        return value
    }

    struct StreamState {
        var buffer: ByteBuffer
        var kind: Kind
        var headersSent = false
        var closed = false
        /// The fast path's single request message.
        var message: [UInt8]?
        /// `synod-request-id` (fast path; generic calls read it from their metadata).
        var requestID: UInt64?
        /// Token and certificate name (fast path).
        var credentials = AuthCredentials.none
        /// A large range answer still being written (`sendPieces`), and how many of its
        /// pieces are queued below this handler, not yet written to the socket.
        var pieces: RangeResponseEncoder.Pieces?
        var piecesInFlight = 0

        enum Kind {
            case fast(KVPipeline.Method)
            case generic(continuation: AsyncThrowingStream<RPCRequestPart<[UInt8]>, any Error>.Continuation,
                         cancellation: ServerContext.RPCCancellationHandle)
        }
    }

    /// `GET /health`, `/metrics`, `/version` over HTTP/2 (a client that negotiated h2 by ALPN,
    /// such as curl over TLS), answered like the HTTP/1.1 ones.
    private let statusRoutes: HTTPStatusRoutes?

    init(maxMessageBytes: Int, fastPath: KVPipeline?,
         rpcs: AsyncStream<FrameGRPCServerTransport.IncomingRPC>.Continuation,
         remotePeer: String, localPeer: String, logger: Logger, piecesInFlightMax: Int = 2,
         statusRoutes: HTTPStatusRoutes? = nil) {
        self.statusRoutes = statusRoutes
        self.maxMessageBytes = maxMessageBytes
        self.piecesInFlightMax = piecesInFlightMax
        self.fastPath = fastPath
        self.rpcs = rpcs
        self.remotePeer = remotePeer
        self.localPeer = localPeer
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        // Added once the first bytes showed HTTP/2: the channel is already active.
        if context.channel.isActive { openConnectionWindow(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        openConnectionWindow(context: context)
        context.fireChannelActive()
    }

    private var connectionWindowOpened = false

    /// The connection window starts at 65,535 bytes; open it wide once.
    private func openConnectionWindow(context: ChannelHandlerContext) {
        guard !connectionWindowOpened else { return }
        connectionWindowOpened = true
        let increment = Self.connectionWindow - 65_535
        context.writeAndFlush(wrapOutboundOut(HTTP2Frame(streamID: .rootStream, payload: .windowUpdate(windowSizeIncrement: increment))),
                              promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        active = false
        for (_, stream) in streams { abandon(stream) }
        streams.removeAll()
        self.context = nil
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    private func abandon(_ stream: StreamState) {
        if case .generic(let continuation, let cancellation) = stream.kind {
            continuation.finish(throwing: RPCError(code: .cancelled, message: "the client closed the stream"))
            cancellation.cancel()
        }
    }

    /// Sent by the transport at shutdown.
    struct Drain {}

    private func closeIfDrained() {
        guard draining, let context else { return }
        if streams.values.allSatisfy(\.closed) {
            flushIfPending()
            context.close(promise: nil)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let identity = event as? TLSPeerIdentity {
            certificateCommonName = identity.commonName
            return
        }
        if event is Drain {
            draining = true
            let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
            context.eventLoop.scheduleTask(in: .seconds(2)) { bound.value.context?.close(promise: nil) }
            closeIfDrained()
            return
        }
        if let update = event as? NIOHTTP2WindowUpdatedEvent, let inbound = update.inboundWindowSize {
            // Give back receive window as it is used (half the target as the threshold).
            let target = update.streamID == .rootStream ? Self.connectionWindow : Self.streamWindow
            if inbound < target / 2, update.streamID == .rootStream || streams[update.streamID]?.closed == false {
                context.writeAndFlush(wrapOutboundOut(HTTP2Frame(streamID: update.streamID,
                                                                  payload: .windowUpdate(windowSizeIncrement: target - inbound))),
                                      promise: nil)
            }
        } else if let closed = event as? StreamClosedEvent {
            if let stream = streams.removeValue(forKey: closed.streamID), !stream.closed { abandon(stream) }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Protocol errors are answered by the HTTP/2 handler (GOAWAY / RST_STREAM); a broken
        // connection is closed. Nothing here may take the node down.
        logger.debug("client connection error", metadata: ["error": "\(error)", "peer": "\(remotePeer)"])
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        inRead = true
        let frame = unwrapInboundIn(data)
        switch frame.payload {
        case .headers(let headers):
            if streams[frame.streamID] == nil {
                openStream(frame.streamID, headers: headers.headers, endStream: headers.endStream)
            } else if headers.endStream {
                // Trailers from a client end its request stream.
                endOfRequest(frame.streamID)
            }
        case .data(let payload):
            guard case .byteBuffer(var bytes) = payload.data else { return }
            receive(frame.streamID, bytes: &bytes, endStream: payload.endStream)
        case .rstStream:
            if var stream = streams.removeValue(forKey: frame.streamID) {
                stream.closed = true
                abandon(stream)
            }
        default:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        inRead = false
        flushIfPending()
        context.fireChannelReadComplete()
    }

    private func flushIfPending() {
        guard flushPending, let context else { return }
        flushPending = false
        context.flush()
    }

    // MARK: - Requests

    private func openStream(_ id: HTTP2StreamID, headers: HPACKHeaders, endStream: Bool) {
        guard let context else { return }
        if draining { return reject(id, code: .unavailable, message: "server is shutting down") }
        let path = headers.first(name: ":path") ?? ""
        if headers.first(name: ":method") == "GET", let statusRoutes,
           let endpoint = path.split(separator: "?", maxSplits: 1).first.map(String.init),
           ["/health", "/metrics", "/version"].contains(endpoint) {
            return answerStatus(id, endpoint: endpoint, routes: statusRoutes)
        }
        guard headers.first(name: ":method") == "POST" else {
            return reject(id, code: .unimplemented, message: "only POST is supported", httpStatus: "405")
        }
        guard let contentType = headers.first(name: "content-type"), contentType.hasPrefix("application/grpc") else {
            return reject(id, code: .unknown, message: "content-type must be application/grpc", httpStatus: "415")
        }
        if let encoding = headers.first(name: "grpc-encoding"), encoding != "identity" {
            return reject(id, code: .unimplemented, message: "compression '\(encoding)' is not supported")
        }
        let buffer = context.channel.allocator.buffer(capacity: 0)
        if fastPath != nil, let method = KVPipeline.Method(path: path) {
            var stream = StreamState(buffer: buffer, kind: .fast(method))
            stream.requestID = headers.first(name: RequestIdentity.header).flatMap(RequestIdentity.requestID(text:))
            stream.credentials = AuthCredentials(token: Self.token(headers), commonName: certificateCommonName)
            streams[id] = stream
        } else {
            guard let descriptor = Self.descriptor(path) else {
                return reject(id, code: .unimplemented, message: "malformed method path '\(path)'")
            }
            var metadata = Metadata()
            for (name, value, _) in headers where !name.hasPrefix(":") && !Self.reservedHeaders.contains(name)
                && name != Self.commonNameMetadataKey {
                if name.hasSuffix("-bin") {
                    if let decoded = Self.base64Decode(value) { metadata.addBinary(decoded, forKey: name) }
                } else {
                    metadata.addString(value, forKey: name)
                }
            }
            if let certificateCommonName { metadata.addString(certificateCommonName, forKey: Self.commonNameMetadataKey) }
            let (inbound, continuation) = AsyncThrowingStream<RPCRequestPart<[UInt8]>, any Error>.makeStream()
            continuation.yield(.metadata(metadata))
            let cancellation = ServerContext.RPCCancellationHandle()
            streams[id] = StreamState(buffer: buffer, kind: .generic(continuation: continuation, cancellation: cancellation))
            let writer = FrameGRPCResponseWriter(handler: NIOLoopBound(self, eventLoop: context.eventLoop), streamID: id)
            let stream = RPCStream(descriptor: descriptor, inbound: RPCAsyncSequence(wrapping: inbound),
                                   outbound: RPCWriter.Closable(wrapping: writer))
            let serverContext = ServerContext(descriptor: descriptor, remotePeer: remotePeer, localPeer: localPeer,
                                              cancellation: cancellation)
            let credentials = AuthCredentials(token: Self.token(headers), commonName: certificateCommonName)
            if case .terminated = rpcs.yield(FrameGRPCServerTransport.IncomingRPC(stream: stream, context: serverContext,
                                                                                  credentials: credentials)) {
                streams[id] = nil
                continuation.finish()
                return reject(id, code: .unavailable, message: "server is shutting down")
            }
        }
        if endStream { endOfRequest(id) }
    }

    private func receive(_ id: HTTP2StreamID, bytes: inout ByteBuffer, endStream: Bool) {
        guard var stream = streams[id], !stream.closed else { return }
        if stream.buffer.readableBytes == 0 {
            stream.buffer = bytes
        } else {
            stream.buffer.writeBuffer(&bytes)
        }
        // Whole messages: 1 byte compressed flag, 4 bytes big-endian length, the message.
        while stream.buffer.readableBytes >= 5 {
            guard let flag = stream.buffer.getInteger(at: stream.buffer.readerIndex, as: UInt8.self),
                  let length = stream.buffer.getInteger(at: stream.buffer.readerIndex + 1, as: UInt32.self) else { break }
            if flag != 0 {
                streams[id] = stream
                return reject(id, code: .unimplemented, message: "compressed messages are not supported")
            }
            if Int(length) > maxMessageBytes {
                streams[id] = stream
                return reject(id, code: .resourceExhausted,
                              message: "message of \(length) bytes exceeds the limit of \(maxMessageBytes) bytes")
            }
            guard stream.buffer.readableBytes >= 5 + Int(length) else { break }
            stream.buffer.moveReaderIndex(forwardBy: 5)
            let message = stream.buffer.readBytes(length: Int(length)) ?? []
            switch stream.kind {
            case .fast:
                if stream.message != nil {
                    streams[id] = stream
                    return reject(id, code: .internalError, message: "a unary call carries one request message")
                }
                stream.message = message
            case .generic(let continuation, _):
                continuation.yield(.message(message))
            }
        }
        if stream.buffer.readableBytes == 0 { stream.buffer.clear() }
        streams[id] = stream
        if endStream { endOfRequest(id) }
    }

    private func endOfRequest(_ id: HTTP2StreamID) {
        guard let stream = streams[id], !stream.closed else { return }
        if stream.buffer.readableBytes > 0 {
            return reject(id, code: .internalError, message: "the request ended inside a message")
        }
        switch stream.kind {
        case .generic(let continuation, _):
            continuation.finish()
        case .fast(let method):
            guard let message = stream.message, let fastPath, let context else {
                return reject(id, code: .internalError, message: "a unary call needs one request message")
            }
            let loop = context.eventLoop
            let bound = NIOLoopBound(self, eventLoop: loop)
            fastPath.call(method, message: message, requestID: stream.requestID, credentials: stream.credentials, on: loop).whenComplete { result in
                if loop.inEventLoop {
                    bound.value.answerUnary(id, result)
                } else {
                    loop.execute { bound.value.answerUnary(id, result) }
                }
            }
        }
    }

    // MARK: - Responses

    /// Completes a fast-path call: response headers, the message and the trailers in one
    /// flush; or, for an answer in pieces, the headers and the first pieces (`sendPieces`).
    func answerUnary(_ id: HTTP2StreamID, _ result: Result<KVPipeline.UnaryAnswer, any Error>) {
        guard let stream = streams[id], !stream.closed, active else { return }
        switch result {
        case .success(.framed(let framed)):
            writeHeaders(id)
            writeFramed(id, framed)
            writeTrailers(id, code: 0, message: "", metadata: Metadata())
        case .success(.pieces(let pieces)):
            writeHeaders(id)
            streams[id]?.pieces = pieces
            sendPieces(id)
            return
        case .failure(let failure):
            let error = EtcdConversions.rpcError(failure)
            writeTrailers(id, code: error.code.rawValue, message: error.message, metadata: error.metadata)
        }
        markFlush()
        closeIfDrained()
    }

    /// Writes pieces of the stream's answer until `piecesInFlightMax` are queued below; each
    /// piece that reaches the socket lets the next one be encoded, so a client that reads
    /// slowly (or not at all) holds the member at a few pieces, not the whole answer. After
    /// the last piece come the trailers. A stream the client reset, or a closed connection,
    /// stops it and drops the rest.
    private func sendPieces(_ id: HTTP2StreamID) {
        guard let context, active else { return }
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        while var stream = streams[id], !stream.closed, stream.piecesInFlight < piecesInFlightMax,
              var pieces = stream.pieces,
              let piece = pieces.next(bytes: RangeResponseEncoder.pieceBytes, allocator: context.channel.allocator) {
            // The state is stored before the write: a write may fail at once and run the
            // completion below before `write` returns.
            stream.piecesInFlight += 1
            stream.pieces = pieces.isFinished ? nil : pieces
            streams[id] = stream
            let promise = context.eventLoop.makePromise(of: Void.self)
            promise.futureResult.whenComplete { result in
                let handler = bound.value
                guard handler.streams[id] != nil else { return }
                handler.streams[id]?.piecesInFlight -= 1
                switch result {
                case .success:
                    handler.sendPieces(id)
                case .failure:
                    handler.streams[id]?.pieces = nil
                    handler.streams[id]?.closed = true
                    handler.closeIfDrained()
                }
            }
            writeFramed(id, piece, promise: promise)
            if pieces.isFinished {
                writeTrailers(id, code: 0, message: "", metadata: Metadata())
            }
        }
        markFlush()
        closeIfDrained()
    }

    /// A status endpoint's answer on stream `id` (not a gRPC call: headers, body, end).
    private func answerStatus(_ id: HTTP2StreamID, endpoint: String, routes: HTTPStatusRoutes) {
        switch endpoint {
        case "/metrics": writePlain(id, status: "200", contentType: "text/plain; version=0.0.4; charset=utf-8", body: routes.metrics())
        case "/version": writePlain(id, status: "200", contentType: "application/json", body: HTTPStatusServer.versionJSON)
        default:
            guard let context else { return }
            let loop = context.eventLoop
            let bound = NIOLoopBound(self, eventLoop: loop)
            let health = routes.health
            Task {
                let report = await health()
                loop.execute {
                    bound.value.writePlain(id, status: report.healthy ? "200" : "503", contentType: "application/json", body: report.json)
                    bound.value.flushIfPending()
                }
            }
        }
    }

    private func writePlain(_ id: HTTP2StreamID, status: String, contentType: String, body: String) {
        guard let context else { return }
        var headers = HPACKHeaders()
        headers.add(name: ":status", value: status)
        headers.add(name: "content-type", value: contentType)
        context.write(wrapOutboundOut(HTTP2Frame(streamID: id, payload: .headers(.init(headers: headers)))), promise: nil)
        let buffer = context.channel.allocator.buffer(string: body)
        context.write(wrapOutboundOut(HTTP2Frame(streamID: id, payload: .data(.init(data: .byteBuffer(buffer), endStream: true)))),
                      promise: nil)
        markFlush()
    }

    private func reject(_ id: HTTP2StreamID, code: RPCError.Code, message: String, httpStatus: String = "200") {
        if let stream = streams[id] { abandon(stream) }
        guard let context else { return }
        var headers = HPACKHeaders()
        headers.add(name: ":status", value: httpStatus)
        headers.add(name: "content-type", value: "application/grpc")
        headers.add(name: "grpc-status", value: String(code.rawValue))
        headers.add(name: "grpc-message", value: Self.percentEncode(message))
        context.write(wrapOutboundOut(HTTP2Frame(streamID: id, payload: .headers(.init(headers: headers, endStream: true)))),
                      promise: nil)
        markFlush()
        streams[id]?.closed = true
    }

    private func writeHeaders(_ id: HTTP2StreamID, metadata: Metadata = Metadata(), promise: EventLoopPromise<Void>? = nil) {
        guard let context else { promise?.fail(ChannelError.ioOnClosedChannel); return }
        var headers = HPACKHeaders()
        headers.add(name: ":status", value: "200")
        headers.add(name: "content-type", value: "application/grpc")
        Self.add(metadata, to: &headers)
        streams[id]?.headersSent = true
        context.write(wrapOutboundOut(HTTP2Frame(streamID: id, payload: .headers(.init(headers: headers)))), promise: promise)
    }

    private func writeMessage(_ id: HTTP2StreamID, _ message: [UInt8], promise: EventLoopPromise<Void>? = nil) {
        guard let context else { promise?.fail(ChannelError.ioOnClosedChannel); return }
        writeFramed(id, Self.framed(message, allocator: context.channel.allocator), promise: promise)
    }

    /// Writes a message already behind its gRPC prefix (`framed`).
    private func writeFramed(_ id: HTTP2StreamID, _ framed: ByteBuffer, promise: EventLoopPromise<Void>? = nil) {
        guard let context else { promise?.fail(ChannelError.ioOnClosedChannel); return }
        context.write(wrapOutboundOut(HTTP2Frame(streamID: id, payload: .data(.init(data: .byteBuffer(framed))))), promise: promise)
    }

    /// `message` behind the 5-byte gRPC prefix (not compressed, its length), in one buffer.
    static func framed(_ message: [UInt8], allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: message.count + 5)
        writePrefix(length: message.count, into: &buffer)
        buffer.writeBytes(message)
        return buffer
    }

    /// The 5-byte gRPC message prefix: not compressed, then the length.
    static func writePrefix(length: Int, into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(0))
        buffer.writeInteger(UInt32(length))
    }

    private func writeTrailers(_ id: HTTP2StreamID, code: Int, message: String, metadata: Metadata,
                               promise: EventLoopPromise<Void>? = nil) {
        guard let context else { promise?.fail(ChannelError.ioOnClosedChannel); return }
        var headers = HPACKHeaders()
        if streams[id]?.headersSent != true {
            headers.add(name: ":status", value: "200")
            headers.add(name: "content-type", value: "application/grpc")
        }
        headers.add(name: "grpc-status", value: String(code))
        if !message.isEmpty { headers.add(name: "grpc-message", value: Self.percentEncode(message)) }
        Self.add(metadata, to: &headers)
        streams[id]?.closed = true
        context.write(wrapOutboundOut(HTTP2Frame(streamID: id, payload: .headers(.init(headers: headers, endStream: true)))),
                      promise: promise)
    }

    /// Asks for one flush: at the end of the read burst when inside one, else after the tasks
    /// already queued on the loop (answers completed together leave in one write).
    private func markFlush() {
        guard !flushPending else { return }
        flushPending = true
        guard !inRead, let context else { return }
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.execute { bound.value.flushIfPending() }
    }

    /// A generic stream's response part (from `FrameGRPCResponseWriter`, on the loop).
    func send(_ id: HTTP2StreamID, _ part: RPCResponsePart<[UInt8]>) -> EventLoopFuture<Void>? {
        guard let context, active, let stream = streams[id], !stream.closed else { return nil }
        let promise = context.eventLoop.makePromise(of: Void.self)
        switch part {
        case .metadata(let metadata):
            writeHeaders(id, metadata: metadata, promise: promise)
        case .message(let message):
            if !stream.headersSent { writeHeaders(id) }
            writeMessage(id, message, promise: promise)
        case .status(let status, let metadata):
            writeTrailers(id, code: status.code.rawValue, message: status.message, metadata: metadata,
                          promise: promise)
        }
        context.flush()
        closeIfDrained()
        return promise.futureResult
    }

    /// A generic stream's writer finished without a status: end it with one.
    func finish(_ id: HTTP2StreamID, error: (any Error)?) {
        guard let stream = streams[id], !stream.closed else { return }
        let rpcError = (error as? RPCError) ?? RPCError(code: .internalError, message: error.map { "\($0)" } ?? "the call ended without a status")
        writeTrailers(id, code: rpcError.code.rawValue, message: rpcError.message, metadata: rpcError.metadata)
        context?.flush()
        closeIfDrained()
    }

    // MARK: - Helpers

    static let reservedHeaders: Set<String> = ["te", "content-type", "grpc-encoding", "grpc-accept-encoding", "user-agent", "grpc-timeout"]

    static func descriptor(_ path: String) -> MethodDescriptor? {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].isEmpty, !parts[1].isEmpty, !parts[2].isEmpty else { return nil }
        return MethodDescriptor(fullyQualifiedService: String(parts[1]), method: String(parts[2]))
    }

    static func add(_ metadata: Metadata, to headers: inout HPACKHeaders) {
        for (key, value) in metadata {
            switch value {
            case .string(let text): headers.add(name: key, value: text)
            case .binary(let bytes): headers.add(name: key, value: base64Encode(bytes))
            }
        }
    }

    /// grpc-message is percent-encoded: bytes outside printable ASCII, and '%'.
    static func percentEncode(_ message: String) -> String {
        var out = ""
        for byte in message.utf8 {
            if byte >= 0x20 && byte <= 0x7E && byte != 0x25 {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                let hex = String(byte, radix: 16, uppercase: true)
                out += "%" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return out
    }

    private static let base64Alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func base64Encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index < bytes.count {
            let b0 = UInt32(bytes[index])
            let b1 = index + 1 < bytes.count ? UInt32(bytes[index + 1]) : 0
            let b2 = index + 2 < bytes.count ? UInt32(bytes[index + 2]) : 0
            let triple = b0 << 16 | b1 << 8 | b2
            out.append(base64Alphabet[Int(triple >> 18 & 63)])
            out.append(base64Alphabet[Int(triple >> 12 & 63)])
            if index + 1 < bytes.count { out.append(base64Alphabet[Int(triple >> 6 & 63)]) }
            if index + 2 < bytes.count { out.append(base64Alphabet[Int(triple & 63)]) }
            index += 3
        }
        return String(decoding: out, as: UTF8.self)  // unpadded, as gRPC allows
    }

    static func base64Decode(_ text: String) -> [UInt8]? {
        var values: [UInt32] = []
        for byte in text.utf8 where byte != UInt8(ascii: "=") {
            guard let index = base64Alphabet.firstIndex(of: byte) else { return nil }
            values.append(UInt32(index))
        }
        guard values.count % 4 != 1 else { return nil }
        var out: [UInt8] = []
        var index = 0
        while index < values.count {
            let chunk = values[index..<min(index + 4, values.count)]
            var triple: UInt32 = 0
            for (offset, value) in chunk.enumerated() { triple |= value << (18 - 6 * UInt32(offset)) }
            out.append(UInt8(truncatingIfNeeded: triple >> 16))
            if chunk.count > 2 { out.append(UInt8(truncatingIfNeeded: triple >> 8)) }
            if chunk.count > 3 { out.append(UInt8(truncatingIfNeeded: triple)) }
            index += 4
        }
        return out
    }
}

/// The outbound side of a generic stream: hops each part onto the connection's loop.
struct FrameGRPCResponseWriter: ClosableRPCWriterProtocol {
    typealias Element = RPCResponsePart<[UInt8]>
    let handler: NIOLoopBound<FrameGRPCHandler>
    let streamID: HTTP2StreamID

    func write(_ element: Element) async throws {
        let future = handler.eventLoop.flatSubmit { [handler, streamID] () -> EventLoopFuture<Void> in
            handler.value.send(streamID, element) ?? handler.eventLoop.makeFailedFuture(RPCError(code: .cancelled, message: "stream closed"))
        }
        try await future.get()
    }

    func write(contentsOf elements: some Sequence<Element>) async throws {
        for element in elements { try await write(element) }
    }

    func finish() async {
        handler.eventLoop.execute { [handler, streamID] in handler.value.finish(streamID, error: nil) }
    }

    func finish(throwing error: any Error) async {
        let sendable = (error as? RPCError) ?? RPCError(code: .internalError, message: "\(error)")
        handler.eventLoop.execute { [handler, streamID] in handler.value.finish(streamID, error: sendable) }
    }
}
