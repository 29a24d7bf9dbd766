/// etcd's authentication and role-based access control, as a pure, replicated value: users,
/// roles and their key permissions, whether auth is enabled, and etcd's auth revision.
///
/// Changed only through `AuthCommand`s applied from the log (`KVStateMachine.apply`), so every
/// replica holds the same auth state at the same point of the log. Passwords arrive already
/// hashed (scrypt, computed by the server outside the state machine); tokens are the server's
/// business, signed with `tokenSecret`, which the state machine only stores.
public struct AuthStore: Hashable, Sendable {
    /// etcd's `root` user and role: a user holding the role `root` may do anything.
    public static let rootName = "root"
    /// Longest user or role name, password hash or token secret a command or snapshot may
    /// carry, in UTF-8 bytes (decoding refuses longer ones; etcd bounds them by its request
    /// size only, so this is generous).
    public static let textBytesMax = 64 << 10

    /// Whether authentication is on (etcd `AuthStatus.enabled`).
    public internal(set) var enabled: Bool = false
    /// etcd's auth revision: starts at 1 and is bumped by every auth change applied
    /// successfully, except enabling auth (etcd's `AuthEnable` keeps the revision; disabling
    /// bumps it, so a token issued before a disable never passes the revision check again).
    public internal(set) var revision: UInt64 = 1
    /// Users by name.
    public internal(set) var users: [String: AuthUser] = [:]
    /// Roles by name. The role `root` need not exist: it may be granted without being added.
    public internal(set) var roles: [String: AuthRole] = [:]
    /// The secret tokens are signed with, chosen by the server and set by `enable`; empty
    /// while auth is disabled. Opaque here.
    public internal(set) var tokenSecret: [UInt8] = []

    public init() {}

    /// Whether `user` exists and holds the role `root` (etcd `hasRootRole`).
    public func isAdmin(_ user: String) -> Bool {
        users[user]?.roles.contains(Self.rootName) ?? false
    }

    /// Whether `user` exists and holds `role` (etcd `HasRole`, which lets a user read a role
    /// it holds).
    public func hasRole(user: String, role: String) -> Bool {
        users[user]?.roles.contains(role) ?? false
    }
}

/// One user (etcd `authpb.User`).
public struct AuthUser: Hashable, Sendable {
    public var name: String
    /// The password hash (scrypt, `$scrypt$...`), computed outside the state machine; empty for a user
    /// added with `noPassword`.
    public var passwordHash: String
    /// etcd's `UserAddOptions.no_password`: the user can only authenticate by TLS common name.
    public var noPassword: Bool
    /// Granted role names, sorted by their UTF-8 bytes (as Go sorts strings), no duplicates.
    public var roles: [String]

    public init(name: String, passwordHash: String, noPassword: Bool, roles: [String] = []) {
        self.name = name
        self.passwordHash = passwordHash
        self.noPassword = noPassword
        self.roles = roles
    }
}

/// One role (etcd `authpb.Role`).
public struct AuthRole: Hashable, Sendable {
    public var name: String
    /// Sorted by key, then range end; no two with the same key and range end.
    public var permissions: [AuthPermission]

    public init(name: String, permissions: [AuthPermission] = []) {
        self.name = name
        self.permissions = permissions
    }
}

/// One key permission of a role (etcd `authpb.Permission`).
///
/// `rangeEnd` follows etcd's convention: empty means the single key `key`; `[0]` means every
/// key `>= key` (and `key == [0]` with it, every key); otherwise the keys in `[key, rangeEnd)`.
public struct AuthPermission: Hashable, Sendable {
    /// etcd `authpb.Permission.Type`, same numbers.
    public enum PermissionType: UInt8, Hashable, Sendable, CaseIterable {
        case read = 0
        case write = 1
        case readWrite = 2

        /// Whether a permission of this type allows an access of type `access` (`.readWrite`
        /// as an access needs both).
        public func allows(_ access: PermissionType) -> Bool {
            self == .readWrite || self == access
        }

        /// etcd's name (`READ`, `WRITE`, `READWRITE`).
        public var name: String {
            switch self {
            case .read: return "READ"
            case .write: return "WRITE"
            case .readWrite: return "READWRITE"
            }
        }
    }

    public var type: PermissionType
    public var key: [UInt8]
    public var rangeEnd: [UInt8]

    public init(type: PermissionType, key: [UInt8], rangeEnd: [UInt8] = []) {
        self.type = type
        self.key = key
        self.rangeEnd = rangeEnd
    }

    /// etcd's `isValidPermissionRange`: a non-empty key, and a range end that is empty, `[0]`,
    /// or above the key.
    public static func isValidRange(key: [UInt8], rangeEnd: [UInt8]) -> Bool {
        if key.isEmpty { return false }
        return rangeEnd.isEmpty || rangeEnd == [0] || key.lexicographicallyPrecedes(rangeEnd)
    }

    /// Order of `AuthRole.permissions`.
    static func precedes(_ lhs: AuthPermission, _ rhs: AuthPermission) -> Bool {
        if lhs.key != rhs.key { return lhs.key.lexicographicallyPrecedes(rhs.key) }
        return lhs.rangeEnd.lexicographicallyPrecedes(rhs.rangeEnd)
    }
}

/// A change to the auth store, replicated through the log (etcd's `Auth*` requests that go
/// through raft). Passwords arrive hashed.
public enum AuthCommand: Hashable, Sendable {
    /// etcd `AuthEnable`; `tokenSecret` is what the server signs tokens with from now on.
    case enable(tokenSecret: [UInt8])
    case disable
    case userAdd(name: String, passwordHash: String, noPassword: Bool)
    case userDelete(name: String)
    case userChangePassword(name: String, passwordHash: String)
    case userGrantRole(user: String, role: String)
    case userRevokeRole(user: String, role: String)
    case roleAdd(name: String)
    case roleDelete(name: String)
    case roleGrantPermission(role: String, permission: AuthPermission)
    case roleRevokePermission(role: String, key: [UInt8], rangeEnd: [UInt8])
}

/// Go's `sort.Strings` order: by UTF-8 bytes.
func utf8Precedes(_ lhs: String, _ rhs: String) -> Bool {
    lhs.utf8.lexicographicallyPrecedes(rhs.utf8)
}

extension AuthStore {
    /// Applies one auth change with etcd 3.4's semantics (`auth/store.go`). On error nothing
    /// changed. Who may issue the change is checked by the caller (`KVStateMachine`).
    public mutating func apply(_ command: AuthCommand) throws(KVError) {
        switch command {
        case .enable(let secret):
            // etcd: enabling an enabled store is a no-op success, and enabling keeps the revision.
            if enabled { return }
            guard let root = users[Self.rootName] else { throw .rootUserNotExist }
            guard root.roles.contains(Self.rootName) else { throw .rootRoleNotExist }
            enabled = true
            tokenSecret = secret

        case .disable:
            if !enabled { return }
            enabled = false
            tokenSecret = []
            revision += 1

        case .userAdd(let name, let passwordHash, let noPassword):
            if name.isEmpty { throw .userEmpty }
            if users[name] != nil { throw .userAlreadyExists }
            users[name] = AuthUser(name: name, passwordHash: noPassword ? "" : passwordHash, noPassword: noPassword)
            revision += 1

        case .userDelete(let name):
            if enabled && name == Self.rootName { throw .invalidAuthManagement }
            if users.removeValue(forKey: name) == nil { throw .userNotFound }
            revision += 1

        case .userChangePassword(let name, let passwordHash):
            guard users[name] != nil else { throw .userNotFound }
            users[name]?.passwordHash = passwordHash
            revision += 1

        case .userGrantRole(let user, let role):
            guard var granted = users[user] else { throw .userNotFound }
            if role != Self.rootName && roles[role] == nil { throw .roleNotFound }
            // etcd: granting a role the user already has succeeds and changes nothing.
            if granted.roles.contains(role) { return }
            granted.roles.append(role)
            granted.roles.sort(by: utf8Precedes)
            users[user] = granted
            revision += 1

        case .userRevokeRole(let user, let role):
            if enabled && user == Self.rootName && role == Self.rootName { throw .invalidAuthManagement }
            guard var revoked = users[user] else { throw .userNotFound }
            guard let index = revoked.roles.firstIndex(of: role) else { throw .roleNotGranted }
            revoked.roles.remove(at: index)
            users[user] = revoked
            revision += 1

        case .roleAdd(let name):
            if name.isEmpty { throw .roleEmpty }
            if roles[name] != nil { throw .roleAlreadyExists }
            roles[name] = AuthRole(name: name)
            revision += 1

        case .roleDelete(let name):
            if enabled && name == Self.rootName { throw .invalidAuthManagement }
            if roles.removeValue(forKey: name) == nil { throw .roleNotFound }
            // etcd 3.4 takes the role away from every user that held it.
            for (userName, user) in users where user.roles.contains(name) {
                users[userName]?.roles.removeAll { $0 == name }
            }
            revision += 1

        case .roleGrantPermission(let roleName, let permission):
            guard AuthPermission.isValidRange(key: permission.key, rangeEnd: permission.rangeEnd) else {
                throw .invalidAuthManagement
            }
            guard var role = roles[roleName] else { throw .roleNotFound }
            if let index = role.permissions.firstIndex(where: { $0.key == permission.key && $0.rangeEnd == permission.rangeEnd }) {
                role.permissions[index].type = permission.type
            } else {
                role.permissions.append(permission)
                role.permissions.sort(by: AuthPermission.precedes)
            }
            roles[roleName] = role
            revision += 1

        case .roleRevokePermission(let roleName, let key, let rangeEnd):
            guard var role = roles[roleName] else { throw .roleNotFound }
            let before = role.permissions.count
            role.permissions.removeAll { $0.key == key && $0.rangeEnd == rangeEnd }
            if role.permissions.count == before { throw .permissionNotGranted }
            roles[roleName] = role
            revision += 1
        }
    }
}
