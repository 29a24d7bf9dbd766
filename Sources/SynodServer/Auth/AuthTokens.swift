import Crypto
import Foundation
import GRPCCore
import HummingbirdBcrypt
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

/// bcrypt hashing and verification off the event loops and the task pool (a hash at etcd's
/// default cost 10 takes tens of milliseconds), with a cache of verified passwords so that
/// clients that authenticate again and again do not queue behind bcrypt: an entry is the
/// SHA-256 of (stored hash, password) under a key that never leaves the process.
final class PasswordHasher: Sendable {
    let cost: Int
    private let queue = DispatchQueue(label: "synod.bcrypt", attributes: .concurrent)
    private let cacheKey = SymmetricKey(size: .bits256)
    private let verified = Mutex<Set<[UInt8]>>([])
    static let cacheEntriesMax = 4096

    init(cost: Int) { self.cost = cost }

    func hash(_ password: String) async -> String {
        let cost = UInt8(clamping: cost)
        return await withCheckedContinuation { continuation in
            queue.async { continuation.resume(returning: Bcrypt.hash(password, cost: cost)) }
        }
    }

    func verify(_ password: String, hash: String) async -> Bool {
        let entry = Array(HMAC<SHA256>.authenticationCode(for: Array((hash + "\u{0}" + password).utf8), using: cacheKey))
        if verified.withLock({ $0.contains(entry) }) { return true }
        let ok = await withCheckedContinuation { continuation in
            queue.async { continuation.resume(returning: Bcrypt.verify(password, hash: hash)) }
        }
        if ok {
            verified.withLock { cache in
                if cache.count >= Self.cacheEntriesMax { cache.removeAll() }
                cache.insert(entry)
            }
        }
        return ok
    }
}
