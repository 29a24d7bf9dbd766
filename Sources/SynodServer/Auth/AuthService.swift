import Foundation
import GRPCCore
import SynodEtcdAPI
import SynodKV

/// etcd's Auth service. Every change goes through the log as a `KVCommand.auth` wrapped with
/// the caller (`Node.writeFuture` with the call's credentials), so every member applies it, and
/// checks that the caller may make it, at the same point; passwords are hashed (scrypt,
/// `PasswordHasher`) here, before proposing (the log and snapshots hold only hashes). Listings and lookups are
/// served from this member's state after a linearizable barrier.
struct AuthService: Etcdserverpb_Auth.SimpleServiceProtocol {
    let context: ServiceContext
    let hasher: PasswordHasher
    let tokenTTLSeconds: Int

    init(context: ServiceContext) {
        self.context = context
        hasher = PasswordHasher(cost: context.node.options.bcryptCost)
        tokenTTLSeconds = context.node.options.authTokenTTLSeconds
    }

    /// Proposes an auth change; answers with the header of the revision it applied at.
    private func change(_ method: String, _ command: AuthCommand) async throws -> Etcdserverpb_ResponseHeader {
        try await context.serve(method) {
            let response = try await context.write(.auth(command))
            return context.header(revision: response.revision)
        }
    }

    /// The hash to store: computed here, or one the client computed (etcd 3.5's
    /// `hashedPassword`), which must be in Synod's own form.
    private func hashed(_ password: String, given: String) async throws -> String {
        guard !given.isEmpty else { return await hasher.hash(password) }
        guard given.hasPrefix("$scrypt$"), given.utf8.count <= 512 else {
            throw RPCError(code: .invalidArgument, message: "synod: hashedPassword must be a Synod scrypt hash ($scrypt$...); send the password instead")
        }
        return given
    }

    func authEnable(request _: Etcdserverpb_AuthEnableRequest, context _: ServerContext) async throws
        -> Etcdserverpb_AuthEnableResponse {
        var out = Etcdserverpb_AuthEnableResponse()
        out.header = try await change("AuthEnable", .enable(tokenSecret: AuthTokens.newSecret()))
        return out
    }

    func authDisable(request _: Etcdserverpb_AuthDisableRequest, context _: ServerContext) async throws
        -> Etcdserverpb_AuthDisableResponse {
        var out = Etcdserverpb_AuthDisableResponse()
        out.header = try await change("AuthDisable", .disable)
        return out
    }

    func authStatus(request _: Etcdserverpb_AuthStatusRequest, context _: ServerContext) async throws
        -> Etcdserverpb_AuthStatusResponse {
        try await context.serve("AuthStatus") {
            let ctx = context
            return try await context.node.read(.linearizable) { state in
                var out = Etcdserverpb_AuthStatusResponse()
                out.header = ctx.header(revision: state.kv.store.revision)
                out.enabled = state.kv.auth.enabled
                out.authRevision = state.kv.auth.revision
                return out
            }
        }
    }

    /// Checks the password (scrypt, off the event loops; a password verified before is
    /// answered from a cache) and issues a token signed with the cluster's secret: valid on
    /// every member until `--auth-token-ttl` runs out or the auth state changes.
    func authenticate(request: Etcdserverpb_AuthenticateRequest, context _: ServerContext) async throws
        -> Etcdserverpb_AuthenticateResponse {
        try await context.serve("Authenticate") {
            let name = request.name
            let ctx = context
            // Linearizable: a user added a moment ago on another member is known here.
            let found = try await context.node.read(.linearizable) { state in
                (state.kv.auth.enabled, state.kv.auth.users[name], state.kv.auth.tokenSecret, state.kv.auth.revision,
                 ctx.header(revision: state.kv.store.revision))
            }
            let (enabled, user, secret, revision, header) = found
            guard enabled else { throw KVError.authNotEnabled }
            guard let user, !user.noPassword, !user.passwordHash.isEmpty,
                  await hasher.verify(request.password, hash: user.passwordHash) else {
                throw KVError.authFailed
            }
            var out = Etcdserverpb_AuthenticateResponse()
            out.header = header
            out.token = AuthTokens.issue(user: name, authRevision: revision, secret: secret, ttlSeconds: tokenTTLSeconds)
            return out
        }
    }

    func userAdd(request: Etcdserverpb_AuthUserAddRequest, context _: ServerContext) async throws -> Etcdserverpb_AuthUserAddResponse {
        let noPassword = request.hasOptions && request.options.noPassword
        var hash = ""
        if !noPassword && !request.name.isEmpty {
            hash = try await hashed(request.password, given: request.hashedPassword)
        }
        var out = Etcdserverpb_AuthUserAddResponse()
        out.header = try await change("UserAdd", .userAdd(name: request.name, passwordHash: hash, noPassword: noPassword))
        return out
    }

    /// With auth enabled, the caller must be root unless `allowed` lets that user through
    /// (etcd lets a user get itself and the roles it has).
    private static func requireAdmin(_ auth: AuthStore, _ credentials: AuthCredentials,
                                     unless allowed: (String) -> Bool) throws {
        if let caller = try auth.caller(credentials), !allowed(caller.user), let error = auth.checkAdmin(user: caller.user) {
            throw error
        }
    }

    func userGet(request: Etcdserverpb_AuthUserGetRequest, context _: ServerContext) async throws -> Etcdserverpb_AuthUserGetResponse {
        try await context.serve("UserGet") {
            let ctx = context
            let credentials = AuthCredentials.current
            return try await context.node.read(.linearizable) { state in
                // Oneself, or root (etcd).
                try Self.requireAdmin(state.kv.auth, credentials, unless: { $0 == request.name })
                guard let user = state.kv.auth.users[request.name] else { throw KVError.userNotFound }
                var out = Etcdserverpb_AuthUserGetResponse()
                out.header = ctx.header(revision: state.kv.store.revision)
                out.roles = user.roles
                return out
            }
        }
    }

    func userList(request _: Etcdserverpb_AuthUserListRequest, context _: ServerContext) async throws
        -> Etcdserverpb_AuthUserListResponse {
        try await context.serve("UserList") {
            try await context.requireAdmin()
            let ctx = context
            return try await context.node.read(.linearizable) { state in
                var out = Etcdserverpb_AuthUserListResponse()
                out.header = ctx.header(revision: state.kv.store.revision)
                out.users = state.kv.auth.users.keys.sorted()
                return out
            }
        }
    }

    func userDelete(request: Etcdserverpb_AuthUserDeleteRequest, context _: ServerContext) async throws
        -> Etcdserverpb_AuthUserDeleteResponse {
        var out = Etcdserverpb_AuthUserDeleteResponse()
        out.header = try await change("UserDelete", .userDelete(name: request.name))
        return out
    }

    func userChangePassword(request: Etcdserverpb_AuthUserChangePasswordRequest, context _: ServerContext) async throws
        -> Etcdserverpb_AuthUserChangePasswordResponse {
        let hash = try await hashed(request.password, given: request.hashedPassword)
        var out = Etcdserverpb_AuthUserChangePasswordResponse()
        out.header = try await change("UserChangePassword", .userChangePassword(name: request.name, passwordHash: hash))
        return out
    }

    func userGrantRole(request: Etcdserverpb_AuthUserGrantRoleRequest, context _: ServerContext) async throws
        -> Etcdserverpb_AuthUserGrantRoleResponse {
        var out = Etcdserverpb_AuthUserGrantRoleResponse()
        out.header = try await change("UserGrantRole", .userGrantRole(user: request.user, role: request.role))
        return out
    }

    func userRevokeRole(request: Etcdserverpb_AuthUserRevokeRoleRequest, context _: ServerContext) async throws
        -> Etcdserverpb_AuthUserRevokeRoleResponse {
        var out = Etcdserverpb_AuthUserRevokeRoleResponse()
        out.header = try await change("UserRevokeRole", .userRevokeRole(user: request.name, role: request.role))
        return out
    }

    func roleAdd(request: Etcdserverpb_AuthRoleAddRequest, context _: ServerContext) async throws -> Etcdserverpb_AuthRoleAddResponse {
        var out = Etcdserverpb_AuthRoleAddResponse()
        out.header = try await change("RoleAdd", .roleAdd(name: request.name))
        return out
    }

    func roleGet(request: Etcdserverpb_AuthRoleGetRequest, context _: ServerContext) async throws -> Etcdserverpb_AuthRoleGetResponse {
        try await context.serve("RoleGet") {
            let ctx = context
            let credentials = AuthCredentials.current
            return try await context.node.read(.linearizable) { state in
                // A role of one's own, or root (etcd).
                try Self.requireAdmin(state.kv.auth, credentials, unless: { state.kv.auth.hasRole(user: $0, role: request.role) })
                var out = Etcdserverpb_AuthRoleGetResponse()
                out.header = ctx.header(revision: state.kv.store.revision)
                if request.role == AuthStore.rootName, state.kv.auth.roles[request.role] == nil {
                    return out  // the implicit root role: every key, shown without permissions
                }
                guard let role = state.kv.auth.roles[request.role] else { throw KVError.roleNotFound }
                out.perm = role.permissions.map { permission in
                    var perm = Authpb_Permission()
                    perm.permType = Authpb_Permission.TypeEnum(rawValue: Int(permission.type.rawValue)) ?? .read
                    perm.key = Data(permission.key)
                    perm.rangeEnd = Data(permission.rangeEnd)
                    return perm
                }
                return out
            }
        }
    }

    func roleList(request _: Etcdserverpb_AuthRoleListRequest, context _: ServerContext) async throws
        -> Etcdserverpb_AuthRoleListResponse {
        try await context.serve("RoleList") {
            try await context.requireAdmin()
            let ctx = context
            return try await context.node.read(.linearizable) { state in
                var out = Etcdserverpb_AuthRoleListResponse()
                out.header = ctx.header(revision: state.kv.store.revision)
                out.roles = state.kv.auth.roles.keys.sorted()
                return out
            }
        }
    }

    func roleDelete(request: Etcdserverpb_AuthRoleDeleteRequest, context _: ServerContext) async throws
        -> Etcdserverpb_AuthRoleDeleteResponse {
        var out = Etcdserverpb_AuthRoleDeleteResponse()
        out.header = try await change("RoleDelete", .roleDelete(name: request.role))
        return out
    }

    func roleGrantPermission(request: Etcdserverpb_AuthRoleGrantPermissionRequest, context _: ServerContext) async throws
        -> Etcdserverpb_AuthRoleGrantPermissionResponse {
        guard let type = AuthPermission.PermissionType(rawValue: UInt8(clamping: request.perm.permType.rawValue)) else {
            throw RPCError(code: .invalidArgument, message: "etcdserver: invalid permission type")
        }
        let permission = AuthPermission(type: type, key: [UInt8](request.perm.key), rangeEnd: [UInt8](request.perm.rangeEnd))
        var out = Etcdserverpb_AuthRoleGrantPermissionResponse()
        out.header = try await change("RoleGrantPermission", .roleGrantPermission(role: request.name, permission: permission))
        return out
    }

    func roleRevokePermission(request: Etcdserverpb_AuthRoleRevokePermissionRequest, context _: ServerContext) async throws
        -> Etcdserverpb_AuthRoleRevokePermissionResponse {
        var out = Etcdserverpb_AuthRoleRevokePermissionResponse()
        out.header = try await change("RoleRevokePermission",
                                      .roleRevokePermission(role: request.role, key: [UInt8](request.key), rangeEnd: [UInt8](request.rangeEnd)))
        return out
    }
}
