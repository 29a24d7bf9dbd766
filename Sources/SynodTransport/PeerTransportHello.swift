import SynodBytes
import SynodCore

/// The first bytes a dialer sends on a new peer connection, before any `PeerFrameCodec` frame:
/// who is speaking, in which cluster, with which protocol version.
///
/// Layout (all integers little-endian), 17 bytes:
///
///     offset  size  field
///     0       4     magic: "SYNP"          not some other protocol dialing the peer port
///     4       1     version: UInt8         `PeerFrameCodec.protocolVersion`
///     5       8     clusterID: UInt64      nodes of different clusters never talk
///     13      4     sender: UInt32         the dialer's NodeID
///
/// The acceptor checks the hello before reading frames and closes the connection, logging
/// the reason, when it is not from a member of its own cluster speaking its version. Every
/// frame on the connection must then carry `sender` as its `Envelope.from`.
///
/// A connection whose first four bytes are "SYND" instead is a join discovery: one request,
/// one reply, then the acceptor closes it. Its layouts are documented on `PeerDiscovery`.
public struct PeerHello: Hashable, Sendable {
    /// "SYNP".
    public static let magic: [UInt8] = [0x53, 0x59, 0x4E, 0x50]
    /// Bytes of an encoded hello.
    public static let encodedLength = 4 + 1 + 8 + 4

    public var version: UInt8
    public var clusterID: UInt64
    public var sender: NodeID

    public init(version: UInt8 = PeerFrameCodec.protocolVersion, clusterID: UInt64, sender: NodeID) {
        self.version = version
        self.clusterID = clusterID
        self.sender = sender
    }

    /// The `encodedLength` bytes of this hello.
    public func encoded() -> [UInt8] {
        var bytes = Self.magic
        bytes.reserveCapacity(Self.encodedLength)
        bytes.append(version)
        LittleEndianWriter.append(clusterID, to: &bytes)
        LittleEndianWriter.append(sender.rawValue, to: &bytes)
        return bytes
    }

    /// Decodes the hello at the start of `bytes` (bytes after it are left alone).
    ///
    /// Total, like the frame decoder: the magic and the version are checked as soon as they
    /// arrive, so a client of another protocol is refused without waiting for 17 bytes.
    public static func decode(from bytes: UnsafeRawBufferPointer) -> PeerHelloDecodeResult {
        for index in 0..<min(magic.count, bytes.count) where bytes[index] != magic[index] {
            return .invalid(reason: "not a Synod peer connection (bad hello magic)")
        }
        if bytes.count > magic.count {
            let version = bytes[magic.count]
            guard version == PeerFrameCodec.protocolVersion else {
                return .invalid(
                    reason: "unsupported protocol version \(version) (this build speaks version \(PeerFrameCodec.protocolVersion))")
            }
        }
        guard bytes.count >= encodedLength else { return .needMoreBytes }
        var reader = LittleEndianReader(bytes, from: magic.count, to: encodedLength)
        do {
            let version = try reader.readUInt8("version")
            let clusterID = try reader.readUInt64("clusterID")
            let sender = NodeID(try reader.readUInt32("sender"))
            return .hello(PeerHello(version: version, clusterID: clusterID, sender: sender))
        } catch {
            // Unreachable: the window holds exactly the fields read.
            return .invalid(reason: "hello: \(error.reason)")
        }
    }

    /// `decode(from:)` over an array.
    public static func decode(from bytes: [UInt8]) -> PeerHelloDecodeResult {
        bytes.withUnsafeBytes { decode(from: $0) }
    }

    /// Why an acceptor with this identity refuses this hello, or nil when it accepts it.
    /// - Parameters:
    ///   - knownPeers: the NodeIDs allowed to dial (the other members; never `localID`).
    public func rejectionReason(clusterID expectedClusterID: UInt64, localID: NodeID, knownPeers: Set<NodeID>) -> String? {
        if version != PeerFrameCodec.protocolVersion {
            return "unsupported protocol version \(version) (this build speaks version \(PeerFrameCodec.protocolVersion))"
        }
        if clusterID != expectedClusterID {
            return "cluster id \(clusterID) differs from this node's cluster id \(expectedClusterID)"
        }
        if sender == localID {
            return "peer claims this node's own id \(sender)"
        }
        if !knownPeers.contains(sender) {
            return "unknown node id \(sender) (known peers: \(knownPeers.sorted().map(\.description).joined(separator: ", ")))"
        }
        return nil
    }
}

/// The outcome of `PeerHello.decode(from:)`.
public enum PeerHelloDecodeResult: Hashable, Sendable {
    /// A hello; it occupies the first `PeerHello.encodedLength` bytes.
    case hello(PeerHello)
    /// The bytes so far are a valid prefix of a hello (or empty).
    case needMoreBytes
    /// Not a hello of this protocol: close the connection with `reason`.
    case invalid(reason: String)
}
