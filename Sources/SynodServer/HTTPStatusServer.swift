import GRPCCore
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// What `GET /health` reports: etcd's `{"health":"true","reason":""}` shape.
public struct HealthReport: Sendable, Equatable {
    public var healthy: Bool
    public var reason: String

    public init(healthy: Bool, reason: String = "") {
        self.healthy = healthy
        self.reason = reason
    }

    /// A healthy report with no reason.
    public static let healthy = HealthReport(healthy: true)

    /// The JSON body etcd's `/health` endpoint answers with.
    public var json: String {
        "{\"health\":\"\(healthy ? "true" : "false")\",\"reason\":\"\(HTTPStatusServer.jsonEscaped(reason))\"}"
    }
}

/// Why the status server could not start.
public enum HTTPStatusServerError: Error, Equatable, CustomStringConvertible {
    /// Another socket already listens on the address.
    case addressInUse(host: String, port: Int)
    /// Binding failed for another reason (bad host name, permission, ...).
    case cannotListen(host: String, port: Int, reason: String)
    /// `start()` was called twice, or after `shutdown()`.
    case alreadyStarted

    public var description: String {
        switch self {
        case .addressInUse(let host, let port):
            return "cannot listen for metrics on \(host):\(port): address already in use"
        case .cannotListen(let host, let port, let reason):
            return "cannot listen for metrics on \(host):\(port): \(reason)"
        case .alreadyStarted:
            return "the metrics server was already started"
        }
    }
}

/// A small HTTP/1.1 server for operators and monitoring: `GET /health`, `GET /metrics`
/// (Prometheus text format) and `GET /version`, shaped like etcd's endpoints of the same names.
///
/// Everything else answers 404 (unknown path) or 405 (method other than GET). Request bodies
/// are never needed; one larger than `maxRequestBodyBytes` gets a 413 and the connection closed.
public final class HTTPStatusServer: Sendable {
    /// The largest request body read before the connection is closed.
    public static let maxRequestBodyBytes = 64 * 1024

    /// The body of `GET /version`.
    public static let versionJSON = #"{"etcdserver":"3.4.0","etcdcluster":"3.4.0","synod":"0.1.0"}"#

    private enum State {
        case idle
        case starting
        case running(server: any Channel, connections: [ObjectIdentifier: any Channel])
        case stopped
    }

    private let group: any EventLoopGroup
    private let host: String
    private let port: Int
    private let logger: Logger
    private let routes: HTTPStatusRoutes
    private let state = Mutex<State>(.idle)

    public init(
        group: any EventLoopGroup,
        host: String,
        port: Int,
        logger: Logger = Logger(label: "synod.http-status"),
        health: @escaping @Sendable () async -> HealthReport,
        metrics: @escaping @Sendable () -> String,
        live: LiveUI? = nil
    ) {
        self.group = group
        self.host = host
        self.port = port
        self.logger = logger
        var routes = HTTPStatusRoutes(health: health, metrics: metrics)
        routes.live = live
        self.routes = routes
    }

    /// The port actually listened on (useful after binding port 0), or nil before `start()`
    /// succeeded and after `shutdown()`.
    public var localPort: Int? {
        state.withLock { state in
            if case .running(let server, _) = state { return server.localAddress?.port }
            return nil
        }
    }

    /// Binds the listening socket. Throws `HTTPStatusServerError.addressInUse` when the port is taken.
    public func start() async throws {
        try state.withLock { state in
            guard case .idle = state else { throw HTTPStatusServerError.alreadyStarted }
            state = .starting
        }
        let routes = self.routes
        let logger = self.logger
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [weak self] channel in
                guard let self, self.track(channel) else {
                    return channel.close()
                }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(
                        HTTPStatusHandler(routes: routes, logger: logger)
                    )
                }
            }

        let server: any Channel
        do {
            server = try await bootstrap.bind(host: host, port: port).get()
        } catch {
            state.withLock { state in
                if case .starting = state { state = .idle }
            }
            throw Self.bindError(error, host: host, port: port)
        }

        let keep = state.withLock { state -> Bool in
            guard case .starting = state else { return false }
            state = .running(server: server, connections: [:])
            return true
        }
        guard keep else {
            // shutdown() raced with start(): do not leave the socket listening.
            try? await server.close()
            return
        }
        logger.info(
            "status server listening",
            metadata: ["address": "\(host):\(server.localAddress?.port ?? port)"]
        )
    }

    /// Stops listening and closes every open connection. Safe to call more than once.
    public func shutdown() async {
        let channels: [any Channel] = state.withLock { state in
            defer { state = .stopped }
            guard case .running(let server, let connections) = state else { return [] }
            return [server] + Array(connections.values)
        }
        for channel in channels {
            try? await channel.close()
        }
    }

    /// Registers an accepted connection so `shutdown()` can close it; false once stopped.
    private func track(_ channel: any Channel) -> Bool {
        let id = ObjectIdentifier(channel)
        let accepted = state.withLock { state -> Bool in
            guard case .running(let server, var connections) = state else { return false }
            connections[id] = channel
            state = .running(server: server, connections: connections)
            return true
        }
        if accepted {
            channel.closeFuture.whenComplete { [weak self] _ in
                self?.untrack(id)
            }
        }
        return accepted
    }

    private func untrack(_ id: ObjectIdentifier) {
        state.withLock { state in
            guard case .running(let server, var connections) = state else { return }
            connections[id] = nil
            state = .running(server: server, connections: connections)
        }
    }

    private static func bindError(_ error: any Error, host: String, port: Int) -> HTTPStatusServerError {
        if let io = error as? IOError {
            if io.errnoCode == EADDRINUSE {
                return .addressInUse(host: host, port: port)
            }
            return .cannotListen(host: host, port: port, reason: io.description)
        }
        return .cannotListen(host: host, port: port, reason: "\(error)")
    }

    /// Escapes a string for use inside a JSON string literal.
    static func jsonEscaped(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }
}

/// The answers the handler can give; shared by every connection.
/// What the status endpoints answer with (the status listener's and the client port's).
public struct HTTPStatusRoutes: Sendable {
    let health: @Sendable () async -> HealthReport
    let metrics: @Sendable () -> String
    /// etcd's JSON gateway (`POST /v3/...`): on the client port only.
    var gateway: EtcdGateway?
    /// The largest gateway request body.
    var gatewayBodyMax = 0
    /// The live cluster page (`/ui`, `/ui/state`, `/ui/events`, `/ui/control/...`).
    var live: LiveUI?

    public init(health: @escaping @Sendable () async -> HealthReport, metrics: @escaping @Sendable () -> String) {
        self.health = health
        self.metrics = metrics
    }
}

/// A complete response, ready to write.
struct HTTPStatusResponse: Sendable {
    var status: HTTPResponseStatus
    var contentType: String
    var body: String
    var extraHeaders: [(String, String)] = []

    static func json(_ status: HTTPResponseStatus, _ body: String) -> HTTPStatusResponse {
        HTTPStatusResponse(status: status, contentType: "application/json", body: body)
    }

    static func text(_ status: HTTPResponseStatus, _ body: String) -> HTTPStatusResponse {
        HTTPStatusResponse(status: status, contentType: "text/plain; charset=utf-8", body: body)
    }
}

/// One connection's request handling. Runs on the channel's event loop only.
final class HTTPStatusHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private enum RequestState {
        /// Waiting for a request head.
        case idle
        /// Reading a request's body (counted, then dropped).
        case reading(head: HTTPRequestHead, bodyBytes: Int)
        /// Reading a gateway request's body (kept).
        case collecting(head: HTTPRequestHead, route: String, body: [UInt8])
        /// A streaming gateway call is running (`stream` holds its state).
        case streaming
        /// A response is being produced (possibly asynchronously).
        case responding
        /// The body was too large: the connection is closing, everything is ignored.
        case discarding
        /// A live page event feed is being sent until the client hangs up.
        case feeding
    }

    private let routes: HTTPStatusRoutes
    private let logger: Logger
    private var requestState: RequestState = .idle
    /// The verified client certificate's name (TLS on the client port), for the gateway.
    private var certificateCommonName: String?
    /// Set between handlerAdded and handlerRemoved: async responses write only while it is set.
    private var context: ChannelHandlerContext?
    /// The streaming gateway call in progress, if any.
    private var stream: GatewayStream?
    /// The unary gateway call in progress, if any: cancelled when the client goes away.
    private var unaryCancellation: ServerContext.RPCCancellationHandle?
    /// The live page's event feed on this connection, if one is open.
    private var feed: LiveFeed?

    /// An open `/ui/events` feed: its timer, and whether a state is being produced.
    private final class LiveFeed {
        let live: LiveUI
        var timer: RepeatedTask?
        var producing = false
        init(live: LiveUI) { self.live = live }

        func end() {
            timer?.cancel()
            timer = nil
            live.feedClosed()
        }
    }

    /// A streaming gateway call on this connection: the request objects go to the call through
    /// `requests`; its chunks come back through `sendChunk`.
    private final class GatewayStream {
        let route: String
        let kind: EtcdGateway.StreamKind
        let version: HTTPVersion
        let keepAlive: Bool
        let requests: AsyncThrowingStream<[UInt8], any Error>.Continuation
        var splitter: JSONStreamSplitter
        /// A server stream's body, read whole before the call starts.
        var body: [UInt8] = []
        var headWritten = false
        var requestEnded = false
        var responseEnded = false
        var task: Task<Void, Never>?
        /// Cancelled when the client goes away (an Observe or a waiting call gives up).
        let cancellation = ServerContext.RPCCancellationHandle()
        /// A server stream's request side, until its body is complete and the call starts.
        var pendingRequests: AsyncThrowingStream<[UInt8], any Error>?
        let head: HTTPRequestHead

        init(head: HTTPRequestHead, route: String, kind: EtcdGateway.StreamKind, version: HTTPVersion, keepAlive: Bool, limit: Int,
             requests: AsyncThrowingStream<[UInt8], any Error>.Continuation) {
            self.head = head
            self.route = route
            self.kind = kind
            self.version = version
            self.keepAlive = keepAlive
            self.requests = requests
            splitter = JSONStreamSplitter(limit: limit)
        }
    }

    init(routes: HTTPStatusRoutes, logger: Logger) {
        self.routes = routes
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        endFeed()
    }

    private func endFeed() {
        feed?.end()
        feed = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.context = nil
        endFeed()
        if let stream {
            // The client went away: end the call (a watch is cancelled on the node).
            stream.requests.finish(throwing: CancellationError())
            stream.cancellation.cancel()
            stream.task?.cancel()
            self.stream = nil
        }
        // A unary gateway call still running (a Lock waiting its turn) gives up.
        unaryCancellation?.cancel()
        unaryCancellation = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            guard case .idle = requestState else { return }
            let path = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? head.uri
            if head.method == .POST, routes.gateway != nil, let route = EtcdGateway.route(path),
               let kind = EtcdGateway.streamKind(route) {
                if kind == .serverStream, let declared = head.headers.first(name: "content-length").flatMap(Int.init),
                   declared > routes.gatewayBodyMax {
                    rejectTooLarge(context: context, version: head.version)
                    return
                }
                startStream(head: head, route: route, kind: kind, context: context)
                return
            }
            if head.method == .POST, routes.gateway != nil, let route = EtcdGateway.route(path) {
                if let declared = head.headers.first(name: "content-length").flatMap(Int.init), declared > routes.gatewayBodyMax {
                    rejectTooLarge(context: context, version: head.version)
                    return
                }
                requestState = .collecting(head: head, route: route, body: [])
                return
            }
            if head.method != .POST, routes.gateway != nil, EtcdGateway.route(path) != nil {
                requestState = .discarding
                var response = HTTPStatusResponse.text(.methodNotAllowed, "Method Not Allowed\n")
                response.extraHeaders = [("Allow", "POST")]
                write(response, version: head.version, keepAlive: false, context: context)
                return
            }
            if let declared = head.headers.first(name: "content-length").flatMap(Int.init),
                declared > HTTPStatusServer.maxRequestBodyBytes
            {
                rejectTooLarge(context: context, version: head.version)
                return
            }
            requestState = .reading(head: head, bodyBytes: 0)

        case .body(var buffer):
            if case .streaming = requestState, let stream {
                streamBody(&buffer, stream: stream, context: context)
                return
            }
            if case .collecting(let head, let route, var body) = requestState {
                requestState = .responding  // the array is not shared while it grows
                guard body.count + buffer.readableBytes <= routes.gatewayBodyMax else {
                    rejectTooLarge(context: context, version: head.version)
                    return
                }
                body += buffer.readBytes(length: buffer.readableBytes) ?? []
                requestState = .collecting(head: head, route: route, body: body)
                return
            }
            guard case .reading(let head, let bodyBytes) = requestState else { return }
            let total = bodyBytes + buffer.readableBytes
            if total > HTTPStatusServer.maxRequestBodyBytes {
                rejectTooLarge(context: context, version: head.version)
                return
            }
            requestState = .reading(head: head, bodyBytes: total)

        case .end:
            if case .streaming = requestState, let stream {
                streamEnded(stream, context: context)
                return
            }
            if case .collecting(let head, let route, let body) = requestState {
                requestState = .responding
                answerGateway(head: head, route: route, body: body, context: context)
                return
            }
            guard case .reading(let head, _) = requestState else { return }
            requestState = .responding
            route(head, context: context)
        }
    }

    /// A gateway call, answered when its (async) result arrives.
    private func answerGateway(head: HTTPRequestHead, route: String, body: [UInt8], context: ChannelHandlerContext) {
        guard let gateway = routes.gateway else { return }
        let credentials = gatewayCredentials(head)
        let eventLoop = context.eventLoop
        let boundSelf = NIOLoopBound(self, eventLoop: eventLoop)
        let (version, keepAlive) = (head.version, head.isKeepAlive)
        let cancellation = ServerContext.RPCCancellationHandle()
        unaryCancellation = cancellation
        Task {
            let response = await gateway.handle(route: route, body: body, credentials: credentials, cancellation: cancellation)
            eventLoop.execute {
                let handler = boundSelf.value
                handler.unaryCancellation = nil
                guard let context = handler.context else { return }
                handler.write(response, version: version, keepAlive: keepAlive, context: context)
            }
        }
    }

    // MARK: streaming gateway calls

    private func startStream(head: HTTPRequestHead, route: String, kind: EtcdGateway.StreamKind, context: ChannelHandlerContext) {
        let (requests, continuation) = AsyncThrowingStream<[UInt8], any Error>.makeStream()
        let stream = GatewayStream(head: head, route: route, kind: kind, version: head.version, keepAlive: head.isKeepAlive,
                                   limit: routes.gatewayBodyMax, requests: continuation)
        self.stream = stream
        requestState = .streaming
        if kind == .bidirectional {
            runStream(stream, requests: requests, context: context)
        } else {
            stream.pendingRequests = requests
        }
    }

    private func streamBody(_ buffer: inout ByteBuffer, stream: GatewayStream, context: ChannelHandlerContext) {
        let bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
        switch stream.kind {
        case .serverStream:
            guard stream.body.count + bytes.count <= routes.gatewayBodyMax else {
                self.stream = nil
                stream.requests.finish()
                rejectTooLarge(context: context, version: stream.version)
                return
            }
            stream.body += bytes
        case .bidirectional:
            let (objects, failure) = stream.splitter.append(bytes)
            for object in objects {
                stream.requests.yield(object)
            }
            if let failure { stream.requests.finish(throwing: failure) }
        }
    }

    private func streamEnded(_ stream: GatewayStream, context: ChannelHandlerContext) {
        stream.requestEnded = true
        switch stream.kind {
        case .serverStream:
            stream.requests.yield(stream.body)
            stream.requests.finish()
            if let requests = stream.pendingRequests {
                stream.pendingRequests = nil
                runStream(stream, requests: requests, context: context)
            }
        case .bidirectional:
            do {
                try stream.splitter.finish()
                if EtcdGateway.endsWithRequestBody(stream.route) { stream.requests.finish() }
            } catch {
                stream.requests.finish(throwing: error)
            }
        }
    }

    private func runStream(_ stream: GatewayStream, requests: AsyncThrowingStream<[UInt8], any Error>,
                           context: ChannelHandlerContext) {
        guard let gateway = routes.gateway else { return }
        let credentials = gatewayCredentials(stream.head)
        let eventLoop = context.eventLoop
        let boundSelf = NIOLoopBound(self, eventLoop: eventLoop)
        let boundStream = NIOLoopBound(stream, eventLoop: eventLoop)
        let route = stream.route
        let cancellation = stream.cancellation
        let send: @Sendable (String) async throws -> Void = { chunk in
            try await eventLoop.flatSubmit { () -> EventLoopFuture<Void> in
                boundSelf.value.writeChunk(chunk, stream: boundStream.value, eventLoop: eventLoop)
            }.get()
        }
        stream.task = Task {
            let failure = await gateway.stream(route: route, requests: requests, credentials: credentials,
                                               cancellation: cancellation, send: send)
            eventLoop.execute {
                boundSelf.value.streamFinished(boundStream.value, failure: failure)
            }
        }
    }

    /// Writes one chunk; the future completes once it is written (or fails when the connection is gone).
    private func writeChunk(_ chunk: String, stream: GatewayStream, eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        guard let context, self.stream === stream, !stream.responseEnded else {
            return eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel)
        }
        if !stream.headWritten {
            stream.headWritten = true
            writeStreamHead(.ok, stream: stream, context: context)
        }
        var buffer = context.channel.allocator.buffer(capacity: chunk.utf8.count)
        buffer.writeString(chunk)
        return context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(buffer))))
    }

    private func writeStreamHead(_ status: HTTPResponseStatus, stream: GatewayStream, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Transfer-Encoding", value: "chunked")
        if !stream.keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: stream.version, status: status, headers: headers))), promise: nil)
    }

    /// The call ended: the error object if it failed, then the end of the response.
    private func streamFinished(_ stream: GatewayStream, failure: EtcdGateway.StreamFailure?) {
        guard let context, self.stream === stream else { return }
        stream.responseEnded = true
        stream.requests.finish()
        if let failure, failure.beforeCall, !stream.headWritten {
            // Answered as a unary call's error; the connection closes (the body may go on).
            stream.headWritten = true
            self.stream = nil
            requestState = .discarding
            write(EtcdGateway.error(code: failure.code, message: failure.message), version: stream.version, keepAlive: false, context: context)
            return
        }
        if !stream.headWritten {
            stream.headWritten = true
            writeStreamHead(failure.map { EtcdGateway.httpStatus($0.code) } ?? .ok, stream: stream, context: context)
        }
        if let failure {
            let chunk = EtcdGateway.errorChunk(failure)
            var buffer = context.channel.allocator.buffer(capacity: chunk.utf8.count)
            buffer.writeString(chunk)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        let channel = context.channel
        // The connection carries the next request only if this one was read to its end.
        let reuse = stream.keepAlive && stream.requestEnded
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            if !reuse { channel.close(promise: nil) }
        }
        if reuse {
            self.stream = nil
            requestState = .idle
        }
    }

    private func gatewayCredentials(_ head: HTTPRequestHead) -> AuthCredentials {
        var token = head.headers.first(name: "authorization") ?? head.headers.first(name: "token")
        if let value = token, value.lowercased().hasPrefix("bearer ") { token = String(value.dropFirst(7)) }
        return AuthCredentials(token: token?.isEmpty == false ? token : nil, commonName: certificateCommonName)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let identity = event as? TLSPeerIdentity { certificateCommonName = identity.commonName }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("status connection error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }

    private func route(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
            .first.map(String.init) ?? head.uri
        let keepAlive = head.isKeepAlive
        let version = head.version

        if let live = routes.live, path == "/ui" || path.hasPrefix("/ui/") {
            routeLive(head, path: path, live: live, context: context)
            return
        }

        guard isGET(head, path: path, of: ["/health", "/metrics", "/version"], context: context) else { return }

        switch path {
        case "/metrics":
            let response = HTTPStatusResponse(
                status: .ok,
                contentType: "text/plain; version=0.0.4; charset=utf-8",
                body: routes.metrics()
            )
            write(response, version: version, keepAlive: keepAlive, context: context)

        case "/version":
            write(.json(.ok, HTTPStatusServer.versionJSON), version: version, keepAlive: keepAlive, context: context)

        default:
            // /health: the report comes from async code; answer on the event loop when it arrives.
            let health = routes.health
            respondLater(version: version, keepAlive: keepAlive, context: context) {
                let report = await health()
                return .json(report.healthy ? .ok : .serviceUnavailable, report.json)
            }
        }
    }

    // MARK: the live cluster page

    private func routeLive(_ head: HTTPRequestHead, path: String, live: LiveUI, context: ChannelHandlerContext) {
        let (version, keepAlive) = (head.version, head.isKeepAlive)
        let query = head.uri.split(separator: "?", maxSplits: 1).dropFirst().first.map(String.init) ?? ""
        if path.hasPrefix("/ui/control/") {
            guard live.controlToken != nil else {
                write(.text(.notFound, "404 page not found\n"), version: version, keepAlive: keepAlive, context: context)
                return
            }
            guard head.method == .POST else {
                var response = HTTPStatusResponse.text(.methodNotAllowed, "Method Not Allowed\n")
                response.extraHeaders = [("Allow", "POST")]
                write(response, version: version, keepAlive: keepAlive, context: context)
                return
            }
            let action = String(path.dropFirst("/ui/control/".count))
            let token = head.headers.first(name: "x-synod-control-token")
            respondLater(version: version, keepAlive: keepAlive, context: context) {
                await live.control(action: action, token: token)
            }
            return
        }
        guard isGET(head, path: path, of: ["/ui", "/ui/state", "/ui/events"], context: context) else { return }
        switch path {
        case "/ui":
            var response = HTTPStatusResponse(status: .ok, contentType: "text/html; charset=utf-8", body: LiveClusterPage.html)
            response.extraHeaders = [("Cache-Control", "no-store")]
            write(response, version: version, keepAlive: keepAlive, context: context)
        case "/ui/state":
            let selfOnly = query.split(separator: "&").contains { $0 == "self=1" }
            respondLater(version: version, keepAlive: keepAlive, context: context) {
                var response = HTTPStatusResponse.json(.ok, await live.stateJSON(selfOnly: selfOnly))
                response.extraHeaders = [("Cache-Control", "no-store")]
                return response
            }
        default:
            startFeed(live: live, version: version, context: context)
        }
    }

    /// Answers with what `produce` returns, on the event loop, if the client is still there.
    private func respondLater(version: HTTPVersion, keepAlive: Bool, context: ChannelHandlerContext,
                              _ produce: @escaping @Sendable () async -> HTTPStatusResponse) {
        let eventLoop = context.eventLoop
        let boundSelf = NIOLoopBound(self, eventLoop: eventLoop)
        Task {
            let response = await produce()
            eventLoop.execute {
                let handler = boundSelf.value
                guard let context = handler.context else { return }
                handler.write(response, version: version, keepAlive: keepAlive, context: context)
            }
        }
    }

    /// `/ui/events`: a server-sent event stream, the state every `LiveUI.feedInterval` until
    /// the client hangs up (chunked over HTTP/1.1, delimited by the close over HTTP/1.0).
    private func startFeed(live: LiveUI, version: HTTPVersion, context: ChannelHandlerContext) {
        requestState = .feeding
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "text/event-stream")
        headers.add(name: "Cache-Control", value: "no-store")
        if version.major == 1 && version.minor >= 1 {
            headers.add(name: "Transfer-Encoding", value: "chunked")
        } else {
            headers.add(name: "Connection", value: "close")
        }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: .ok, headers: headers))), promise: nil)
        var first = context.channel.allocator.buffer(capacity: 16)
        first.writeString("retry: 1000\n\n")
        context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(first))), promise: nil)
        let feed = LiveFeed(live: live)
        live.feedOpened()
        self.feed = feed
        let eventLoop = context.eventLoop
        let boundSelf = NIOLoopBound(self, eventLoop: eventLoop)
        let boundFeed = NIOLoopBound(feed, eventLoop: eventLoop)
        feed.timer = eventLoop.scheduleRepeatedTask(initialDelay: .zero, delay: LiveUI.feedInterval) { _ in
            let feed = boundFeed.value
            guard boundSelf.value.feed === feed, !feed.producing else { return }
            feed.producing = true
            Task {
                let state = await live.stateJSON(selfOnly: false)
                eventLoop.execute {
                    let handler = boundSelf.value
                    let feed = boundFeed.value
                    feed.producing = false
                    guard handler.feed === feed, let context = handler.context else { return }
                    let event = "event: state\ndata: " + state + "\n\n"
                    var buffer = context.channel.allocator.buffer(capacity: event.utf8.count)
                    buffer.writeString(event)
                    context.writeAndFlush(handler.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
                }
            }
        }
    }

    /// Whether `path` is one of `paths` asked for with GET; otherwise answers 404 (another
    /// path) or 405 (another method) and returns false.
    private func isGET(_ head: HTTPRequestHead, path: String, of paths: [String], context: ChannelHandlerContext) -> Bool {
        guard paths.contains(path) else {
            write(.text(.notFound, "404 page not found\n"), version: head.version, keepAlive: head.isKeepAlive, context: context)
            return false
        }
        guard head.method == .GET else {
            var response = HTTPStatusResponse.text(.methodNotAllowed, "Method Not Allowed\n")
            response.extraHeaders = [("Allow", "GET")]
            write(response, version: head.version, keepAlive: head.isKeepAlive, context: context)
            return false
        }
        return true
    }

    private func rejectTooLarge(context: ChannelHandlerContext, version: HTTPVersion) {
        requestState = .discarding
        write(
            .text(.payloadTooLarge, "request body too large\n"),
            version: version,
            keepAlive: false,
            context: context
        )
    }

    private func write(
        _ response: HTTPStatusResponse,
        version: HTTPVersion,
        keepAlive: Bool,
        context: ChannelHandlerContext
    ) {
        var body = context.channel.allocator.buffer(capacity: response.body.utf8.count)
        body.writeString(response.body)

        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: response.contentType)
        headers.add(name: "Content-Length", value: String(body.readableBytes))
        for (name, value) in response.extraHeaders {
            headers.add(name: name, value: value)
        }
        if !keepAlive {
            headers.add(name: "Connection", value: "close")
        }

        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: response.status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        if case .responding = requestState {
            requestState = .idle
        }
        if keepAlive {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        } else {
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
                channel.close(promise: nil)
            }
        }
    }
}
