import SynodBytes
/// The identity of a data directory: which cluster and node it belongs to and the format
/// version, in `synod.meta`, so a node never runs on another node's (or cluster's) data.
///
/// Layout of `synod.meta` (24 bytes, little-endian):
/// `"SYNODDIR"` (8) | format version (1) = 1 | reserved (3) = 0 | cluster id (8) | node id (4)
/// followed by a CRC-32C (4) of those 24 bytes.
public struct DataDirectoryIdentity: Hashable, Sendable {
    public static let formatVersion: UInt8 = 1
    static let magic: [UInt8] = Array("SYNODDIR".utf8)
    static let fileName = "synod.meta"

    public var clusterID: UInt64
    public var nodeID: UInt32

    public init(clusterID: UInt64, nodeID: UInt32) {
        self.clusterID = clusterID
        self.nodeID = nodeID
    }

    func encoded() -> [UInt8] {
        var bytes = Self.magic
        bytes.append(Self.formatVersion)
        bytes.append(contentsOf: [0, 0, 0])
        LittleEndianWriter.append(clusterID, to: &bytes)
        LittleEndianWriter.append(nodeID, to: &bytes)
        LittleEndianWriter.append(CRC32C.checksum(bytes), to: &bytes)
        return bytes
    }

    static func decode(_ bytes: [UInt8], path: String) throws(StorageError) -> DataDirectoryIdentity {
        guard bytes.count == 28, Array(bytes[0..<8]) == magic else {
            throw .foreignDataDirectory(path: path, reason: "\(fileName) is not a Synod identity file")
        }
        let body = Array(bytes[0..<24])
        guard LittleEndianReader.uint32(at: 24, of: bytes) == CRC32C.checksum(body) else {
            throw .corruption(path: path, offset: 0, reason: "identity file checksum mismatch")
        }
        guard bytes[8] == formatVersion else {
            throw .incompatibleVersion(path: path, found: bytes[8], supported: formatVersion)
        }
        return DataDirectoryIdentity(clusterID: LittleEndianReader.uint64(at: 12, of: bytes),
                                     nodeID: LittleEndianReader.uint32(at: 20, of: bytes))
    }

    /// Creates the directory layout and identity on first start, or checks it on later ones.
    /// - Returns: true when the directory was created now.
    static func prepare(_ fileSystem: any FileSystem, directory: String, identity: DataDirectoryIdentity) throws(StorageError) -> Bool {
        let metaPath = directory + "/" + fileName
        if fileSystem.exists(metaPath) {
            let file = try fileSystem.open(metaPath, create: false)
            defer { file.close() }
            let found = try decode(try file.read(at: 0, count: 64), path: metaPath)
            if found.clusterID != identity.clusterID {
                throw .foreignDataDirectory(path: directory, reason: "it belongs to cluster \(hex(found.clusterID)), not \(hex(identity.clusterID))")
            }
            if found.nodeID != identity.nodeID {
                throw .foreignDataDirectory(path: directory, reason: "it belongs to node \(found.nodeID), not \(identity.nodeID)")
            }
            return false
        }
        try fileSystem.makeDirectory(directory)
        // `fixtures`: the self-signed certificates of `--auto-tls`, made before storage opens
        // (etcd keeps them at the same place).
        let leftovers = try fileSystem.listDirectory(directory).filter { !$0.hasSuffix(".tmp") && $0 != "fixtures" }
        if !leftovers.isEmpty {
            throw .foreignDataDirectory(path: directory, reason: "it is not empty but has no \(fileName) (found \(leftovers.prefix(3).joined(separator: ", ")))")
        }
        try fileSystem.makeDirectory(directory + "/wal")
        try fileSystem.makeDirectory(directory + "/snap")
        // Written to a temporary file, synced, renamed, and the directory synced: a crash
        // leaves either no identity (and an empty directory) or a complete one.
        try fileSystem.writeAtomically([identity.encoded()], to: metaPath, directory: directory)
        return true
    }

    static func hex(_ value: UInt64) -> String { String(value, radix: 16) }
}
