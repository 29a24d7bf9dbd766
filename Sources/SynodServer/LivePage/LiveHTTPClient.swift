import NIOCore
import NIOHTTP1
import NIOPosix
import SynodTransport

/// A minimal HTTP/1.1 GET client for the live page's fetches of the other members' state:
/// one request per connection, a deadline on the whole exchange, the body as text.
enum LiveHTTPClient {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// The answer's status and body, or a `Failure` saying why there is none.
    static func get(url: String, path: String, group: any EventLoopGroup, timeout: TimeAmount,
                    bodyLimit: Int = 4 << 20) async throws -> (status: Int, body: String) {
        if url.hasPrefix("https://") {
            throw Failure(description: "\(url) is https: the live page fetches members over plain http only")
        }
        let address: (url: String, address: PeerAddress)
        do {
            address = try ServeConfiguration.address(url, flag: "client URL")
        } catch {
            throw Failure(description: "\(error)")
        }
        let host = address.address.host
        let port = address.address.port
        let loop = group.next()
        let promise = loop.makePromise(of: (Int, String).self)
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(ResponseCollector(promise: promise, limit: bodyLimit))
                }
            }
        let deadline = loop.scheduleTask(in: timeout) {
            promise.fail(Failure(description: "no answer from \(url) within \(timeout.nanoseconds / 1_000_000) ms"))
        }
        do {
            let channel = try await bootstrap.connect(host: host, port: port).get()
            promise.futureResult.whenComplete { _ in channel.close(promise: nil) }
            var headers = HTTPHeaders()
            headers.add(name: "Host", value: "\(host):\(port)")
            headers.add(name: "Connection", value: "close")
            let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers)
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
            channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        } catch {
            deadline.cancel()
            promise.fail(Failure(description: "cannot connect to \(url): \(error)"))
        }
        defer { deadline.cancel() }
        let (status, body) = try await promise.futureResult.get()
        return (status, body)
    }

    /// Collects one response; fails the promise if the connection ends first.
    private final class ResponseCollector: ChannelInboundHandler {
        typealias InboundIn = HTTPClientResponsePart
        let promise: EventLoopPromise<(Int, String)>
        let limit: Int
        var status = 0
        var body: [UInt8] = []

        init(promise: EventLoopPromise<(Int, String)>, limit: Int) {
            self.promise = promise
            self.limit = limit
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                status = Int(head.status.code)
            case .body(var buffer):
                guard body.count + buffer.readableBytes <= limit else {
                    promise.fail(Failure(description: "answer larger than \(limit) bytes"))
                    context.close(promise: nil)
                    return
                }
                body += buffer.readBytes(length: buffer.readableBytes) ?? []
            case .end:
                promise.succeed((status, String(decoding: body, as: UTF8.self)))
                context.close(promise: nil)
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            promise.fail(Failure(description: "the connection closed before the answer ended"))
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            promise.fail(Failure(description: "\(error)"))
            context.close(promise: nil)
        }
    }
}
