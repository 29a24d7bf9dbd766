#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only shared mapping of part of a file (`StorageFile.mapForReading`), unmapped when
/// released. Reading it faults pages in from the page cache; `dropPages(below:)` gives back
/// those a forward reader is done with, so a large file read once does not stay resident in
/// the process (they remain in the page cache, which the kernel reclaims as it needs).
public final class MappedFileRegion {
    private let mapping: UnsafeMutableRawPointer
    private let mappingLength: Int
    /// Where the asked-for bytes start in the mapping (mappings start on a page boundary).
    private let lead: Int
    public let count: Int
    private var dropped = 0
    private static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    init?(descriptor: Int32, offset: UInt64, count: Int) {
        guard count > 0, let start = Int(exactly: offset) else { return nil }
        let pageStart = start - start % Self.pageSize
        lead = start - pageStart
        mappingLength = lead + count
        guard let address = mmap(nil, mappingLength, PROT_READ, MAP_SHARED, descriptor, off_t(pageStart)),
              address != MAP_FAILED else { return nil }
        mapping = address
        self.count = count
    }

    deinit { munmap(mapping, mappingLength) }

    /// The asked-for bytes; valid while this region lives.
    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: mapping + lead, count: count) }

    /// Runs `body` over the `count` bytes of a file: through the mapping `map` gives (pages
    /// dropped as `body` says it is done with them), or, when there is none, over what `read`
    /// returns; nil when that fails too.
    static func withMappingOrBytes<Result>(count: Int, map: () -> MappedFileRegion?, read: () -> [UInt8]?,
                                           _ body: (UnsafeRawBufferPointer, _ doneBelow: (Int) -> Void) -> Result) -> Result? {
        if count == 0 { return body(UnsafeRawBufferPointer(start: nil, count: 0), { _ in }) }
        if let region = map() { return body(region.bytes, { region.dropPages(below: $0) }) }
        guard let bytes = read() else { return nil }
        return bytes.withUnsafeBytes { body($0, { _ in }) }
    }

    /// Drops the resident pages wholly before `offset` (relative to `bytes`).
    public func dropPages(below offset: Int) {
        let end = lead + min(max(0, offset), count)
        let pages = end - end % Self.pageSize
        guard pages > dropped else { return }
        _ = madvise(mapping + dropped, pages - dropped, MADV_DONTNEED)
        dropped = pages
    }
}
