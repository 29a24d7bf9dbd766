import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import SynodServer
import SynodSim

/// Guided tours on the cluster page: the hook a tour feature fills in. `list` is the document's
/// `tour` field (an array of `{"name","title","href"}`), `page` a tour's HTML by name (served
/// at `GET /ui/tour/<name>.html`; nil: 404).
struct LiveTourProvider: Sendable {
    var list: @Sendable () -> LiveJSON
    var page: @Sendable (String) -> String?

    /// The guided tour of `synod sim --tour`: the index at `/ui/tour/index.html` and one
    /// replay page per scenario, each simulated once on first request and kept.
    static func simulatorTour() -> LiveTourProvider {
        let cache = Mutex<[String: String]>([:])
        return LiveTourProvider(
            list: {
                .array([.object(["name": .string("index"), "title": .string("All scenarios"), "href": .string("/ui/tour/index.html")])]
                    + SimTour.all.map { tour in
                        .object(["name": .string(tour.name), "title": .string(tour.title),
                                 "href": .string("/ui/tour/\(tour.name).html")])
                    })
            },
            page: { name in
                if let page = cache.withLock({ $0[name] }) { return page }
                let page: String?
                if name == "index" {
                    page = SimTourPages.tourIndex()
                } else {
                    page = try? SimTourPages.tourPage(name: name)
                }
                if let page { cache.withLock { $0[name] = page } }
                return page
            })
    }
}

/// The cluster page's state, aggregated from every member and cached briefly, so that several
/// open pages (each polling and holding an event stream) cost the members one fetch each per
/// 300 ms at most.
actor LiveStateSource {
    private let supervisor: ClusterSupervisor
    private let http: LiveHTTPClient
    private let tour: LiveTourProvider?
    private let breakMode: String?
    private var cached: (at: ContinuousClock.Instant, text: String)?
    private var inFlight: Task<String, Never>?
    private var firstLeader: LiveJSON?

    static let cacheFor = Duration.milliseconds(300)
    static let fetchTimeout = Duration.milliseconds(400)

    init(supervisor: ClusterSupervisor, http: LiveHTTPClient, tour: LiveTourProvider?, breakMode: String?) {
        self.supervisor = supervisor
        self.http = http
        self.tour = tour
        self.breakMode = breakMode
    }

    func current() async -> String {
        if let cached, ContinuousClock.now - cached.at < Self.cacheFor { return cached.text }
        if let inFlight { return await inFlight.value }
        let task = Task { await self.compute() }
        inFlight = task
        let text = await task.value
        cached = (ContinuousClock.now, text)
        inFlight = nil
        return text
    }

    /// Forgets the cached state (after a control action).
    func invalidate() {
        cached = nil
    }

    private func compute() async -> String {
        let members = await supervisor.snapshot()
        let http = self.http
        let inputs = await withTaskGroup(of: LiveMemberInput.self) { group in
            for member in members {
                group.addTask {
                    var input = LiveMemberInput(name: member.name, clientURL: member.clientURL, process: member.process)
                    guard member.process == .running else { return input }
                    let answer = await http.request(.GET, member.clientURL + "/ui/state?self=1", timeout: Self.fetchTimeout)
                    if case .success(let response) = answer, response.status == 404 {
                        input.answer = await Self.statusDocument(http, name: member.name, clientURL: member.clientURL)
                        return input
                    }
                    input.answer = answer.flatMap { response -> Result<LiveJSON, LiveFetchError> in
                        guard response.status == 200 else {
                            return .failure(LiveFetchError("GET /ui/state answered \(response.status)"))
                        }
                        guard let document = LiveJSON.parse(response.body) else {
                            return .failure(LiveFetchError("GET /ui/state answered no JSON"))
                        }
                        return .success(document)
                    }
                    return input
                }
            }
            var all: [LiveMemberInput] = []
            for await input in group { all.append(input) }
            return all
        }
        let nowMs = Int64(Date().timeIntervalSince1970 * 1000)
        var state = LiveClusterState.aggregate(inputs, token: supervisor.token, nowMs: nowMs, tour: tour?.list())
        if breakMode == "stale-leader", case .object(var fields) = state {
            // Tests only: the first leader ever seen is shown for good.
            if firstLeader == nil, let leader = fields["leader"], leader != .null { firstLeader = leader }
            if let firstLeader { fields["leader"] = firstLeader }
            state = .object(fields)
        }
        return state.text
    }

    /// The document of a member without `/ui/state`, from its Status and MemberList.
    private static func statusDocument(_ http: LiveHTTPClient, name: String, clientURL: String) async -> Result<LiveJSON, LiveFetchError> {
        async let status = http.request(.POST, clientURL + "/v3/maintenance/status", body: Array("{}".utf8), timeout: fetchTimeout)
        async let list = http.request(.POST, clientURL + "/v3/cluster/member/list", body: Array("{}".utf8), timeout: fetchTimeout)
        let answers = (await status, await list)
        guard case .success(let statusAnswer) = answers.0, statusAnswer.status == 200,
              let statusJSON = LiveJSON.parse(statusAnswer.body) else {
            if case .failure(let error) = answers.0 { return .failure(error) }
            return .failure(LiveFetchError("serves neither /ui/state nor a readable Status"))
        }
        var listJSON: LiveJSON = [:]
        if case .success(let listAnswer) = answers.1, listAnswer.status == 200, let parsed = LiveJSON.parse(listAnswer.body) {
            listJSON = parsed
        }
        guard let document = LiveClusterState.statusDocument(name: name, clientURL: clientURL, status: statusJSON, memberList: listJSON) else {
            return .failure(LiveFetchError("its Status answer has no member id"))
        }
        return .success(document)
    }
}

/// What the cluster page's server answers, apart from the socket work.
struct LiveClusterRoutes: Sendable {
    var port: Int
    var state: LiveStateSource
    var supervisor: ClusterSupervisor
    var tour: LiveTourProvider?
    var members: [String]
}

/// The cluster page's HTTP/1.1 server, on loopback only: `GET /` and `/ui` (the page),
/// `GET /ui/state`, `GET /ui/events` (server-sent events), `GET /ui/tour/<name>.html`, and
/// `POST /ui/control/<action>`. Every connection answers one request and is closed.
final class LiveClusterServer: Sendable {
    private let channel: any Channel

    private init(channel: any Channel) {
        self.channel = channel
    }

    var port: Int { channel.localAddress?.port ?? 0 }

    /// Binds 127.0.0.1:`port`; the routes are made once the port is known.
    static func start(group: any EventLoopGroup, port: Int,
                      routes makeRoutes: @escaping @Sendable (Int) -> LiveClusterRoutes) async throws -> LiveClusterServer {
        let box = LiveRoutesBox()
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard let routes = box.routes else { throw ChannelError.ioOnClosedChannel }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(LiveClusterHandler(routes: routes))
                }
            }
        let channel = try await bootstrap.bind(host: "127.0.0.1", port: port).get()
        box.routes = makeRoutes(channel.localAddress?.port ?? port)
        return LiveClusterServer(channel: channel)
    }

    func close() async {
        try? await channel.close()
    }
}

/// The routes, set once right after binding (before that, connections are refused).
private final class LiveRoutesBox: Sendable {
    private let value = Mutex<LiveClusterRoutes?>(nil)
    var routes: LiveClusterRoutes? {
        get { value.withLock { $0 } }
        set { value.withLock { $0 = newValue } }
    }
}

/// One connection: reads one request (the body counted, kept up to the control limit), answers,
/// closes.
private final class LiveClusterHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let routes: LiveClusterRoutes
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var bodyBytes = 0
    private var answered = false

    init(routes: LiveClusterRoutes) {
        self.routes = routes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            guard !answered else { return }
            self.head = head
        case .body(var buffer):
            bodyBytes += buffer.readableBytes
            let room = LiveControl.maxBodyBytes + 1 - body.count
            if room > 0 { body += buffer.readBytes(length: min(room, buffer.readableBytes)) ?? [] }
        case .end:
            guard !answered, let head else { return }
            answered = true
            respond(to: head, channel: context.channel)
        }
    }

    private func respond(to head: HTTPRequestHead, channel: any Channel) {
        let routes = self.routes
        let hosts = head.headers["Host"]
        // A page of another site that rebinds its name to 127.0.0.1 would come with its own
        // name here: it gets nothing (the state document holds the control token).
        guard hosts.count == 1, let host = hosts.first, LiveControl.hostAllowed(host, port: routes.port) else {
            Self.send(channel, status: .forbidden, type: "text/plain; charset=utf-8", body: "unexpected Host header\n")
            return
        }
        let path = String(head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
        if head.method == .POST, path.hasPrefix("/ui/control/") {
            let action = String(path.dropFirst("/ui/control/".count))
            let headers = head.headers.map { ($0.name, $0.value) }
            Self.control(channel, routes: routes, action: action, headers: headers, body: body, bodyBytes: bodyBytes)
            return
        }
        guard head.method == .GET else {
            Self.send(channel, status: .methodNotAllowed, type: "text/plain; charset=utf-8", body: "method not allowed\n")
            return
        }
        switch path {
        case "/", "/ui", "/ui/":
            Self.send(channel, status: .ok, type: "text/html; charset=utf-8", body: LiveClusterPage.html)
        case "/ui/state":
            Self.state(channel, routes: routes)
        case "/ui/events":
            Self.stream(channel, routes: routes)
        default:
            if path.hasPrefix("/ui/tour/"), path.hasSuffix(".html"), let tour = routes.tour {
                let name = String(path.dropFirst("/ui/tour/".count).dropLast(".html".count))
                // A tour page runs its simulation the first time (seconds): off the event loop.
                DispatchQueue.global().async { Self.tourPage(channel, tour: tour, name: name) }
                return
            }
            Self.send(channel, status: .notFound, type: "text/plain; charset=utf-8", body: "not found\n")
        }
    }

    private static func control(_ channel: any Channel, routes: LiveClusterRoutes, action: String, headers: [(String, String)],
                                body: [UInt8], bodyBytes: Int) {
        Task {
            let status: HTTPResponseStatus
            let answer: String
            switch LiveControl.validate(action: action, headers: headers, body: body, bodyBytes: bodyBytes,
                                        token: routes.supervisor.token, port: routes.port, members: routes.members) {
            case .failure(let rejection):
                status = HTTPResponseStatus(statusCode: rejection.status)
                answer = LiveControl.answer(ok: false, rejection.message)
            case .success(let command):
                let result = await routes.supervisor.perform(command)
                // The next state shows what the action did, not a cached moment before it.
                await routes.state.invalidate()
                status = .ok
                answer = LiveControl.answer(ok: result.ok, result.message)
            }
            send(channel, status: status, type: "application/json", body: answer)
        }
    }

    private static func tourPage(_ channel: any Channel, tour: LiveTourProvider, name: String) {
        if let page = tour.page(name) {
            send(channel, status: .ok, type: "text/html; charset=utf-8", body: page)
        } else {
            send(channel, status: .notFound, type: "text/plain; charset=utf-8", body: "not found\n")
        }
    }

    private static func state(_ channel: any Channel, routes: LiveClusterRoutes) {
        Task {
            send(channel, status: .ok, type: "application/json", body: await routes.state.current())
        }
    }

    private static func headers(type: String) -> HTTPHeaders {
        HTTPHeaders([("Content-Type", type), ("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"),
                     ("X-Frame-Options", "DENY"), ("Connection", "close")])
    }

    private static func send(_ channel: any Channel, status: HTTPResponseStatus, type: String, body: String) {
        var headers = headers(type: type)
        let bytes = ByteBuffer(string: body)
        headers.add(name: "Content-Length", value: String(bytes.readableBytes))
        channel.write(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers)), promise: nil)
        channel.write(HTTPServerResponsePart.body(.byteBuffer(bytes)), promise: nil)
        channel.writeAndFlush(HTTPServerResponsePart.end(nil)).whenComplete { _ in channel.close(promise: nil) }
    }

    /// `retry: 1000`, then the state as an `event: state` every 500 ms until the client hangs up.
    private static func stream(_ channel: any Channel, routes: LiveClusterRoutes) {
        Task {
            let head = HTTPResponseHead(version: .http1_1, status: .ok, headers: headers(type: "text/event-stream"))
            do {
                try await channel.writeAndFlush(HTTPServerResponsePart.head(head)).get()
                try await channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(string: "retry: 1000\n\n")))).get()
                while channel.isActive {
                    let event = "event: state\ndata: \(await routes.state.current())\n\n"
                    try await channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(string: event)))).get()
                    try await Task.sleep(for: .milliseconds(500))
                }
            } catch {
                channel.close(promise: nil)
            }
        }
    }
}
