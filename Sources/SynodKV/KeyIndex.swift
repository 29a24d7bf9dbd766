/// One stored write to a key: a put (with the key's state after it) or a tombstone.
struct HistoryEntry: Hashable, Sendable {
    var revision: Revision
    var isTombstone: Bool
    var value: [UInt8]
    var lease: Int64
    var createRevision: Int64
    var version: Int64

    static func tombstone(at revision: Revision) -> HistoryEntry {
        HistoryEntry(revision: revision, isTombstone: true, value: [], lease: 0, createRevision: 0, version: 0)
    }

    func keyValue(_ key: [UInt8]) -> KeyValue {
        KeyValue(key: key, createRevision: createRevision, modRevision: revision.main, version: version,
                 value: value, lease: lease)
    }
}

/// Every retained write to one key, oldest first (strictly increasing revisions).
struct KeyHistory: Hashable, Sendable {
    var entries: [HistoryEntry] = []

    /// The newest entry written at or before main revision `main`, if any survives compaction.
    func entryIndex(atOrBefore main: Int64) -> Int? {
        // Binary search for the first entry newer than `main`; the one before it is the answer.
        var low = 0
        var high = entries.count
        while low < high {
            let mid = (low + high) / 2
            if entries[mid].revision.main <= main { low = mid + 1 } else { high = mid }
        }
        return low == 0 ? nil : low - 1
    }

    /// The key's live entry at `main`, or nil if it did not exist then.
    func liveEntry(at main: Int64) -> HistoryEntry? {
        guard let index = entryIndex(atOrBefore: main) else { return nil }
        let entry = entries[index]
        return entry.isTombstone ? nil : entry
    }
}

/// etcd's `key` + `range_end` convention, resolved once (also used by the server's watches).
public enum KeyRange: Hashable, Sendable {
    /// `range_end` empty: just `key`.
    case single([UInt8])
    /// `[lower, upper)`; `upper == nil` means no upper bound (`range_end == "\0"`).
    case interval(lower: [UInt8], upper: [UInt8]?)

    public init(key: [UInt8], rangeEnd: [UInt8]) {
        if rangeEnd.isEmpty {
            self = .single(key)
        } else if rangeEnd == [0] {
            // `key == "\0"` with `range_end == "\0"` is "all keys" and falls out of this case too.
            self = .interval(lower: key, upper: nil)
        } else {
            self = .interval(lower: key, upper: rangeEnd)
        }
    }

    public func contains(_ key: [UInt8]) -> Bool {
        switch self {
        case .single(let only): return key == only
        case .interval(let lower, let upper):
            if key.lexicographicallyPrecedes(lower) { return false }
            guard let upper else { return true }
            return key.lexicographicallyPrecedes(upper)
        }
    }
}

/// The ordered key index: key -> its history.
///
/// A sorted sequence of keys split into chunks of at most `chunkKeysMax` keys (a two-level
/// B-tree): lookups and range starts are O(log n); inserting a new key shifts only its chunk
/// (O(chunkKeysMax)) plus the chunks' start positions (O(n / chunkKeysMax)), instead of the
/// whole key space as one sorted array did (16 bytes moved per key per insert: at a million
/// keys, milliseconds per new key, and minutes to replay a log on restart).
///
/// Positions are global (0..<count) in key order; `key(at:)` / `history(at:)` find the chunk
/// by binary search. Equality and hashing see only the key order and histories, not the chunking.
struct KeyIndex: Hashable, Sendable {
    /// Keys kept per chunk at most; a chunk that grows past it splits in half.
    static let defaultChunkKeysMax = 512

    struct Chunk: Sendable {
        var keys: [[UInt8]] = []
        var histories: [KeyHistory] = []
    }

    private var chunks: [Chunk] = []
    /// `starts[i]` is the global position of `chunks[i]`'s first key.
    private var starts: [Int] = []
    private(set) var count = 0
    let chunkKeysMax: Int

    init(chunkKeysMax: Int = KeyIndex.defaultChunkKeysMax) {
        precondition(chunkKeysMax >= 2, "chunks hold at least two keys")
        self.chunkKeysMax = chunkKeysMax
    }

    static func == (lhs: KeyIndex, rhs: KeyIndex) -> Bool {
        guard lhs.count == rhs.count else { return false }
        var left = lhs.makeIterator()
        var right = rhs.makeIterator()
        while let a = left.next(), let b = right.next() {
            if a.key != b.key || a.history != b.history { return false }
        }
        return true
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(count)
        var iterator = makeIterator()
        while let (key, history) = iterator.next() {
            hasher.combine(key)
            hasher.combine(history)
        }
    }

    /// Every (key, history) in key order.
    struct Iterator: IteratorProtocol {
        fileprivate let chunks: [Chunk]
        fileprivate var chunk = 0
        fileprivate var local = 0

        mutating func next() -> (key: [UInt8], history: KeyHistory)? {
            while chunk < chunks.count {
                if local < chunks[chunk].keys.count {
                    defer { local += 1 }
                    return (chunks[chunk].keys[local], chunks[chunk].histories[local])
                }
                chunk += 1
                local = 0
            }
            return nil
        }
    }

    func makeIterator() -> Iterator { Iterator(chunks: chunks) }

    /// The chunk holding global position `position` (`0 <= position < count`).
    private func chunkIndex(containing position: Int) -> Int {
        // Last chunk whose start is <= position.
        var low = 0
        var high = starts.count
        while low < high {
            let mid = (low + high) / 2
            if starts[mid] <= position { low = mid + 1 } else { high = mid }
        }
        return low - 1
    }

    /// The chunk a key at or after `key` would be in, and the local lower bound there; nil
    /// if every key is less than `key`.
    private func locate(_ key: [UInt8]) -> (chunk: Int, local: Int)? {
        // First chunk whose last key is not less than `key`.
        var low = 0
        var high = chunks.count
        while low < high {
            let mid = (low + high) / 2
            if let last = chunks[mid].keys.last, last.lexicographicallyPrecedes(key) { low = mid + 1 } else { high = mid }
        }
        guard low < chunks.count else { return nil }
        let keys = chunks[low].keys
        var first = 0
        var end = keys.count
        while first < end {
            let mid = (first + end) / 2
            if keys[mid].lexicographicallyPrecedes(key) { first = mid + 1 } else { end = mid }
        }
        return (low, first)
    }

    /// First position whose key is not less than `key`.
    func lowerBound(_ key: [UInt8]) -> Int {
        guard let (chunk, local) = locate(key) else { return count }
        return starts[chunk] + local
    }

    func history(for key: [UInt8]) -> KeyHistory? {
        guard let (chunk, local) = locate(key), chunks[chunk].keys[local] == key else { return nil }
        return chunks[chunk].histories[local]
    }

    /// Positions of the keys inside `range`, in key order.
    func positions(in range: KeyRange) -> Range<Int> {
        switch range {
        case .single(let key):
            guard let (chunk, local) = locate(key) else { return count..<count }
            let position = starts[chunk] + local
            return position..<(chunks[chunk].keys[local] == key ? position + 1 : position)
        case .interval(let lower, let upper):
            let start = lowerBound(lower)
            let end = upper.map { lowerBound($0) } ?? count
            return start..<max(start, end)
        }
    }

    func key(at position: Int) -> [UInt8] {
        let chunk = chunkIndex(containing: position)
        return chunks[chunk].keys[position - starts[chunk]]
    }

    func history(at position: Int) -> KeyHistory {
        let chunk = chunkIndex(containing: position)
        return chunks[chunk].histories[position - starts[chunk]]
    }

    /// Appends a write to `key`'s history, creating the key's slot if needed.
    mutating func append(_ entry: HistoryEntry, to key: [UInt8]) {
        guard !chunks.isEmpty else {
            chunks = [Chunk(keys: [key], histories: [KeyHistory(entries: [entry])])]
            starts = [0]
            count = 1
            return
        }
        // A key after every key goes to the end of the last chunk.
        let (chunk, local) = locate(key) ?? (chunks.count - 1, chunks[chunks.count - 1].keys.count)
        if local < chunks[chunk].keys.count, chunks[chunk].keys[local] == key {
            chunks[chunk].histories[local].entries.append(entry)
            return
        }
        chunks[chunk].keys.insert(key, at: local)
        chunks[chunk].histories.insert(KeyHistory(entries: [entry]), at: local)
        count += 1
        for later in (chunk + 1)..<chunks.count { starts[later] += 1 }
        if chunks[chunk].keys.count > chunkKeysMax { split(chunk) }
    }

    private mutating func split(_ chunk: Int) {
        let half = chunks[chunk].keys.count / 2
        let full = chunks[chunk]
        // Both halves as fresh, exactly sized arrays (a truncated one would keep its capacity).
        chunks[chunk] = Chunk(keys: Array(full.keys[..<half]), histories: Array(full.histories[..<half]))
        chunks.insert(Chunk(keys: Array(full.keys[half...]), histories: Array(full.histories[half...])), at: chunk + 1)
        starts.insert(starts[chunk] + half, at: chunk + 1)
    }

    /// Rebuilds the index keeping only what `transform` returns (nil or empty drops the key).
    mutating func rewrite(_ transform: (KeyHistory) -> KeyHistory) {
        var rebuilt = KeyIndex(chunkKeysMax: chunkKeysMax)
        var iterator = makeIterator()
        while let (key, history) = iterator.next() {
            let kept = transform(history)
            if !kept.entries.isEmpty { _ = rebuilt.appendRestored(key: key, history: kept) }
        }
        self = rebuilt
    }

    /// Makes room for `count` restored keys (the count was checked against the snapshot's size).
    mutating func reserveRestored(_ count: Int) {
        chunks.reserveCapacity(chunks.count + count / (chunkKeysMax / 2) + 1)
        starts.reserveCapacity(chunks.capacity)
    }

    /// Restores a key from a snapshot; keys must arrive in strictly increasing order.
    /// Fills chunks to three quarters, so that later inserts do not split them at once.
    mutating func appendRestored(key: [UInt8], history: KeyHistory) -> Bool {
        if let last = chunks.last?.keys.last, !last.lexicographicallyPrecedes(key) { return false }
        let fill = max(1, chunkKeysMax * 3 / 4)
        if chunks.isEmpty || chunks[chunks.count - 1].keys.count >= fill {
            var chunk = Chunk()
            chunk.keys.reserveCapacity(fill)
            chunk.histories.reserveCapacity(fill)
            chunks.append(chunk)
            starts.append(count)
        }
        chunks[chunks.count - 1].keys.append(key)
        chunks[chunks.count - 1].histories.append(history)
        count += 1
        return true
    }
}
