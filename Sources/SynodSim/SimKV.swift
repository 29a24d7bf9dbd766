import SynodCore

/// A write the simulated clients send through the log.
enum KVCommand: Hashable, Sendable {
    case put(key: String, value: String)
    case compareAndSet(key: String, expected: String?, new: String)
    case delete(key: String)

    /// Byte layout: one tag byte (1 put, 2 compare-and-set, 3 delete), then strings as
    /// [UInt16 length | UTF-8]; an absent `expected` is the length 0xFFFF.
    func encoded() -> [UInt8] {
        var bytes: [UInt8] = []
        switch self {
        case .put(let key, let value):
            bytes.append(1); Self.append(key, to: &bytes); Self.append(value, to: &bytes)
        case .compareAndSet(let key, let expected, let new):
            bytes.append(2); Self.append(key, to: &bytes); Self.append(expected, to: &bytes); Self.append(new, to: &bytes)
        case .delete(let key):
            bytes.append(3); Self.append(key, to: &bytes)
        }
        return bytes
    }

    static func decode(_ bytes: [UInt8]) -> KVCommand? {
        var reader = ByteReader(bytes)
        guard let tag = reader.byte() else { return nil }
        switch tag {
        case 1:
            guard let key = reader.string() ?? nil, let value = reader.string() ?? nil else { return nil }
            return .put(key: key, value: value)
        case 2:
            guard let key = reader.string() ?? nil, let expected = reader.string(), let new = reader.string() ?? nil else { return nil }
            return .compareAndSet(key: key, expected: expected, new: new)
        case 3:
            guard let key = reader.string() ?? nil else { return nil }
            return .delete(key: key)
        default:
            return nil
        }
    }

    static func append(_ string: String?, to bytes: inout [UInt8]) {
        guard let string else {
            bytes.append(0xFF); bytes.append(0xFF)
            return
        }
        let utf8 = Array(string.utf8.prefix(0xFFFE))
        bytes.append(UInt8(utf8.count >> 8)); bytes.append(UInt8(utf8.count & 0xFF))
        bytes.append(contentsOf: utf8)
    }
}

/// Reads bytes written by `KVCommand.append` and friends, failing (nil) on truncation.
struct ByteReader {
    private let bytes: [UInt8]
    private var offset = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    var isAtEnd: Bool { offset == bytes.count }

    mutating func byte() -> UInt8? {
        guard offset < bytes.count else { return nil }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func uint64() -> UInt64? {
        var value: UInt64 = 0
        for _ in 0..<8 {
            guard let byte = byte() else { return nil }
            value = value << 8 | UInt64(byte)
        }
        return value
    }

    /// `.some(nil)` is an encoded absent string; nil is malformed input.
    mutating func string() -> String?? {
        guard let high = byte(), let low = byte() else { return nil }
        let length = Int(high) << 8 | Int(low)
        if length == 0xFFFF { return .some(nil) }
        guard offset + length <= bytes.count else { return nil }
        defer { offset += length }
        return .some(String(decoding: bytes[offset..<offset + length], as: UTF8.self))
    }
}

/// What a write returned.
enum KVResult: Hashable, Sendable {
    case ok
    case compareAndSet(Bool)
}

/// The replicated state machine of the simulation: a string map plus the exactly-once session
/// table, a deterministic function of the applied slots.
struct SimKV: Hashable, Sendable {
    private(set) var values: [String: String] = [:]
    private(set) var sessions = SessionTable<KVResult>()
    private(set) var appliedThrough: Slot = 0

    /// The outcome of applying one command.
    enum Outcome: Hashable { case applied(KVResult), duplicate(KVResult), stale, malformed }

    mutating func apply(_ command: Command, slot: Slot) -> Outcome {
        switch sessions.decide(command) {
        case .duplicate(let result): return .duplicate(result)
        case .stale: return .stale
        case .apply: break
        }
        guard let write = KVCommand.decode(command.payload) else { return .malformed }
        let result: KVResult
        switch write {
        case .put(let key, let value):
            values[key] = value
            result = .ok
        case .compareAndSet(let key, let expected, let new):
            if values[key] == expected {
                values[key] = new
                result = .compareAndSet(true)
            } else {
                result = .compareAndSet(false)
            }
        case .delete(let key):
            values.removeValue(forKey: key)
            result = .ok
        }
        sessions.record(command, result: result, slot: slot)
        return .applied(result)
    }

    mutating func finish(slot: Slot) { appliedThrough = slot }

    /// Snapshot layout: version byte 1, applied slot, value count, (key, value) pairs in key
    /// order, session count, (client, sequence, slot, result tag, result flag) in client order.
    func encoded() -> [UInt8] {
        var bytes: [UInt8] = [1]
        Self.append(appliedThrough, to: &bytes)
        Self.append(UInt64(values.count), to: &bytes)
        for key in values.keys.sorted() {
            KVCommand.append(key, to: &bytes)
            KVCommand.append(values[key], to: &bytes)
        }
        let sessionList = sessions.sortedSessions
        Self.append(UInt64(sessionList.count), to: &bytes)
        for (clientID, session) in sessionList {
            Self.append(clientID, to: &bytes)
            Self.append(session.sequence, to: &bytes)
            Self.append(session.slot, to: &bytes)
            switch session.result {
            case .ok: bytes.append(0); bytes.append(0)
            case .compareAndSet(let success): bytes.append(1); bytes.append(success ? 1 : 0)
            }
        }
        return bytes
    }

    static func decode(_ bytes: [UInt8]) -> SimKV? {
        var reader = ByteReader(bytes)
        guard reader.byte() == 1, let applied = reader.uint64(), let count = reader.uint64() else { return nil }
        var kv = SimKV()
        kv.appliedThrough = applied
        for _ in 0..<count {
            guard let key = reader.string() ?? nil, let value = reader.string() ?? nil else { return nil }
            kv.values[key] = value
        }
        guard let sessionCount = reader.uint64() else { return nil }
        for _ in 0..<sessionCount {
            guard let client = reader.uint64(), let sequence = reader.uint64(), let slot = reader.uint64(),
                  let tag = reader.byte(), let flag = reader.byte() else { return nil }
            let result: KVResult = tag == 0 ? .ok : .compareAndSet(flag == 1)
            kv.sessions.restore(clientID: client, session: .init(sequence: sequence, result: result, slot: slot))
        }
        return reader.isAtEnd ? kv : nil
    }

    static func append(_ value: UInt64, to bytes: inout [UInt8]) {
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }

    /// A hash of the key space, to compare replicas.
    var stateHash: UInt64 {
        var hasher = TraceHasher()
        for key in values.keys.sorted() {
            hasher.mix(string: key)
            hasher.mix(string: values[key] ?? "")
        }
        return hasher.value
    }
}
