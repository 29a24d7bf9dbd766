import Foundation

/// A control request of the cluster page, checked: what to do to which member.
enum LiveControlCommand: Sendable, Equatable {
    case kill(String)
    case pause(String)
    case resume(String)
    case restart(String)
    case isolate(String)
    case heal(String)
    case moveLeader(String)
    case put(key: String, value: String)
}

/// Why a control request is refused, with the HTTP status to answer.
struct LiveControlRejection: Error, Sendable, Equatable {
    var status: Int
    var message: String
}

/// The checks of `POST /ui/control/<action>`, apart from any I/O.
enum LiveControl {
    /// The largest request body accepted (a put's key and value included).
    static let maxBodyBytes = 64 * 1024
    /// The header carrying the cluster's control token.
    static let tokenHeader = "X-Synod-Control-Token"

    /// A random token: 32 hex digits from the system's secure generator.
    static func makeToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<16).map { _ in
            let byte = UInt8.random(in: 0...255, using: &generator)
            return String(format: "%02x", byte)
        }.joined()
    }

    /// Equal strings, compared in time that depends on their lengths only.
    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var difference = UInt8(x.count == y.count ? 0 : 1)
        for index in 0..<max(x.count, y.count) {
            let p = index < x.count ? x[index] : 0
            let q = index < y.count ? y[index] : 0
            difference |= p ^ q
        }
        return difference == 0
    }

    /// Checks a control request in order: origin (a page of another site may not post here),
    /// token, body size, action, JSON, member. `headers` are (name, value) pairs as received;
    /// `bodyBytes` is the body's full length (the body itself may be cut at the limit).
    static func validate(action: String, headers: [(String, String)], body: [UInt8], bodyBytes: Int,
                         token: String, port: Int, members: [String]) -> Result<LiveControlCommand, LiveControlRejection> {
        func header(_ name: String) -> [String] {
            headers.filter { $0.0.caseInsensitiveCompare(name) == .orderedSame }.map(\.1)
        }
        let allowedOrigins = ["http://127.0.0.1:\(port)", "http://localhost:\(port)"]
        for origin in header("Origin") where !allowedOrigins.contains(origin) {
            return .failure(.init(status: 403, message: "requests from \(origin) are refused (this page's origin is \(allowedOrigins[0]))"))
        }
        let tokens = header(tokenHeader)
        guard tokens.count == 1, let given = tokens.first, constantTimeEqual(given, token) else {
            return .failure(.init(status: 403, message: "missing or wrong \(tokenHeader)"))
        }
        guard bodyBytes <= maxBodyBytes else {
            return .failure(.init(status: 413, message: "request body over \(maxBodyBytes) bytes"))
        }
        let known = LiveClusterState.actions + ["put"]
        guard known.contains(action) else {
            return .failure(.init(status: 400, message: "unknown action '\(String(action.prefix(40)))' (known: \(known.joined(separator: ", ")))"))
        }
        guard let json = LiveJSON.parse(body), json.object != nil else {
            return .failure(.init(status: 400, message: "the body must be a JSON object"))
        }
        if action == "put" {
            guard let key = json["key"]?.string, !key.isEmpty, let value = json["value"]?.string else {
                return .failure(.init(status: 400, message: #"put needs {"key": "...", "value": "..."} with a non-empty key"#))
            }
            return .success(.put(key: key, value: value))
        }
        guard let member = json["member"]?.string else {
            return .failure(.init(status: 400, message: #"\#(action) needs {"member": "<name>"}"#))
        }
        guard members.contains(member) else {
            return .failure(.init(status: 400, message: "unknown member '\(String(member.prefix(40)))' (members: \(members.joined(separator: ", ")))"))
        }
        switch action {
        case "kill": return .success(.kill(member))
        case "pause": return .success(.pause(member))
        case "resume": return .success(.resume(member))
        case "restart": return .success(.restart(member))
        case "isolate": return .success(.isolate(member))
        case "heal": return .success(.heal(member))
        default: return .success(.moveLeader(member))
        }
    }

    /// True for the Host header of a request to this server by its loopback address or name.
    static func hostAllowed(_ host: String, port: Int) -> Bool {
        ["127.0.0.1:\(port)", "localhost:\(port)"].contains(host.lowercased())
    }

    /// The answer body: `{"ok": ..., "message": ...}`.
    static func answer(ok: Bool, _ message: String) -> String {
        LiveJSON.object(["ok": .bool(ok), "message": .string(message)]).text
    }
}
