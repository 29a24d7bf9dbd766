// libFuzzer entry point for `RecordCodec.decodeFrame`. Built by Fuzz/run-record-fuzzer.sh
// into module SynodStore together with the codec sources (it is not part of the package).
//
// The first input byte selects a mode:
// - even: the rest is decoded as it is, the way recovery reads a damaged segment;
// - odd: before decoding, every frame whose length fits has its CRC and trailer rewritten to
//   be valid. Mutations almost never produce a matching CRC, so without this mode the fuzzer
//   would stop at the checksum and never explore payload parsing (versions, tags, counts).
//
// Both modes check what the unit tests check, and trap on a violation, which libFuzzer
// reports as a crash with the input saved: decoding never traps or reads outside the input
// (AddressSanitizer), the frame loop always advances or stops, and every decoded record
// re-encodes to exactly the bytes of its frame.

import SynodCore

@_cdecl("LLVMFuzzerTestOneInput")
public func recordDecoderFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    guard let mode = input.first else { return 0 }
    let body = UnsafeRawBufferPointer(rebasing: input[1...])
    if mode & 1 == 0 {
        // Decode from a copy of exactly `body`, so AddressSanitizer flags any read past it.
        let exact = UnsafeMutableRawBufferPointer.allocate(byteCount: body.count, alignment: 1)
        defer { exact.deallocate() }
        exact.copyMemory(from: body)
        decodeEveryFrame(UnsafeRawBufferPointer(exact))
    } else {
        var bytes = [UInt8](body)
        repairFrames(&bytes)
        bytes.withUnsafeBytes { decodeEveryFrame($0) }
    }
    return 0
}

/// Decodes frame after frame from offset 0 until a result that is not a record.
private func decodeEveryFrame(_ bytes: UnsafeRawBufferPointer) {
    var offset = 0
    // A frame is at least 11 bytes, so more steps than this means the loop does not advance.
    for _ in 0...(bytes.count / (RecordCodec.frameOverhead + 1)) {
        guard case .record(let record, let frameLength) = RecordCodec.decodeFrame(bytes, at: offset) else { return }
        precondition(frameLength > RecordCodec.frameOverhead && frameLength <= bytes.count - offset, "frame length \(frameLength) at \(offset) of \(bytes.count)")
        var reencoded: [UInt8] = []
        RecordCodec.append(record, to: &reencoded)
        precondition(reencoded.elementsEqual(bytes[offset..<(offset + frameLength)]), "\(record) at \(offset) does not re-encode to its frame")
        offset += frameLength
    }
    preconditionFailure("the decode loop did not stop")
}

/// Gives each frame that fits in `bytes` a valid CRC and trailer, walking frame by frame.
private func repairFrames(_ bytes: inout [UInt8]) {
    var offset = 0
    while bytes.count - offset >= RecordCodec.frameOverhead {
        let length = Int(bytes[offset]) | Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2]) << 16 | Int(bytes[offset + 3]) << 24
        let end = offset + RecordCodec.frameOverhead + length
        guard end <= bytes.count else { return }
        bytes[end - 1] = 0xA5
        let crc = bytes.withUnsafeBytes { CRC32C.update(0, UnsafeRawBufferPointer(rebasing: $0[(offset + 8)..<(end - 1)])) }
        for index in 0..<4 { bytes[offset + 4 + index] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(index))) }
        offset = end
    }
}
