/// Bytes of a snapshot kept somewhere other than memory: a node's spool or snapshot file. The core reads only the ranges it sends, so a member
/// serving catch-up does not hold a second copy of its whole state in memory.
///
/// Implementations must be safe to read from any thread (positional reads of an immutable
/// file).
public protocol SnapshotByteSource: AnyObject, Sendable {
    /// How many bytes the snapshot has.
    var count: Int { get }
    /// The bytes at `offset..<offset+count`, or nil when they cannot be read whole (an I/O
    /// error, a file shorter than it was).
    func read(offset: Int, count: Int) -> [UInt8]?
    /// Runs `body` over all the bytes as one buffer, or returns nil when they cannot be read.
    /// A source that maps its file passes the mapping (no copy in memory); `doneBelow(n)`
    /// tells it the reader, going forward, no longer needs the bytes before offset `n`, so
    /// their pages can be dropped. The default reads all bytes into memory and ignores it.
    func withContiguousBytes<Result>(_ body: (UnsafeRawBufferPointer, _ doneBelow: (Int) -> Void) -> Result) -> Result?
}

extension SnapshotByteSource {
    public func withContiguousBytes<Result>(_ body: (UnsafeRawBufferPointer, _ doneBelow: (Int) -> Void) -> Result) -> Result? {
        guard let bytes = read(offset: 0, count: count) else { return nil }
        return bytes.withUnsafeBytes { body($0, { _ in }) }
    }
}

/// Where a replica writes a snapshot it receives in chunks, instead of collecting it in
/// memory: a node's storage spools it to a file that becomes the snapshot file when the
/// snapshot is installed and saved.
public protocol SnapshotSpool: AnyObject, Sendable {
    /// Appends the next chunk; false when it could not be written (the transfer is dropped).
    func append(_ bytes: [UInt8]) -> Bool
    /// Everything appended, readable; nil when it cannot be.
    func finish() -> SnapshotBytes?
    /// Called by a writer off the node's loop after each append: lets the spool hand its
    /// written pieces to the disk as it goes (and wait for older ones), so the final sync has
    /// little left to flush. Never called on the loop, which must not wait for the disk.
    func pace()
}

extension SnapshotSpool {
    public func pace() {}
}

/// Makes a spool for each incoming snapshot transfer (`Replica.snapshotSpooling`); a node's
/// snapshot encoder uses the same.
public protocol SnapshotSpooling: Sendable {
    /// A spool for the snapshot through `slot`, or nil to collect it in memory.
    func makeSpool(slot: Slot) -> (any SnapshotSpool)?
}

/// A snapshot's bytes: in memory (small ones received whole, tests, the encoder's fallback), or
/// in a file (`SnapshotByteSource`): a spool file while it is written, then the snapshot file
/// once storage has made it durable. The simulator does the same on its simulated disk.
///
/// Equality compares the bytes, wherever they are.
public struct SnapshotBytes: Hashable, Sendable, CustomStringConvertible {
    private enum Storage: Sendable {
        case memory([UInt8])
        case source(any SnapshotByteSource)
    }

    private let storage: Storage

    public init(_ bytes: [UInt8]) { storage = .memory(bytes) }
    public init(source: any SnapshotByteSource) { storage = .source(source) }

    public var count: Int {
        switch storage {
        case .memory(let bytes): return bytes.count
        case .source(let source): return source.count
        }
    }

    /// Whether the bytes are held in memory (not read from a file on demand).
    public var isInMemory: Bool {
        if case .memory = storage { return true }
        return false
    }

    /// The file (or other source) the bytes are read from, when they are not in memory.
    public var source: (any SnapshotByteSource)? {
        if case .source(let source) = storage { return source }
        return nil
    }

    /// Runs `body` over all the bytes as one buffer (see `SnapshotByteSource`); nil when a
    /// file-backed snapshot cannot be read.
    public func withContiguousBytes<Result>(_ body: (UnsafeRawBufferPointer, _ doneBelow: (Int) -> Void) -> Result) -> Result? {
        switch storage {
        case .memory(let bytes): return bytes.withUnsafeBytes { body($0, { _ in }) }
        case .source(let source): return source.withContiguousBytes(body)
        }
    }

    /// The bytes, when they are held in memory.
    public var inMemory: [UInt8]? {
        if case .memory(let bytes) = storage { return bytes }
        return nil
    }

    /// The bytes in `range` (clamped to the end), or nil when a file-backed snapshot cannot be
    /// read.
    public func read(_ range: Range<Int>) -> [UInt8]? {
        let upper = min(range.upperBound, count)
        let lower = min(max(0, range.lowerBound), upper)
        switch storage {
        case .memory(let bytes): return Array(bytes[lower..<upper])
        case .source(let source): return source.read(offset: lower, count: upper - lower)
        }
    }

    /// All bytes (a copy read from the file when file-backed), or nil when they cannot be read.
    public func readAll() -> [UInt8]? {
        switch storage {
        case .memory(let bytes): return bytes
        case .source(let source): return source.read(offset: 0, count: source.count)
        }
    }

    /// Equal when they hold the same bytes, wherever they are (a file-backed side is read
    /// whole to compare: meant for tests and checks, not for hot paths). Unreadable bytes
    /// equal only the same source.
    public static func == (lhs: SnapshotBytes, rhs: SnapshotBytes) -> Bool {
        guard lhs.count == rhs.count else { return false }
        switch (lhs.storage, rhs.storage) {
        case (.memory(let left), .memory(let right)): return left == right
        case (.source(let left), .source(let right)) where left === right: return true
        default:
            guard let left = lhs.readAll(), let right = rhs.readAll() else { return false }
            return left == right
        }
    }

    /// The count only: cheap, and consistent with `==` wherever the bytes are.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(count)
    }

    public var description: String {
        isInMemory ? "\(count) bytes in memory" : "\(count) bytes in a file"
    }
}
