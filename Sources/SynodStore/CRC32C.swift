import CSynodSystem

/// CRC-32C (Castagnoli): polynomial 0x1EDC6F41, processed reflected (0x82F63B78), initial
/// value and final xor 0xFFFFFFFF — the checksum of iSCSI, ext4 and most log formats.
///
/// It guards every write-ahead-log record (see `RecordCodec`). Castagnoli rather than the
/// zlib polynomial because it has a larger Hamming distance at the lengths records have, it
/// detects every single-bit error and every burst up to 32 bits, and CPUs compute it in
/// hardware.
///
/// On x86-64 with SSE4.2 the CPU's CRC32 instruction computes it (`CSynodSystem`), about
/// eight bytes a cycle: a snapshot of 1 GiB is checksummed in well under a second instead of
/// the software loop's three quarters of a second on top of its encoding
/// (`synod bench snapshot`). Elsewhere, and in the tests that compare the two, the software
/// loop: table-driven slicing-by-8, eight bytes per step with eight 256-entry tables.
public enum CRC32C {
    /// Whether `update` uses the CPU's instruction.
    public static let usesHardware = synod_crc32c_hardware() != 0

    /// The reflected polynomial.
    static let polynomial: UInt32 = 0x82F6_3B78

    /// `tables[k * 256 + b]`: the CRC contribution of byte `b` followed by `k` zero bytes.
    /// Table 0 is the classic byte-at-a-time table; table k is table k-1 advanced one byte.
    static let tables: [UInt32] = {
        var tables = [UInt32](repeating: 0, count: 8 * 256)
        for byte in 0..<256 {
            var crc = UInt32(byte)
            for _ in 0..<8 {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ polynomial : crc >> 1
            }
            tables[byte] = crc
        }
        for slice in 1..<8 {
            for byte in 0..<256 {
                let previous = tables[(slice - 1) * 256 + byte]
                tables[slice * 256 + byte] = (previous >> 8) ^ tables[Int(previous & 0xFF)]
            }
        }
        return tables
    }()

    /// The CRC-32C of `bytes`.
    public static func checksum(_ bytes: some Collection<UInt8>) -> UInt32 {
        if let crc = bytes.withContiguousStorageIfAvailable({ update(0, UnsafeRawBufferPointer($0)) }) {
            return crc
        }
        return Array(bytes).withUnsafeBytes { update(0, $0) }
    }

    /// Extends `crc`, the checksum of some bytes `a`, to the checksum of `a` followed by `bytes`.
    ///
    /// `update(0, x)` is `checksum(x)`, and `update(update(0, a), b) == checksum(a + b)`, so a
    /// checksum can be computed over pieces without joining them.
    public static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard usesHardware, let base = bytes.baseAddress, bytes.count > 0 else { return softwareUpdate(crc, bytes) }
        return synod_crc32c_update_hardware(crc, base, UInt(bytes.count))
    }

    /// `update` by the table-driven loop, on any CPU.
    static func softwareUpdate(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        // The register holds the complemented CRC; complementing on the way in and out is what
        // makes the initial value and final xor 0xFFFFFFFF and the function composable.
        var register = ~crc
        let count = bytes.count
        guard count > 0, let base = bytes.baseAddress else { return crc }
        tables.withUnsafeBufferPointer { table in
            var index = 0
            while count - index >= 8 {
                // Bytes in file order are the little-endian reading of the word on any host.
                let word = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: index, as: UInt64.self))
                    ^ UInt64(register)
                let low = UInt32(truncatingIfNeeded: word)
                let high = UInt32(truncatingIfNeeded: word >> 32)
                register = table[7 * 256 + Int(low & 0xFF)]
                    ^ table[6 * 256 + Int((low >> 8) & 0xFF)]
                    ^ table[5 * 256 + Int((low >> 16) & 0xFF)]
                    ^ table[4 * 256 + Int(low >> 24)]
                    ^ table[3 * 256 + Int(high & 0xFF)]
                    ^ table[2 * 256 + Int((high >> 8) & 0xFF)]
                    ^ table[1 * 256 + Int((high >> 16) & 0xFF)]
                    ^ table[Int(high >> 24)]
                index += 8
            }
            while index < count {
                let byte = base.load(fromByteOffset: index, as: UInt8.self)
                register = table[Int((register ^ UInt32(byte)) & 0xFF)] ^ (register >> 8)
                index += 1
            }
        }
        return ~register
    }
}
