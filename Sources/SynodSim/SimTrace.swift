import SynodCheck
import SynodCore

/// The run's story, told message by message for people learning Paxos.
extension Simulation {
    func timeText() -> String {
        let millis = now / 1_000
        let fraction = now % 1_000
        let padded = String(fraction + 1_000).dropFirst()
        return "\(millis).\(padded)ms"
    }

    func trace(_ line: @autoclosure () -> String) {
        guard options.trace || recorder?.current != nil else { return }
        let text = line()
        recordNote(text)
        guard options.trace else { return }
        let time = timeText()
        let pad = String(repeating: " ", count: max(0, 12 - time.count))
        result.trace.append(pad + time + "  " + text)
    }

    func shouldTrace(_ message: Message) -> Bool {
        switch message {
        case .heartbeat, .heartbeatAck, .commit: return options.traceHeartbeats
        default: return true
        }
    }

    func traceMessage(_ envelope: Envelope, delivered: Bool) {
        hasher.mix(UInt64(envelope.from.rawValue) << 32 | UInt64(envelope.to.rawValue))
        guard options.trace, shouldTrace(envelope.message) else { return }
        trace("\(envelope.from) -> \(envelope.to)  \(describe(envelope.message))")
    }

    func describe(_ message: Message) -> String {
        switch message {
        case .prepare(let ballot, let firstSlot):
            return "Prepare \(ballot): promise me every slot from \(firstSlot) on"
        case .promise(let ballot, let chosenThrough, let entries):
            let accepted = entries.isEmpty ? "nothing accepted" :
                entries.prefix(4).map { "slot \($0.slot)=\($0.value)" + ($0.ballot.map { " in \($0)" } ?? " (chosen)") }
                    .joined(separator: ", ") + (entries.count > 4 ? ", +\(entries.count - 4)" : "")
            return "Promise \(ballot) (chosen through \(chosenThrough); \(accepted))"
        case .accept(let ballot, let slot, let value, let chosenThrough):
            return "Accept \(ballot) slot \(slot) = \(value) (chosen through \(chosenThrough))"
        case .accepted(let ballot, let slot):
            return "Accepted \(ballot) slot \(slot)"
        case .reject(let ballot, let promised):
            return "Reject \(ballot): already promised \(promised)"
        case .heartbeat(let ballot, let chosenThrough, let sequence):
            return "Heartbeat \(ballot) #\(sequence) (chosen through \(chosenThrough))"
        case .heartbeatAck(let ballot, let sequence, _):
            return "HeartbeatAck \(ballot) #\(sequence)"
        case .commit(let ballot, let chosenThrough):
            return "Commit \(ballot): chosen through \(chosenThrough)"
        case .catchUpRequest(let firstSlot):
            return "CatchUpRequest from slot \(firstSlot)"
        case .catchUpReply(let snapshot, let entries, let chosenThrough):
            return "CatchUpReply \(entries.count) slot(s)" + (snapshot.map { " + snapshot through \($0.slot)" } ?? "")
                + " (chosen through \(chosenThrough))"
        case .snapshotChunk(let chunk):
            return "SnapshotChunk of snapshot through \(chunk.slot): bytes \(chunk.offset)..<\(chunk.offset + UInt64(chunk.data.count)) of \(chunk.total)"
        case .snapshotChunkRequest(let slot, _, let offset):
            return "SnapshotChunkRequest snapshot through \(slot) from byte \(offset)"
        case .forward(let commands):
            return "Forward \(commands.count) command(s) to the leader"
        case .readIndexRequest(let readID):
            return "ReadIndexRequest #\(readID)"
        case .readIndexReply(let readID, let index):
            return "ReadIndexReply #\(readID) " + (index.map { "index \($0)" } ?? "not leader")
        case .reconfigureRequest(let requestID, let change, let force):
            return "ReconfigureRequest #\(requestID) \(change)" + (force ? " (forced)" : "")
        case .reconfigureRefused(let requestID, let error):
            return "ReconfigureRefused #\(requestID): \(error)"
        case .handOff(let ballot, let target):
            return "HandOff \(ballot): \(target) may lead now"
        case .preVote(let ballot):
            return "PreVote \(ballot)?"
        case .preVoteReply(let ballot, let granted, let promised):
            return "PreVoteReply \(ballot): " + (granted ? "yes" : "no (promised \(promised))")
        case .safetyAlarm(let reason):
            return "SafetyAlarm: \(reason)"
        case .repairQuery:
            return "RepairQuery: what is your promise, and the highest slot you know?"
        case .repairReport(_, let promised, let highestSlot, let repairing):
            return "RepairReport: promised \(promised), highest slot \(highestSlot)" + (repairing ? " (repairing too: does not count)" : "")
        }
    }

    func describe(_ record: DurableRecord) -> String {
        switch record {
        case .promised(let ballot): return "promise \(ballot)"
        case .accepted(let slot, let ballot, let value): return "accept slot \(slot)=\(value) in \(ballot)"
        case .chosen(let slot, _): return "chosen slot \(slot)"
        case .snapshot(let snapshot): return "snapshot through \(snapshot.slot)"
        case .membership(let history): return "membership voters \(history.latest.voters)"
        case .repaired: return "repaired"
        }
    }

    func describe(_ operation: KVOperation) -> String {
        switch operation {
        case .read(let key): return "read \(key)"
        case .write(let key, let value): return "write \(key)=\(value)"
        case .compareAndSet(let key, let expected, let new): return "cas \(key) \(expected ?? "absent")->\(new)"
        case .delete(let key): return "delete \(key)"
        }
    }
}
