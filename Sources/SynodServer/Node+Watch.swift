import NIOCore
import SynodKV

/// How a watch began.
public enum WatchStart: Sendable {
    case compacted(compactRevision: Int64)
    case started(id: UInt64, history: [WatchEvent], revision: Int64, stream: AsyncStream<WatchDelivery>, backlog: WatchBacklog)
}

/// Watches: the registry lives in the shell (it holds the client streams); the driver only
/// reports the events it applied.
extension Node {
    /// Starts a watch: history from `startRevision` (0 = from now) and then live events, with
    /// no gap between them (both are read on the node loop). The first history comes with the
    /// answer, at most `WatcherRegistry.catchUpRevisionsMax` revisions of it; the rest arrives
    /// on the stream as the client reads (the watch starts behind, see `WatcherRegistry`).
    ///
    /// - Important: The stream's consumer must report every `.events` delivery it has written
    ///   to its client to `backlog.written(_:)`, or the watch stays behind.
    public func watch(_ filter: WatchFilter, startRevision: Int64) async throws -> WatchStart {
        // Unbounded as a buffer, bounded by the backlog accounting (the registry stops
        // delivering to a watch whose client does not keep up).
        let (stream, continuation) = AsyncStream<WatchDelivery>.makeStream(bufferingPolicy: .unbounded)
        let backlog = WatchBacklog()
        return try await onCurrentState { [self] () throws -> WatchStart in
            let store = driver.kv.store
            var history: [WatchEvent] = []
            var behindFrom: Int64?
            if startRevision > 0 && startRevision <= store.revision {
                do {
                    let events = try store.events(from: startRevision, key: filter.key, rangeEnd: filter.rangeEnd,
                                                  revisionsMax: WatcherRegistry.catchUpRevisionsMax)
                    if let last = events.last?.kv.modRevision, last < store.revision,
                       Set(events.map(\.kv.modRevision)).count >= WatcherRegistry.catchUpRevisionsMax {
                        behindFrom = last + 1
                    }
                    history = filter.select(events)
                } catch {
                    continuation.finish()
                    return .compacted(compactRevision: store.compactRevision)
                }
            }
            let id = watchers.add(filter, continuation: continuation, backlog: backlog, behindFrom: behindFrom)
            return .started(id: id, history: history, revision: store.revision, stream: stream, backlog: backlog)
        }.get()
    }

    public func cancelWatch(_ id: UInt64) {
        loop.execute { [self] in watchers.remove(id) }
    }
}

extension Node {
    /// How many watches are registered on this node (for tests: a closed client's watches go).
    func watchCount() async -> Int {
        (try? await loop.submit { [self] in watchers.count }.get()) ?? -1
    }
}
