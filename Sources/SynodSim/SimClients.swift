import SynodCheck
import SynodCore

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
    var command: Command?
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
        var command: Command?
        let write: KVCommand?
        switch operation {
        case .read: write = nil
        case .write(let key, let value): write = .put(key: key, value: value)
        case .compareAndSet(let key, let expected, let new): write = .compareAndSet(key: key, expected: expected, new: new)
        case .delete(let key): write = .delete(key: key)
        }
        if let write {
            clients[index].sequence += 1
            clients[index].writesDone += 1
            let built = Command(clientID: clients[index].clientID, sequence: clients[index].sequence, payload: write.encoded())
            submitted[CommandKey(built)] = built.payload
            command = built
        }
        let historyIndex = history.count
        history.append(HistoryOperation(id: historyIndex, client: index, operation: operation,
                                        invokedAt: now, completedAt: nil, outcome: .unknown))
        result.operations += 1
        let deadline = isFinalReader ? now + 3 * operationDeadline : now + operationDeadline
        clients[index].current = ClientOperation(historyIndex: historyIndex, operation: operation, command: command, deadline: deadline)
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
        if let command = operation.command {
            request = .write(command, client: index, token: token)
        } else {
            request = .read(key: operation.operation.key, client: index, token: token)
        }
        queue.push(.clientArrive(node: target, request: request), at: now + between(50, 500))
        queue.push(.clientTimeout(client: index, token: token), at: now + attemptTimeout)
    }

    func clientArrive(node: Int, request: ClientRequest) {
        guard nodes[node].up else { return }  // the client times out
        switch request {
        case .write(let command, let client, let token):
            mixEvent(4, node)
            nodes[node].pendingWrites[CommandKey(command)] = (client, token)
            step(node, .propose(command))
        case .read(let key, let client, let token):
            mixEvent(5, node)
            let readID = nodes[node].nextReadID
            nodes[node].nextReadID += 1
            nodes[node].pendingReads[readID] = (client, token, key)
            step(node, .read(readID: readID, consistency: .linearizable))
        }
    }

    func reply(from node: Int, to client: Int, token: UInt64, _ reply: ClientReply) {
        queue.push(.clientReply(client: client, node: node, token: token, reply: reply), at: now + between(50, 500))
    }

    func readReady(_ node: Int, _ readID: UInt64) {
        guard let waiting = nodes[node].pendingReads.removeValue(forKey: readID) else { return }
        reply(from: node, to: waiting.client, token: waiting.token, .read(nodes[node].kv.values[waiting.key]))
    }

    func readFailed(_ node: Int, _ readID: UInt64) {
        guard let waiting = nodes[node].pendingReads.removeValue(forKey: readID) else { return }
        reply(from: node, to: waiting.client, token: waiting.token, .failed(leaderHint: nodes[node].replica.leaderHint))
    }

    func writeRejected(_ node: Int, _ command: Command) {
        guard let waiting = nodes[node].pendingWrites.removeValue(forKey: CommandKey(command)) else { return }
        reply(from: node, to: waiting.client, token: waiting.token, .failed(leaderHint: nodes[node].replica.leaderHint))
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
            if let command = operation.command, outcome != .compareAndSet(false) {
                acknowledgedWrites[CommandKey(command)] = operation.historyIndex
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
        queue.push(.clientStart(client: index), at: now + between(0, 10_000))
    }
}
