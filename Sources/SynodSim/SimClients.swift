import SynodCheck
import SynodCore
import SynodKV
import SynodNode

/// One simulated client: sequential operations on a small key space, each retried after
/// timeouts (a write keeps its (client id, sequence), so retries apply at most once) until
/// its deadline; a write that never got an answer is recorded as unknown.
struct SimClient {
    let index: Int
    let clientID: UInt64
    var sequence: UInt64 = 0
    var leaderHint: Int?
    var current: ClientOperation?
    var token: UInt64 = 0
    var writesDone = 0
    /// The final-read client: next key to read, and whether it has read them all.
    var finalKey = 0
    var finished = false

    init(index: Int, clientID: UInt64) {
        self.index = index
        self.clientID = clientID
    }
}

/// The operation a client is working on.
struct ClientOperation {
    var historyIndex: Int
    var operation: KVOperation
    var write: ClientWrite?
    var deadline: SimTime
    var attempts = 0
    /// The pending timer is a retry backoff, not an attempt's timeout.
    var backingOff = false
}

extension Simulation {
    var attemptTimeout: SimTime { 300_000 }
    var operationDeadline: SimTime { 2_000_000 }

    func startOperation(_ index: Int) {
        let isFinalReader = index == options.clients
        if isFinalReader {
            guard clients[index].finalKey < options.keys else {
                clients[index].finished = true
                return
            }
        } else if now >= workloadEndTime {
            return
        }
        let key: String
        let operation: KVOperation
        if isFinalReader {
            key = "k\(clients[index].finalKey)"
            clients[index].finalKey += 1
            operation = .read(key: key)
        } else {
            key = "k\(random.next() % UInt64(max(1, options.keys)))"
            let value = "v\(index).\(clients[index].writesDone)"
            let roll = uniform()
            if roll < 0.4 {
                operation = .read(key: key)
            } else if roll < 0.75 {
                operation = .write(key: key, value: value)
            } else if roll < 0.92 {
                let expected: String? = chance(0.2) ? nil : lastValueSeen(key)
                operation = .compareAndSet(key: key, expected: expected, new: value)
            } else {
                operation = .delete(key: key)
            }
        }
        var write: ClientWrite?
        if let command = ClientWrite.command(for: operation) {
            clients[index].sequence += 1
            clients[index].writesDone += 1
            // The request id is the same on every attempt: the driver derives one session
            // from it, so retries of the write apply at most once.
            let built = ClientWrite(payload: command.encoded(), requestID: clients[index].clientID << 32 | clients[index].sequence)
            submitted[built.key] = built.payload
            write = built
        }
        let historyIndex = history.count
        history.append(HistoryOperation(id: historyIndex, client: index, operation: operation,
                                        invokedAt: now, completedAt: nil, outcome: .unknown))
        result.operations += 1
        recordClientInvoked(history[historyIndex])
        let deadline = isFinalReader ? now + 3 * operationDeadline : now + operationDeadline
        clients[index].current = ClientOperation(historyIndex: historyIndex, operation: operation, write: write, deadline: deadline)
        sendAttempt(index)
    }

    /// A recently written value of `key`, so compare-and-set sometimes succeeds.
    private func lastValueSeen(_ key: String) -> String? {
        for operation in history.reversed().prefix(20) {
            if case .write(let written, let value) = operation.operation, written == key { return value }
            if case .read(let read) = operation.operation, read == key, case .read(let value) = operation.outcome { return value }
        }
        return nil
    }

    private func sendAttempt(_ index: Int) {
        guard let operation = clients[index].current else { return }
        clients[index].token += 1
        clients[index].current?.attempts += 1
        let token = clients[index].token
        // Like a Jepsen process, each client is bound to a home node and starts every
        // operation there; retries follow the leader hint, or go to a random node after a timeout.
        // With membership changes the client's endpoints are the current members: a home
        // node that was removed is replaced by a random member.
        let members = memberNodes()
        let target: Int
        if operation.attempts == 1 && !nodes[index % options.nodes].removed {
            target = index % options.nodes
        } else if let hint = clients[index].leaderHint, operation.attempts % 3 != 0, !nodes[hint].removed {
            target = hint
        } else if chance(0.1) {
            // A client whose endpoint list is out of date: any node, removed ones included.
            target = Int(random.next() % UInt64(nodes.count))
        } else if !members.isEmpty {
            target = members[Int(random.next() % UInt64(members.count))]
        } else {
            target = Int(random.next() % UInt64(nodes.count))
        }
        let request: ClientRequest
        if let write = operation.write {
            request = .write(write, client: index, token: token)
        } else {
            request = .read(key: operation.operation.key, client: index, token: token)
        }
        queue.push(.clientArrive(node: target, request: request), at: now + between(50, 500))
        queue.push(.clientTimeout(client: index, token: token), at: now + attemptTimeout)
    }

    func clientArrive(node: Int, request: ClientRequest) {
        guard nodes[node].up else { return }  // the client times out
        switch request {
        case .write(let write, let client, let token):
            mixEvent(4, node)
            let driverToken = nodes[node].newToken()
            nodes[node].pendingWrites[driverToken] = (client, token)
            step(node, .write(token: driverToken, payload: write.payload, requestID: write.requestID))
        case .read(let key, let client, let token):
            mixEvent(5, node)
            let driverToken = nodes[node].newToken()
            nodes[node].pendingReads[driverToken] = (client, token, key)
            step(node, .read(token: driverToken, consistency: .linearizable))
        }
    }

    func reply(from node: Int, to client: Int, token: UInt64, _ reply: ClientReply) {
        queue.push(.clientReply(client: client, node: node, token: token, reply: reply), at: now + between(50, 500))
    }

    /// The driver answered a read barrier: read the key from the node's state machine now.
    func readAnswered(_ node: Int, token: UInt64, failure: NodeError?) {
        guard let waiting = nodes[node].pendingReads.removeValue(forKey: token) else { return }
        guard failure == nil else {
            reply(from: node, to: waiting.client, token: waiting.token, .failed(leaderHint: nodes[node].replica.leaderHint))
            return
        }
        let kv = try? nodes[node].kv.store.range(RangeRequest(key: Array(waiting.key.utf8))).kvs.first
        reply(from: node, to: waiting.client, token: waiting.token, .read(kv.map { String(decoding: $0.value, as: UTF8.self) }))
    }

    /// The driver answered a write: its etcd response, or why it failed.
    func writeAnswered(_ node: Int, token: UInt64, _ result: Result<KVResponse, NodeError>) {
        guard let waiting = nodes[node].pendingWrites.removeValue(forKey: token) else { return }
        let answer: ClientReply
        switch result {
        case .success(.txn(let txn)): answer = .written(.compareAndSet(txn.succeeded))
        case .success(.put), .success(.deleteRange): answer = .written(.ok)
        case .success(let other):
            violation("a client write was answered with \(other)")
            return
        case .failure: answer = .failed(leaderHint: nodes[node].replica.leaderHint)
        }
        reply(from: node, to: waiting.client, token: waiting.token, answer)
    }

    func clientReply(client index: Int, node: Int, token: UInt64, reply: ClientReply) {
        guard clients[index].token == token, let operation = clients[index].current else { return }
        hasher.mix(UInt64(index) << 32 | token)
        switch reply {
        case .failed(let hint):
            clients[index].leaderHint = hint.flatMap { indexOf[$0] }
            retryOrGiveUp(index, operation, backoff: 10_000)
        case .written(let kvResult):
            let outcome: KVOutcome
            switch kvResult {
            case .ok: outcome = .written
            case .compareAndSet(let success): outcome = .compareAndSet(success)
            }
            if let write = operation.write, outcome != .compareAndSet(false) {
                acknowledgedWrites[write.key] = operation.historyIndex
            }
            if now >= faultsEndTime && firstWriteAfterHeal == nil { firstWriteAfterHeal = now }
            complete(index, outcome, at: node)
        case .read(let value):
            complete(index, .read(value), at: node)
        }
    }

    func clientTimeout(client index: Int, token: UInt64) {
        guard clients[index].token == token, let operation = clients[index].current else { return }
        if operation.backingOff {
            clients[index].current?.backingOff = false
            sendAttempt(index)
            return
        }
        result.attemptsTimedOut += 1
        clients[index].leaderHint = nil
        retryOrGiveUp(index, operation, backoff: 0)
    }

    private func retryOrGiveUp(_ index: Int, _ operation: ClientOperation, backoff: SimTime) {
        if now + backoff < operation.deadline {
            if backoff > 0 {
                // Wait a little, then try again (the timeout event of this token is now moot).
                clients[index].token += 1
                clients[index].current?.backingOff = true
                let token = clients[index].token
                queue.push(.clientTimeout(client: index, token: token), at: now + backoff)
            } else {
                sendAttempt(index)
            }
            return
        }
        // Out of time: a write may still take effect later, a read constrains nothing.
        result.operationsUnknown += 1
        clients[index].current = nil
        queue.push(.clientStart(client: index), at: now + between(0, 10_000))
    }

    private func complete(_ index: Int, _ outcome: KVOutcome, at node: Int) {
        guard let operation = clients[index].current else { return }
        history[operation.historyIndex].completedAt = now
        history[operation.historyIndex].outcome = outcome
        result.operationsOK += 1
        clients[index].current = nil
        if case .read(let value) = outcome {
            trace("client \(index) read \(operation.operation.key) = \(value ?? "absent") at n\(nodes[node].id.rawValue)")
        } else {
            trace("client \(index) \(describe(operation.operation)) -> \(outcome) at n\(nodes[node].id.rawValue)")
        }
        recordClientCompleted(operation.historyIndex)
        queue.push(.clientStart(client: index), at: now + between(0, 10_000))
    }
}

/// What the workload's clients send, as the etcd commands a server gets.
enum KVResult: Hashable {
    case ok
    case compareAndSet(Bool)
}

/// One client write: the encoded `KVCommand` and the request id of all its attempts.
struct ClientWrite: Hashable {
    var payload: [UInt8]
    var requestID: UInt64

    /// The command the driver builds for it (see `NodeDriver.sessionID`): what the chosen
    /// log holds once it is applied.
    var key: CommandKey {
        CommandKey(clientID: NodeDriver.sessionID(requestID: requestID, payload: payload), sequence: 1)
    }

    /// The etcd command for a history operation (nil for a read): a put, a compare-and-set as
    /// a txn (the value equals `expected`, or the key is absent), a delete.
    static func command(for operation: KVOperation) -> KVCommand? {
        func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
        switch operation {
        case .read:
            return nil
        case .write(let key, let value):
            return .put(PutRequest(key: bytes(key), value: bytes(value)))
        case .compareAndSet(let key, let expected, let new):
            let compare = expected.map { Compare(key: bytes(key), result: .equal, target: .value(bytes($0))) }
                ?? Compare(key: bytes(key), result: .equal, target: .createRevision(0))
            return .txn(TxnRequest(compare: [compare], success: [.put(PutRequest(key: bytes(key), value: bytes(new)))]))
        case .delete(let key):
            return .deleteRange(DeleteRangeRequest(key: bytes(key)))
        }
    }
}
