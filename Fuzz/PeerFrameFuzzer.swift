// libFuzzer entry point for `PeerFrameCodec.decodeFrame` (and `PeerHello.decode`). Built by Fuzz/run-peer-fuzzer.sh
// into module SynodTransport together with the codec sources (it is not part of the package).
//
// The first input byte selects a mode:
// - bit 0 clear: the rest is decoded as it is, the way a connection reads a hostile peer;
// - bit 0 set: before decoding, every frame header is repaired (version 1, a known type, a
//   length clamped to the bytes left), so the fuzzer spends its time in the body parser
//   instead of rediscovering the header checks;
// - bit 1 set: decode with tight limits (a few commands, entries and bytes), so the limit
//   checks are reached by small inputs too.
//
// Every mode checks what the unit tests check, and traps on a violation, which libFuzzer
// reports as a crash with the input saved: decoding never traps or reads outside the input
// (AddressSanitizer), the frame loop always advances or stops, every decoded frame re-encodes
// to exactly its bytes, `decodeFrames` agrees with `decodeFrame`, and a decoded frame cut
// short by one byte asks for more bytes.

import SynodCore

private let tightLimits = PeerCodecLimits(
    frameBytesMax: 512, commandsPerValueMax: 3, entriesPerMessageMax: 3, payloadBytesMax: 16, snapshotBytesMax: 32)

@_cdecl("LLVMFuzzerTestOneInput")
public func peerFrameFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    guard let mode = input.first else { return 0 }
    var bytes = [UInt8](input[1...])
    if mode & 1 != 0 { repairHeaders(&bytes) }
    let limits = mode & 2 != 0 ? tightLimits : .standard
    // Decode from a copy of exactly the bytes, so AddressSanitizer flags any read past them.
    let exact = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 1)
    defer { exact.deallocate() }
    bytes.withUnsafeBytes { exact.copyMemory(from: $0) }
    decodeEveryFrame(UnsafeRawBufferPointer(exact), limits: limits)
    checkHello(UnsafeRawBufferPointer(exact))
    return 0
}

/// The connection hello, decoded from the same bytes: total, exact, and incremental.
private func checkHello(_ bytes: UnsafeRawBufferPointer) {
    switch PeerHello.decode(from: bytes) {
    case .hello(let hello):
        precondition(hello.encoded().elementsEqual(bytes[0..<PeerHello.encodedLength]), "a hello does not re-encode to its bytes")
        let cut = UnsafeRawBufferPointer(rebasing: bytes[0..<(PeerHello.encodedLength - 1)])
        precondition(PeerHello.decode(from: cut) == .needMoreBytes, "a hello cut short is not .needMoreBytes")
    case .needMoreBytes:
        precondition(bytes.count < PeerHello.encodedLength, "\(bytes.count) bytes are enough for a hello")
    case .invalid(let reason):
        precondition(!reason.isEmpty, "empty hello rejection reason")
    }
}

/// Decodes frame after frame from offset 0 until a result that is not a frame.
private func decodeEveryFrame(_ bytes: UnsafeRawBufferPointer, limits: PeerCodecLimits) {
    var offset = 0
    var decoded: [Envelope] = []
    let frameLengthMin = PeerFrameCodec.lengthPrefixLength + PeerFrameCodec.headerLength
    // A frame is at least 14 bytes, so more steps than this means the loop does not advance.
    for _ in 0...(bytes.count / frameLengthMin + 1) {
        let result = PeerFrameCodec.decodeFrame(from: bytes, at: offset, limits: limits)
        guard case .frame(let envelope, let consumed) = result else {
            let batch = PeerFrameCodec.decodeFrames(from: bytes, limits: limits)
            precondition(batch.envelopes == decoded && batch.consumed == offset, "decodeFrames disagrees with decodeFrame")
            if case .invalid(let reason) = result {
                precondition(batch.invalidReason == reason && !reason.isEmpty, "invalid reasons disagree")
            } else {
                precondition(batch.invalidReason == nil, "decodeFrames found an invalid frame decodeFrame did not")
            }
            return
        }
        precondition(consumed >= frameLengthMin && consumed <= bytes.count - offset, "frame length \(consumed) at \(offset) of \(bytes.count)")
        var reencoded: [UInt8] = []
        do {
            try PeerFrameCodec.encode(envelope, into: &reencoded, limits: limits)
        } catch {
            preconditionFailure("a decoded \(envelope.message.kind) breaks the limits it was decoded with: \(error.reason)")
        }
        precondition(reencoded.elementsEqual(bytes[offset..<(offset + consumed)]), "\(envelope.message.kind) at \(offset) does not re-encode to its frame")
        let cut = UnsafeRawBufferPointer(rebasing: bytes[0..<(offset + consumed - 1)])
        precondition(PeerFrameCodec.decodeFrame(from: cut, at: offset, limits: limits) == .needMoreBytes, "a frame cut short is not .needMoreBytes")
        decoded.append(envelope)
        offset += consumed
    }
    preconditionFailure("the decode loop did not stop")
}

/// Gives each frame a valid version, a known type and a length that fits in `bytes`.
private func repairHeaders(_ bytes: inout [UInt8]) {
    let prefix = PeerFrameCodec.lengthPrefixLength
    var offset = 0
    while bytes.count - offset >= prefix + PeerFrameCodec.headerLength {
        var length = Int(bytes[offset]) | Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2]) << 16 | Int(bytes[offset + 3]) << 24
        let available = bytes.count - offset - prefix
        if length > available || length < PeerFrameCodec.headerLength {
            length = PeerFrameCodec.headerLength + length % (available - PeerFrameCodec.headerLength + 1)
        }
        for index in 0..<4 { bytes[offset + index] = UInt8(truncatingIfNeeded: length >> (8 * index)) }
        bytes[offset + 4] = PeerFrameCodec.protocolVersion
        bytes[offset + 5] = 1 + bytes[offset + 5] % 12
        offset += prefix + length
    }
}
