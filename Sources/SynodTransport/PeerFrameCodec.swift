import SynodBytes
import SynodCore

/// The versioned binary codec for messages between replicas: one frame per `Envelope`, many
/// frames back to back on a connection.
///
/// Frame layout (all integers little-endian):
///
///     offset  size  field
///     0       4     frameLength: UInt32   bytes after this field (header rest and body)
///     4       1     version: UInt8 = 4    protocol version
///     5       1     type: UInt8           message type, 1...21 (see PeerFrameCodec+Body.swift)
///     6       4     sender: UInt32        NodeID of `Envelope.from`
///     10      4     receiver: UInt32      NodeID of `Envelope.to`
///     14      n     body                  the message's fields, consumed exactly
///
/// Why the pieces are there:
/// - The length comes first so a reader knows where a frame ends before trusting anything else.
///   It is bounded by `PeerCodecLimits.frameBytesMax`, checked as soon as the 4 bytes arrive,
///   so a hostile length closes the connection instead of making it buffer gigabytes.
/// - The version and type are checked as soon as they arrive, too: a peer speaking another
///   protocol version is refused with that reason at once.
/// - There is no checksum: TCP already checks, and a frame damaged beyond that is caught by
///   the structural checks here or by `Message.isWellFormed` in the replica, which treats a
///   bad message like a lost one. Ballots and slots are not range-checked here for that reason.
///
/// - Important: Decoding is total: every input, however hostile, yields a
///   `PeerFrameDecodeResult` without trapping, reading outside the buffer, or looping without
///   consuming bytes. Counts and lengths are checked against `PeerCodecLimits` and against the
///   bytes left in the frame before anything is reserved, so what a frame allocates is at most
///   a small constant multiple of its own length (in-memory elements are a little larger than
///   their smallest encodings).
public enum PeerFrameCodec {
    /// The protocol version this build writes and reads. Members of another version refuse
    /// the connection with a logged reason. 5: a chunked snapshot transfer's checksum is XXH64
    /// (`Snapshot.checksum`; FNV-1a before, which a member of version 4 would reject every
    /// transfer for).
    public static let protocolVersion: UInt8 = 5

    /// Bytes of the length prefix.
    public static let lengthPrefixLength = 4

    /// Bytes between the length prefix and the body: version, type, sender, receiver. The
    /// smallest valid `frameLength` field is this plus the smallest body.
    public static let headerLength = 1 + 1 + 4 + 4

    /// The number of bytes `encode(_:into:limits:)` appends for `envelope`.
    public static func frameLength(of envelope: Envelope, limits: PeerCodecLimits = .standard) throws(PeerEncodingError) -> Int {
        lengthPrefixLength + headerLength + (try bodyLength(of: envelope.message, limits: limits))
    }

    /// Appends one frame for `envelope` to `buffer`.
    ///
    /// Throws, leaving `buffer` unchanged, when the message breaks `limits` (a peer using the
    /// same limits would close the connection over it). The caller drops such a message: the
    /// protocol tolerates a lost message, but not a peer that keeps closing the connection.
    public static func encode(
        _ envelope: Envelope, into buffer: inout [UInt8], limits: PeerCodecLimits = .standard
    ) throws(PeerEncodingError) {
        let bodyLength = try bodyLength(of: envelope.message, limits: limits)
        let frameLength = headerLength + bodyLength
        guard frameLength <= limits.frameBytesMax else {
            throw PeerEncodingError("\(envelope.message.kind) frame of \(frameLength) bytes exceeds the limit \(limits.frameBytesMax)")
        }
        let start = buffer.count
        let needed = start + lengthPrefixLength + frameLength
        // Grow geometrically: reserving exactly `needed` per frame would copy the whole buffer
        // once per frame when many frames are coalesced into one write.
        if buffer.capacity < needed {
            buffer.reserveCapacity(Swift.max(needed, 2 * buffer.capacity))
        }
        LittleEndianWriter.append(UInt32(frameLength), to: &buffer)  // <= frameBytesMax <= UInt32.max
        buffer.append(protocolVersion)
        buffer.append(PeerMessageType(of: envelope.message).rawValue)
        LittleEndianWriter.append(envelope.from.rawValue, to: &buffer)
        LittleEndianWriter.append(envelope.to.rawValue, to: &buffer)
        appendBody(of: envelope.message, to: &buffer)
        assert(buffer.count == needed, "bodyLength(of:limits:) disagrees with appendBody")
    }

    /// Appends one frame per envelope, back to back, for a single coalesced write.
    ///
    /// An envelope that breaks `limits` is skipped (its bytes are not appended) and reported
    /// with its index; the others are still encoded, in order.
    /// - Returns: The skipped envelopes' indices and reasons; empty when all were appended.
    public static func encode(
        _ envelopes: [Envelope], into buffer: inout [UInt8], limits: PeerCodecLimits = .standard
    ) -> [(index: Int, error: PeerEncodingError)] {
        var skipped: [(index: Int, error: PeerEncodingError)] = []
        for (index, envelope) in envelopes.enumerated() {
            do {
                try encode(envelope, into: &buffer, limits: limits)
            } catch {
                skipped.append((index, error))
            }
        }
        return skipped
    }

    /// Decodes the frame that starts at `offset` in `bytes`, never reading outside `bytes`.
    ///
    /// The checks run in this order, and the first that applies decides:
    /// 1. fewer than 4 bytes from `offset`: `.needMoreBytes`;
    /// 2. `frameLength` above `limits.frameBytesMax` or below `headerLength`: `.invalid`;
    /// 3. a version byte other than `protocolVersion`, or an unknown type byte, as soon as that
    ///    byte is in `bytes`: `.invalid`;
    /// 4. the frame runs past the end of `bytes`: `.needMoreBytes`;
    /// 5. a body that does not parse (truncated fields, counts or lengths over `limits`, bad
    ///    tags, trailing bytes): `.invalid`;
    /// 6. otherwise `.frame`.
    ///
    /// - Important: After `.invalid` the stream cannot be resynchronized (the next frame's
    ///   start is unknown): the connection must be closed, logging the reason.
    /// - Precondition: `0 <= offset <= bytes.count`.
    public static func decodeFrame(
        from bytes: UnsafeRawBufferPointer, at offset: Int = 0, limits: PeerCodecLimits = .standard
    ) -> PeerFrameDecodeResult {
        precondition(offset >= 0 && offset <= bytes.count, "frame offset \(offset) outside buffer of \(bytes.count) bytes")
        let available = bytes.count - offset
        guard available >= lengthPrefixLength else { return .needMoreBytes }

        let declaredLength = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
        guard UInt64(declaredLength) <= UInt64(limits.frameBytesMax) else {
            return .invalid(reason: "frame length \(declaredLength) exceeds the limit \(limits.frameBytesMax)")
        }
        guard declaredLength >= headerLength else {
            return .invalid(reason: "frame length \(declaredLength) is below the header length \(headerLength)")
        }
        if available > lengthPrefixLength {
            let version = bytes[offset + 4]
            guard version == protocolVersion else {
                return .invalid(reason: "unknown protocol version \(version) (this build speaks version \(protocolVersion))")
            }
        }
        var type: PeerMessageType?
        if available > lengthPrefixLength + 1 {
            let typeByte = bytes[offset + 5]
            type = PeerMessageType(rawValue: typeByte)
            guard type != nil else { return .invalid(reason: "unknown message type \(typeByte)") }
        }
        // `declaredLength <= frameBytesMax`, an Int, so the conversion cannot trap; the sum is
        // checked for 32-bit platforms, where `frameBytesMax` may be near Int.max.
        let (frameEnd, overflow) = lengthPrefixLength.addingReportingOverflow(Int(declaredLength))
        guard !overflow, frameEnd <= available, let type else { return .needMoreBytes }

        var reader = LittleEndianReader(bytes, from: offset + lengthPrefixLength + 2, to: offset + frameEnd)
        do {
            let sender = NodeID(try reader.readUInt32("sender"))
            let receiver = NodeID(try reader.readUInt32("receiver"))
            let message = try readBody(type: type, from: &reader, limits: limits)
            return .frame(Envelope(from: sender, to: receiver, message: message), consumed: frameEnd)
        } catch {
            return .invalid(reason: "\(type) frame: \(error.reason)")
        }
    }

    /// `decodeFrame(from:at:limits:)` over an array.
    /// - Precondition: `0 <= offset <= bytes.count`.
    public static func decodeFrame(
        from bytes: [UInt8], at offset: Int = 0, limits: PeerCodecLimits = .standard
    ) -> PeerFrameDecodeResult {
        bytes.withUnsafeBytes { decodeFrame(from: $0, at: offset, limits: limits) }
    }

    /// Decodes frame after frame from `offset` until the bytes run out (a partial last frame
    /// is left for the next read) or a frame is invalid.
    /// - Precondition: `0 <= offset <= bytes.count`.
    public static func decodeFrames(
        from bytes: UnsafeRawBufferPointer, at offset: Int = 0, limits: PeerCodecLimits = .standard
    ) -> PeerFrameBatch {
        var batch = PeerFrameBatch()
        var position = offset
        // Every `.frame` consumes at least `lengthPrefixLength + headerLength` bytes, so the
        // loop ends after at most `bytes.count / 14` frames.
        while true {
            switch decodeFrame(from: bytes, at: position, limits: limits) {
            case .frame(let envelope, let consumed):
                batch.envelopes.append(envelope)
                position += consumed
                batch.consumed += consumed
            case .needMoreBytes:
                return batch
            case .invalid(let reason):
                batch.invalidReason = reason
                return batch
            }
        }
    }

    /// `decodeFrames(from:at:limits:)` over an array.
    /// - Precondition: `0 <= offset <= bytes.count`.
    public static func decodeFrames(
        from bytes: [UInt8], at offset: Int = 0, limits: PeerCodecLimits = .standard
    ) -> PeerFrameBatch {
        bytes.withUnsafeBytes { decodeFrames(from: $0, at: offset, limits: limits) }
    }
}

/// The outcome of `PeerFrameCodec.decodeFrame`.
public enum PeerFrameDecodeResult: Hashable, Sendable {
    /// A valid frame, and the number of bytes it occupies (length prefix included).
    case frame(Envelope, consumed: Int)
    /// The bytes so far are a valid prefix of a frame (or empty): read more and decode again
    /// from the same offset.
    case needMoreBytes
    /// Not a frame of this protocol: close the connection with `reason`.
    case invalid(reason: String)
}

/// The frames `PeerFrameCodec.decodeFrames` found, in order.
public struct PeerFrameBatch: Hashable, Sendable {
    /// The decoded envelopes.
    public var envelopes: [Envelope] = []
    /// Bytes occupied by `envelopes`; the next frame starts this far after the offset decoded from.
    public var consumed: Int = 0
    /// Set when decoding stopped at an invalid frame (the connection must be closed); nil when
    /// it stopped for lack of bytes.
    public var invalidReason: String?

    public init() {}
}

/// Why a message cannot be encoded: it breaks the `PeerCodecLimits` its receiver enforces.
public struct PeerEncodingError: Error, Hashable, Sendable {
    /// What was over which limit, for the log.
    public var reason: String

    public init(_ reason: String) { self.reason = reason }
}
