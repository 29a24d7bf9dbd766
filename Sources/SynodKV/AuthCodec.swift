import SynodBytes

// `AuthCommand` bodies (inside `KVCommand`'s tag 12) and the auth part of snapshots.
//
// AuthCommand: `[tag u8]` then enable=0 `[tokenSecret data]`, disable=1, userAdd=2
// `[name string][passwordHash string][noPassword bool]`, userDelete=3 `[name]`,
// userChangePassword=4 `[name][passwordHash]`, userGrantRole=5 `[user][role]`,
// userRevokeRole=6 `[user][role]`, roleAdd=7 `[name]`, roleDelete=8 `[name]`,
// roleGrantPermission=9 `[role][permission]`, roleRevokePermission=10 `[role][key data][rangeEnd data]`;
// a permission is `[type u8][key data][rangeEnd data]`. Strings and secrets are at most
// `AuthStore.textBytesMax` bytes.

extension LittleEndianWriter {
    mutating func authCommand(_ command: AuthCommand) {
        switch command {
        case .enable(let secret): writeUInt8(0); writeBytes(secret)
        case .disable: writeUInt8(1)
        case .userAdd(let name, let passwordHash, let noPassword):
            writeUInt8(2); writeString(name); writeString(passwordHash); writeBool(noPassword)
        case .userDelete(let name): writeUInt8(3); writeString(name)
        case .userChangePassword(let name, let passwordHash): writeUInt8(4); writeString(name); writeString(passwordHash)
        case .userGrantRole(let user, let role): writeUInt8(5); writeString(user); writeString(role)
        case .userRevokeRole(let user, let role): writeUInt8(6); writeString(user); writeString(role)
        case .roleAdd(let name): writeUInt8(7); writeString(name)
        case .roleDelete(let name): writeUInt8(8); writeString(name)
        case .roleGrantPermission(let role, let permission): writeUInt8(9); writeString(role); authPermission(permission)
        case .roleRevokePermission(let role, let key, let rangeEnd):
            writeUInt8(10); writeString(role); writeBytes(key); writeBytes(rangeEnd)
        }
    }

    mutating func authPermission(_ permission: AuthPermission) {
        writeUInt8(permission.type.rawValue)
        writeBytes(permission.key)
        writeBytes(permission.rangeEnd)
    }

    /// Snapshot layout: `[enabled bool][revision u64][tokenSecret data]`, `[userCount u32]`
    /// then per user in name order (UTF-8 bytes) `[name string][passwordHash string]
    /// [noPassword bool][roleCount u32][role string]…`, `[roleCount u32]` then per role in
    /// name order `[name string][permissionCount u32][permission]…`.
    mutating func authStore(_ auth: AuthStore) {
        writeBool(auth.enabled)
        writeUInt64(auth.revision)
        writeBytes(auth.tokenSecret)
        let users = auth.users.values.sorted { utf8Precedes($0.name, $1.name) }
        writeCount(users.count)
        for user in users {
            writeString(user.name)
            writeString(user.passwordHash)
            writeBool(user.noPassword)
            writeCount(user.roles.count)
            for role in user.roles { writeString(role) }
        }
        let roles = auth.roles.values.sorted { utf8Precedes($0.name, $1.name) }
        writeCount(roles.count)
        for role in roles {
            writeString(role.name)
            writeCount(role.permissions.count)
            for permission in role.permissions { authPermission(permission) }
        }
    }
}

extension LittleEndianReader {
    /// A name or password hash: at most `AuthStore.textBytesMax` UTF-8 bytes.
    mutating func authText() throws(KVDecodingError) -> String {
        let bytes = try authBytes()
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A token secret: at most `AuthStore.textBytesMax` bytes.
    mutating func authBytes() throws(KVDecodingError) -> [UInt8] {
        let bytes = try data()
        guard bytes.count <= AuthStore.textBytesMax else { throw .invalid }
        return bytes
    }

    mutating func authPermission() throws(KVDecodingError) -> AuthPermission {
        guard let type = AuthPermission.PermissionType(rawValue: try u8()) else { throw .invalid }
        return AuthPermission(type: type, key: try data(), rangeEnd: try data())
    }

    mutating func authCommand() throws(KVDecodingError) -> AuthCommand {
        switch try u8() {
        case 0: return .enable(tokenSecret: try authBytes())
        case 1: return .disable
        case 2: return .userAdd(name: try authText(), passwordHash: try authText(), noPassword: try bool())
        case 3: return .userDelete(name: try authText())
        case 4: return .userChangePassword(name: try authText(), passwordHash: try authText())
        case 5: return .userGrantRole(user: try authText(), role: try authText())
        case 6: return .userRevokeRole(user: try authText(), role: try authText())
        case 7: return .roleAdd(name: try authText())
        case 8: return .roleDelete(name: try authText())
        case 9: return .roleGrantPermission(role: try authText(), permission: try authPermission())
        case 10: return .roleRevokePermission(role: try authText(), key: try data(), rangeEnd: try data())
        default: throw .invalid
        }
    }

    /// `authStore(_:)`'s layout. Refuses what `apply` never produces: names out of order or
    /// repeated, empty names, a revision of 0, roles of a user out of order, permissions out
    /// of order or with an invalid range.
    mutating func authStore() throws(KVDecodingError) -> AuthStore {
        var auth = AuthStore()
        auth.enabled = try bool()
        auth.revision = try u64()
        auth.tokenSecret = try authBytes()
        guard auth.revision >= 1 else { throw .invalid }
        var previousUser: String?
        for _ in 0..<(try count(elementBytesMin: 13)) {
            let name = try authText()
            guard !name.isEmpty else { throw .invalid }
            if let previousUser, !utf8Precedes(previousUser, name) { throw .invalid }
            previousUser = name
            let passwordHash = try authText()
            let noPassword = try bool()
            var roles: [String] = []
            for _ in 0..<(try count(elementBytesMin: 4)) {
                let role = try authText()
                if let last = roles.last, !utf8Precedes(last, role) { throw .invalid }
                roles.append(role)
            }
            // Names equal as Swift strings (canonically equivalent) but not as bytes collide.
            guard auth.users[name] == nil else { throw .invalid }
            auth.users[name] = AuthUser(name: name, passwordHash: passwordHash, noPassword: noPassword, roles: roles)
        }
        var previousRole: String?
        for _ in 0..<(try count(elementBytesMin: 8)) {
            let name = try authText()
            guard !name.isEmpty else { throw .invalid }
            if let previousRole, !utf8Precedes(previousRole, name) { throw .invalid }
            previousRole = name
            var permissions: [AuthPermission] = []
            for _ in 0..<(try count(elementBytesMin: 9)) {
                let permission = try authPermission()
                guard AuthPermission.isValidRange(key: permission.key, rangeEnd: permission.rangeEnd) else { throw .invalid }
                if let last = permissions.last, !AuthPermission.precedes(last, permission) { throw .invalid }
                permissions.append(permission)
            }
            guard auth.roles[name] == nil else { throw .invalid }
            auth.roles[name] = AuthRole(name: name, permissions: permissions)
        }
        return auth
    }
}
