import Foundation

/// A malformed line in etcdctl's transaction text format.
public struct SynodTxnScriptError: Error, Sendable, Hashable, CustomStringConvertible {
    /// 1-based line number in the input.
    public var line: Int
    /// The offending line.
    public var text: String
    /// What is wrong with it.
    public var reason: String

    public init(line: Int, text: String, reason: String) {
        self.line = line
        self.text = text
        self.reason = reason
    }

    public var description: String { "line \(line): \(reason): \(text)" }
}

/// Parser for etcdctl's non-interactive `txn` input:
///
/// ```text
/// value("k") = "v"
/// version("counter") > "1"
///
/// put k "new value"
/// get counter
///
/// del k
/// ```
///
/// Three sections separated by blank lines: compares, operations run on success, operations run
/// on failure. A missing section is empty.
///
/// Compares are `TARGET("KEY") OP "VALUE"` with TARGET one of `value`/`val`, `version`/`ver`,
/// `create`/`c` (create revision), `mod`/`m` (mod revision), `lease` (hexadecimal lease ID),
/// and OP one of `=`, `!=`, `<`, `>`. Keys and values are Go-style quoted strings
/// (`"..."` with backslash escapes, or `` `raw` ``); numeric values may also be unquoted.
///
/// Operations are command lines split like a shell (double quotes with escapes, single quotes
/// literal): `put KEY VALUE [--lease=HEX] [--prev-kv] [--ignore-value] [--ignore-lease]`,
/// `get KEY [RANGE_END] [--prefix] [--from-key] [--limit=N] [--rev=N] [--keys-only]
/// [--count-only] [--serializable]`, `del KEY [RANGE_END] [--prefix] [--from-key] [--prev-kv]`.
public enum SynodTxnScript {
    /// Parses a whole script.
    public static func parse(_ text: String) throws(SynodTxnScriptError) -> Etcdserverpb_TxnRequest {
        // "\r\n" is one Character in Swift, so split on both forms.
        var lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
            .map { line -> String in line.hasSuffix("\r") ? String(line.dropLast()) : String(line) }
        if lines.last == "" { lines.removeLast() }
        return try parse(lines: lines)
    }

    /// Parses a script given as lines (without their line terminators).
    public static func parse(lines: [String]) throws(SynodTxnScriptError) -> Etcdserverpb_TxnRequest {
        var request = Etcdserverpb_TxnRequest()
        var section = 0
        for (offset, line) in lines.enumerated() {
            let number = offset + 1
            if line.allSatisfy(\.isWhitespace) {
                section += 1
                continue
            }
            switch section {
            case 0:
                request.compare.append(try parseCompare(line, line: number))
            case 1:
                request.success.append(try parseOperation(line, line: number))
            case 2:
                request.failure.append(try parseOperation(line, line: number))
            default:
                throw SynodTxnScriptError(
                    line: number, text: line, reason: "unexpected input after the failure operations")
            }
        }
        return request
    }

    // MARK: - Compares

    /// Parses one compare line such as `mod("key") > "3"`.
    public static func parseCompare(_ text: String, line: Int = 1) throws(SynodTxnScriptError) -> Etcdserverpb_Compare {
        func fail(_ reason: String) -> SynodTxnScriptError {
            SynodTxnScriptError(line: line, text: text, reason: "malformed comparison (\(reason))")
        }
        var scanner = Scanner(Array(text.unicodeScalars))
        scanner.skipSpaces()
        let target = scanner.take { $0 != "(" && !$0.properties.isWhitespace }
        scanner.skipSpaces()
        guard scanner.consume("(") else { throw fail("expected TARGET(\"KEY\")") }
        scanner.skipSpaces()
        guard let key = try scanner.quoted(fail) else { throw fail("the key must be a quoted string") }
        scanner.skipSpaces()
        guard scanner.consume(")") else { throw fail("expected ')' after the key") }
        scanner.skipSpaces()
        let op = scanner.take { !$0.properties.isWhitespace && $0 != "\"" && $0 != "`" }
        scanner.skipSpaces()
        let value: String
        if let quoted = try scanner.quoted(fail) {
            value = quoted
        } else {
            value = scanner.take { !$0.properties.isWhitespace }
            if value.isEmpty { throw fail("missing value") }
        }
        scanner.skipSpaces()
        guard scanner.atEnd else { throw fail("unexpected text after the value") }

        let result: Etcdserverpb_Compare.CompareResult
        switch op {
        case "=", "==": result = .equal
        case "!=": result = .notEqual
        case "<": result = .less
        case ">": result = .greater
        case "": throw fail("missing operator")
        default: throw fail("unknown operator '\(op)'; use =, !=, < or >")
        }
        func integer(radix: Int) throws(SynodTxnScriptError) -> Int64 {
            guard let number = Int64(value, radix: radix) else {
                throw fail("'\(value)' is not a \(radix == 16 ? "hexadecimal " : "")integer")
            }
            return number
        }
        switch target {
        case "ver", "version": return .version(key, result, try integer(radix: 10))
        case "c", "create": return .createRevision(key, result, try integer(radix: 10))
        case "m", "mod": return .modRevision(key, result, try integer(radix: 10))
        case "val", "value": return .value(key, result, value)
        case "lease": return .lease(key, result, try integer(radix: 16))
        case "": throw fail("missing target")
        default: throw fail("unknown target '\(target)'; use value, version, create, mod or lease")
        }
    }

    // MARK: - Operations

    /// Parses one operation line such as `put k "v"`, `get k --prefix` or `del k`.
    public static func parseOperation(_ text: String, line: Int = 1) throws(SynodTxnScriptError) -> Etcdserverpb_RequestOp {
        func fail(_ reason: String) -> SynodTxnScriptError {
            SynodTxnScriptError(line: line, text: text, reason: "malformed operation (\(reason))")
        }
        let words = try splitArguments(text, fail)
        guard let command = words.first else { throw fail("empty operation") }
        var positional: [String] = []
        var flags: [String: String?] = [:]
        var index = 1
        while index < words.count {
            let word = words[index]
            index += 1
            if word.hasPrefix("--"), word.count > 2 {
                let body = word.dropFirst(2)
                if let equals = body.firstIndex(of: "=") {
                    flags[String(body[..<equals])] = String(body[body.index(after: equals)...])
                } else {
                    flags[String(body)] = .some(nil)
                }
            } else {
                positional.append(word)
            }
        }
        // Flags taking a value also accept it as the next word; collect those first.
        func valueFlag(_ name: String) throws(SynodTxnScriptError) -> String? {
            guard let entry = flags.removeValue(forKey: name) else { return nil }
            if let value = entry { return value }
            throw fail("--\(name) needs a value (--\(name)=VALUE)")
        }
        func boolFlag(_ name: String) throws(SynodTxnScriptError) -> Bool {
            guard let entry = flags.removeValue(forKey: name) else { return false }
            switch entry {
            case nil, "true"?: return true
            case "false"?: return false
            case let other?: throw fail("--\(name) takes no value, got '\(other)'")
            }
        }
        func int(_ name: String, radix: Int = 10) throws(SynodTxnScriptError) -> Int64 {
            guard let text = try valueFlag(name) else { return 0 }
            guard let number = Int64(text, radix: radix) else { throw fail("--\(name): '\(text)' is not a number") }
            return number
        }
        func finish() throws(SynodTxnScriptError) {
            if let unknown = flags.keys.sorted().first { throw fail("unknown flag --\(unknown) for \(command)") }
        }

        switch command {
        case "put":
            let lease = try int("lease", radix: 16)
            let prevKV = try boolFlag("prev-kv")
            let ignoreValue = try boolFlag("ignore-value")
            let ignoreLease = try boolFlag("ignore-lease")
            try finish()
            let expected = ignoreValue ? 1 : 2
            guard positional.count == expected else {
                throw fail(ignoreValue ? "put --ignore-value takes exactly one key" : "put takes exactly a key and a value")
            }
            var put = Etcdserverpb_PutRequest()
            put.key = positional[0].synodBytes
            if !ignoreValue { put.value = positional[1].synodBytes }
            put.lease = lease
            put.prevKv = prevKV
            put.ignoreValue = ignoreValue
            put.ignoreLease = ignoreLease
            var op = Etcdserverpb_RequestOp()
            op.request = .requestPut(put)
            return op
        case "get":
            let prefix = try boolFlag("prefix")
            let fromKey = try boolFlag("from-key")
            var range = Etcdserverpb_RangeRequest()
            range.limit = try int("limit")
            range.revision = try int("rev")
            range.keysOnly = try boolFlag("keys-only")
            range.countOnly = try boolFlag("count-only")
            range.serializable = try boolFlag("serializable")
            try finish()
            let (key, end) = try keyAndEnd(positional, prefix: prefix, fromKey: fromKey, command: command, fail)
            range.key = key
            range.rangeEnd = end
            var op = Etcdserverpb_RequestOp()
            op.request = .requestRange(range)
            return op
        case "del", "delete":
            let prefix = try boolFlag("prefix")
            let fromKey = try boolFlag("from-key")
            var delete = Etcdserverpb_DeleteRangeRequest()
            delete.prevKv = try boolFlag("prev-kv")
            try finish()
            let (key, end) = try keyAndEnd(positional, prefix: prefix, fromKey: fromKey, command: command, fail)
            delete.key = key
            delete.rangeEnd = end
            var op = Etcdserverpb_RequestOp()
            op.request = .requestDeleteRange(delete)
            return op
        default:
            throw fail("unknown operation '\(command)'; use put, get or del")
        }
    }

    private static func keyAndEnd(
        _ positional: [String], prefix: Bool, fromKey: Bool, command: String,
        _ fail: (String) -> SynodTxnScriptError
    ) throws(SynodTxnScriptError) -> (Data, Data) {
        guard (1...2).contains(positional.count) else { throw fail("\(command) takes a key and an optional range end") }
        if prefix && fromKey { throw fail("--prefix and --from-key cannot be combined") }
        if positional.count == 2 && (prefix || fromKey) {
            throw fail("a range end cannot be combined with --prefix or --from-key")
        }
        let end: (any SynodByteString)? = fromKey ? Data([0]) : (positional.count == 2 ? positional[1] : nil)
        let range = SynodClient.range(key: positional[0].synodBytes, rangeEnd: end, prefix: prefix)
        return (range.key, range.rangeEnd)
    }

    /// Splits a line like a shell: whitespace separates words, `"..."` allows backslash escapes,
    /// `'...'` is literal.
    static func splitArguments(
        _ text: String, _ fail: (String) -> SynodTxnScriptError
    ) throws(SynodTxnScriptError) -> [String] {
        var scanner = Scanner(Array(text.unicodeScalars))
        var words: [String] = []
        while true {
            scanner.skipSpaces()
            if scanner.atEnd { return words }
            var word = String.UnicodeScalarView()
            while let c = scanner.peek, !c.properties.isWhitespace {
                if c == "\"" {
                    guard let quoted = try scanner.quoted(fail) else { throw fail("unterminated quote") }
                    word.append(contentsOf: quoted.unicodeScalars)
                } else if c == "'" {
                    scanner.advance()
                    let literal = scanner.take { $0 != "'" }
                    guard scanner.consume("'") else { throw fail("unterminated single quote") }
                    word.append(contentsOf: literal.unicodeScalars)
                } else {
                    word.append(c)
                    scanner.advance()
                }
            }
            words.append(String(word))
        }
    }
}

/// A cursor over unicode scalars for the txn script parser.
private struct Scanner {
    let scalars: [Unicode.Scalar]
    var index = 0

    init(_ scalars: [Unicode.Scalar]) { self.scalars = scalars }

    var atEnd: Bool { index >= scalars.count }
    var peek: Unicode.Scalar? { atEnd ? nil : scalars[index] }

    mutating func advance() { index += 1 }

    mutating func skipSpaces() {
        while let c = peek, c.properties.isWhitespace { index += 1 }
    }

    mutating func consume(_ c: Unicode.Scalar) -> Bool {
        guard peek == c else { return false }
        index += 1
        return true
    }

    mutating func take(while predicate: (Unicode.Scalar) -> Bool) -> String {
        var out = String.UnicodeScalarView()
        while let c = peek, predicate(c) {
            out.append(c)
            index += 1
        }
        return String(out)
    }

    /// Reads a Go-style quoted string (`"..."` with escapes or `` `raw` ``); nil if the next
    /// character does not open one.
    mutating func quoted(
        _ fail: (String) -> SynodTxnScriptError
    ) throws(SynodTxnScriptError) -> String? {
        guard let open = peek, open == "\"" || open == "`" else { return nil }
        index += 1
        var out = String.UnicodeScalarView()
        if open == "`" {
            out.append(contentsOf: take { $0 != "`" }.unicodeScalars)
            guard consume("`") else { throw fail("unterminated raw string") }
            return String(out)
        }
        while let c = peek {
            index += 1
            if c == "\"" { return String(out) }
            guard c == "\\" else {
                out.append(c)
                continue
            }
            guard let escaped = peek else { break }
            index += 1
            switch escaped {
            case "n": out.append("\n")
            case "t": out.append("\t")
            case "r": out.append("\r")
            case "0": out.append("\0")
            case "\\", "\"", "'": out.append(escaped)
            case "x":
                let hex = String(String.UnicodeScalarView(scalars[index..<min(index + 2, scalars.count)]))
                guard hex.count == 2, let value = UInt8(hex, radix: 16), value < 0x80 else {
                    throw fail("invalid \\x escape (only \\x00-\\x7f are supported)")
                }
                let scalar = Unicode.Scalar(value)
                index += 2
                out.append(scalar)
            default:
                throw fail("unknown escape \\\(escaped)")
            }
        }
        throw fail("unterminated quoted string")
    }
}
