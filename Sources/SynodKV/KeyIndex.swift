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
/// Kept behind this small type so it can become a B-tree later. Today it is a sorted array
/// with binary search: lookups and range starts are O(log n), but inserting or removing a key
/// shifts the array, O(n) per new or vanished key (overwrites of existing keys are O(log n)).
struct KeyIndex: Hashable, Sendable {
    private(set) var keys: [[UInt8]] = []
    private(set) var histories: [KeyHistory] = []

    var count: Int { keys.count }

    /// First position whose key is not less than `key`.
    func lowerBound(_ key: [UInt8]) -> Int {
        var low = 0
        var high = keys.count
        while low < high {
            let mid = (low + high) / 2
            if keys[mid].lexicographicallyPrecedes(key) { low = mid + 1 } else { high = mid }
        }
        return low
    }

    func history(for key: [UInt8]) -> KeyHistory? {
        let position = lowerBound(key)
        guard position < keys.count, keys[position] == key else { return nil }
        return histories[position]
    }

    /// Positions of the keys inside `range`, in key order.
    func positions(in range: KeyRange) -> Range<Int> {
        switch range {
        case .single(let key):
            let position = lowerBound(key)
            let found = position < keys.count && keys[position] == key
            return position..<(found ? position + 1 : position)
        case .interval(let lower, let upper):
            let start = lowerBound(lower)
            let end = upper.map { lowerBound($0) } ?? keys.count
            return start..<max(start, end)
        }
    }

    func key(at position: Int) -> [UInt8] { keys[position] }
    func history(at position: Int) -> KeyHistory { histories[position] }

    /// Appends a write to `key`'s history, creating the key's slot if needed.
    mutating func append(_ entry: HistoryEntry, to key: [UInt8]) {
        let position = lowerBound(key)
        if position < keys.count, keys[position] == key {
            histories[position].entries.append(entry)
        } else {
            keys.insert(key, at: position)
            histories.insert(KeyHistory(entries: [entry]), at: position)
        }
    }

    /// Rebuilds the index keeping only what `transform` returns (nil or empty drops the key).
    mutating func rewrite(_ transform: (KeyHistory) -> KeyHistory) {
        var newKeys: [[UInt8]] = []
        var newHistories: [KeyHistory] = []
        for position in keys.indices {
            let history = transform(histories[position])
            if !history.entries.isEmpty {
                newKeys.append(keys[position])
                newHistories.append(history)
            }
        }
        keys = newKeys
        histories = newHistories
    }

    /// Restores a key from a snapshot; keys must arrive in strictly increasing order.
    mutating func appendRestored(key: [UInt8], history: KeyHistory) -> Bool {
        if let last = keys.last, !last.lexicographicallyPrecedes(key) { return false }
        keys.append(key)
        histories.append(history)
        return true
    }
}
