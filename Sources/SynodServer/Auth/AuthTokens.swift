import Crypto
import Foundation
import GRPCCore
import CryptoExtras
import Synchronization
import SynodKV

/// What a request presented: its token (gRPC metadata `token`, or `authorization`, as etcd
/// reads them) and the verified client certificate's common name (TLS with client
/// certificates). Never logged.
public struct AuthCredentials: Sendable, Hashable {
    public var token: String?
    public var commonName: String?

    public init(token: String? = nil, commonName: String? = nil) {
        self.token = token
        self.commonName = commonName
    }

    /// From a generic call's metadata (`FrameGRPCHandler` adds the certificate's name).
    init(metadata: Metadata) {
        token = metadata[stringValues: "token"].first(where: { _ in true })
            ?? metadata[stringValues: "authorization"].first(where: { _ in true })
        commonName = metadata[stringValues: FrameGRPCHandler.commonNameMetadataKey].first(where: { _ in true })
    }

    static let none = AuthCredentials()

    /// The credentials of the call being served (set by the frame-level transport around each
    /// generic call's handler; empty under grpc-swift's own transport).
    @TaskLocal static var current = AuthCredentials.none
}

/// Who is calling, as the applied auth store sees it.
struct AuthCaller: Sendable, Hashable {
    /// Empty: no credentials.
    var user: String
    /// The auth revision the token was issued at (the store's own for a certificate name), 0
    /// without credentials.
    var authRevision: UInt64
}

/// Synod's tokens: signed with the auth store's secret (replicated through the log with
/// AuthEnable), so every member verifies a token any member issued, across leader and
/// membership changes; they name the user, the auth revision they were issued at and when they
/// expire (`--auth-token-ttl`). Layout: `synod1.<base64url user>.<revision>.<expiry unix s>.<nonce>.<base64url HMAC-SHA256>`.
enum AuthTokens {
    static func issue(user: String, authRevision: UInt64, secret: [UInt8], ttlSeconds: Int, now: Date = Date()) -> String {
        let expiry = Int64(now.timeIntervalSince1970) + Int64(ttlSeconds)
        let nonce = UInt64.random(in: 0...UInt64.max)
        let payload = "synod1.\(base64url(Array(user.utf8))).\(authRevision).\(expiry).\(String(nonce, radix: 16))"
        return payload + "." + base64url(signature(payload, secret: secret))
    }

    /// The caller a token names, if its signature is this store's and it has not expired.
    static func verify(_ token: String, secret: [UInt8], now: Date = Date()) -> AuthCaller? {
        guard !secret.isEmpty, token.utf8.count <= 4096, let dot = token.lastIndex(of: ".") else { return nil }
        let payload = String(token[..<dot])
        guard let mac = unbase64url(String(token[token.index(after: dot)...])) else { return nil }
        let key = SymmetricKey(data: secret)
        guard HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: Array(payload.utf8), using: key) else { return nil }
        let parts = payload.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 5, parts[0] == "synod1", let userBytes = unbase64url(String(parts[1])),
              let revision = UInt64(parts[2]), let expiry = Int64(parts[3]) else { return nil }
        guard Int64(now.timeIntervalSince1970) < expiry else { return nil }
        return AuthCaller(user: String(decoding: userBytes, as: UTF8.self), authRevision: revision)
    }

    static func signature(_ payload: String, secret: [UInt8]) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: Array(payload.utf8), using: SymmetricKey(data: secret)))
    }

    static func base64url(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func unbase64url(_ text: String) -> [UInt8]? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        return Data(base64Encoded: base64).map(Array.init)
    }

    /// A new random token secret (AuthEnable).
    static func newSecret() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }
}

extension AuthStore {
    /// The caller `credentials` name; nil while auth is disabled (nothing is checked). A token
    /// that is not valid here is etcd's "invalid auth token"; a token wins over a certificate
    /// name (as in etcd); neither: the empty user (etcd's "user name is empty" where it matters).
    func caller(_ credentials: AuthCredentials, now: Date = Date()) throws(KVError) -> AuthCaller? {
        guard enabled else { return nil }
        if let token = credentials.token, !token.isEmpty {
            guard let caller = AuthTokens.verify(token, secret: tokenSecret, now: now), users[caller.user] != nil else {
                throw .invalidAuthToken
            }
            return caller
        }
        if let name = credentials.commonName, !name.isEmpty {
            return AuthCaller(user: name, authRevision: revision)
        }
        return AuthCaller(user: "", authRevision: 0)
    }
}

/// Password hashing with scrypt (swift-crypto's, a slow, salted, memory-hard function), off
/// the event loops and the task pool (a hash at the default cost takes tens of milliseconds),
/// with a cache of verified passwords so that clients that authenticate again and again do not
/// queue behind it: an entry is an HMAC of (stored hash, password) under a key that never
/// leaves the process.
///
/// Stored form: `$scrypt$ln=<log2 N>,r=8,p=1$<salt>$<key>` (base64). `--bcrypt-cost` c (etcd's
/// flag, 4...12, default 10) sets N = 2^(c+4): at 10, 16 MiB and about as slow as etcd's bcrypt.
final class PasswordHasher: Sendable {
    let cost: Int
    private let queue = DispatchQueue(label: "synod.password-hash", attributes: .concurrent)
    private let cacheKey = SymmetricKey(size: .bits256)
    private let verified = Mutex<Set<[UInt8]>>([])
    static let cacheEntriesMax = 4096
    static let blockSize = 8

    init(cost: Int) { self.cost = cost }

    func hash(_ password: String) async -> String {
        let logN = cost + 4
        return await withCheckedContinuation { continuation in
            queue.async { continuation.resume(returning: Self.scrypt(password, logN: logN)) }
        }
    }

    func verify(_ password: String, hash: String) async -> Bool {
        let entry = Array(HMAC<SHA256>.authenticationCode(for: Array((hash + "\u{0}" + password).utf8), using: cacheKey))
        if verified.withLock({ $0.contains(entry) }) { return true }
        let ok = await withCheckedContinuation { continuation in
            queue.async { continuation.resume(returning: Self.verify(password, stored: hash)) }
        }
        if ok {
            verified.withLock { cache in
                if cache.count >= Self.cacheEntriesMax { cache.removeAll() }
                cache.insert(entry)
            }
        }
        return ok
    }

    static func scrypt(_ password: String, logN: Int, salt: [UInt8]? = nil) -> String {
        var generator = SystemRandomNumberGenerator()
        let salt = salt ?? (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let key = derive(password, salt: salt, logN: logN) ?? []
        return "$scrypt$ln=\(logN),r=\(blockSize),p=1$\(Data(salt).base64EncodedString())$\(Data(key).base64EncodedString())"
    }

    /// Whether `password` matches a stored `$scrypt$` hash (anything else never matches).
    static func verify(_ password: String, stored: String) -> Bool {
        let parts = stored.split(separator: "$", omittingEmptySubsequences: true)
        guard parts.count == 4, parts[0] == "scrypt", parts[1].hasPrefix("ln="),
              let logN = Int(parts[1].dropFirst(3).prefix { $0.isNumber }), (1...20).contains(logN),
              parts[1].hasSuffix(",r=\(blockSize),p=1"),
              let salt = Data(base64Encoded: String(parts[2])), let expected = Data(base64Encoded: String(parts[3])),
              !expected.isEmpty, let key = derive(password, salt: Array(salt), logN: logN) else { return false }
        // Constant time in the key's length.
        guard key.count == expected.count else { return false }
        var difference: UInt8 = 0
        for (a, b) in zip(key, expected) { difference |= a ^ b }
        return difference == 0
    }

    static func derive(_ password: String, salt: [UInt8], logN: Int) -> [UInt8]? {
        let rounds = 1 << logN
        guard let key = try? KDF.Scrypt.deriveKey(from: Array(password.utf8), salt: salt, outputByteCount: 32, rounds: rounds,
                                                  blockSize: blockSize, parallelism: 1,
                                                  maxMemory: 128 * blockSize * rounds * 2 + (1 << 20)) else { return nil }
        return key.withUnsafeBytes { Array($0) }
    }
}
