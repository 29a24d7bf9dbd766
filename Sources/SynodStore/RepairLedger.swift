/// Which damaged log writes a member has repaired, and which it still must: the file
/// `repair-ledger` in the data directory (see `Replica+Repair`).
///
/// Why a file beside the log: the damage itself is the only trace of what was lost, and a
/// snapshot may prune the damaged segment while the repair is still running. So recovery
/// records found damage as *pending* before the replica starts, and a restart repairs again
/// while anything is pending, whether or not the damage can still be seen. Once the replica's
/// `.repaired` record is durable, pending damage becomes *repaired*, and finding it again at
/// a later start (the same write, still damaged) needs no repair: what it held is covered by
/// the records written since. Damage found at a new place is repaired anew.
///
/// Format (text): one line per entry, `pending <identity>` or `repaired <identity>` (identity:
/// `WALDamage.identity`), then `crc <CRC-32C of everything before this line, hex>`. Written to
/// a temporary file, synced and renamed. A ledger that fails its check is corruption: what was
/// pending cannot be known, so the member refuses to start.
struct RepairLedger: Equatable {
    static let fileName = "repair-ledger"

    var pending: Set<String> = []
    var repaired: Set<String> = []

    static func load(fileSystem: any FileSystem, directory: String) throws(StorageError) -> RepairLedger {
        let path = directory + "/" + fileName
        guard fileSystem.exists(path) else { return RepairLedger() }
        let file = try fileSystem.open(path, create: false)
        defer { file.close() }
        let size = try file.size()
        guard size <= 64 << 20 else { throw .corruption(path: path, offset: 0, reason: "repair ledger of \(size) bytes") }
        let bytes = try file.read(at: 0, count: Int(size))
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw .corruption(path: path, offset: 0, reason: "repair ledger is not text")
        }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: true)
        guard let last = lines.popLast(), last.hasPrefix("crc "),
              UInt32(last.dropFirst(4), radix: 16) == CRC32C.checksum(Array(lines.map { $0 + "\n" }.joined().utf8)) else {
            throw .corruption(path: path, offset: 0, reason: "repair ledger fails its checksum: which damage awaits repair is unknown")
        }
        var ledger = RepairLedger()
        for line in lines {
            let parts = line.split(separator: " ", maxSplits: 1)
            guard parts.count == 2 else { throw .corruption(path: path, offset: 0, reason: "repair ledger line '\(line)'") }
            switch parts[0] {
            case "pending": ledger.pending.insert(String(parts[1]))
            case "repaired": ledger.repaired.insert(String(parts[1]))
            default: throw .corruption(path: path, offset: 0, reason: "repair ledger line '\(line)'")
            }
        }
        return ledger
    }

    func save(fileSystem: any FileSystem, directory: String) throws(StorageError) {
        var body = ""
        for identity in pending.sorted() { body += "pending \(identity)\n" }
        for identity in repaired.sorted() { body += "repaired \(identity)\n" }
        let crc = String(CRC32C.checksum(Array(body.utf8)), radix: 16)
        let bytes = Array((body + "crc \(crc)\n").utf8)
        try fileSystem.writeAtomically([bytes], to: directory + "/" + Self.fileName, directory: directory)
    }
}
