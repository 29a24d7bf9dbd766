import SynodBytes

/// What a node joining a running cluster sends a member to learn the cluster id, its own
/// NodeID and the members: it knows only its own advertised peer URL (the operator ran
/// MemberAdd with it) and where some members listen. The exchange uses the peer port, on a
/// connection of its own that carries nothing else.
///
/// The fourth magic byte says what a connection on the peer port is for: "SYNP" opens a peer
/// connection (`PeerHello`, unchanged), "SYND" a discovery. A build without discovery refuses
/// "SYND" as a bad hello magic and closes the connection, which the dialer reports as no reply.
///
/// Request, dialer to acceptor (all integers little-endian), 9 + n bytes:
///
///     offset  size  field
///     0       4     magic: "SYND"          a discovery request, not a `PeerHello`
///     4       1     version: UInt8 = 1     `PeerDiscovery.version`
///     5       4     urlLength: UInt32      1...`peerURLBytesMax`
///     9       n     peerURL                the requester's advertised peer URL, UTF-8
///
/// Reply, acceptor to dialer, 10 + n bytes; the acceptor then closes the connection:
///
///     offset  size  field
///     0       4     magic: "SYND"
///     4       1     version: UInt8 = 1     `PeerDiscovery.version`
///     5       1     status: UInt8          0: known, body is the payload; 1: refused, body is the reason
///     6       4     bodyLength: UInt32     payload: <= `PeerCodecLimits.frameBytesMax`; reason: <= `reasonBytesMax`
///     10      n     body                   payload: opaque to the transport (the server encodes the
///                                          cluster id, the requester's NodeID and the members);
///                                          reason: UTF-8, for the operator
///
/// The version is the exchange's own, not `PeerFrameCodec.protocolVersion`: a joining node
/// built with another frame protocol can still learn who it is (the payload is the server's
/// to version), and the frames it then exchanges are checked by the hello as usual.
///
/// As with `PeerHello`, the magic, the version and every length are checked as soon as they
/// arrive: a hostile length closes the connection without buffering what it announces.
public enum PeerDiscovery {
    /// "SYND".
    public static let magic: [UInt8] = [0x53, 0x59, 0x4E, 0x44]
    /// The version of the request and reply layouts.
    public static let version: UInt8 = 1
    /// Longest accepted peer URL, in UTF-8 bytes.
    public static let peerURLBytesMax = 1024
    /// Longest refusal reason, in UTF-8 bytes; longer reasons are truncated when encoded.
    public static let reasonBytesMax = 1024
    /// Bytes before the URL in a request.
    public static let requestHeaderLength = 4 + 1 + 4
    /// Bytes before the body in a reply.
    public static let replyHeaderLength = 4 + 1 + 1 + 4

    static let statusKnown: UInt8 = 0
    static let statusRefused: UInt8 = 1

    /// The request bytes for `peerURL`, or nil when it is empty or longer than `peerURLBytesMax`.
    public static func encodeRequest(peerURL: String) -> [UInt8]? {
        let url = Array(peerURL.utf8)
        guard !url.isEmpty, url.count <= peerURLBytesMax else { return nil }
        var bytes = magic
        bytes.reserveCapacity(requestHeaderLength + url.count)
        bytes.append(version)
        LittleEndianWriter.append(UInt32(url.count), to: &bytes)
        bytes += url
        return bytes
    }

    /// Decodes the request at the start of `bytes`. Total: hostile input yields `.invalid`.
    public static func decodeRequest(from bytes: UnsafeRawBufferPointer) -> PeerDiscoveryRequestDecodeResult {
        if let reason = checkMagicAndVersion(bytes) { return .invalid(reason: reason) }
        guard bytes.count >= requestHeaderLength else { return .needMoreBytes }
        var reader = LittleEndianReader(bytes, from: 5, to: bytes.count)
        do {
            let length = try reader.readUInt32("urlLength")
            guard length > 0 else { return .invalid(reason: "discovery request with an empty peer URL") }
            guard length <= UInt32(peerURLBytesMax) else {
                return .invalid(reason: "discovery request peer URL of \(length) bytes exceeds the limit \(peerURLBytesMax)")
            }
            guard reader.remaining >= Int(length) else { return .needMoreBytes }
            let url = try reader.readBytes(count: UInt64(length), "peerURL")
            // Decoding repairs invalid UTF-8; a round trip that changes the bytes means it was invalid.
            let peerURL = String(decoding: url, as: UTF8.self)
            guard peerURL.utf8.elementsEqual(url) else {
                return .invalid(reason: "discovery request peer URL is not UTF-8")
            }
            return .request(peerURL: peerURL, length: requestHeaderLength + Int(length))
        } catch {
            // Unreachable: lengths are checked against the bytes present before reading.
            return .invalid(reason: "discovery request: \(error.reason)")
        }
    }

    /// The reply bytes for `reply`. A refusal reason is truncated to `reasonBytesMax` bytes
    /// (at a character boundary).
    public static func encodeReply(_ reply: PeerDiscoveryReply) -> [UInt8] {
        let status: UInt8
        let body: [UInt8]
        switch reply {
        case .known(let payload):
            status = statusKnown
            body = payload
        case .refused(let reason):
            status = statusRefused
            var truncated = Substring(reason)
            while truncated.utf8.count > reasonBytesMax { truncated = truncated.dropLast() }
            body = Array(truncated.utf8)
        }
        var bytes = magic
        bytes.reserveCapacity(replyHeaderLength + body.count)
        bytes.append(version)
        bytes.append(status)
        LittleEndianWriter.append(UInt32(truncatingIfNeeded: body.count), to: &bytes)
        bytes += body
        return bytes
    }

    /// Decodes the reply at the start of `bytes`; a payload longer than `limits.frameBytesMax`
    /// is invalid. Total: hostile input yields `.invalid`.
    public static func decodeReply(
        from bytes: UnsafeRawBufferPointer, limits: PeerCodecLimits = .standard
    ) -> PeerDiscoveryReplyDecodeResult {
        if let reason = checkMagicAndVersion(bytes) { return .invalid(reason: reason) }
        guard bytes.count >= replyHeaderLength else { return .needMoreBytes }
        var reader = LittleEndianReader(bytes, from: 5, to: bytes.count)
        do {
            let status = try reader.readUInt8("status")
            let length = try reader.readUInt32("bodyLength")
            let limit: Int
            switch status {
            case statusKnown: limit = limits.frameBytesMax
            case statusRefused: limit = reasonBytesMax
            default: return .invalid(reason: "unknown discovery reply status \(status)")
            }
            guard UInt64(length) <= UInt64(limit) else {
                return .invalid(reason: "discovery reply body of \(length) bytes exceeds the limit \(limit)")
            }
            guard UInt64(reader.remaining) >= UInt64(length) else { return .needMoreBytes }
            let body = try reader.readBytes(count: UInt64(length), "body")
            if status == statusKnown { return .reply(.known(payload: body)) }
            return .reply(.refused(reason: String(decoding: body, as: UTF8.self)))
        } catch {
            // Unreachable: lengths are checked against the bytes present before reading.
            return .invalid(reason: "discovery reply: \(error.reason)")
        }
    }

    /// Why the first bytes are not a discovery magic and version, or nil when they are a valid
    /// prefix of them.
    private static func checkMagicAndVersion(_ bytes: UnsafeRawBufferPointer) -> String? {
        for index in 0..<min(magic.count, bytes.count) where bytes[index] != magic[index] {
            return "not a Synod discovery message (bad magic)"
        }
        if bytes.count > magic.count, bytes[magic.count] != version {
            return "unsupported discovery version \(bytes[magic.count]) (this build speaks version \(version))"
        }
        return nil
    }

    /// Whether `bytes` start like a discovery request rather than a `PeerHello`.
    static func isRequestPrefix(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count >= magic.count && bytes.prefix(magic.count).elementsEqual(magic)
    }
}

/// A discovery reply.
public enum PeerDiscoveryReply: Hashable, Sendable {
    /// The member knows the requester: the server's payload.
    case known(payload: [UInt8])
    /// The member cannot answer, e.g. it does not know the requester's peer URL.
    case refused(reason: String)
}

/// The outcome of `PeerDiscovery.decodeRequest(from:)`.
public enum PeerDiscoveryRequestDecodeResult: Hashable, Sendable {
    /// A request; it occupies the first `length` bytes.
    case request(peerURL: String, length: Int)
    /// The bytes so far are a valid prefix of a request (or empty).
    case needMoreBytes
    /// Not a valid request: close the connection with `reason`.
    case invalid(reason: String)
}

/// The outcome of `PeerDiscovery.decodeReply(from:limits:)`.
public enum PeerDiscoveryReplyDecodeResult: Hashable, Sendable {
    case reply(PeerDiscoveryReply)
    /// The bytes so far are a valid prefix of a reply (or empty).
    case needMoreBytes
    /// Not a valid reply.
    case invalid(reason: String)
}
