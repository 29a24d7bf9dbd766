import SynodCore

/// The segmented write-ahead log in `<data>/wal/`.
///
/// Segments are preallocated to `segmentBytes`, hold frames (see `RecordCodec`) after a
/// `SegmentHeader`, and are named by a sequence number without gaps. Every new segment starts
/// with a `promised` record of the highest promise so far, so whole segments before it can be
/// deleted once a snapshot covers their slots without losing the acceptor's promise.
///
/// Group commit: `append` only encodes into a buffer; `beginSync` writes everything buffered
/// with one write, `completeSync` makes it durable with one fdatasync. Every write starts with
/// a `WriteMark` (format version 2), so recovery can tell the one write a crash may have left
/// incomplete from damage to what was synced (see WriteAheadLog+Recovery.swift).
final class WriteAheadLog {
    struct ClosedSegment: Hashable {
        var sequence: UInt64
        var path: String
        /// Highest slot of any accepted or chosen record in the segment.
        var maxSlot: Slot
    }

    let fileSystem: any FileSystem
    let directory: String
    let options: StorageOptions
    private(set) var closed: [ClosedSegment] = []
    private var active: (any StorageFile)?
    private(set) var activeSequence: UInt64 = 0
    private(set) var activePath = ""
    private(set) var activeTail: UInt64 = 0
    private var syncedTail: UInt64 = 0
    private var activeMaxSlot: Slot = 0
    /// Highest promise (or accepted ballot) in the durable or written log.
    private(set) var highestPromise = Ballot.zero
    /// The next write: a `WriteMark`'s worth of room, then the frames (empty when none).
    private var buffer: [UInt8] = []
    /// The number the next write's mark carries.
    private(set) var nextWriteNumber: UInt64 = 1
    private var bufferMaxSlot: Slot = 0
    private var bufferPromise = Ballot.zero
    private var written = false

    init(fileSystem: any FileSystem, directory: String, options: StorageOptions) {
        self.fileSystem = fileSystem
        self.directory = directory
        self.options = options
    }

    deinit { active?.close() }

    var hasBufferedRecords: Bool { !buffer.isEmpty }
    var bufferedBytes: Int { buffer.count }

    func append(_ record: DurableRecord) {
        if buffer.isEmpty { buffer.append(contentsOf: [UInt8](repeating: 0, count: WriteMark.size)) }
        RecordCodec.append(record, to: &buffer)
        switch record {
        case .promised(let ballot): bufferPromise = max(bufferPromise, ballot)
        case .accepted(let slot, let ballot, _):
            bufferPromise = max(bufferPromise, ballot)
            bufferMaxSlot = max(bufferMaxSlot, slot)
        case .chosen(let slot, _): bufferMaxSlot = max(bufferMaxSlot, slot)
        case .snapshot, .membership, .repaired: break
        }
    }

    /// Writes every buffered record with one write, starting a new segment first if they do
    /// not fit in the active one. Returns false when nothing was buffered.
    func beginSync() throws(StorageError) -> Bool {
        guard !buffer.isEmpty else { return false }
        if activeTail > UInt64(SegmentHeader.size) && activeTail + UInt64(buffer.count) > options.segmentBytes {
            try roll()
        }
        guard let file = active else { throw .stopped(reason: "no active WAL segment") }
        precondition(buffer.count - WriteMark.size <= Int(UInt32.max), "one WAL write of \(buffer.count) bytes")
        WriteMark(number: nextWriteNumber, length: UInt32(buffer.count - WriteMark.size)).store(into: &buffer, at: 0)
        try file.write(buffer, at: activeTail)
        nextWriteNumber += 1
        activeTail += UInt64(buffer.count)
        activeMaxSlot = max(activeMaxSlot, bufferMaxSlot)
        highestPromise = max(highestPromise, bufferPromise)
        buffer.removeAll(keepingCapacity: true)
        bufferMaxSlot = 0
        bufferPromise = .zero
        written = true
        return true
    }

    /// Makes what `beginSync` wrote durable (one fdatasync).
    func completeSync() throws(StorageError) {
        guard written, let file = active else { return }
        written = false
        try file.sync()
        syncedTail = activeTail
    }

    /// Where the synced log ends: the active segment and the offset after its last synced frame.
    var syncedEnd: (path: String, offset: UInt64) { (activePath, syncedTail) }

    private func roll() throws(StorageError) {
        if let file = active {
            file.close()
            closed.append(ClosedSegment(sequence: activeSequence, path: activePath, maxSlot: activeMaxSlot))
        }
        active = nil
        try createSegment(sequence: activeSequence + 1)
    }

    /// Creates, preallocates and syncs a new segment (header plus the hard-state promise), and
    /// syncs the directory so the new file's entry is durable before anything depends on it.
    func createSegment(sequence: UInt64) throws(StorageError) {
        let path = directory + "/" + SegmentHeader.fileName(sequence: sequence)
        var start = SegmentHeader(sequence: sequence).encoded()
        var writeNumber: UInt64 = 1
        if highestPromise > .zero {
            start.append(contentsOf: [UInt8](repeating: 0, count: WriteMark.size))
            RecordCodec.append(.promised(highestPromise), to: &start)
            WriteMark(number: 1, length: UInt32(start.count - SegmentHeader.size - WriteMark.size))
                .store(into: &start, at: SegmentHeader.size)
            writeNumber = 2
        }
        let file = try fileSystem.open(path, create: true)
        do {
            try file.truncate(to: 0)
            try file.preallocate(max(options.segmentBytes, UInt64(start.count)))
            try file.write(start, at: 0)
            try file.sync()
            try fileSystem.syncDirectory(directory)
        } catch {
            // Leave no half-made segment behind (a crash here is handled by recovery too).
            file.close()
            try? fileSystem.remove(path)
            throw error
        }
        active = file
        activeSequence = sequence
        activePath = path
        activeTail = UInt64(start.count)
        syncedTail = activeTail
        activeMaxSlot = 0
        nextWriteNumber = writeNumber
    }

    /// Deletes closed segments, oldest first, whose slots a durable snapshot through `slot`
    /// covers. Returns whether any was deleted (the caller syncs the directory).
    func removeSegments(coveredThrough slot: Slot) throws(StorageError) -> Bool {
        var removed = false
        while let first = closed.first, first.maxSlot <= slot {
            try fileSystem.remove(first.path)
            closed.removeFirst()
            removed = true
        }
        return removed
    }

    var hasActiveSegment: Bool { active != nil }

    /// Segment files in use.
    var segmentCount: Int { closed.count + (active == nil ? 0 : 1) }

    // MARK: Used by recovery

    var closedSegments: [ClosedSegment] { closed }

    func appendClosed(_ segment: ClosedSegment) { closed.append(segment) }

    func dropLastClosed() { closed.removeLast() }

    func adoptActive(file: any StorageFile, sequence: UInt64, path: String, tail: UInt64, maxSlot: Slot,
                     nextWriteNumber: UInt64) {
        self.nextWriteNumber = nextWriteNumber
        active = file
        activeSequence = sequence
        activePath = path
        activeTail = tail
        syncedTail = tail
        activeMaxSlot = maxSlot
    }

    func noteRecoveredPromise(_ ballot: Ballot) { highestPromise = max(highestPromise, ballot) }
}
