import SynodBytes
import SynodCore

/// Snapshot files in `<data>/snap/`, one per snapshot, named by slot (`%020d.snap`).
///
/// Layout (little-endian): a 40-byte header — `"SYNODSNP"` (8) | format version (1) = 2 |
/// reserved (3) = 0 | slot (8) | data length (8) | CRC-32C of the data (4) | CRC-32C of the
/// preceding 32 header bytes (4) | reserved (4) = 0 — then the state machine's opaque bytes,
/// then (version 2) the membership trailer: length (4) | CRC-32C of the blob (4) | the
/// membership history (`MembershipCoding`; length 0 = none). Version 1 files (no trailer)
/// still load, with no membership.
///
/// A snapshot is written to `<name>.tmp`, synced, renamed into place and the directory synced:
/// a crash leaves either a complete snapshot or a `.tmp` file that recovery removes.
struct SnapshotStore {
    static let formatVersion: UInt8 = 2
    static let magic: [UInt8] = Array("SYNODSNP".utf8)
    static let headerBytes = 40

    let fileSystem: any FileSystem
    let directory: String

    static func fileName(slot: Slot) -> String {
        let digits = String(slot)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".snap"
    }

    static func slot(ofFileName name: String) -> Slot? {
        guard name.hasSuffix(".snap"), name.count == 25 else { return nil }
        return Slot(name.prefix(20))
    }

    /// Snapshot slots on disk, ascending.
    func slots() throws(StorageError) -> [Slot] {
        try fileSystem.listDirectory(directory).compactMap(Self.slot(ofFileName:)).sorted()
    }

    /// Removes unfinished snapshot files a crash left behind; returns their names.
    func removeTemporaryFiles() throws(StorageError) -> [String] {
        let temporary = try fileSystem.listDirectory(directory).filter { $0.hasSuffix(".tmp") }
        for name in temporary { try fileSystem.remove(directory + "/" + name) }
        if !temporary.isEmpty { try fileSystem.syncDirectory(directory) }
        return temporary
    }

    /// The bytes around the snapshot's data in its file: the header before it and the
    /// membership trailer after it. The data itself is written as it is, not copied into one
    /// buffer with them (that was a second copy of the whole state on every save).
    static func frame(_ snapshot: Snapshot, data: [UInt8]) -> (header: [UInt8], trailer: [UInt8]) {
        (header(slot: snapshot.slot, count: data.count, crc: CRC32C.checksum(data)), trailer(snapshot.membership))
    }

    /// The 40-byte header of a snapshot of `count` data bytes whose CRC-32C is `crc`.
    static func header(slot: Slot, count: Int, crc: UInt32) -> [UInt8] {
        var bytes = magic
        bytes.append(formatVersion)
        bytes.append(contentsOf: [0, 0, 0])
        LittleEndianWriter.append(slot, to: &bytes)
        LittleEndianWriter.append(UInt64(count), to: &bytes)
        LittleEndianWriter.append(crc, to: &bytes)
        LittleEndianWriter.append(CRC32C.checksum(bytes), to: &bytes)
        bytes.append(contentsOf: [0, 0, 0, 0])
        return bytes
    }

    /// The membership trailer that follows the data.
    static func trailer(_ history: MembershipHistory?) -> [UInt8] {
        let membership = history?.encoded() ?? []
        var trailer: [UInt8] = []
        LittleEndianWriter.append(UInt32(membership.count), to: &trailer)
        LittleEndianWriter.append(CRC32C.checksum(membership), to: &trailer)
        trailer.append(contentsOf: membership)
        return trailer
    }

    /// Writes `snapshot` durably (temp file, sync, rename, directory sync).
    func save(_ snapshot: Snapshot) throws(StorageError) {
        let path = directory + "/" + Self.fileName(slot: snapshot.slot)
        if let spool = snapshot.bytes.source as? SnapshotSpoolFile, spool.directory == directory, spool.slot == snapshot.slot {
            // Received or encoded into a spool file here: that file becomes the snapshot file.
            guard try spool.complete(trailer: Self.trailer(snapshot.membership)) else {
                throw .io(path: spool.path, operation: "complete the snapshot in its spool file (a write to it failed)", errno: 0)
            }
            try fileSystem.rename(spool.path, to: path)
            try fileSystem.syncDirectory(directory)
            return
        }
        // Snapshots come here in memory (taken, or small ones received whole); one in another
        // file is read back.
        guard let data = snapshot.bytes.readAll() else {
            throw .io(path: path, operation: "read back the snapshot to save", errno: 0)
        }
        let (header, trailer) = Self.frame(snapshot, data: data)
        try fileSystem.writeAtomically([header, data, trailer], to: path, directory: directory)
    }

    /// Verifies the snapshot at `slot` and opens it: its data is checked piece by piece, not
    /// read into memory, and the snapshot returned reads it from the file on demand
    /// (`StoredSnapshotBytes`); the membership trailer is read.
    /// - Throws: `.corruption` naming the file when anything does not check out.
    func load(slot: Slot) throws(StorageError) -> Snapshot {
        let (file, path, verified) = try openChecked(slot: slot) { (file, path) throws(StorageError) in
            try Self.verify(file, path: path, slot: slot)
        }
        let bytes = StoredSnapshotBytes(file: file, path: path, dataOffset: UInt64(Self.headerBytes), count: verified.length)
        return Snapshot(slot: slot, bytes: SnapshotBytes(source: bytes), membership: verified.membership)
    }

    /// Opens the snapshot file of `slot` for reading its data on demand, checking only its
    /// header: its data was checked when it was loaded, or was just written and synced.
    func openStored(slot: Slot) throws(StorageError) -> StoredSnapshotBytes {
        let (file, path, header) = try openChecked(slot: slot) { (file, path) throws(StorageError) in
            try Self.checkHeader(file, path: path, slot: slot).header
        }
        let length = Int(LittleEndianReader.uint64(at: 20, of: header))
        return StoredSnapshotBytes(file: file, path: path, dataOffset: UInt64(Self.headerBytes), count: length)
    }

    /// Opens the file of `slot` and runs `check` on it; closes it again when that throws.
    private func openChecked<Checked>(slot: Slot, _ check: (any StorageFile, String) throws(StorageError) -> Checked)
        throws(StorageError) -> (file: any StorageFile, path: String, checked: Checked) {
        let path = directory + "/" + Self.fileName(slot: slot)
        let file = try fileSystem.open(path, create: false)
        do throws(StorageError) {
            return (file, path, try check(file, path))
        } catch {
            file.close()
            throw error
        }
    }

    /// Checks a snapshot file whole; returns its data length and membership.
    private static func verify(_ file: any StorageFile, path: String, slot: Slot) throws(StorageError)
        -> (length: Int, membership: MembershipHistory?) {
        let (header, size) = try checkHeader(file, path: path, slot: slot)
        let version = header[8]
        let length = LittleEndianReader.uint64(at: 20, of: header)
        let available = size - UInt64(headerBytes)
        // The data's checksum, a piece at a time.
        var crc: UInt32 = 0
        var offset: UInt64 = 0
        while offset < length {
            let piece = try file.read(at: UInt64(headerBytes) + offset, count: Int(min(length - offset, 4 << 20)))
            guard !piece.isEmpty else { break }
            crc = piece.withUnsafeBytes { CRC32C.update(crc, $0) }
            offset += UInt64(piece.count)
        }
        guard offset == length, crc == LittleEndianReader.uint32(at: 28, of: header) else {
            throw .corruption(path: path, offset: UInt64(headerBytes), reason: "snapshot data checksum mismatch")
        }
        guard version >= 2 else { return (Int(length), nil) }
        let trailerOffset = UInt64(headerBytes) + length
        guard available - length >= 8 else {
            throw .corruption(path: path, offset: trailerOffset, reason: "snapshot membership trailer missing")
        }
        let trailer = try file.read(at: trailerOffset, count: 8)
        let membershipLength = UInt64(LittleEndianReader.uint32(at: 0, of: trailer))
        guard trailer.count == 8, available - length - 8 == membershipLength else {
            throw .corruption(path: path, offset: trailerOffset, reason: "snapshot membership length does not match the file size \(size)")
        }
        guard membershipLength > 0 else { return (Int(length), nil) }
        let blob = try file.read(at: trailerOffset + 8, count: Int(membershipLength))
        guard blob.count == Int(membershipLength), CRC32C.checksum(blob) == LittleEndianReader.uint32(at: 4, of: trailer) else {
            throw .corruption(path: path, offset: trailerOffset + 8, reason: "snapshot membership checksum mismatch")
        }
        do {
            return (Int(length), try MembershipHistory(decoding: blob))
        } catch {
            throw .corruption(path: path, offset: trailerOffset + 8, reason: error.description)
        }
    }

    /// Checks a snapshot file's header against the file (magic, header checksum, version,
    /// slot, data length within the file); returns the header and the file's size.
    static func checkHeader(_ file: any StorageFile, path: String, slot: Slot) throws(StorageError)
        -> (header: [UInt8], size: UInt64) {
        let size = try file.size()
        guard size >= UInt64(headerBytes) else {
            throw .corruption(path: path, offset: 0, reason: "snapshot file shorter than its header")
        }
        let header = try file.read(at: 0, count: headerBytes)
        guard header.count == headerBytes, Array(header[0..<8]) == magic else {
            throw .corruption(path: path, offset: 0, reason: "not a snapshot file")
        }
        guard LittleEndianReader.uint32(at: 32, of: header) == CRC32C.checksum(header[0..<32]), header[36..<40].allSatisfy({ $0 == 0 }) else {
            throw .corruption(path: path, offset: 0, reason: "snapshot header checksum mismatch")
        }
        let version = header[8]
        guard version == 1 || version == formatVersion else {
            throw .incompatibleVersion(path: path, found: header[8], supported: formatVersion)
        }
        let headerSlot = LittleEndianReader.uint64(at: 12, of: header)
        let length = LittleEndianReader.uint64(at: 20, of: header)
        guard headerSlot == slot else {
            throw .corruption(path: path, offset: 12, reason: "file name says slot \(slot), header says \(headerSlot)")
        }
        let available = size - UInt64(headerBytes)
        guard version == 1 ? length == available : length <= available, length <= UInt64(Int.max) else {
            throw .corruption(path: path, offset: 20, reason: "snapshot length \(length) does not match the file size \(size)")
        }
        return (header, size)
    }

    /// Deletes all but the newest `retained` snapshots (the directory is synced by the caller).
    func prune(retained: Int) throws(StorageError) -> Bool {
        let all = try slots()
        guard all.count > retained else { return false }
        for slot in all.prefix(all.count - max(1, retained)) {
            try fileSystem.remove(directory + "/" + Self.fileName(slot: slot))
        }
        return true
    }
}
