#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

// The two syntaxes of `synod serve --config-file`, flat subsets of YAML and TOML, and the
// lexing they share (quotes, escapes, one-line lists).
extension ConfigFile {
    // MARK: YAML

    /// Parses the flat YAML subset.
    public static func parseYAML(_ text: String, path: String) throws(ConfigFileError) -> [String: String] {
        var result: [String: String] = [:]
        for (index, rawLine) in lines(of: text).enumerated() {
            let lineNumber = index + 1
            func fail(_ message: String) -> ConfigFileError {
                ConfigFileError(path: path, line: lineNumber, message: message)
            }
            let content = trimmed(rawLine)
            if content.isEmpty || content.hasPrefix("#") { continue }
            if content == "---" && index == firstMeaningfulLine(of: text) { continue }
            if content == "..." { break }
            if let first = rawLine.first, first == " " || first == "\t" {
                throw fail("nested values are not supported; expected 'key: value' at the start of the line")
            }
            if content.hasPrefix("- ") || content == "-" {
                throw fail("lists are not supported here; expected 'key: value'")
            }

            let (rawKey, rest) = try splitYAMLKey(content, fail: fail)
            let key = normalizeKey(try unquoteKey(rawKey, fail: fail))
            guard isValidKey(key) else { throw fail("invalid key '\(rawKey)'") }

            let value = try yamlValue(stripYAMLComment(rest, fail: fail), fail: fail)
            if result[key] != nil { throw fail("duplicate key '\(key)'") }
            result[key] = value
        }
        return result
    }

    /// Splits `key: rest` at the first `: ` (or a trailing `:`) outside quotes.
    private static func splitYAMLKey(
        _ line: Substring,
        fail: (String) -> ConfigFileError
    ) throws(ConfigFileError) -> (Substring, Substring) {
        var quote: Character?
        var index = line.startIndex
        while index < line.endIndex {
            let char = line[index]
            if let open = quote {
                if char == open { quote = nil }
            } else if (char == "\"" || char == "'") && index == line.startIndex {
                quote = char
            } else if char == ":" {
                let next = line.index(after: index)
                if next == line.endIndex || line[next] == " " || line[next] == "\t" {
                    let key = trimmed(line[line.startIndex..<index])
                    if key.isEmpty { throw fail("expected 'key: value'") }
                    return (key, line[next...])
                }
            } else if char == "#" && index > line.startIndex
                && (line[line.index(before: index)] == " " || line[line.index(before: index)] == "\t")
            {
                break
            }
            index = line.index(after: index)
        }
        throw fail("expected 'key: value'")
    }

    /// Removes a trailing ` # comment` that is not inside quotes.
    private static func stripYAMLComment(
        _ text: Substring,
        fail: (String) -> ConfigFileError
    ) throws(ConfigFileError) -> Substring {
        let value = trimmed(text)
        guard let first = value.first else { return value }
        if first == "\"" || first == "'" {
            // A quoted scalar: find its end, then only a comment may follow.
            let end = try closingQuote(of: value, fail: fail)
            let after = trimmed(value[value.index(after: end)...])
            if !after.isEmpty && !after.hasPrefix("#") {
                throw fail("unexpected text after quoted value: '\(after)'")
            }
            return value[...end]
        }
        var previous: Character = " "
        for index in value.indices {
            if value[index] == "#" && (previous == " " || previous == "\t") {
                return trimmed(value[..<index])
            }
            previous = value[index]
        }
        return value
    }

    /// Interprets a YAML scalar (or a one-line flow sequence of scalars).
    private static func yamlValue(
        _ value: Substring,
        fail: (String) -> ConfigFileError
    ) throws(ConfigFileError) -> String {
        guard let first = value.first else { return "" }
        switch first {
        case "\"":
            return try unescapeDoubleQuoted(value.dropFirst().dropLast(), fail: fail)
        case "'":
            return replacing(value.dropFirst().dropLast(), "''", with: "'")
        case "[":
            guard value.last == "]" else { throw fail("unterminated list; expected ']'") }
            let items = try splitList(value.dropFirst().dropLast(), fail: fail)
            var parts: [String] = []
            for item in items {
                if item.first == "[" || item.first == "{" { throw fail("nested lists are not supported") }
                parts.append(try yamlValue(item, fail: fail))
            }
            return parts.joined(separator: ",")
        case "{":
            throw fail("nested maps are not supported; expected a single value")
        case "|", ">":
            throw fail("multi-line strings are not supported")
        case "&", "*", "!":
            throw fail("anchors, aliases and tags are not supported")
        default:
            let plain = String(value)
            switch plain {
            case "~", "null", "Null", "NULL": return ""
            case "True", "TRUE": return "true"
            case "False", "FALSE": return "false"
            default: return plain
            }
        }
    }

    // MARK: TOML

    /// Parses the flat TOML subset.
    public static func parseTOML(_ text: String, path: String) throws(ConfigFileError) -> [String: String] {
        var result: [String: String] = [:]
        for (index, rawLine) in lines(of: text).enumerated() {
            let lineNumber = index + 1
            func fail(_ message: String) -> ConfigFileError {
                ConfigFileError(path: path, line: lineNumber, message: message)
            }
            let content = trimmed(rawLine)
            if content.isEmpty || content.hasPrefix("#") { continue }
            if content.hasPrefix("[") {
                throw fail("tables are not supported; the config file is flat 'key = value' lines")
            }
            guard let equals = content.firstIndex(of: "=") else {
                throw fail("expected 'key = value'")
            }
            let rawKey = trimmed(content[..<equals])
            if rawKey.isEmpty { throw fail("expected 'key = value'") }
            let key = normalizeKey(try unquoteKey(rawKey, fail: fail))
            guard isValidKey(key) else { throw fail("invalid key '\(rawKey)'") }

            let (value, rest) = try tomlValue(trimmed(content[content.index(after: equals)...]), fail: fail)
            let tail = trimmed(rest)
            if !tail.isEmpty && !tail.hasPrefix("#") {
                throw fail("unexpected text after value: '\(tail)'")
            }
            if result[key] != nil { throw fail("duplicate key '\(key)'") }
            result[key] = value
        }
        return result
    }

    /// Reads one TOML value from the start of `text`; returns it and what follows.
    private static func tomlValue(
        _ text: Substring,
        fail: (String) -> ConfigFileError
    ) throws(ConfigFileError) -> (String, Substring) {
        guard let first = text.first else { throw fail("expected a value after '='") }
        switch first {
        case "\"":
            if text.hasPrefix("\"\"\"") { throw fail("multi-line strings are not supported") }
            let end = try closingQuote(of: text, fail: fail)
            let inner = text[text.index(after: text.startIndex)..<end]
            return (try unescapeDoubleQuoted(inner, fail: fail), text[text.index(after: end)...])
        case "'":
            if text.hasPrefix("'''") { throw fail("multi-line strings are not supported") }
            let end = try closingQuote(of: text, fail: fail)
            return (String(text[text.index(after: text.startIndex)..<end]), text[text.index(after: end)...])
        case "[":
            var depth = 0
            var quote: Character?
            var escaped = false
            var close: Substring.Index?
            for index in text.indices {
                let char = text[index]
                if let open = quote {
                    if escaped { escaped = false } else if char == "\\" && open == "\"" { escaped = true } else if char == open { quote = nil }
                    continue
                }
                if char == "\"" || char == "'" { quote = char } else if char == "[" { depth += 1 } else if char == "]" {
                    depth -= 1
                    if depth == 0 { close = index; break }
                }
            }
            guard let close else { throw fail("unterminated array; expected ']'") }
            var parts: [String] = []
            for item in try splitList(text[text.index(after: text.startIndex)..<close], fail: fail) {
                if item.first == "[" || item.first == "{" { throw fail("nested arrays and tables are not supported") }
                let (part, rest) = try tomlValue(item, fail: fail)
                if !trimmed(rest).isEmpty { throw fail("unexpected text in array: '\(trimmed(rest))'") }
                parts.append(part)
            }
            return (parts.joined(separator: ","), text[text.index(after: close)...])
        case "{":
            throw fail("inline tables are not supported")
        default:
            // A bare value: number, boolean, or a date; ends at whitespace or a comment.
            let end = text.firstIndex { $0 == " " || $0 == "\t" || $0 == "#" } ?? text.endIndex
            let bare = String(text[..<end])
            guard isTOMLBareValue(bare) else {
                throw fail("expected a quoted string, number or boolean, got '\(bare)'")
            }
            return (replacing(Substring(bare), "_", with: ""), text[end...])
        }
    }

    private static func isTOMLBareValue(_ value: String) -> Bool {
        if value == "true" || value == "false" { return true }
        var body = Substring(value)
        if body.first == "+" || body.first == "-" { body = body.dropFirst() }
        guard let first = body.first, first.isASCII, first.isNumber else {
            return ["inf", "nan"].contains(body)
        }
        // Digits with `_`, `.`, exponents, hex/octal/binary prefixes, and dates/times.
        return body.allSatisfy { char in
            char.isASCII && (char.isLetter || char.isNumber || "_.:+-".contains(char))
        }
    }

    // MARK: Shared lexing

    /// Replaces every occurrence of `target` (non-empty) in `text`.
    static func replacing(_ text: Substring, _ target: String, with replacement: String) -> String {
        let target = Array(target)
        guard !target.isEmpty else { return String(text) }
        var out = ""
        var rest = text[...]
        while !rest.isEmpty {
            if rest.starts(with: target) {
                out += replacement
                rest = rest.dropFirst(target.count)
            } else if let first = rest.first {
                out.append(first)
                rest = rest.dropFirst()
            }
        }
        return out
    }

    /// Splits a text into lines on `\n` or `\r\n` (a single Character in Swift).
    static func lines(of text: String) -> [Substring] {
        text.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" }
    }

    private static func firstMeaningfulLine(of text: String) -> Int? {
        lines(of: text).firstIndex { line in
            let content = trimmed(line)
            return !content.isEmpty && !content.hasPrefix("#")
        }
    }

    static func trimmed(_ text: Substring) -> Substring {
        var result = text
        while let first = result.first, first == " " || first == "\t" { result = result.dropFirst() }
        while let last = result.last, last == " " || last == "\t" { result = result.dropLast() }
        return result
    }

    /// The index of the quote that closes the one `text` starts with.
    private static func closingQuote(
        of text: Substring,
        fail: (String) -> ConfigFileError
    ) throws(ConfigFileError) -> Substring.Index {
        guard let open = text.first else { throw fail("expected a quoted string") }
        var index = text.index(after: text.startIndex)
        while index < text.endIndex {
            let char = text[index]
            if open == "\"" && char == "\\" {
                index = text.index(after: index)
                if index == text.endIndex { break }
            } else if char == open {
                // YAML single quotes escape a quote by doubling it.
                let next = text.index(after: index)
                if open == "'" && next < text.endIndex && text[next] == "'" {
                    index = text.index(after: next)
                    continue
                }
                return index
            }
            index = text.index(after: index)
        }
        throw fail("unterminated quoted string")
    }

    /// Splits a list body on commas outside quotes; empty trailing items are dropped.
    private static func splitList(
        _ body: Substring,
        fail: (String) -> ConfigFileError
    ) throws(ConfigFileError) -> [Substring] {
        var items: [Substring] = []
        var start = body.startIndex
        var quote: Character?
        var escaped = false
        var depth = 0
        for index in body.indices {
            let char = body[index]
            if let open = quote {
                if escaped { escaped = false } else if char == "\\" && open == "\"" { escaped = true } else if char == open { quote = nil }
                continue
            }
            switch char {
            case "\"", "'": quote = char
            case "[", "{": depth += 1
            case "]", "}": depth -= 1
            case "," where depth == 0:
                items.append(trimmed(body[start..<index]))
                start = body.index(after: index)
            default: break
            }
        }
        if quote != nil { throw fail("unterminated quoted string") }
        let last = trimmed(body[start...])
        if !last.isEmpty { items.append(last) }
        if items.contains(where: \.isEmpty) { throw fail("empty list item") }
        return items
    }

    /// Resolves the escapes of a double-quoted string (shared by YAML and TOML for the common ones).
    private static func unescapeDoubleQuoted(
        _ text: Substring,
        fail: (String) -> ConfigFileError
    ) throws(ConfigFileError) -> String {
        var out = ""
        var iterator = text.makeIterator()
        while let char = iterator.next() {
            guard char == "\\" else {
                out.append(char)
                continue
            }
            guard let escape = iterator.next() else { throw fail("unterminated escape sequence") }
            switch escape {
            case "\"": out.append("\"")
            case "\\": out.append("\\")
            case "/": out.append("/")
            case "n": out.append("\n")
            case "t": out.append("\t")
            case "r": out.append("\r")
            case "b": out.append("\u{08}")
            case "f": out.append("\u{0C}")
            case "0": out.append("\u{00}")
            case "u", "U":
                let count = escape == "u" ? 4 : 8
                var hex = ""
                for _ in 0..<count {
                    guard let digit = iterator.next() else { throw fail("invalid unicode escape") }
                    hex.append(digit)
                }
                guard let value = UInt32(hex, radix: 16), let scalar = Unicode.Scalar(value) else {
                    throw fail("invalid unicode escape '\\\(escape)\(hex)'")
                }
                out.unicodeScalars.append(scalar)
            default:
                throw fail("unknown escape sequence '\\\(escape)'")
            }
        }
        return out
    }

    private static func unquoteKey(
        _ key: Substring,
        fail: (String) -> ConfigFileError
    ) throws(ConfigFileError) -> String {
        guard let first = key.first, first == "\"" || first == "'" else { return String(key) }
        guard key.count >= 2, key.last == first else { throw fail("unterminated quoted key") }
        return String(key.dropFirst().dropLast())
    }

    private static func isValidKey(_ key: String) -> Bool {
        guard let first = key.unicodeScalars.first, first.properties.isAlphabetic || ("0"..."9").contains(first) else {
            return false
        }
        return key.unicodeScalars.allSatisfy { scalar in
            scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || scalar == "-" || scalar == ".")
        }
    }
}
