import NIOCore
import NIOHPACK
import NIOHTTP2

/// The channel handler behind `NIOHTTP2Handler` of an ``H2Connection``: with no stream
/// multiplexer, `NIOHTTP2Handler` passes every frame it accepted (for every stream) on as an
/// `HTTP2Frame`, and reports stream closure and window changes as user events
/// (`StreamClosedEvent`, `NIOHTTP2WindowUpdatedEvent`).
///
/// - Flow control: nothing else sends inbound WINDOW_UPDATEs in this mode. The handler opens the
///   connection window to ``H2ClientConfiguration/connectionWindow`` when the channel becomes
///   active, advertises ``H2ClientConfiguration/streamWindow`` as the initial stream window, and
///   tops either up whenever `NIOHTTP2WindowUpdatedEvent` reports less than half of it left
///   (the event carries the state machine's own count, so DATA of calls that were already given
///   up on is counted too).
/// - Concurrency: streams are opened only while fewer than the server's
///   SETTINGS_MAX_CONCURRENT_STREAMS (100 until its SETTINGS arrive) are open, counted until
///   `StreamClosedEvent`, exactly like `NIOHTTP2Handler` counts them; other calls wait here in
///   order (so `NIOHTTP2Handler` never has to buffer a stream's frames).
/// - Writes made while a read is being handled are flushed once at `channelReadComplete`, so a
///   burst of completions that start new calls costs one write system call.
final class H2ClientHandler: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    /// A call written to a stream.
    private struct Call {
        var completion: H2Completion
        var deadlineNanos: UInt64
        var httpStatus = 0
        var sawHeaders = false
        var body: ByteBuffer?

        mutating func append(_ data: ByteBuffer) {
            if body == nil {
                body = data
            } else {
                var data = data
                body?.writeBuffer(&data)
            }
        }
    }

    private let configuration: H2ClientConfiguration
    private var context: ChannelHandlerContext?
    private var calls: [HTTP2StreamID: Call] = [:]
    private var waiting = CircularBuffer<H2PendingCall>()
    private var nextStreamID: Int32 = 1
    private var maxConcurrentStreams = 100
    private var openStreams = 0
    private var active = false
    private var goingAway = false
    private(set) var isClosed = false
    private var reading = false
    private var needsFlush = false
    private var sweep: Scheduled<Void>?
    /// Why the connection is being closed, when this side closes it for an error.
    private var closeReason: String?

    /// Called once when the connection can take no new calls (GOAWAY or closed), with the calls
    /// that were never written (to be sent elsewhere).
    var onGone: ((CircularBuffer<H2PendingCall>) -> Void)?
    /// Called once when the channel has closed.
    var onClosed: (() -> Void)?

    init(configuration: H2ClientConfiguration) {
        self.configuration = configuration
    }

    /// The `NIOHTTP2Handler` to put before this handler.
    static func makeHTTP2Handler(_ configuration: H2ClientConfiguration) -> NIOHTTP2Handler {
        var connection = NIOHTTP2Handler.ConnectionConfiguration()
        connection.initialSettings = [
            HTTP2Setting(parameter: .enablePush, value: 0),
            HTTP2Setting(parameter: .maxConcurrentStreams, value: 100),
            HTTP2Setting(parameter: .initialWindowSize, value: configuration.streamWindow),
            HTTP2Setting(parameter: .maxFrameSize, value: configuration.maxFrameSize),
            HTTP2Setting(parameter: .maxHeaderListSize, value: 1 << 16),
        ]
        connection.targetWindowSize = configuration.connectionWindow
        // Servers such as grpc-go reset streams after complete responses now and then; the
        // default reset-flood protection (200 per 30 s) would close a benchmark's connection.
        connection.maximumRecentlyResetStreams = 10_000
        connection.maximumConnectionGlitches = 1_000_000
        // grpc-go pings for its bandwidth estimate (BDP) as often as once per round trip, far
        // beyond the default of 200 control frames per 30 s.
        connection.controlFrameRateLimit.maximumCount = 100_000
        connection.controlFrameRateLimit.windowLength = .seconds(1)
        var stream = NIOHTTP2Handler.StreamConfiguration()
        stream.targetWindowSize = configuration.streamWindow
        stream.streamResetFrameRateLimit.maximumCount = 100_000
        stream.streamResetFrameRateLimit.windowLength = .seconds(1)
        stream.streamErrorRateLimit.maximumCount = 100_000
        stream.streamErrorRateLimit.windowLength = .seconds(1)
        return NIOHTTP2Handler(mode: .client, connectionConfiguration: connection, streamConfiguration: stream)
    }

    // MARK: Calls

    /// Writes `call` to a new stream, or queues it until the connection is active and under the
    /// server's stream limit.
    func start(_ call: H2PendingCall) {
        if isClosed || goingAway {
            let completion = call.completion
            context?.eventLoop.assumeIsolated().execute { completion(.failure(.unavailable("connection closed"))) }
            return
        }
        if !active || openStreams >= maxConcurrentStreams || !waiting.isEmpty {
            waiting.append(call)
            return
        }
        write(call)
    }

    private func write(_ call: H2PendingCall) {
        guard let context else { return }
        let streamID = HTTP2StreamID(nextStreamID)
        nextStreamID += 2
        calls[streamID] = Call(completion: call.completion, deadlineNanos: call.deadlineNanos)
        openStreams += 1
        context.write(wrapOutboundOut(HTTP2Frame(streamID: streamID, payload: .headers(.init(headers: call.headers)))),
                      promise: nil)
        context.write(wrapOutboundOut(HTTP2Frame(
            streamID: streamID, payload: .data(.init(data: .byteBuffer(call.body), endStream: true)))), promise: nil)
        flushSoon()
        if nextStreamID > Int32.max - 2 {
            // Stream IDs exhausted: finish what runs here, new calls go to a new connection.
            leave(lastStreamID: streamID)
        }
    }

    private func startWaiting() {
        while active, !goingAway, !isClosed, openStreams < maxConcurrentStreams, let call = waiting.popFirst() {
            write(call)
        }
    }

    private func flushSoon() {
        if reading {
            needsFlush = true
        } else {
            context?.flush()
        }
    }

    private func finish(_ streamID: HTTP2StreamID, _ result: Result<ByteBuffer, H2CallError>) {
        guard let call = calls.removeValue(forKey: streamID) else { return }
        call.completion(result)
        closeIfDrained()
    }

    /// Completes a call from its trailers (or trailers-only response headers).
    private func complete(_ streamID: HTTP2StreamID, trailers: HPACKHeaders) {
        guard let call = calls[streamID] else { return }
        let result: Result<ByteBuffer, H2CallError>
        if let statusText = trailers.first(name: "grpc-status") {
            let code = Int(statusText) ?? 2
            if code == 0 {
                result = H2Framing.unaryMessage(call.body)
            } else {
                let message = trailers.first(name: "grpc-message").map(H2Status.decodeMessage) ?? ""
                result = .failure(H2CallError(code: H2Status.name(code: code), message: message))
            }
        } else if call.httpStatus != 200 {
            result = .failure(H2CallError(code: H2Status.name(httpStatus: call.httpStatus),
                                          message: "HTTP status \(call.httpStatus)"))
        } else {
            result = .failure(.internalError("response without grpc-status"))
        }
        finish(streamID, result)
    }

    // MARK: Inbound

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { becameActive(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        becameActive(context: context)
        context.fireChannelActive()
    }

    private func becameActive(context: ChannelHandlerContext) {
        if active { return }
        active = true
        // The connection window starts at 65,535 bytes whatever the settings say: open it up.
        let increment = configuration.connectionWindow - 65_535
        if increment > 0 {
            context.write(wrapOutboundOut(HTTP2Frame(streamID: .rootStream, payload: .windowUpdate(windowSizeIncrement: increment))),
                          promise: nil)
        }
        scheduleSweep(context: context)
        startWaiting()
        context.flush()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        reading = true
        let frame = unwrapInboundIn(data)
        switch frame.payload {
        case .headers(let headers):
            guard calls[frame.streamID] != nil else { break }
            let first = calls[frame.streamID]?.sawHeaders == false
            if first {
                calls[frame.streamID]?.sawHeaders = true
                calls[frame.streamID]?.httpStatus = headers.headers.first(name: ":status").flatMap { Int($0) } ?? 0
            }
            if headers.endStream || !first {
                complete(frame.streamID, trailers: headers.headers)
            }
        case .data(let data):
            guard calls[frame.streamID] != nil else { break }
            if case .byteBuffer(let buffer) = data.data, buffer.readableBytes > 0 {
                calls[frame.streamID]?.append(buffer)
            }
            if data.endStream {
                finish(frame.streamID, .failure(.internalError("response ended without trailers")))
            }
        case .rstStream(let code):
            finish(frame.streamID, .failure(H2CallError(code: H2Status.name(reset: code),
                                                        message: "stream reset by the server (\(code))")))
        case .settings(.settings(let settings)):
            for setting in settings where setting.parameter == .maxConcurrentStreams {
                maxConcurrentStreams = setting.value
            }
            startWaiting()
        case .goAway(let lastStreamID, let code, _):
            // Streams above lastStreamID were not (and will not be) processed.
            let unprocessed = calls.keys.filter { $0 > lastStreamID }
            for streamID in unprocessed {
                finish(streamID, .failure(.unavailable("server sent GOAWAY (\(code))")))
            }
            leave(lastStreamID: lastStreamID)
        default:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        reading = false
        if needsFlush {
            needsFlush = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let update = event as? NIOHTTP2WindowUpdatedEvent {
            windowUpdated(update, context: context)
        } else if let closed = event as? StreamClosedEvent {
            openStreams -= 1
            if calls[closed.streamID] != nil {
                let code = closed.reason.map { H2Status.name(reset: $0) } ?? "internalError"
                finish(closed.streamID, .failure(H2CallError(code: code, message: "stream closed before the response ended")))
            }
            startWaiting()
            closeIfDrained()
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func windowUpdated(_ update: NIOHTTP2WindowUpdatedEvent, context: ChannelHandlerContext) {
        guard let inbound = update.inboundWindowSize else { return }
        let target: Int
        if update.streamID == .rootStream {
            target = configuration.connectionWindow
        } else {
            // Only streams whose response is still coming need more window.
            guard calls[update.streamID] != nil else { return }
            target = configuration.streamWindow
        }
        guard inbound < target / 2 else { return }
        context.write(wrapOutboundOut(HTTP2Frame(streamID: update.streamID,
                                                 payload: .windowUpdate(windowSizeIncrement: target - inbound))), promise: nil)
        flushSoon()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let streamError = error as? NIOHTTP2Errors.StreamError {
            finish(streamError.streamID, .failure(.internalError("HTTP/2 stream error: \(streamError.baseError)")))
        } else {
            // A connection error (NIOHTTP2Handler has sent GOAWAY) or an I/O error: the connection is done.
            if closeReason == nil { closeReason = "connection error: \(error)" }
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed(reason: closeReason ?? "connection closed")
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        closed(reason: "connection closed")
        self.context = nil
    }

    // MARK: Connection end

    /// No new calls from now on: the running ones may finish.
    private func leave(lastStreamID: HTTP2StreamID) {
        if goingAway { return }
        goingAway = true
        let unsent = waiting
        waiting.removeAll()
        let gone = onGone
        onGone = nil
        gone?(unsent)
        closeIfDrained()
    }

    private func closeIfDrained() {
        if goingAway, calls.isEmpty, !isClosed { context?.close(promise: nil) }
    }

    private func closed(reason: String) {
        if isClosed { return }
        isClosed = true
        sweep?.cancel()
        sweep = nil
        let gone = onGone
        onGone = nil
        gone?([])
        let failed = calls
        calls.removeAll()
        for call in failed.values { call.completion(.failure(.unavailable(reason))) }
        let unsent = waiting
        waiting.removeAll()
        for call in unsent { call.completion(.failure(.unavailable(reason))) }
        let closedCallback = onClosed
        onClosed = nil
        closedCallback?()
    }

    // MARK: Deadlines

    private func scheduleSweep(context: ChannelHandlerContext) {
        sweep = context.eventLoop.assumeIsolated().scheduleTask(in: configuration.deadlineSweep) { [weak self] in
            guard let self, !self.isClosed, let context = self.context else { return }
            self.expireCalls(context: context)
            self.scheduleSweep(context: context)
        }
    }

    private func expireCalls(context: ChannelHandlerContext) {
        let now = monotonicNanos()
        if !waiting.isEmpty, waiting.contains(where: { $0.deadlineNanos <= now }) {
            var kept = CircularBuffer<H2PendingCall>()
            var expired: [H2PendingCall] = []
            for call in waiting {
                if call.deadlineNanos <= now { expired.append(call) } else { kept.append(call) }
            }
            waiting = kept
            for call in expired { call.completion(.failure(H2CallError(code: "deadlineExceeded", message: "deadline exceeded"))) }
        }
        var expiredStreams: [HTTP2StreamID] = []
        for (streamID, call) in calls where call.deadlineNanos <= now { expiredStreams.append(streamID) }
        if expiredStreams.isEmpty { return }
        for streamID in expiredStreams where calls[streamID] != nil {
            // Completed before the reset, whose StreamClosedEvent would otherwise fail it as cancelled.
            finish(streamID, .failure(H2CallError(code: "deadlineExceeded", message: "deadline exceeded")))
            if !isClosed {
                context.write(wrapOutboundOut(HTTP2Frame(streamID: streamID, payload: .rstStream(.cancel))), promise: nil)
            }
        }
        context.flush()
    }
}
