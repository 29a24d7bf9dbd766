import SynodBytes
import SynodCore

/// Recovery: read every segment in order and rebuild the records.
///
/// Version 2 segments are read write by write (WriteAheadLog+Writes.swift). The rules below are
/// those of version 1 segments, which had no write marks:
/// - A valid frame is a record. A zero header is the clean end of a segment.
/// - An incomplete frame (a prefix of a frame followed only by zeros) in the last segment is
///   a torn tail: the last write did not fully reach the disk before a crash, so it was never
///   acknowledged. It is zeroed out (synced) and reported.
/// - Anything else — a damaged complete frame, data after the end, an incomplete frame with
///   data after it, a gap in segment numbers — is corruption: recovery throws, naming the file
///   and offset, rather than silently dropping records that may have been acknowledged.
extension WriteAheadLog {
    func recover(report: inout RecoveryReport) throws(StorageError) -> [DurableRecord] {
        var sequences: [(UInt64, String)] = []
        for name in try fileSystem.listDirectory(directory) {
            if let sequence = SegmentHeader.sequence(ofFileName: name) { sequences.append((sequence, name)) }
        }
        sequences.sort { $0.0 < $1.0 }
        var records: [DurableRecord] = []
        for (index, (sequence, name)) in sequences.enumerated() {
            let path = directory + "/" + name
            if index > 0 && sequence != sequences[index - 1].0 + 1 {
                let reason = "WAL segment \(sequences[index - 1].0 + 1) is missing before this one"
                guard options.repairDamage else { throw .corruption(path: path, offset: 0, reason: reason) }
                report.damage.append(WALDamage(segment: name, offset: 0, reason: reason))
            }
            let isLast = index == sequences.count - 1
            let file = try fileSystem.open(path, create: false)
            let size = try file.size()
            guard size <= UInt64(Int.max) else {
                file.close()
                throw .corruption(path: path, offset: 0, reason: "segment size \(size) is not plausible")
            }
            let bytes = try file.read(at: 0, count: Int(size))
            switch SegmentHeader.decode(bytes) {
            case .blank where isLast && bytes.allSatisfy({ $0 == 0 }):
                // A crash interrupted this segment's creation before anything was written to it.
                file.close()
                try fileSystem.remove(path)
                try fileSystem.syncDirectory(directory)
                report.removedEmptySegments.append(path)
                if let previous = closedSegmentToReopen(sequences, index) { try reopen(previous) }
                continue
            case .blank, .invalid:
                file.close()
                guard options.repairDamage else { throw .corruption(path: path, offset: 0, reason: "invalid WAL segment header") }
                // Skipped whole; kept (numbered) until a snapshot covers what follows it.
                report.damage.append(WALDamage(segment: name, offset: 0, reason: "invalid WAL segment header"))
                appendClosed(ClosedSegment(sequence: sequence, path: path, maxSlot: 0))
            case .incompatible(let version):
                file.close()
                throw .incompatibleVersion(path: path, found: version, supported: SegmentHeader.formatVersion)
            case .valid(let header):
                guard header.sequence == sequence else {
                    file.close()
                    let reason = "header says segment \(header.sequence)"
                    guard options.repairDamage else { throw .corruption(path: path, offset: 12, reason: reason) }
                    report.damage.append(WALDamage(segment: name, offset: 0, reason: reason))
                    appendClosed(ClosedSegment(sequence: sequence, path: path, maxSlot: 0))
                    continue
                }
                report.segmentsRead += 1
                if header.hasWriteMarks {
                    let scan = try readWrites(bytes, path: path, isLast: isLast, file: file, into: &records, report: &report)
                    // A damaged last segment is not written to again: its damage stays as
                    // found, and the next write goes to a new segment.
                    if isLast && !scan.damaged {
                        adoptActive(file: file, sequence: sequence, path: path, tail: UInt64(scan.end), maxSlot: scan.maxSlot,
                                    nextWriteNumber: scan.nextWriteNumber)
                        continue
                    }
                    file.close()
                    appendClosed(ClosedSegment(sequence: sequence, path: path, maxSlot: scan.maxSlot))
                } else {
                    // Version 1: read with its own rules, and never appended to again (the
                    // next write goes to a new version 2 segment).
                    let (_, maxSlot) = try readFrames(bytes, path: path, isLast: isLast, file: file, into: &records, report: &report)
                    file.close()
                    appendClosed(ClosedSegment(sequence: sequence, path: path, maxSlot: maxSlot))
                }
            }
        }
        report.recordsRead = records.count
        for record in records {
            switch record {
            case .promised(let ballot), .accepted(_, let ballot, _): noteRecoveredPromise(ballot)
            default: break
            }
        }
        // After the last closed segment (a blank leftover after it was removed: numbering
        // from the leftover would leave a gap the next recovery refuses).
        if !hasActiveSegment { try createSegment(sequence: (closedSegments.last?.sequence ?? sequences.last?.0 ?? 0) + 1) }
        return records
    }

    /// When the last segment was a blank leftover, the one before it becomes active again.
    private func closedSegmentToReopen(_ sequences: [(UInt64, String)], _ index: Int) -> ClosedSegment? {
        guard index > 0 else { return nil }
        return closedSegments.last
    }

    /// Makes a closed version 2 segment active again (a version 1 segment stays closed: the
    /// caller then starts a new segment).
    private func reopen(_ segment: ClosedSegment) throws(StorageError) {
        let file = try fileSystem.open(segment.path, create: false)
        let size = try file.size()
        let bytes = try file.read(at: 0, count: Int(min(size, UInt64(Int.max))))
        guard case .valid(let header) = SegmentHeader.decode(bytes), header.hasWriteMarks else {
            file.close()
            return
        }
        var ignored: [DurableRecord] = []
        var scratch = RecoveryReport()
        let scan = try readWrites(bytes, path: segment.path, isLast: true, file: file, into: &ignored, report: &scratch)
        guard !scan.damaged else {
            // Damage stays as found: the caller starts a new segment.
            file.close()
            return
        }
        dropLastClosed()
        adoptActive(file: file, sequence: segment.sequence, path: segment.path, tail: UInt64(scan.end), maxSlot: scan.maxSlot,
                    nextWriteNumber: scan.nextWriteNumber)
    }

    /// Decodes the frames of one version 1 segment (no write marks); returns the offset after
    /// the last valid frame and the highest slot seen.
    private func readFrames(_ bytes: [UInt8], path: String, isLast: Bool, file: any StorageFile,
                            into records: inout [DurableRecord], report: inout RecoveryReport) throws(StorageError) -> (Int, Slot) {
        var offset = SegmentHeader.size
        var maxSlot: Slot = 0
        while offset < bytes.count {
            let result = bytes.withUnsafeBytes { RecordCodec.decodeFrame($0, at: offset, payloadMax: options.recordPayloadMax) }
            switch result {
            case .record(let record, let length):
                records.append(record)
                switch record {
                case .accepted(let slot, _, _), .chosen(let slot, _): maxSlot = max(maxSlot, slot)
                default: break
                }
                offset += length
            case .end:
                if let garbage = firstNonZero(bytes, from: offset) {
                    throw .corruption(path: path, offset: UInt64(garbage), reason: "data after the end of the log")
                }
                return (offset, maxSlot)
            case .incomplete(let reason):
                let frameEnd = declaredFrameEnd(bytes, at: offset)
                guard isLast, firstNonZero(bytes, from: min(frameEnd, bytes.count)) == nil else {
                    throw .corruption(path: path, offset: UInt64(offset), reason: "damaged record followed by more data (\(reason))")
                }
                if completeFrameBehindDamagedLength(bytes, at: offset) || validFrameFollows(bytes, after: offset) {
                    throw .corruption(path: path, offset: UInt64(offset),
                                      reason: "a record's length field is damaged (complete records follow where a torn write would leave only zeros)")
                }
                // A torn tail: zero it so the next write starts on clean space.
                let length = min(frameEnd, bytes.count) - offset
                try file.write([UInt8](repeating: 0, count: length), at: UInt64(offset))
                try file.sync()
                report.tornTail = (path, UInt64(offset))
                return (offset, maxSlot)
            case .corrupt(let reason):
                throw .corruption(path: path, offset: UInt64(offset), reason: reason)
            }
        }
        return (offset, maxSlot)
    }

    /// A torn write and a last record whose length field was damaged upwards look alike (the
    /// declared frame runs into zeros). They differ in that the damaged record is complete:
    /// its trailer is the last non-zero byte and its checksum matches the bytes before it.
    /// (A torn prefix matches both only with probability 2^-32.)
    private func completeFrameBehindDamagedLength(_ bytes: [UInt8], at offset: Int) -> Bool {
        guard offset + RecordCodec.frameOverhead <= bytes.count,
              let last = ZeroScan.lastNonZero(bytes),
              last >= offset + RecordCodec.frameOverhead - 1, bytes[last] == 0xA5 else { return false }
        return CRC32C.checksum(bytes[(offset + 8)..<last]) == LittleEndianReader.uint32(at: offset + 4, of: bytes)
    }

    /// A damaged length can swallow every later frame, so that the declared frame "runs into
    /// zeros" like a torn write. A torn write, though, leaves a prefix of one frame: no
    /// complete, valid frame can start after its first byte. So any valid frame found after
    /// `offset` means damage, not a torn tail. (Recovery only; the scan reads each byte once
    /// per candidate start, and candidates with a bad header are rejected at once.)
    private func validFrameFollows(_ bytes: [UInt8], after offset: Int) -> Bool {
        guard let last = ZeroScan.lastNonZero(bytes), last > offset else { return false }
        return bytes.withUnsafeBytes { raw in
            var start = offset + 1
            while start + RecordCodec.frameOverhead <= last + 1 {
                if case .record = RecordCodec.decodeFrame(raw, at: start, payloadMax: options.recordPayloadMax) { return true }
                start += 1
            }
            return false
        }
    }

    func declaredFrameEnd(_ bytes: [UInt8], at offset: Int) -> Int {
        guard offset + 4 <= bytes.count else { return bytes.count }
        let length = Int(LittleEndianReader.uint32(at: offset, of: bytes))
        let (end, overflow) = (offset + RecordCodec.frameOverhead).addingReportingOverflow(length)
        return overflow ? bytes.count : end
    }

    private func firstNonZero(_ bytes: [UInt8], from offset: Int) -> Int? {
        ZeroScan.firstNonZero(bytes, from: offset)
    }
}
