import SynodCore

/// Recovery of a version-2 segment, write by write (see `WriteMark`).
///
/// A write is intact when its mark is valid, carries the next write number, and its frames
/// decode to exactly the length the mark gives. The first write that is not intact decides:
///
/// - Zeros from its start on: the clean end of the segment.
/// - In a closed segment, or followed by anything (a later write began only after this one's
///   fdatasync returned, so this one was synced and may have been acknowledged): corruption.
/// - The last write of the last segment, the only one a crash can leave incomplete: discarded
///   as torn when its damage is what a lost write leaves — the first bad frame (or the mark)
///   overlaps a run of zeros that is either a whole 512-byte disk sector of the write (clipped
///   to the write) or the end of the written data. The write is zeroed on disk (synced) so the
///   next write starts on clean space. Damage that zeros do not explain (a flipped bit, a wrong
///   write number, a damaged length pointing elsewhere) is corruption.
///
/// What recovery cannot tell apart on one disk: a synced last write that later lost a whole
/// sector to a media fault looks exactly like an unsynced write whose sector never reached the
/// disk; it is treated as the latter, as a torn tail always was. Asking the other members
/// (protocol-aware recovery) is what would close that gap.
extension WriteAheadLog {
    /// The sector size recovery assumes a disk writes atomically (the smallest in use; a disk
    /// with 4 KiB sectors loses whole 512-byte pieces too).
    static let sectorBytes = 512

    struct WriteScan {
        /// The offset after the last intact write (where the next write goes).
        var end: Int
        var maxSlot: Slot
        /// The number the next write's mark must carry.
        var nextWriteNumber: UInt64
        /// A synced write was skipped as damaged (`StorageOptions.repairDamage`).
        var damaged = false
    }

    func readWrites(_ bytes: [UInt8], path: String, isLast: Bool, file: any StorageFile,
                    into records: inout [DurableRecord], report: inout RecoveryReport) throws(StorageError) -> WriteScan {
        var scan = WriteScan(end: SegmentHeader.size, maxSlot: 0, nextWriteNumber: 1)
        while let firstData = ZeroScan.firstNonZero(bytes, from: scan.end) {
            let start = scan.end
            guard firstData == start else {
                guard try settleDamagedWrite(bytes, at: start, failure: start, failureEnd: start + WriteMark.size, writeEnd: nil,
                                             scan: &scan, path: path, isLast: isLast, file: file,
                                             reason: "the write starting here is missing", report: &report) else { return scan }
                continue
            }
            guard let mark = WriteMark.decode(bytes, at: start), mark.number == scan.nextWriteNumber else {
                let found = WriteMark.decode(bytes, at: start).map { "write number \($0.number), expected \(scan.nextWriteNumber)" }
                guard try settleDamagedWrite(bytes, at: start, failure: start, failureEnd: start + WriteMark.size, writeEnd: nil,
                                             scan: &scan, path: path, isLast: isLast, file: file,
                                             reason: found ?? "invalid write mark", report: &report) else { return scan }
                continue
            }
            let framesStart = start + WriteMark.size
            let writeEnd = framesStart + Int(mark.length)
            var offset = framesStart
            var writeRecords: [DurableRecord] = []
            var writeMaxSlot: Slot = 0
            var failure: (offset: Int, end: Int, reason: String)?
            while offset < writeEnd {
                let visible = min(writeEnd, bytes.count)
                let result = bytes.withUnsafeBytes { raw in
                    RecordCodec.decodeFrame(UnsafeRawBufferPointer(rebasing: raw[..<visible]), at: min(offset, visible),
                                            payloadMax: options.recordPayloadMax)
                }
                if case .record(let record, let length) = result {
                    writeRecords.append(record)
                    switch record {
                    case .accepted(let slot, _, _), .chosen(let slot, _): writeMaxSlot = max(writeMaxSlot, slot)
                    default: break
                    }
                    offset += length
                    continue
                }
                let reason: String
                switch result {
                case .end: reason = "zeros where a record of this write should be"
                case .incomplete(let why), .corrupt(let why): reason = why
                case .record: reason = ""
                }
                failure = (offset, min(declaredFrameEnd(bytes, at: offset), writeEnd), reason)
                break
            }
            if let failure {
                guard try settleDamagedWrite(bytes, at: start, failure: failure.offset, failureEnd: failure.end, writeEnd: writeEnd,
                                             scan: &scan, path: path, isLast: isLast, file: file,
                                             reason: failure.reason, report: &report) else { return scan }
                continue
            }
            records += writeRecords
            scan.maxSlot = max(scan.maxSlot, writeMaxSlot)
            scan.end = writeEnd
            scan.nextWriteNumber += 1
        }
        return scan
    }

    /// Settles a write that is not intact: false when it was the torn last write (discarded;
    /// the scan ends there). When it is damage to a synced write and `repairDamage` is on, it
    /// is reported and skipped, and the scan goes on (true): after the write when its mark
    /// was valid, else at the next valid mark of a later write (here, or further on), else at
    /// the segment's end.
    /// Otherwise the corruption is thrown.
    private func settleDamagedWrite(_ bytes: [UInt8], at start: Int, failure: Int, failureEnd: Int, writeEnd: Int?,
                                    scan: inout WriteScan, path: String, isLast: Bool, file: any StorageFile,
                                    reason: String, report: inout RecoveryReport) throws(StorageError) -> Bool {
        do {
            try discardTornWrite(bytes, at: start, failure: failure, failureEnd: failureEnd, writeEnd: writeEnd,
                                 expected: scan.nextWriteNumber, path: path, isLast: isLast, file: file,
                                 reason: reason, report: &report)
            return false
        } catch {
            guard options.repairDamage, case .corruption(_, _, let why) = error else { throw error }
            let name = String(path.split(separator: "/").last ?? Substring(path))
            report.damage.append(WALDamage(segment: name, offset: UInt64(start), reason: why))
            scan.damaged = true
            if let writeEnd, writeEnd > start, writeEnd <= bytes.count {
                scan.end = writeEnd
                scan.nextWriteNumber += 1
            } else if let mark = WriteMark.decode(bytes, at: start), mark.number > scan.nextWriteNumber {
                // A valid later write right here (the ones before it are what was lost).
                scan.nextWriteNumber = mark.number
            } else if let later = laterMark(bytes, after: start, numberAtLeast: scan.nextWriteNumber),
                      let mark = WriteMark.decode(bytes, at: later) {
                scan.end = later
                scan.nextWriteNumber = mark.number
            } else {
                scan.end = bytes.count
            }
            return true
        }
    }

    /// Decides about the first write that is not intact (see the type's documentation):
    /// returns after zeroing it when it is the torn last write, throws corruption otherwise.
    /// `writeEnd` is where the write ends by its mark (nil when the mark is unreadable).
    private func discardTornWrite(_ bytes: [UInt8], at start: Int, failure: Int, failureEnd: Int, writeEnd: Int?,
                                  expected: UInt64, path: String, isLast: Bool, file: any StorageFile,
                                  reason: String, report: inout RecoveryReport) throws(StorageError) {
        func corruption(_ why: String) -> StorageError {
            .corruption(path: path, offset: UInt64(failure), reason: "\(reason); \(why)")
        }
        guard isLast else { throw corruption("this is a closed segment, whose writes were all synced") }
        if options.unsafeTruncateAtDamage {
            try zero(bytes, from: start, file: file)
            report.tornTail = (path, UInt64(start))
            return
        }
        let dataEnd = (ZeroScan.lastNonZero(bytes) ?? 0) + 1
        if let writeEnd {
            guard writeEnd >= dataEnd else {
                throw corruption("data follows the end of this write, so a later write began after it was synced")
            }
        } else if let later = laterMark(bytes, after: start, numberAtLeast: expected) {
            throw corruption("a valid write mark follows at offset \(later), so this write was synced before it")
        }
        let extentEnd = writeEnd ?? dataEnd
        guard zerosExplain(bytes, from: failure, to: max(failureEnd, failure + 1), writeStart: start,
                           writeEnd: extentEnd, dataEnd: dataEnd) else {
            throw corruption("the damage is not a missing piece of a write (no lost sector or unwritten end covers it)")
        }
        try zero(bytes, from: start, file: file)
        report.tornTail = (path, UInt64(start))
        report.discardedBytes += UInt64(max(dataEnd - start, 0))
    }

    /// Whether a run of zeros a lost write would leave overlaps `[from, to)`: a disk sector of
    /// the write (clipped to `[writeStart, writeEnd)`) that is all zero, or the unwritten end
    /// (from `dataEnd` on).
    private func zerosExplain(_ bytes: [UInt8], from: Int, to: Int, writeStart: Int, writeEnd: Int, dataEnd: Int) -> Bool {
        if to > dataEnd { return true }
        let sector = Self.sectorBytes
        var sectorStart = (from / sector) * sector
        while sectorStart < to {
            let lower = max(sectorStart, writeStart)
            let upper = min(sectorStart + sector, writeEnd, bytes.count)
            if lower < upper, ZeroScan.firstNonZero(Array(bytes[lower..<upper]), from: 0) == nil { return true }
            sectorStart += sector
        }
        return false
    }

    /// The offset of a valid write mark numbered at least `number` after `start`, if any.
    private func laterMark(_ bytes: [UInt8], after start: Int, numberAtLeast number: UInt64) -> Int? {
        guard let last = ZeroScan.lastNonZero(bytes) else { return nil }
        var candidate = start + 1
        while candidate + WriteMark.size <= last + 1 {
            if bytes[candidate] == WriteMark.magic[0], let mark = WriteMark.decode(bytes, at: candidate), mark.number >= number {
                return candidate
            }
            candidate += 1
        }
        return nil
    }

    /// Zeros everything from `start` to the last non-zero byte and syncs.
    private func zero(_ bytes: [UInt8], from start: Int, file: any StorageFile) throws(StorageError) {
        guard let last = ZeroScan.lastNonZero(bytes), last >= start else { return }
        try file.write([UInt8](repeating: 0, count: last + 1 - start), at: UInt64(start))
        try file.sync()
    }
}
