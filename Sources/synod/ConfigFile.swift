#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The syntax of a configuration file.
public enum ConfigFileFormat: String, Sendable, Equatable {
    /// A flat YAML subset: `key: value` lines, as in etcd's `--config-file`.
    case yaml
    /// A flat TOML subset: `key = "value"`, `key = 100`, `key = true`.
    case toml
}

/// A problem in a configuration file, located by path and (when known) line.
public struct ConfigFileError: Error, Equatable, Sendable, CustomStringConvertible {
    public var path: String
    /// 1-based line number, or nil for problems with the file as a whole.
    public var line: Int?
    public var message: String

    public init(path: String, line: Int?, message: String) {
        self.path = path
        self.line = line
        self.message = message
    }

    /// `config.toml:3: expected 'key = value'`
    public var description: String {
        if let line { return "\(path):\(line): \(message)" }
        return "\(path): \(message)"
    }
}

/// `synod serve --config-file PATH`: the same keys as the command-line flags, in a flat YAML or
/// TOML file. Keys are normalized (`data_dir` → `data-dir`); values come back as strings, exactly
/// as they would be typed after the flag.
///
/// Supported YAML: `key: value`, `key: "quoted"`, `key: 'quoted'`, `key:` (empty), full-line and
/// trailing `#` comments, a leading `---` document marker, and flow sequences of scalars
/// (`[a, b]`, joined with commas like etcd's list flags). Nested maps, block sequences and
/// multi-line strings are rejected with a line number.
///
/// Supported TOML: `key = "basic string"`, `key = 'literal string'`, integers, floats,
/// `true`/`false`, arrays of those on one line (joined with commas), comments. Tables
/// (`[section]`) are rejected: the file is flat.
public enum ConfigFile {
    // MARK: Loading

    /// Reads and parses the file at `path`; the format comes from the extension, else the content.
    public static func load(path: String) throws(ConfigFileError) -> [String: String] {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ConfigFileError(path: path, line: nil, message: "cannot read config file: \(error.localizedDescription)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigFileError(path: path, line: nil, message: "config file is not valid UTF-8")
        }
        return try parse(text, path: path)
    }

    /// Parses `text` as read from `path` (used for messages and for the format's extension).
    public static func parse(
        _ text: String,
        path: String,
        format: ConfigFileFormat? = nil
    ) throws(ConfigFileError) -> [String: String] {
        switch format ?? detectFormat(path: path, text: text) {
        case .yaml: return try parseYAML(text, path: path)
        case .toml: return try parseTOML(text, path: path)
        }
    }

    /// `.yaml`/`.yml` → YAML, `.toml` → TOML; otherwise TOML when the first meaningful line
    /// looks like `key = value` or `[table]`, else YAML.
    public static func detectFormat(path: String, text: String) -> ConfigFileFormat {
        let lower = path.lowercased()
        if lower.hasSuffix(".yaml") || lower.hasSuffix(".yml") { return .yaml }
        if lower.hasSuffix(".toml") { return .toml }
        for rawLine in lines(of: text) {
            let line = trimmed(rawLine)
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line == "---" { return .yaml }
            if line.hasPrefix("[") { return .toml }
            let equals = line.firstIndex(of: "=")
            let colon = line.firstIndex(of: ":")
            switch (equals, colon) {
            case (let e?, let c?): return e < c ? .toml : .yaml
            case (.some, nil): return .toml
            default: return .yaml
            }
        }
        return .yaml
    }

    // MARK: Keys, validation, arguments

    /// `Data_Dir` → `data-dir`: lowercased, underscores become hyphens.
    public static func normalizeKey(_ key: String) -> String {
        replacing(Substring(key.lowercased()), "_", with: "-")
    }

    /// Throws an error naming the first (alphabetically) key not in `allowedKeys`, with a
    /// "did you mean" suggestion when a known key is close.
    public static func validate(
        _ values: [String: String],
        allowedKeys: Set<String>,
        path: String
    ) throws(ConfigFileError) {
        for key in values.keys.sorted() where !allowedKeys.contains(key) {
            var message = "unknown key '\(key)'"
            if let suggestion = suggestion(for: key, among: allowedKeys) {
                message += "; did you mean '\(suggestion)'?"
            }
            throw ConfigFileError(path: path, line: nil, message: message)
        }
    }

    /// The known key closest to `key` by edit distance, if it is close enough to be a typo.
    public static func suggestion(for key: String, among candidates: Set<String>) -> String? {
        let limit = max(2, key.count / 3)
        var best: (name: String, distance: Int)?
        for candidate in candidates.sorted() {
            let distance = editDistance(key, candidate)
            if distance <= limit, distance < (best?.distance ?? Int.max) {
                best = (candidate, distance)
            }
        }
        return best?.name
    }

    /// Levenshtein distance between two strings, by Character.
    public static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a)
        let b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        var current = Array(repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)
                current[j] = min(previous[j] + 1, current[j - 1] + 1, substitution)
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }

    /// Turns parsed values into command-line arguments, sorted by key:
    /// `["--data-dir", "/var/lib/synod", "--name", "n1"]`.
    ///
    /// Keys in `booleanFlags` are flags without a value: `true` gives `--key`, `false` gives
    /// nothing (or `--no-key` when the key is also in `invertibleFlags`). Keys in `overridden`
    /// (typically `explicitKeys(in: CommandLine.arguments)`) are skipped, so that explicit
    /// command-line flags win whichever order the two lists are combined in. A boolean flag
    /// whose value is not true/false is an error naming `path`.
    public static func arguments(
        from values: [String: String],
        booleanFlags: Set<String> = [],
        invertibleFlags: Set<String> = [],
        overridden: Set<String> = [],
        path: String = "config file"
    ) throws(ConfigFileError) -> [String] {
        var result: [String] = []
        for key in values.keys.sorted() where !overridden.contains(key) {
            guard let value = values[key] else { continue }
            if booleanFlags.contains(key) || invertibleFlags.contains(key) {
                switch value.lowercased() {
                case "true", "yes", "on", "1": result.append("--\(key)")
                case "false", "no", "off", "0", "":
                    if invertibleFlags.contains(key) { result.append("--no-\(key)") }
                default:
                    throw ConfigFileError(path: path, line: nil, message: "'\(key)' must be true or false, got '\(value)'")
                }
            } else {
                result.append("--\(key)")
                result.append(value)
            }
        }
        return result
    }

    /// The option names given explicitly in command-line arguments: `--name n1`, `--name=n1`,
    /// `--flag` and `--no-flag` (as `flag`, when `flag` is among `invertibleFlags`).
    /// Scanning stops at `--`.
    public static func explicitKeys(in arguments: [String], invertibleFlags: Set<String> = []) -> Set<String> {
        var keys: Set<String> = []
        for argument in arguments {
            if argument == "--" { break }
            guard argument.hasPrefix("--") else { continue }
            var name = String(argument.dropFirst(2))
            if let equals = name.firstIndex(of: "=") { name = String(name[..<equals]) }
            if name.hasPrefix("no-"), invertibleFlags.contains(String(name.dropFirst(3))) {
                name = String(name.dropFirst(3))
            }
            keys.insert(name)
        }
        return keys
    }

    /// Command-line arguments with the config file's values merged in below the explicit ones:
    /// every file key not given explicitly is inserted before the explicit arguments.
    public static func merge(
        fileValues: [String: String],
        into explicitArguments: [String],
        booleanFlags: Set<String> = [],
        invertibleFlags: Set<String> = [],
        path: String
    ) throws(ConfigFileError) -> [String] {
        let overridden = explicitKeys(in: explicitArguments, invertibleFlags: invertibleFlags)
        let fromFile = try arguments(
            from: fileValues,
            booleanFlags: booleanFlags,
            invertibleFlags: invertibleFlags,
            overridden: overridden,
            path: path
        )
        return fromFile + explicitArguments
    }
}
