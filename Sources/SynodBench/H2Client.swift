import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import NIOSSL

/// Why a unary call of ``H2Connection`` failed: the gRPC status code name (the names the load
/// generator counts errors by: "unavailable", "deadlineExceeded", "invalidArgument", ...) and the
/// status message.
public struct H2CallError: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: String
    public var message: String

    public init(code: String, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message.isEmpty ? code : "\(code): \(message)" }

    static func unavailable(_ message: String) -> H2CallError { H2CallError(code: "unavailable", message: message) }
    static func internalError(_ message: String) -> H2CallError { H2CallError(code: "internalError", message: message) }
}

/// The outcome of a unary call: the serialized response message (without the 5-byte gRPC
/// prefix) or the failure.
typealias H2Completion = (Result<ByteBuffer, H2CallError>) -> Void

/// gRPC status codes and the HTTP/2 and HTTP mappings of the gRPC over HTTP/2 protocol.
enum H2Status {
    /// `RPCError.Code` names, indexed by the numeric status code.
    static let names = [
        "ok", "cancelled", "unknown", "invalidArgument", "deadlineExceeded", "notFound", "alreadyExists",
        "permissionDenied", "resourceExhausted", "failedPrecondition", "aborted", "outOfRange", "unimplemented",
        "internalError", "unavailable", "dataLoss", "unauthenticated",
    ]

    static func name(code: Int) -> String { names.indices.contains(code) ? names[code] : "unknown" }

    /// A response without `grpc-status`, by its HTTP status (the gRPC HTTP-to-status mapping).
    static func name(httpStatus: Int) -> String {
        switch httpStatus {
        case 400: return "internalError"
        case 401: return "unauthenticated"
        case 403: return "permissionDenied"
        case 404: return "unimplemented"
        case 429, 502, 503, 504: return "unavailable"
        default: return "unknown"
        }
    }

    /// A stream reset by the server before its trailers (the gRPC RST_STREAM mapping).
    static func name(reset: HTTP2ErrorCode) -> String {
        switch reset {
        case .refusedStream: return "unavailable"
        case .cancel: return "cancelled"
        case .enhanceYourCalm: return "resourceExhausted"
        case .inadequateSecurity: return "permissionDenied"
        default: return "internalError"
        }
    }

    /// Decodes a percent-encoded `grpc-message`; malformed escapes are kept as they are.
    static func decodeMessage(_ text: String) -> String {
        guard text.utf8.contains(UInt8(ascii: "%")) else { return text }
        var bytes: [UInt8] = []
        let utf8 = Array(text.utf8)
        var index = 0
        while index < utf8.count {
            if utf8[index] == UInt8(ascii: "%"), index + 2 < utf8.count,
               let high = hexValue(utf8[index + 1]), let low = hexValue(utf8[index + 2]) {
                bytes.append(high << 4 | low)
                index += 3
            } else {
                bytes.append(utf8[index])
                index += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

/// Tuning of ``H2Connection``.
struct H2ClientConfiguration: Sendable {
    /// Inbound connection flow-control window kept open (WINDOW_UPDATEs on stream 0 top it up
    /// whenever less than half of it is left).
    var connectionWindow = 1 << 24
    /// SETTINGS_INITIAL_WINDOW_SIZE advertised for every stream; topped up the same way.
    var streamWindow = 1 << 22
    /// SETTINGS_MAX_FRAME_SIZE advertised to the server.
    var maxFrameSize = 1 << 20
    /// How often deadlines are checked (one timer per connection, not one per call).
    var deadlineSweep: TimeAmount = .milliseconds(50)
    var connectTimeout: TimeAmount = .seconds(5)
    /// TLS (``H2TLS/context(_:)``) for every connection; nil: plaintext (h2c with prior knowledge).
    var tls: NIOSSLContext?
}

/// A frame-level gRPC unary client over one HTTP/2 connection (swift-nio-http2's
/// `NIOHTTP2Handler` without a stream multiplexer), confined to one event loop: every method must
/// be called on ``eventLoop`` and every completion runs there.
///
/// Connects on the first call and again on the first call after the connection was lost (closed,
/// or a GOAWAY from the server). Calls made while connecting wait for the connection; when it
/// cannot be made they fail with "unavailable". Completions never run inside ``unary``.
final class H2Connection {
    let eventLoop: any EventLoop
    let host: String
    let port: Int
    let authority: String
    let configuration: H2ClientConfiguration

    private var handler: H2ClientHandler?
    /// Calls waiting for the connection being made (nil: not connecting).
    private var connecting: CircularBuffer<H2PendingCall>?
    private var channels: [ObjectIdentifier: any Channel] = [:]
    private var shutDown = false

    init(eventLoop: any EventLoop, host: String, port: Int, configuration: H2ClientConfiguration = .init()) {
        self.eventLoop = eventLoop
        self.host = host
        self.port = port
        self.authority = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        self.configuration = configuration
    }

    /// The request headers of a unary call to `path` (e.g. `/etcdserverpb.KV/Put`); build them
    /// once per method and reuse them for every call.
    func requestHeaders(path: String, timeout: Duration? = nil) -> HPACKHeaders {
        var headers = HPACKHeaders()
        headers.add(name: ":method", value: "POST")
        headers.add(name: ":scheme", value: configuration.tls == nil ? "http" : "https")
        headers.add(name: ":path", value: path)
        headers.add(name: ":authority", value: authority)
        headers.add(name: "content-type", value: "application/grpc")
        headers.add(name: "te", value: "trailers")
        if let timeout {
            // grpc-timeout: at most 8 digits; milliseconds are plenty for a benchmark deadline.
            let millis = max(1, min(99_999_999, Int(timeout.components.seconds) * 1000
                + Int(timeout.components.attoseconds / 1_000_000_000_000_000)))
            headers.add(name: "grpc-timeout", value: "\(millis)m")
        }
        return headers
    }

    /// Starts a unary call: `body` is the gRPC-framed request (``H2Framing/frame(_:allocator:)``),
    /// `deadlineNanos` a ``monotonicNanos()`` time after which the call fails with
    /// "deadlineExceeded".
    func unary(headers: HPACKHeaders, body: ByteBuffer, deadlineNanos: UInt64, completion: @escaping H2Completion) {
        eventLoop.preconditionInEventLoop()
        let call = H2PendingCall(headers: headers, body: body, deadlineNanos: deadlineNanos, completion: completion)
        if shutDown {
            eventLoop.assumeIsolated().execute { completion(.failure(.unavailable("connection shut down"))) }
            return
        }
        if let handler {
            handler.start(call)
        } else if connecting != nil {
            connecting?.append(call)
        } else {
            connecting = [call]
            connect()
        }
    }

    /// Closes the connection; later calls fail with "unavailable".
    func close() {
        eventLoop.preconditionInEventLoop()
        shutDown = true
        for channel in channels.values { channel.close(promise: nil) }
    }

    private func connect() {
        let configuration = configuration
        let host = host
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(configuration.connectTimeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls = configuration.tls {
                        // The handshake runs when the channel becomes active; the HTTP/2 preface and
                        // the first calls wait in the TLS handler until it has completed.
                        try channel.pipeline.syncOperations.addHandlers([try H2TLS.handler(tls, host: host), H2ALPNCheck()])
                    }
                    try channel.pipeline.syncOperations.addHandlers([
                        H2ClientHandler.makeHTTP2Handler(configuration),
                        H2ClientHandler(configuration: configuration),
                    ])
                }
            }
        bootstrap.connect(host: host, port: port).assumeIsolated().whenComplete { result in
            self.connected(result)
        }
    }

    private func connected(_ result: Result<any Channel, any Error>) {
        let waiting = connecting ?? []
        connecting = nil
        switch result {
        case .success(let channel):
            guard let handler = try? channel.pipeline.syncOperations.handler(type: H2ClientHandler.self),
                  !handler.isClosed, !shutDown
            else {
                channel.close(promise: nil)
                for call in waiting { call.completion(.failure(.unavailable("connection closed while connecting"))) }
                return
            }
            let key = ObjectIdentifier(channel)
            channels[key] = channel
            self.handler = handler
            // Weak: the channel may close after the connection object is gone.
            handler.onGone = { [weak self, weak handler] unsent in
                guard let self else {
                    for call in unsent { call.completion(.failure(.unavailable("connection shut down"))) }
                    return
                }
                if self.handler === handler { self.handler = nil }
                // Calls never sent on a connection the server is leaving go to the next one.
                for call in unsent {
                    self.unary(headers: call.headers, body: call.body, deadlineNanos: call.deadlineNanos, completion: call.completion)
                }
            }
            handler.onClosed = { [weak self] in
                self?.channels[key] = nil
            }
            for call in waiting { handler.start(call) }
        case .failure(let error):
            let message = "cannot connect to \(authority): \(error)"
            for call in waiting { call.completion(.failure(.unavailable(message))) }
        }
    }
}

/// A call not yet written to a stream.
struct H2PendingCall {
    var headers: HPACKHeaders
    var body: ByteBuffer
    var deadlineNanos: UInt64
    var completion: H2Completion
}

/// The 5-byte gRPC message prefix.
enum H2Framing {
    /// `message` framed for a request body: flag 0 (uncompressed), 4-byte big-endian length.
    static func frame(_ message: some Collection<UInt8>, allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 5 + message.count)
        buffer.writeInteger(UInt8(0))
        buffer.writeInteger(UInt32(truncatingIfNeeded: message.count))
        buffer.writeBytes(message)
        return buffer
    }

    /// The single message of a unary response body.
    static func unaryMessage(_ body: ByteBuffer?) -> Result<ByteBuffer, H2CallError> {
        guard var body, body.readableBytes > 0 else { return .failure(.internalError("unary response without a message")) }
        guard let flag = body.readInteger(as: UInt8.self), let length = body.readInteger(as: UInt32.self) else {
            return .failure(.internalError("truncated gRPC message prefix"))
        }
        guard flag == 0 else { return .failure(.internalError("compressed response messages are not supported")) }
        guard let message = body.readSlice(length: Int(length)) else {
            return .failure(.internalError("gRPC message shorter than its prefix says"))
        }
        guard body.readableBytes == 0 else { return .failure(.internalError("unary response with more than one message")) }
        return .success(message)
    }
}
