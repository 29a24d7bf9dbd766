import Foundation

// The report directory of a `synod chaos` run:
//
//   history.jsonl   every client operation, one JSON object per line (re-checkable later)
//   nemesis.jsonl   every fault window / instant action, one JSON object per line
//   verdict.json    the verdict, machine-readable
//   verdict.txt     the verdict, human-readable (first line = the verdict line)
//   index.html      one self-contained page: timeline, fault windows, tables
//   nodes/<n>.log   node logs (written by the runner; linked from index.html)

/// A report file could not be written or read. The description names the file and the reason.
public struct ChaosReportError: Error, CustomStringConvertible, LocalizedError, Sendable {
    public var path: String
    public var reason: String

    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }

    public var description: String { "\(path): \(reason)" }
    public var errorDescription: String? { description }
}

/// Writes (and reads back) the files of a chaos run's report directory.
public struct ChaosReportWriter: Sendable {
    public let directory: String

    public static let historyFileName = "history.jsonl"
    public static let nemesisFileName = "nemesis.jsonl"
    public static let verdictJSONFileName = "verdict.json"
    public static let verdictTextFileName = "verdict.txt"
    public static let htmlFileName = "index.html"

    public init(directory: String) {
        self.directory = directory
    }

    /// The full path of a file in the report directory.
    public func path(_ fileName: String) -> String {
        if directory.isEmpty { return fileName }
        return directory.hasSuffix("/") ? directory + fileName : directory + "/" + fileName
    }

    // MARK: - Writing

    /// Writes `history.jsonl`: one operation per line, sorted by invocation time then id.
    public func writeHistory(_ operations: [ChaosOperation]) throws {
        let sorted = operations.sorted { ($0.invokedNanos, $0.id) < ($1.invokedNanos, $1.id) }
        try writeLines(sorted, to: path(Self.historyFileName))
    }

    /// Writes `nemesis.jsonl`: one event per line, sorted by start time then id.
    public func writeNemesis(_ events: [NemesisEvent]) throws {
        let sorted = events.sorted { ($0.startNanos, $0.id) < ($1.startNanos, $1.id) }
        try writeLines(sorted, to: path(Self.nemesisFileName))
    }

    /// Writes `verdict.json` (pretty, sorted keys) and `verdict.txt` (human-readable summary).
    public func writeVerdict(_ verdict: ChaosVerdict) throws {
        let jsonPath = path(Self.verdictJSONFileName)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        var data: Data
        do {
            data = try encoder.encode(verdict)
        } catch {
            throw ChaosReportError(path: jsonPath, reason: "cannot encode the verdict: \(error)")
        }
        data.append(0x0A)
        try writeFile(data, to: jsonPath)
        try writeFile(Data(Self.verdictText(verdict).utf8), to: path(Self.verdictTextFileName))
    }

    /// Writes `index.html`: one self-contained page (inline SVG, CSS and a little JS).
    public func writeHTML(operations: [ChaosOperation], nemesis: [NemesisEvent], verdict: ChaosVerdict,
                          nodeNames: [String], title: String) throws {
        let html = ChaosHTMLRenderer(operations: operations, nemesis: nemesis, verdict: verdict,
                                     nodeNames: nodeNames, title: title).render()
        try writeFile(Data(html.utf8), to: path(Self.htmlFileName))
    }

    /// Writes every file of the report (the node logs are the runner's).
    public func writeAll(operations: [ChaosOperation], nemesis: [NemesisEvent], verdict: ChaosVerdict,
                         nodeNames: [String], title: String) throws {
        try writeHistory(operations)
        try writeNemesis(nemesis)
        try writeVerdict(verdict)
        try writeHTML(operations: operations, nemesis: nemesis, verdict: verdict, nodeNames: nodeNames, title: title)
    }

    // MARK: - Reading

    /// Reads a `history.jsonl` back. Blank lines are skipped; a malformed line is an error naming
    /// its (1-based) line number.
    public static func readHistory(from path: String) throws -> [ChaosOperation] {
        try readLines(ChaosOperation.self, from: path)
    }

    /// Reads a `nemesis.jsonl` back (same rules as `readHistory`).
    public static func readNemesis(from path: String) throws -> [NemesisEvent] {
        try readLines(NemesisEvent.self, from: path)
    }

    private static func readLines<T: Decodable>(_ type: T.Type, from path: String) throws -> [T] {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            let reason: String
            if !FileManager.default.fileExists(atPath: path) {
                reason = errnoText(ENOENT)
            } else if isDirectory(path) {
                reason = errnoText(EISDIR)
            } else {
                reason = describe(error)
            }
            throw ChaosReportError(path: path, reason: "cannot read: \(reason)")
        }
        let decoder = JSONDecoder()
        var result: [T] = []
        var lineNumber = 0
        var start = data.startIndex
        while start < data.endIndex {
            lineNumber += 1
            let end = data[start...].firstIndex(of: 0x0A) ?? data.endIndex
            var line = data[start..<end]
            start = end < data.endIndex ? data.index(after: end) : end
            if line.last == 0x0D { line = line.dropLast() }
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
            do {
                result.append(try decoder.decode(T.self, from: line))
            } catch {
                throw ChaosReportError(path: path, reason: "line \(lineNumber): malformed record: \(describe(error))")
            }
        }
        return result
    }

    // MARK: - File plumbing

    private static func isDirectory(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
    }

    private static func errnoText(_ code: Int32) -> String {
        String(cString: strerror(code))
    }

    /// `mkdir -p` with the POSIX reason of the first step that fails.
    private func ensureDirectory() throws {
        if Self.isDirectory(directory) { return }
        if FileManager.default.fileExists(atPath: directory) {
            throw ChaosReportError(path: directory, reason: "exists and is not a directory")
        }
        var missing: [String] = []
        var current = directory
        while !current.isEmpty, !FileManager.default.fileExists(atPath: current) {
            missing.append(current)
            let parent = (current as NSString).deletingLastPathComponent
            if parent == current { break }
            current = parent
        }
        if !current.isEmpty, FileManager.default.fileExists(atPath: current), !Self.isDirectory(current) {
            throw ChaosReportError(path: directory,
                                   reason: "cannot create the report directory: \(current) is not a directory")
        }
        for component in missing.reversed() {
            if mkdir(component, 0o755) != 0 {
                let code = errno
                if code == EEXIST, Self.isDirectory(component) { continue }
                let which = component == directory ? "" : " (\(component))"
                throw ChaosReportError(path: directory,
                                       reason: "cannot create the report directory\(which): \(Self.errnoText(code))")
            }
        }
    }

    /// Writes `data` to a temporary file next to `filePath` and renames it into place.
    private func writeFile(_ data: Data, to filePath: String) throws {
        if !directory.isEmpty { try ensureDirectory() }
        let temporary = filePath + ".tmp-\(ProcessInfo.processInfo.processIdentifier)"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw ChaosReportError(path: filePath, reason: "cannot write: \(Self.errnoText(errno))")
        }
        var failure: Int32 = 0
        data.withUnsafeBytes { (buffer: UnsafeRawBufferPointer) in
            guard let base = buffer.baseAddress else { return }
            var offset = 0
            while offset < buffer.count {
                let written = write(descriptor, base + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    failure = errno
                    return
                }
                offset += written
            }
        }
        if close(descriptor) != 0 && failure == 0 { failure = errno }
        if failure == 0 && rename(temporary, filePath) != 0 { failure = errno }
        if failure != 0 {
            unlink(temporary)
            throw ChaosReportError(path: filePath, reason: "cannot write: \(Self.errnoText(failure))")
        }
    }

    private func writeLines<T: Encodable>(_ records: [T], to filePath: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var data = Data()
        data.reserveCapacity(records.count * 256)
        for record in records {
            do {
                data.append(try encoder.encode(record))
            } catch {
                throw ChaosReportError(path: filePath, reason: "cannot encode a record: \(error)")
            }
            data.append(0x0A)
        }
        try writeFile(data, to: filePath)
    }

    /// A short reason for a Foundation error: the POSIX error text when there is one.
    static func describe(_ error: Error) -> String {
        if let decoding = error as? DecodingError {
            switch decoding {
            case .dataCorrupted(let context):
                return context.debugDescription + codingPathSuffix(context.codingPath)
            case .keyNotFound(let key, let context):
                return "missing field \"\(key.stringValue)\"" + codingPathSuffix(context.codingPath)
            case .typeMismatch(_, let context), .valueNotFound(_, let context):
                return context.debugDescription + codingPathSuffix(context.codingPath)
            @unknown default:
                return "\(decoding)"
            }
        }
        let nsError = error as NSError
        if let underlying = nsError.userInfo[NSUnderlyingErrorKey] as? NSError,
           underlying.domain == NSPOSIXErrorDomain,
           let message = strerror(Int32(underlying.code)) {
            return String(cString: message)
        }
        if nsError.domain == NSPOSIXErrorDomain, let message = strerror(Int32(nsError.code)) {
            return String(cString: message)
        }
        return nsError.localizedDescription
    }

    private static func codingPathSuffix(_ path: [CodingKey]) -> String {
        path.isEmpty ? "" : " (at \(path.map(\.stringValue).joined(separator: ".")))"
    }

    // MARK: - verdict.txt

    /// The human-readable verdict: the verdict line first, then the details.
    public static func verdictText(_ verdict: ChaosVerdict) -> String {
        var out = ""
        out.reserveCapacity(2048)
        out += verdict.line + "\n\n"
        out += "result:        \(verdict.failed ? "FAILED" : "passed")\n"
        out += "seed:          \(verdict.seed)\n"
        out += "duration:      \(formatSeconds(verdict.durationSeconds)) s\n"
        let linearizable = verdict.linearizable.map { $0 ? "true" : "false" } ?? "unknown (check budget exhausted)"
        out += "linearizable:  \(linearizable)\n"
        if !verdict.checkTimedOutKeys.isEmpty {
            out += "check timed out on keys: \(verdict.checkTimedOutKeys.joined(separator: ", "))\n"
        }

        out += "\noperations:\n"
        let statuses = ChaosOperationStatus.allCases.map(\.rawValue)
        var rows: [[String]] = [["kind"] + statuses + ["total"]]
        var columnTotals = [Int](repeating: 0, count: statuses.count + 1)
        for kind in orderedKinds(verdict.operationCounts) {
            let byStatus = verdict.operationCounts[kind] ?? [:]
            var row = [kind]
            var total = 0
            for (index, status) in statuses.enumerated() {
                let count = byStatus[status] ?? 0
                total += count
                columnTotals[index] += count
                row.append(String(count))
            }
            let others = byStatus.filter { !statuses.contains($0.key) }.values.reduce(0, +)
            total += others
            columnTotals[statuses.count] += total
            row.append(String(total))
            rows.append(row)
        }
        rows.append(["total"] + columnTotals.map(String.init))
        out += table(rows, indent: "  ")

        out += "\nnemesis:\n"
        if verdict.nemesisCounts.isEmpty {
            out += "  (none)\n"
        } else {
            let nemesisRows = [["kind", "count"]] + verdict.nemesisCounts.sorted { $0.key < $1.key }
                .map { [$0.key, String($0.value)] }
            out += table(nemesisRows, indent: "  ")
        }

        out += "\nreplica hashes at revision \(verdict.hashRevision) (\(verdict.replicaHashesEqual ? "equal" : "DIFFERENT")):\n"
        if verdict.replicaHashes.isEmpty {
            out += "  (none)\n"
        } else {
            let hashRows = verdict.replicaHashes.sorted { naturalLess($0.key, $1.key) }
                .map { [$0.key, hex32($0.value)] }
            out += table(hashRows, indent: "  ")
        }

        out += "\nalarms:"
        if verdict.alarms.isEmpty {
            out += " none\n"
        } else {
            out += "\n" + verdict.alarms.map { "  " + $0 + "\n" }.joined()
        }

        out += "\nlost acknowledged writes: \(verdict.lostAcknowledgedWrites)\n"
        if !verdict.lostOperationIDs.isEmpty {
            out += "lost operation ids: \(verdict.lostOperationIDs.map(String.init).joined(separator: ", "))\n"
        }

        if let violation = verdict.violation {
            out += "\nviolation:\n"
            for line in violation.split(separator: "\n", omittingEmptySubsequences: false) {
                out += "  " + String(line) + "\n"
            }
        }
        if !verdict.violationOperationIDs.isEmpty {
            out += "violation operation ids: \(verdict.violationOperationIDs.map(String.init).joined(separator: ", "))\n"
        }
        return out
    }

    /// The kinds of `counts` in the usual order (read, write, cas, delete), then any others.
    static func orderedKinds(_ counts: [String: [String: Int]]) -> [String] {
        let known = ChaosOperationKind.allCases.map(\.rawValue)
        return known.filter { counts[$0] != nil } + counts.keys.filter { !known.contains($0) }.sorted()
    }

    private static func table(_ rows: [[String]], indent: String) -> String {
        let columns = rows.map(\.count).max() ?? 0
        var widths = [Int](repeating: 0, count: columns)
        for row in rows {
            for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) }
        }
        var out = ""
        for row in rows {
            var line = indent
            for (index, cell) in row.enumerated() {
                let pad = String(repeating: " ", count: widths[index] - cell.count)
                // The first column is left-aligned (labels), the rest right-aligned (numbers).
                line += index == 0 ? cell + pad : "  " + pad + cell
            }
            while line.last == " " { line.removeLast() }
            out += line + "\n"
        }
        return out
    }

    static func hex32(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return "0x" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits
    }

    /// Seconds with 3 decimals, without `String(format:)`.
    static func formatSeconds(_ seconds: Double) -> String {
        guard seconds.isFinite else { return String(seconds) }
        let millis = Int64((seconds * 1000).rounded())
        let sign = millis < 0 ? "-" : ""
        let magnitude = millis.magnitude
        let fraction = String(magnitude % 1000)
        return sign + String(magnitude / 1000) + "." + String(repeating: "0", count: 3 - fraction.count) + fraction
    }

    /// "n2" < "n10".
    static func naturalLess(_ a: String, _ b: String) -> Bool {
        a.compare(b, options: .numeric) == .orderedAscending
    }
}
