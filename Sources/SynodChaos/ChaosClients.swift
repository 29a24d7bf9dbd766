import Foundation
import Synchronization
import SynodClient

/// The history of a run, filled by every client concurrently.
final class ChaosRecorder: Sendable {
    private struct State {
        var operations: [ChaosOperation] = []
        var nextID = 0
        var counts: [ChaosOperationStatus: Int] = [:]
    }

    private let state = Mutex(State())

    func nextID() -> Int {
        state.withLock { state in
            defer { state.nextID += 1 }
            return state.nextID
        }
    }

    func record(_ operation: ChaosOperation) {
        state.withLock { state in
            state.operations.append(operation)
            state.counts[operation.status, default: 0] += 1
        }
    }

    var operations: [ChaosOperation] {
        state.withLock { $0.operations }.sorted { $0.id < $1.id }
    }

    func counts() -> (ok: Int, unknown: Int, fail: Int) {
        state.withLock { ($0.counts[.ok] ?? 0, $0.counts[.unknown] ?? 0, $0.counts[.fail] ?? 0) }
    }
}

/// A flag the clients poll to stop.
final class ChaosStopFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    var isSet: Bool { flag.load(ordering: .acquiring) }
    func set() { flag.store(true, ordering: .releasing) }
}

/// The workload: `clients` concurrent loops of reads, writes, compare-and-sets and deletes on a
/// small key space, each client preferring its own node so reads hit every member. Clients
/// with an even index read only from their own node (like a Jepsen client bound to a node):
/// failover sticks to the endpoint that answered, so without them no read would reach a node
/// again once it had been down, and a woken node serving stale reads would go unseen.
///
/// The clients follow the membership: between two operations a client whose endpoint list is
/// stale (``ChaosMembership/version`` moved) reconnects to the current voters' client URLs.
struct ChaosClients: Sendable {
    var members: ChaosMembership
    var clients: Int
    var keys: Int
    var opTimeoutSeconds: Double
    var seed: UInt64
    var recorder: ChaosRecorder
    var clock: ChaosClock
    var stop: ChaosStopFlag

    static func keyName(_ index: Int) -> String { "k\(index)" }

    /// The endpoint list rotated so `preferred` comes first.
    static func rotated(_ endpoints: [String], preferring preferred: Int) -> [String] {
        guard !endpoints.isEmpty else { return endpoints }
        let start = preferred % endpoints.count
        return Array(endpoints[start...] + endpoints[..<start])
    }

    /// Runs every client until `stop` is set; in-flight operations finish or time out.
    func run() async {
        await withTaskGroup(of: Void.self) { group in
            for client in 0..<clients {
                group.addTask { await self.runClient(client) }
            }
        }
    }

    private enum Known {
        case value(String)
        case absent
    }

    /// What one client keeps across reconnections.
    private struct LoopState {
        var random: ChaosRandom
        var known: [String: Known] = [:]
        var counter = 0
    }

    func runClient(_ client: Int) async {
        let timeout = Duration.milliseconds(Int64(max(1, opTimeoutSeconds * 1000)))
        let half = Duration.milliseconds(Int64(max(1, opTimeoutSeconds * 500)))
        var state = LoopState(random: ChaosRandom(seed: seed &+ UInt64(client) &* 0x9E37_79B9_7F4A_7C15 &+ 1))
        while !stop.isSet && !Task.isCancelled {
            let (version, endpoints) = members.clientView()
            guard !endpoints.isEmpty else {
                try? await Task.sleep(for: .milliseconds(100))
                continue
            }
            let preferred = Self.rotated(endpoints, preferring: client)
            // Reads fail over after half the budget; mutations get one attempt for the whole
            // budget, so a slow first attempt is never re-sent elsewhere (which could apply a
            // write twice, a client-side artifact the checker would report as a violation).
            let readEndpoints = client % 2 == 0 ? Array(preferred.prefix(1)) : preferred
            let readConfig = SynodClientConfiguration(endpoints: readEndpoints, requestTimeout: timeout, attemptTimeout: half,
                                                      retryBackoff: .milliseconds(50))
            let writeConfig = SynodClientConfiguration(endpoints: preferred, requestTimeout: timeout,
                                                       attemptTimeout: timeout, retryBackoff: .milliseconds(50))
            do {
                try await withSynodClient(readConfig) { reader in
                    try await withSynodClient(writeConfig) { writer in
                        await self.loop(client: client, endpoint: preferred.first, reader: reader, writer: writer,
                                        endpoints: endpoints, version: version, state: &state)
                    }
                }
            } catch {
                // Only configuration errors end up here; the loop records per-operation errors.
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    /// Runs operations until `stop`, or until the voters' client URLs are no longer
    /// `endpoints` (checked whenever the membership's version moves past `version`).
    private func loop(client: Int, endpoint: String?, reader: SynodClient, writer: SynodClient, endpoints: [String],
                      version: Int, state: inout LoopState) async {
        var version = version
        while !stop.isSet && !Task.isCancelled {
            if members.version != version {
                let view = members.clientView()
                if view.endpoints != endpoints { return }
                version = view.version
            }
            let key = Self.keyName(state.random.below(max(1, keys)))
            let roll = state.random.below(100)
            let id = recorder.nextID()
            var op = ChaosOperation(id: id, client: client, kind: .read, key: key, invokedNanos: 0, endpoint: endpoint)
            do {
                switch roll {
                case 0..<40:
                    op.invokedNanos = clock.nanos()
                    let response = try await reader.get(key)
                    op.completedNanos = clock.nanos()
                    let kv = response.kvs.first
                    op.readValue = kv.map { String(decoding: $0.value, as: UTF8.self) }
                    op.modRevision = kv?.modRevision
                    op.revision = response.header.revision
                    op.status = .ok
                    state.known[key] = op.readValue.map(Known.value) ?? .absent
                case 40..<70:
                    state.counter += 1
                    let value = "c\(client)-\(state.counter)"
                    op.kind = .write
                    op.value = value
                    state.known[key] = nil
                    op.invokedNanos = clock.nanos()
                    let response = try await writer.put(key, value)
                    op.completedNanos = clock.nanos()
                    op.revision = response.header.revision
                    op.status = .ok
                    state.known[key] = .value(value)
                case 70..<90:
                    state.counter += 1
                    let value = "c\(client)-\(state.counter)"
                    op.kind = .cas
                    op.value = value
                    let compare: Etcdserverpb_Compare
                    if case .value(let expected) = state.known[key] {
                        op.expected = expected
                        compare = .value(key, .equal, expected)
                    } else {
                        op.expected = nil
                        compare = .createRevision(key, .equal, 0)
                    }
                    state.known[key] = nil
                    let request = SynodTxn.request(compare: [compare], success: [.put(key, value)])
                    op.invokedNanos = clock.nanos()
                    let response = try await writer.txn(request)
                    op.completedNanos = clock.nanos()
                    op.revision = response.header.revision
                    op.casSucceeded = response.succeeded
                    op.status = .ok
                    if response.succeeded { state.known[key] = .value(value) }
                default:
                    op.kind = .delete
                    state.known[key] = nil
                    op.invokedNanos = clock.nanos()
                    let response = try await writer.delete(key)
                    op.completedNanos = clock.nanos()
                    op.revision = response.header.revision
                    op.status = .ok
                    state.known[key] = .absent
                }
                recorder.record(op)
            } catch {
                op.error = Self.describe(error)
                if op.kind == .read {
                    op.completedNanos = clock.nanos()
                    op.status = .fail
                } else {
                    // The mutation may have been applied: its outcome is unknown.
                    op.completedNanos = nil
                    op.status = .unknown
                }
                recorder.record(op)
                if error is CancellationError { return }
                try? await Task.sleep(for: .milliseconds(50 + Int64(state.random.below(50))))
            }
        }
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? SynodClientError { return error.description }
        return String(describing: error)
    }
}
