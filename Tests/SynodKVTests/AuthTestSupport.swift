import SynodCore
import XCTest
@testable import SynodKV

/// A state machine driven with decoded commands (no sessions), for the auth tests.
struct AuthHarness {
    var machine = KVStateMachine()

    @discardableResult
    mutating func run(_ command: KVCommand) -> KVStateMachine.CommandResult {
        machine.apply(command).0
    }

    @discardableResult
    mutating func run(_ command: KVCommand, skipping: Set<AuthCheck>) -> KVStateMachine.CommandResult {
        machine.apply(command, skippingAuthChecks: skipping).0
    }

    /// An auth change, unwrapped (as issued while auth is disabled).
    @discardableResult
    mutating func auth(_ command: AuthCommand) -> KVStateMachine.CommandResult {
        run(.auth(command))
    }

    /// `command` as the server wraps it for `user`, with a token of the current auth revision.
    func by(_ user: String, _ command: KVCommand) -> KVCommand {
        .authorized(user: user, authRevision: machine.auth.revision, command: command)
    }

    func error(_ result: KVStateMachine.CommandResult) -> KVError? {
        if case .failure(let error) = result { return error }
        return nil
    }

    mutating func must(_ command: KVCommand, file: StaticString = #filePath, line: UInt = #line) {
        let result = run(command)
        if case .failure(let error) = result { XCTFail("\(command) failed: \(error)", file: file, line: line) }
    }

    /// root (with the role root) and alice (with the role `limited`, holding `permissions`),
    /// auth enabled. Before enabling, `setup` runs with no auth in the way.
    static func enabled(alice permissions: [AuthPermission], setup: (inout AuthHarness) -> Void = { _ in }) -> AuthHarness {
        var harness = AuthHarness()
        harness.must(.auth(.userAdd(name: "root", passwordHash: "$2a$10$root", noPassword: false)))
        harness.must(.auth(.userGrantRole(user: "root", role: "root")))
        harness.must(.auth(.userAdd(name: "alice", passwordHash: "$2a$10$alice", noPassword: false)))
        harness.must(.auth(.roleAdd(name: "limited")))
        for permission in permissions {
            harness.must(.auth(.roleGrantPermission(role: "limited", permission: permission)))
        }
        harness.must(.auth(.userGrantRole(user: "alice", role: "limited")))
        setup(&harness)
        harness.must(.auth(.enable(tokenSecret: [1, 2, 3])))
        return harness
    }
}

func read(_ key: String, _ rangeEnd: [UInt8] = []) -> AuthPermission {
    AuthPermission(type: .read, key: b(key), rangeEnd: rangeEnd)
}

func write(_ key: String, _ rangeEnd: [UInt8] = []) -> AuthPermission {
    AuthPermission(type: .write, key: b(key), rangeEnd: rangeEnd)
}

func readWrite(_ key: String, _ rangeEnd: [UInt8] = []) -> AuthPermission {
    AuthPermission(type: .readWrite, key: b(key), rangeEnd: rangeEnd)
}

extension RandomCommands {
    mutating func name() -> String { ["", "root", "alice", "bob", "r1", "r2"][int(0...5)] }

    mutating func permission() -> AuthPermission {
        AuthPermission(type: AuthPermission.PermissionType.allCases[int(0...2)], key: key(), rangeEnd: rangeEnd())
    }

    /// A random auth change.
    mutating func authChange() -> AuthCommand {
        switch int(0...10) {
        case 0: return .enable(tokenSecret: value())
        case 1: return .disable
        case 2: return .userAdd(name: name(), passwordHash: "$2a$10$" + name(), noPassword: bool())
        case 3: return .userDelete(name: name())
        case 4: return .userChangePassword(name: name(), passwordHash: name())
        case 5: return .userGrantRole(user: name(), role: name())
        case 6: return .userRevokeRole(user: name(), role: name())
        case 7: return .roleAdd(name: name())
        case 8: return .roleDelete(name: name())
        case 9: return .roleGrantPermission(role: name(), permission: permission())
        default: return .roleRevokePermission(role: name(), key: key(), rangeEnd: rangeEnd())
        }
    }

    /// A random auth change, or a random command (auth change or not) wrapped for a random caller.
    mutating func authCommand() -> KVCommand {
        switch int(0...3) {
        case 0, 1: return .auth(authChange())
        case 2: return .authorized(user: name(), authRevision: UInt64(int(0...9)), command: command())
        default: return .authorized(user: name(), authRevision: UInt64(int(0...9)), command: .auth(authChange()))
        }
    }
}
