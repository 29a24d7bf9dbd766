/// One stored write to a key: a put (with the key's state after it) or a tombstone.
///
/// Laid out for size, as a member holds one per live key (millions of them): the value's
/// buffer first and the sub-revision in 32 bits, so that the entry takes 48 bytes and a
/// `KeyHistory` holding one entry fits in the same 48 (its tag goes in `isTombstone`'s
/// unused bits). `MemoryLayoutTests` checks both sizes.
struct HistoryEntry: Hashable, Sendable {
    var value: [UInt8]
    private var main: Int64
    var lease: Int64
    var createRevision: Int64
    var version: Int64
    /// A request's writes number far below 2^31 (a lease revoke deletes every key of the
    /// lease in one request, and no member holds 2^31 keys); snapshot decoding refuses more.
    private var sub: Int32
    var isTombstone: Bool

    init(revision: Revision, isTombstone: Bool, value: [UInt8], lease: Int64, createRevision: Int64, version: Int64) {
        self.value = value
        self.main = revision.main
        self.lease = lease
        self.createRevision = createRevision
        self.version = version
        self.sub = Int32(clamping: revision.sub)
        self.isTombstone = isTombstone
    }

    var revision: Revision { Revision(main: main, sub: Int64(sub)) }

    static func tombstone(at revision: Revision) -> HistoryEntry {
        HistoryEntry(revision: revision, isTombstone: true, value: [], lease: 0, createRevision: 0, version: 0)
    }

    func keyValue(_ key: [UInt8]) -> KeyValue {
        KeyValue(key: key, createRevision: createRevision, modRevision: main, version: version,
                 value: value, lease: lease)
    }
}

/// Every retained write to one key, oldest first (strictly increasing revisions); never empty.
///
/// Most keys hold one write (history is compacted away), so that case is stored inline, with
/// no array of its own: an array per key cost 96 heap bytes.
struct KeyHistory: Hashable, Sendable {
    private enum Storage: Hashable, Sendable {
        case one(HistoryEntry)
        /// Two or more.
        case many([HistoryEntry])
    }

    private var storage: Storage

    init(_ entry: HistoryEntry) { storage = .one(entry) }

    /// nil for no entries.
    init?(entries: [HistoryEntry]) {
        switch entries.count {
        case 0: return nil
        case 1: storage = .one(entries[0])
        default: storage = .many(entries)
        }
    }

    var count: Int {
        switch storage {
        case .one: return 1
        case .many(let entries): return entries.count
        }
    }

    subscript(position: Int) -> HistoryEntry {
        switch storage {
        case .one(let entry):
            precondition(position == 0, "history position out of range")
            return entry
        case .many(let entries): return entries[position]
        }
    }

    /// The newest write.
    var latest: HistoryEntry { self[count - 1] }

    /// The entries as an array (allocates for a single entry; for tests and rare paths).
    var entries: [HistoryEntry] {
        switch storage {
        case .one(let entry): return [entry]
        case .many(let entries): return entries
        }
    }

    mutating func append(_ entry: HistoryEntry) {
        switch storage {
        case .one(let first):
            storage = .many([first, entry])
        case .many(var entries):
            // Drop the enum's reference first, so the array is unique and grows in place.
            storage = .one(entry)
            entries.append(entry)
            storage = .many(entries)
        }
    }

    /// The entries from `first` on; nil if none.
    func suffix(from first: Int) -> KeyHistory? {
        guard first > 0 else { return self }
        guard case .many(let entries) = storage, first < entries.count else { return nil }
        return KeyHistory(entries: Array(entries[first...]))
    }

    /// The newest entry written at or before main revision `main`, if any survives compaction.
    func entryIndex(atOrBefore main: Int64) -> Int? {
        // Binary search for the first entry newer than `main`; the one before it is the answer.
        var low = 0
        var high = count
        while low < high {
            let mid = (low + high) / 2
            if self[mid].revision.main <= main { low = mid + 1 } else { high = mid }
        }
        return low == 0 ? nil : low - 1
    }

    /// The key's live entry at `main`, or nil if it did not exist then.
    func liveEntry(at main: Int64) -> HistoryEntry? {
        guard let index = entryIndex(atOrBefore: main) else { return nil }
        let entry = self[index]
        return entry.isTombstone ? nil : entry
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
/// A chunk keeps its keys' bytes end to end in one array, with their end offsets beside it:
/// an array per key cost 64 heap bytes and 8 more for the reference, about as much as the
/// rest of a key's bookkeeping.
///
/// Positions are global (0..<count) in key order; `key(at:)` / `history(at:)` find the chunk
/// by binary search. Equality and hashing see only the key order and histories, not the chunking.
struct KeyIndex: Hashable, Sendable {
    /// Keys kept per chunk at most; a chunk that grows past it splits in half.
    static let defaultChunkKeysMax = 512

    struct Chunk: Sendable {
        /// The keys' bytes, in key order, end to end.
        var keyBytes: [UInt8] = []
        /// `keyEnds[i]`: where key `i`'s bytes end in `keyBytes` (it starts where key `i - 1` ends).
        var keyEnds: [Int] = []
        var histories: [KeyHistory] = []

        var count: Int { keyEnds.count }

        func keyStart(_ local: Int) -> Int { local == 0 ? 0 : keyEnds[local - 1] }

        func key(_ local: Int) -> [UInt8] { Array(keyBytes[keyStart(local)..<keyEnds[local]]) }

        func keyLength(_ local: Int) -> Int { keyEnds[local] - keyStart(local) }

        /// Negative, zero or positive as key `local` orders before, equal to or after `key`.
        func compareKey(_ local: Int, with key: [UInt8]) -> Int {
            let start = keyStart(local)
            let length = keyEnds[local] - start
            return keyBytes.withUnsafeBufferPointer { stored in
                key.withUnsafeBufferPointer { probe in
                    let common = Swift.min(length, probe.count)
                    var i = 0
                    while i < common {
                        let a = stored[start + i]
                        let b = probe[i]
                        if a != b { return a < b ? -1 : 1 }
                        i += 1
                    }
                    return length == probe.count ? 0 : (length < probe.count ? -1 : 1)
                }
            }
        }

        mutating func insert(key: [UInt8], history: KeyHistory, at local: Int) {
            let start = keyStart(local)
            keyBytes.insert(contentsOf: key, at: start)
            keyEnds.insert(start + key.count, at: local)
            for later in (local + 1)..<keyEnds.count { keyEnds[later] += key.count }
            histories.insert(history, at: local)
        }

        mutating func append(key: [UInt8], history: KeyHistory) {
            keyBytes.append(contentsOf: key)
            keyEnds.append(keyBytes.count)
            histories.append(history)
        }

        /// Keys `range` as a chunk of their own, in exactly sized arrays.
        func slice(_ range: Range<Int>) -> Chunk {
            let base = keyStart(range.lowerBound)
            var part = Chunk()
            part.keyBytes = Array(keyBytes[base..<keyEnds[range.upperBound - 1]])
            part.keyEnds = keyEnds[range].map { $0 - base }
            part.histories = Array(histories[range])
            return part
        }
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
                if local < chunks[chunk].count {
                    defer { local += 1 }
                    return (chunks[chunk].key(local), chunks[chunk].histories[local])
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
            let chunk = chunks[mid]
            if chunk.count > 0, chunk.compareKey(chunk.count - 1, with: key) < 0 { low = mid + 1 } else { high = mid }
        }
        guard low < chunks.count else { return nil }
        let chunk = chunks[low]
        var first = 0
        var end = chunk.count
        while first < end {
            let mid = (first + end) / 2
            if chunk.compareKey(mid, with: key) < 0 { first = mid + 1 } else { end = mid }
        }
        return (low, first)
    }

    /// Whether `locate`'s answer is `key` itself.
    private func holds(_ key: [UInt8], at place: (chunk: Int, local: Int)) -> Bool {
        place.local < chunks[place.chunk].count && chunks[place.chunk].compareKey(place.local, with: key) == 0
    }

    /// First position whose key is not less than `key`.
    func lowerBound(_ key: [UInt8]) -> Int {
        guard let (chunk, local) = locate(key) else { return count }
        return starts[chunk] + local
    }

    func history(for key: [UInt8]) -> KeyHistory? {
        guard let place = locate(key), holds(key, at: place) else { return nil }
        return chunks[place.chunk].histories[place.local]
    }

    /// Positions of the keys inside `range`, in key order.
    func positions(in range: KeyRange) -> Range<Int> {
        switch range {
        case .single(let key):
            guard let place = locate(key) else { return count..<count }
            let position = starts[place.chunk] + place.local
            return position..<(holds(key, at: place) ? position + 1 : position)
        case .interval(let lower, let upper):
            let start = lowerBound(lower)
            let end = upper.map { lowerBound($0) } ?? count
            return start..<max(start, end)
        }
    }

    /// The key at `position`, as a new array.
    func key(at position: Int) -> [UInt8] {
        let chunk = chunkIndex(containing: position)
        return chunks[chunk].key(position - starts[chunk])
    }

    /// The length of the key at `position`, without copying it.
    func keyLength(at position: Int) -> Int {
        let chunk = chunkIndex(containing: position)
        return chunks[chunk].keyLength(position - starts[chunk])
    }

    func history(at position: Int) -> KeyHistory {
        let chunk = chunkIndex(containing: position)
        return chunks[chunk].histories[position - starts[chunk]]
    }

    /// Appends a write to `key`'s history, creating the key's slot if needed.
    mutating func append(_ entry: HistoryEntry, to key: [UInt8]) {
        guard !chunks.isEmpty else {
            var first = Chunk()
            first.append(key: key, history: KeyHistory(entry))
            chunks = [first]
            starts = [0]
            count = 1
            return
        }
        // A key after every key goes to the end of the last chunk.
        let place = locate(key) ?? (chunks.count - 1, chunks[chunks.count - 1].count)
        if holds(key, at: place) {
            chunks[place.chunk].histories[place.local].append(entry)
            return
        }
        chunks[place.chunk].insert(key: key, history: KeyHistory(entry), at: place.local)
        count += 1
        for later in (place.chunk + 1)..<chunks.count { starts[later] += 1 }
        if chunks[place.chunk].count > chunkKeysMax { split(place.chunk) }
    }

    private mutating func split(_ chunk: Int) {
        let full = chunks[chunk]
        let half = full.count / 2
        // Both halves as fresh, exactly sized arrays (a truncated one would keep its capacity).
        chunks[chunk] = full.slice(0..<half)
        chunks.insert(full.slice(half..<full.count), at: chunk + 1)
        starts.insert(starts[chunk] + half, at: chunk + 1)
    }

    /// Rebuilds the index keeping only what `transform` returns (nil drops the key).
    mutating func rewrite(_ transform: (KeyHistory) -> KeyHistory?) {
        var rebuilt = KeyIndex(chunkKeysMax: chunkKeysMax)
        var iterator = makeIterator()
        while let (key, history) = iterator.next() {
            if let kept = transform(history) { _ = rebuilt.appendRestored(key: key, history: kept) }
        }
        rebuilt.finishRestoring()
        self = rebuilt
    }

    /// Makes room for `count` restored keys (the count was checked against the snapshot's size).
    mutating func reserveRestored(_ count: Int) {
        chunks.reserveCapacity(chunks.count + count / chunkKeysMax + 1)
        starts.reserveCapacity(chunks.capacity)
    }

    /// Restores a key from a snapshot; keys must arrive in strictly increasing order.
    ///
    /// Fills chunks to the brim, so that a restored state (a joiner's, a restarted member's)
    /// holds no slack: a later insert into a full chunk splits it, which costs a copy of one
    /// chunk. Call `finishRestoring()` after the last key.
    mutating func appendRestored(key: [UInt8], history: KeyHistory) -> Bool {
        if let last = chunks.last, last.count > 0, last.compareKey(last.count - 1, with: key) >= 0 { return false }
        if chunks.isEmpty || chunks[chunks.count - 1].count >= chunkKeysMax {
            finishRestoring()
            var chunk = Chunk()
            chunk.keyEnds.reserveCapacity(chunkKeysMax)
            chunk.histories.reserveCapacity(chunkKeysMax)
            chunks.append(chunk)
            starts.append(count)
        }
        chunks[chunks.count - 1].append(key: key, history: history)
        count += 1
        return true
    }

    /// Gives back the last restored chunk's spare key-byte capacity (its bytes grew by doubling).
    mutating func finishRestoring() {
        guard let last = chunks.indices.last, chunks[last].keyBytes.capacity > chunks[last].keyBytes.count + 64 else { return }
        var exact: [UInt8] = []
        exact.reserveCapacity(chunks[last].keyBytes.count)
        exact.append(contentsOf: chunks[last].keyBytes)
        chunks[last].keyBytes = exact
    }
}
