import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A status and body from a member.
struct LiveHTTPResponse: Sendable {
    var status: Int
    var body: [UInt8]
}

/// The few HTTP/1.1 requests the supervisor sends its members (`GET /ui/state?self=1`,
/// `POST /ui/control/isolate`): one connection per request, closed after the answer, the
/// whole exchange bounded by a timeout. With `tls`, https:// URLs are fetched with the
/// cluster's client certificate.
final class LiveHTTPClient: Sendable {
    private let group: any EventLoopGroup
    private let tls: NIOSSLContext?
    /// The largest answer body read.
    static let maxBodyBytes = 4 << 20

    init(group: any EventLoopGroup, tls: NIOSSLContext?) {
        self.group = group
        self.tls = tls
    }

    /// A client context that trusts `caFile` and presents `certFile`/`keyFile` (the local
    /// cluster's certificates: their names are member names, so host names are not checked).
    static func tlsContext(caFile: String, certFile: String, keyFile: String) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile))
        configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(certFile).map { .certificate($0) }
        configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyFile, format: .pem))
        configuration.certificateVerification = .noHostnameVerification
        return try NIOSSLContext(configuration: configuration)
    }

    func request(_ method: HTTPMethod, _ url: String, headers: [(String, String)] = [], body: [UInt8] = [],
                 timeout: Duration) async -> Result<LiveHTTPResponse, LiveFetchError> {
        guard let components = URLComponents(string: url), let scheme = components.scheme,
              let host = components.host, let port = components.port else {
            return .failure(LiveFetchError("bad URL \(url)"))
        }
        let secure = scheme == "https"
        guard scheme == "http" || secure else { return .failure(LiveFetchError("bad URL \(url)")) }
        let tls = self.tls
        if secure && tls == nil { return .failure(LiveFetchError("https needs the cluster's certificates")) }
        let milliseconds = Int64(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        let promise = group.next().makePromise(of: LiveHTTPResponse.self)
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(.milliseconds(milliseconds))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if secure, let tls {
                        try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: nil))
                    }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(LiveResponseCollector(promise: promise))
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: host, port: port).get()
        } catch {
            promise.fail(error)
            return .failure(LiveFetchError("cannot connect to \(host):\(port): \(Self.describe(error))"))
        }
        let timer = channel.eventLoop.scheduleTask(in: .milliseconds(milliseconds)) {
            promise.fail(LiveFetchError("no answer within \(milliseconds) ms"))
            channel.close(promise: nil)
        }
        var path = components.percentEncodedPath.isEmpty ? "/" : components.percentEncodedPath
        if let query = components.percentEncodedQuery { path += "?" + query }
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: path)
        head.headers.add(name: "Host", value: "\(host):\(port)")
        head.headers.add(name: "Connection", value: "close")
        head.headers.add(name: "Content-Length", value: String(body.count))
        for (name, value) in headers { head.headers.add(name: name, value: value) }
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        if !body.isEmpty {
            channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: body))), promise: nil)
        }
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        defer {
            timer.cancel()
            channel.close(promise: nil)
        }
        do {
            return .success(try await promise.futureResult.get())
        } catch let error as LiveFetchError {
            return .failure(error)
        } catch {
            return .failure(LiveFetchError(Self.describe(error)))
        }
    }

    private static func describe(_ error: any Error) -> String {
        if let io = error as? IOError { return io.description }
        if error is ChannelError { return "\(error)" }
        return String(describing: error)
    }
}

/// Collects one response and completes the promise with it.
private final class LiveResponseCollector: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    private let promise: EventLoopPromise<LiveHTTPResponse>
    private var status = 0
    private var body: [UInt8] = []

    init(promise: EventLoopPromise<LiveHTTPResponse>) {
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = Int(head.status.code)
        case .body(var buffer):
            if body.count + buffer.readableBytes > LiveHTTPClient.maxBodyBytes {
                promise.fail(LiveFetchError("answer over \(LiveHTTPClient.maxBodyBytes) bytes"))
                context.close(promise: nil)
                return
            }
            body += buffer.readBytes(length: buffer.readableBytes) ?? []
        case .end:
            promise.succeed(LiveHTTPResponse(status: status, body: body))
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(LiveFetchError("\(error)"))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(LiveFetchError("connection closed before a complete answer"))
        context.fireChannelInactive()
    }
}
