import ArgumentParser
import Foundation
import SynodClient

/// Options shared by every client command (`put`, `get`, `del`, `txn`, `watch`, `lease`,
/// `member`, `status`).
struct ClientOptions: ParsableArguments {
    static let defaultEndpoints = "http://127.0.0.1:2379,http://127.0.0.1:22379,http://127.0.0.1:32379"

    @Option(help: "Comma-separated client endpoints (http://host:port or host:port).")
    var endpoints: String = ClientOptions.defaultEndpoints

    @Option(help: "Time budget of one request, failover included: e.g. 5s, 500ms, 1m (plain numbers are seconds).")
    var timeout: String = "5s"

    @Option(help: "PEM CA bundle that verifies the servers' certificates (https:// endpoints).")
    var cacert: String?
    @Option(help: "PEM client certificate, for servers started with --client-cert-auth.")
    var cert: String?
    @Option(help: "PEM private key of --cert.")
    var key: String?
    @Flag(help: "Accept any server certificate (tests only).")
    var insecureSkipTlsVerify = false
    @Option(help: "name:password to authenticate as (servers with auth enabled); without :password it is asked for.")
    var user: String?
    @Option(help: "Password, when --user gives the name only.")
    var password: String?

    func validate() throws {
        _ = try configuration(askPassword: false)
        for endpoint in endpoints.split(separator: ",") where !endpoint.allSatisfy(\.isWhitespace) {
            do {
                _ = try SynodEndpoint(parsing: String(endpoint))
            } catch {
                throw ValidationError("\(error)")
            }
        }
    }

    func configuration(askPassword: Bool = true) throws -> SynodClientConfiguration {
        let list = endpoints.split(separator: ",").map { String($0.trimmingCharacters(in: .whitespaces)) }
            .filter { !$0.isEmpty }
        guard !list.isEmpty else { throw ValidationError("--endpoints is empty") }
        guard let requestTimeout = parseDuration(timeout), requestTimeout > .zero else {
            throw ValidationError("invalid --timeout '\(timeout)' (examples: 5s, 500ms, 1m, 2.5)")
        }
        var configuration = SynodClientConfiguration(
            endpoints: list,
            requestTimeout: requestTimeout,
            attemptTimeout: min(requestTimeout, .seconds(2))
        )
        if (cert == nil) != (key == nil) { throw ValidationError("--cert and --key go together") }
        if cacert != nil || cert != nil || insecureSkipTlsVerify || list.contains(where: { $0.hasPrefix("https://") }) {
            configuration.tls = SynodClientTLS(caFile: cacert, certFile: cert, keyFile: key, insecureSkipVerify: insecureSkipTlsVerify)
        }
        if let user {
            let parts = user.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            if parts.count == 2 {
                configuration.credentials = (parts[0], parts[1])
            } else if let password {
                configuration.credentials = (user, password)
            } else if askPassword {
                guard let typed = readPassword(prompt: "Password: ") else { throw ValidationError("--user \(user): no password given") }
                configuration.credentials = (user, typed)
            }
        }
        return configuration
    }

    /// Connects, runs `body`, and turns every failure into one `Error: ...` line on stderr and a
    /// non-zero exit (2 when no endpoint could be reached, 1 otherwise).
    func run(_ body: (SynodClient) async throws -> Void) async throws {
        do {
            let configuration = try self.configuration()
            try await withSynodClient(configuration) { client in try await body(client) }
        } catch let error as SynodClientError {
            standardError("Error: \(error)")
            if case .unavailable = error { throw ExitCode(2) }
            throw ExitCode(1)
        } catch let error as SynodTxnScriptError {
            standardError("Error: \(error)")
            throw ExitCode(1)
        } catch let error as ClientCommandError {
            standardError("Error: \(error.message)")
            throw ExitCode(1)
        }
    }
}

/// A user-facing failure of a client command (printed as `Error: message`).
struct ClientCommandError: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

/// Parses `5s`, `500ms`, `1m`, `1.5s`, or a plain number of seconds.
func parseDuration(_ text: String) -> Duration? {
    let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
    var number = Substring(text)
    var scale = 1.0
    for (suffix, factor) in units where text.hasSuffix(suffix) {
        number = text.dropLast(suffix.count)
        scale = factor
        break
    }
    guard let value = Double(number), value.isFinite, value >= 0, value * scale < 1e9 else { return nil }
    return .milliseconds(Int64((value * scale * 1000).rounded()))
}

/// Parses a lease ID written in hexadecimal (as etcdctl prints and reads them).
func parseLeaseID(_ text: String) throws -> Int64 {
    var digits = Substring(text)
    if digits.hasPrefix("0x") || digits.hasPrefix("0X") { digits = digits.dropFirst(2) }
    guard !digits.isEmpty, digits.count <= 16, let value = UInt64(digits, radix: 16) else {
        throw ClientCommandError("bad lease ID '\(text)', expecting an ID in hexadecimal")
    }
    return Int64(bitPattern: value)
}

/// A lease ID as etcdctl prints it: 16 hexadecimal digits.
func formatLeaseID(_ id: Int64) -> String {
    let hex = String(UInt64(bitPattern: id), radix: 16)
    return String(repeating: "0", count: max(0, 16 - hex.count)) + hex
}

func standardError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

/// Buffered standard output that writes keys and values as raw bytes (like etcdctl).
struct Output {
    private var buffer = Data()

    mutating func line(_ text: String) {
        buffer.append(contentsOf: text.utf8)
        buffer.append(0x0a)
    }

    mutating func line(bytes: Data) {
        buffer.append(bytes)
        buffer.append(0x0a)
    }

    /// etcdctl's simple key-value format: the key on one line, the value on the next.
    mutating func keyValue(_ kv: Mvccpb_KeyValue, valueOnly: Bool = false) {
        if !valueOnly { line(bytes: kv.key) }
        line(bytes: kv.value)
    }

    mutating func flush() {
        guard !buffer.isEmpty else { return }
        FileHandle.standardOutput.write(buffer)
        buffer.removeAll(keepingCapacity: true)
    }
}

/// Output formats of `-w/--write-out`.
enum WriteOut: String, ExpressibleByArgument, CaseIterable {
    case simple
    case json
    case table
}

/// Renders rows as an ASCII table like etcdctl's `-w table`.
func renderTable(header: [String], rows: [[String]]) -> String {
    var widths = header.map(\.count)
    for row in rows {
        for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
    }
    let separator = "+" + widths.map { String(repeating: "-", count: $0 + 2) }.joined(separator: "+") + "+"
    func render(_ cells: [String]) -> String {
        "|" + cells.enumerated().map { i, cell in
            " " + cell + String(repeating: " ", count: widths[i] - cell.count) + " "
        }.joined(separator: "|") + "|"
    }
    return ([separator, render(header), separator] + rows.map(render) + [separator]).joined(separator: "\n")
}

/// Byte counts the way etcdctl prints them (go-humanize `Bytes`: SI units).
func humanBytes(_ count: Int64) -> String {
    if count < 10 { return "\(count) B" }
    let units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"]
    let value = Double(count)
    let exponent = min(Int((log(value) / log(1000)).rounded(.down)), units.count - 1)
    let scaled = (value / pow(1000, Double(exponent)) * 10 + 0.5).rounded(.down) / 10
    return String(format: scaled < 10 ? "%.1f" : "%.0f", scaled) + " " + units[exponent]
}

/// Reads a password from the terminal without echo (or a line from stdin when not a terminal).
func readPassword(prompt: String) -> String? {
    if isatty(STDIN_FILENO) == 1, let typed = getpass(prompt) { return String(cString: typed) }
    return readLine(strippingNewline: true)
}
