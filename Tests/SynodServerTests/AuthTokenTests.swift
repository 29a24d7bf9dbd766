import Foundation
import XCTest
@testable import SynodKV
@testable import SynodServer

/// Tokens and password hashes on their own.
final class AuthTokenTests: XCTestCase {
    func testTokensVerifyOnlyWithTheirSecretUntilTheyExpire() throws {
        let secret = AuthTokens.newSecret()
        let now = Date()
        let token = AuthTokens.issue(user: "alice", authRevision: 7, secret: secret, ttlSeconds: 60, now: now)
        XCTAssertEqual(AuthTokens.verify(token, secret: secret, now: now), AuthCaller(user: "alice", authRevision: 7))
        XCTAssertNil(AuthTokens.verify(token, secret: AuthTokens.newSecret(), now: now), "another cluster's secret")
        XCTAssertNil(AuthTokens.verify(token, secret: secret, now: now.addingTimeInterval(61)), "expired")
        XCTAssertNil(AuthTokens.verify(token, secret: [], now: now), "auth disabled: no secret")
        // Any change to the payload breaks the signature: another user, another revision.
        let parts = token.split(separator: ".").map(String.init)
        var forged = parts
        forged[1] = AuthTokens.base64url(Array("root".utf8))
        XCTAssertNil(AuthTokens.verify(forged.joined(separator: "."), secret: secret, now: now))
        forged = parts
        forged[2] = "999"
        XCTAssertNil(AuthTokens.verify(forged.joined(separator: "."), secret: secret, now: now))
        for garbage in ["", ".", "synod1", String(repeating: "a", count: 5000), token + "."] {
            XCTAssertNil(AuthTokens.verify(garbage, secret: secret, now: now), garbage)
        }
    }

    func testCallerFromCredentials() throws {
        var store = AuthStore()
        XCTAssertNil(try store.caller(AuthCredentials(token: "anything")), "auth disabled: nothing is checked")
        try store.apply(.userAdd(name: "root", passwordHash: "h", noPassword: false))
        try store.apply(.userGrantRole(user: "root", role: "root"))
        try store.apply(.enable(tokenSecret: AuthTokens.newSecret()))
        XCTAssertEqual(try store.caller(.none), AuthCaller(user: "", authRevision: 0))
        XCTAssertEqual(try store.caller(AuthCredentials(commonName: "root")), AuthCaller(user: "root", authRevision: store.revision))
        let token = AuthTokens.issue(user: "root", authRevision: store.revision, secret: store.tokenSecret, ttlSeconds: 60)
        XCTAssertEqual(try store.caller(AuthCredentials(token: token, commonName: "someone")),
                       AuthCaller(user: "root", authRevision: store.revision), "a token wins over the certificate name")
        XCTAssertThrowsError(try store.caller(AuthCredentials(token: token + "x"))) { XCTAssertEqual($0 as? KVError, .invalidAuthToken) }
        let ghost = AuthTokens.issue(user: "ghost", authRevision: store.revision, secret: store.tokenSecret, ttlSeconds: 60)
        XCTAssertThrowsError(try store.caller(AuthCredentials(token: ghost))) { XCTAssertEqual($0 as? KVError, .invalidAuthToken) }
    }

    func testPasswordHashesAreSaltedAndVerified() async throws {
        let hasher = PasswordHasher(cost: 4)
        let first = await hasher.hash("correct horse")
        let second = await hasher.hash("correct horse")
        XCTAssertTrue(first.hasPrefix("$scrypt$ln=8,r=8,p=1$"), first)
        XCTAssertNotEqual(first, second, "a new salt every time")
        let right = await hasher.verify("correct horse", hash: first)
        let wrong = await hasher.verify("correct horsf", hash: first)
        let cached = await hasher.verify("correct horse", hash: first)
        XCTAssertTrue(right)
        XCTAssertFalse(wrong)
        XCTAssertTrue(cached)
        var tampered = Array(first)
        tampered[tampered.count - 3] = tampered[tampered.count - 3] == "A" ? "B" : "A"
        let tamperedOK = await hasher.verify("correct horse", hash: String(tampered))
        XCTAssertFalse(tamperedOK)
        for stored in ["", "$2a$10$abcdefghijklmnopqrstuu", "$scrypt$ln=99,r=8,p=1$AA==$AA==", "$scrypt$ln=8,r=8,p=1$$"] {
            let ok = await hasher.verify("correct horse", hash: stored)
            XCTAssertFalse(ok, stored)
        }
    }
}
