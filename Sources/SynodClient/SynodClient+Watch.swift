import Foundation
import GRPCCore
import Synchronization

extension SynodClient {
    /// Watches a key, a range `[key, rangeEnd)`, or every key starting with `key`.
    ///
    /// The stream yields the server's watch responses: first the `created` confirmation (no
    /// events), then responses carrying events (`events[i].type` is `.put` or `.delete`; `kv` is
    /// the new pair, `prevKv` the previous one when `prevKV` is set). It runs until the consumer
    /// stops iterating, the client is closed, or an error ends it.
    ///
    /// When the connection fails the watch moves to the next endpoint and resumes from the
    /// revision after the last one delivered, so no event is lost or repeated (the new
    /// `created` confirmation is not yielded again). It gives up with
    /// ``SynodClientError/unavailable(_:)`` when no endpoint accepts the watch within the
    /// request timeout, and with ``SynodClientError/watchCanceled(reason:compactRevision:)``
    /// when the server cancels it (for example because `startRevision` was compacted).
    ///
    /// - Parameters:
    ///   - startRevision: first revision to deliver (0: only changes from now on).
    ///   - prevKV: include the previous key-value pair in every event.
    ///   - progressNotify: ask the server for periodic empty progress responses.
    public func watch(
        _ key: some SynodByteString,
        rangeEnd: (any SynodByteString)? = nil,
        prefix: Bool = false,
        startRevision: Int64 = 0,
        prevKV: Bool = false,
        progressNotify: Bool = false
    ) -> AsyncThrowingStream<Etcdserverpb_WatchResponse, any Error> {
        var create = Etcdserverpb_WatchCreateRequest()
        (create.key, create.rangeEnd) = SynodClient.range(key: key.synodBytes, rangeEnd: rangeEnd, prefix: prefix)
        create.startRevision = startRevision
        create.prevKv = prevKV
        create.progressNotify = progressNotify
        return self.watch(create)
    }

    /// Watches with a prepared create request (see ``watch(_:rangeEnd:prefix:startRevision:prevKV:progressNotify:)``).
    public func watch(_ create: Etcdserverpb_WatchCreateRequest) -> AsyncThrowingStream<Etcdserverpb_WatchResponse, any Error> {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: Etcdserverpb_WatchResponse.self)
        let token = self.registerWatch { token in
            let task = Task {
                await self.runWatch(create, continuation: continuation)
                self.unregisterWatch(token)
            }
            continuation.onTermination = { _ in task.cancel() }
            return task
        }
        if token == nil {
            continuation.finish(throwing: SynodClientError.invalidConfiguration("the client is closed"))
        }
        return stream
    }

    private enum WatchEnd: Sendable {
        case canceled(reason: String, compactRevision: Int64)
        case streamEnded
    }

    private func runWatch(
        _ create: Etcdserverpb_WatchCreateRequest,
        continuation: AsyncThrowingStream<Etcdserverpb_WatchResponse, any Error>.Continuation
    ) async {
        let progress = WatchProgress(nextRevision: create.startRevision)
        let clock = ContinuousClock()
        var deadline = clock.now.advanced(by: self.configuration.requestTimeout)
        var failures: [Int: SynodClientError.EndpointFailure] = [:]
        var failuresInARow = 0
        var index = self.currentIndex
        while !Task.isCancelled {
            if clock.now >= deadline {
                let ordered = failures.keys.sorted().compactMap { failures[$0] }
                continuation.finish(throwing: SynodClientError.unavailable(ordered))
                return
            }
            var request = create
            let next = progress.nextRevision
            if next > 0 { request.startRevision = next }
            var message = Etcdserverpb_WatchRequest()
            message.createRequest = request
            let watchRequest = message
            let connection = self.connections[index]
            let failure: SynodClientError.EndpointFailure
            do {
                let end = try await Etcdserverpb_Watch.Client(wrapping: connection.grpc).watch(
                    request: StreamingClientRequest(producer: { writer in
                        try await writer.write(watchRequest)
                        // Keep the request side open for as long as the watch runs.
                        while !Task.isCancelled {
                            try? await Task.sleep(for: .seconds(3600))
                        }
                    }),
                    options: self.callOptions(timeout: nil)
                ) { response -> WatchEnd in
                    for try await message in response.messages {
                        if message.canceled {
                            // etcd 3.4 gives no reason when the start revision was compacted.
                            let reason = message.cancelReason.isEmpty && message.compactRevision != 0
                                ? "etcdserver: mvcc: required revision has been compacted" : message.cancelReason
                            return .canceled(reason: reason, compactRevision: message.compactRevision)
                        }
                        if progress.observe(message) {
                            continuation.yield(message)
                        }
                    }
                    return .streamEnded
                }
                switch end {
                case .canceled(let reason, let compactRevision):
                    continuation.finish(
                        throwing: SynodClientError.watchCanceled(reason: reason, compactRevision: compactRevision))
                    return
                case .streamEnded:
                    failure = .init(
                        endpoint: connection.endpoint.original, code: .unavailable,
                        reason: "the server closed the watch stream")
                }
            } catch let error as RPCError {
                if Task.isCancelled { break }
                guard Self.isRetryable(error) else {
                    continuation.finish(
                        throwing: SynodClientError.server(
                            code: error.code, message: error.message, endpoint: connection.endpoint.original))
                    return
                }
                failure = Self.failure(error, endpoint: connection.endpoint)
            } catch {
                if Task.isCancelled { break }
                continuation.finish(throwing: error)
                return
            }
            // The watch was up on this endpoint: a fresh reconnection budget starts now.
            if progress.takeEstablished() {
                deadline = clock.now.advanced(by: self.configuration.requestTimeout)
                failures.removeAll()
                failuresInARow = 0
            }
            failures[index] = failure
            self.advance(from: index)
            index = (index + 1) % self.connections.count
            failuresInARow += 1
            if failuresInARow >= self.connections.count {
                failuresInARow = 0
                try? await Task.sleep(for: self.configuration.retryBackoff)
            }
        }
        continuation.finish()
    }
}

/// Revision bookkeeping of one watch, shared with the response handler.
private final class WatchProgress: Sendable {
    private struct State {
        var nextRevision: Int64
        var established = false
        var createdYielded = false
    }

    private let state: Mutex<State>

    init(nextRevision: Int64) {
        self.state = Mutex(State(nextRevision: nextRevision))
    }

    var nextRevision: Int64 { self.state.withLock { $0.nextRevision } }

    /// Records a response; returns whether to pass it on to the consumer.
    func observe(_ message: Etcdserverpb_WatchResponse) -> Bool {
        self.state.withLock { state in
            if message.created {
                state.established = true
                if state.nextRevision == 0 {
                    state.nextRevision = message.header.revision + 1
                }
                defer { state.createdYielded = true }
                return !state.createdYielded
            }
            for event in message.events {
                state.nextRevision = max(state.nextRevision, event.kv.modRevision + 1)
            }
            if message.events.isEmpty, message.header.revision > 0 {
                // Progress notification: nothing up to this revision is pending.
                state.nextRevision = max(state.nextRevision, message.header.revision + 1)
            }
            return true
        }
    }

    /// Whether the watch had been established since the last call (and resets the flag).
    func takeEstablished() -> Bool {
        self.state.withLock { state in
            defer { state.established = false }
            return state.established
        }
    }
}
