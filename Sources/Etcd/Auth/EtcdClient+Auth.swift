// SPDX-License-Identifier: Apache-2.0
internal import EtcdAPI
import GRPCCore

extension EtcdClient {
    /// Whether authentication is enabled, and the auth store's revision (etcd 3.5 and newer).
    ///
    /// - Throws: ``EtcdClientError`` `notSupported` (naming the version needed) when the member runs
    ///   etcd older than 3.5.
    public func authStatus() async throws -> EtcdAuthStatusResponse {
        let response = try await self.call("AuthStatus", retry: .idempotent, minimumVersion: (.v3_5, "AuthStatus")) {
            connection, options, metadata in
            try await connection.unary(
                Etcdserverpb_Auth.Method.AuthStatus.self, Etcdserverpb_AuthStatusRequest(), metadata: metadata,
                options: options)
        }
        return EtcdAuthStatusResponse(
            header: EtcdResponseHeader(response.header), enabled: response.enabled, authRevision: response.authRevision)
    }

    /// Turns authentication on. The `root` user (with the `root` role) must exist first.
    ///
    /// - Throws: ``EtcdClientError`` `rootUserNotExist` or `rootRoleNotExist`.
    @discardableResult
    public func authEnable() async throws -> EtcdResponseHeader {
        let response = try await self.call("AuthEnable", retry: .idempotent) { connection, options, metadata in
            try await connection.unary(
                Etcdserverpb_Auth.Method.AuthEnable.self, Etcdserverpb_AuthEnableRequest(), metadata: metadata,
                options: options)
        }
        return EtcdResponseHeader(response.header)
    }

    /// Turns authentication off (as `root`).
    @discardableResult
    public func authDisable() async throws -> EtcdResponseHeader {
        let response = try await self.call("AuthDisable", retry: .idempotent) { connection, options, metadata in
            try await connection.unary(
                Etcdserverpb_Auth.Method.AuthDisable.self, Etcdserverpb_AuthDisableRequest(), metadata: metadata,
                options: options)
        }
        return EtcdResponseHeader(response.header)
    }

    /// Adds a user with a password, or with `password: nil` one that can only authenticate with a
    /// TLS client certificate (etcd 3.4+; Go's `UserAddWithOptions` with `NoPassword`).
    ///
    /// - Throws: ``EtcdClientError`` `userEmpty` for an empty name (before anything is sent);
    ///   `userAlreadyExist`.
    @discardableResult
    public func userAdd(_ name: String, password: String?) async throws -> EtcdResponseHeader {
        try Self.checkName(name, .userEmpty, "a user name must not be empty")
        var request = Etcdserverpb_AuthUserAddRequest()
        request.name = name
        if let password { request.password = password } else { request.options.noPassword = true }
        return try await self.authMutation("UserAdd") { connection, options, metadata in
            try await connection.unary(
                Etcdserverpb_Auth.Method.UserAdd.self, request, metadata: metadata, options: options
            ).header
        }
    }

    /// Deletes a user.
    ///
    /// - Throws: ``EtcdClientError`` `userNotFound`.
    @discardableResult
    public func userDelete(_ name: String) async throws -> EtcdResponseHeader {
        var request = Etcdserverpb_AuthUserDeleteRequest()
        request.name = name
        return try await self.authMutation("UserDelete") { connection, options, metadata in
            try await connection.unary(
                Etcdserverpb_Auth.Method.UserDelete.self, request, metadata: metadata, options: options
            ).header
        }
    }

    /// Changes a user's password. Tokens already issued stay valid until they expire.
    @discardableResult
    public func userChangePassword(_ name: String, password: String) async throws -> EtcdResponseHeader {
        var request = Etcdserverpb_AuthUserChangePasswordRequest()
        request.name = name
        request.password = password
        return try await self.authMutation("UserChangePassword") { connection, options, metadata in
            try await connection.unary(
                Etcdserverpb_Auth.Method.UserChangePassword.self, request, metadata: metadata, options: options
            ).header
        }
    }

    /// Grants a role to a user.
    ///
    /// - Throws: ``EtcdClientError`` `userNotFound`, `roleNotFound`.
    @discardableResult
    public func userGrantRole(_ user: String, role: String) async throws -> EtcdResponseHeader {
        var request = Etcdserverpb_AuthUserGrantRoleRequest()
        request.user = user
        request.role = role
        return try await self.authMutation("UserGrantRole") { connection, options, metadata in
            try await connection.unary(
                Etcdserverpb_Auth.Method.UserGrantRole.self, request, metadata: metadata, options: options
            ).header
        }
    }

    /// Revokes a role from a user.
    ///
    /// - Throws: ``EtcdClientError`` `userNotFound`, `roleNotGranted`.
    @discardableResult
    public func userRevokeRole(_ user: String, role: String) async throws -> EtcdResponseHeader {
        var request = Etcdserverpb_AuthUserRevokeRoleRequest()
        request.name = user
        request.role = role
        return try await self.authMutation("UserRevokeRole") { connection, options, metadata in
            try await connection.unary(
                Etcdserverpb_Auth.Method.UserRevokeRole.self, request, metadata: metadata, options: options
            ).header
        }
    }

    /// The roles granted to a user.
    ///
    /// - Throws: ``EtcdClientError`` `userNotFound`.
    public func userGet(_ name: String) async throws -> EtcdUserGetResponse {
        var request = Etcdserverpb_AuthUserGetRequest()
        request.name = name
        let response = try await self.call("UserGet", retry: .idempotent) { connection, options, metadata in
            try await connection.unary(
                Etcdserverpb_Auth.Method.UserGet.self, request, metadata: metadata, options: options)
        }
        return EtcdUserGetResponse(header: EtcdResponseHeader(response.header), roles: response.roles)
    }

    /// Every user's name.
    public func userList() async throws -> EtcdUserListResponse {
        let response = try await self.call("UserList", retry: .idempotent) { connection, options, metadata in
            try await connection.unary(
                Etcdserverpb_Auth.Method.UserList.self, Etcdserverpb_AuthUserListRequest(), metadata: metadata,
                options: options)
        }
        return EtcdUserListResponse(header: EtcdResponseHeader(response.header), users: response.users)
    }

    /// Adds a role (with no permissions).
    ///
    /// - Throws: ``EtcdClientError`` `roleEmpty` for an empty name (before anything is sent);
    ///   `roleAlreadyExist`.
    @discardableResult
    public func roleAdd(_ name: String) async throws -> EtcdResponseHeader {
        try Self.checkName(name, .roleEmpty, "a role name must not be empty")
        var request = Etcdserverpb_AuthRoleAddRequest()
        request.name = name
        return try await self.authMutation("RoleAdd") { connection, options, metadata in
            try await connection.unary(
                Etcdserverpb_Auth.Method.RoleAdd.self, request, metadata: metadata, options: options
            ).header
        }
    }

    /// Deletes a role (and revokes it from every user).
    ///
    /// - Throws: ``EtcdClientError`` `roleNotFound`.
    @discardableResult
    public func roleDelete(_ name: String) async throws -> EtcdResponseHeader {
        var request = Etcdserverpb_AuthRoleDeleteRequest()
        request.role = name
        return try await self.authMutation("RoleDelete") { connection, options, metadata in
            try await connection.unary(
                Etcdserverpb_Auth.Method.RoleDelete.self, request, metadata: metadata, options: options
            ).header
        }
    }

    /// The permissions a role grants.
    ///
    /// - Throws: ``EtcdClientError`` `roleNotFound`.
    public func roleGet(_ name: String) async throws -> EtcdRoleGetResponse {
        var request = Etcdserverpb_AuthRoleGetRequest()
        request.role = name
        let response = try await self.call("RoleGet", retry: .idempotent) { connection, options, metadata in
            try await connection.unary(
                Etcdserverpb_Auth.Method.RoleGet.self, request, metadata: metadata, options: options)
        }
        return EtcdRoleGetResponse(
            header: EtcdResponseHeader(response.header), permissions: response.perm.map(EtcdPermission.init))
    }

    /// Every role's name.
    public func roleList() async throws -> EtcdRoleListResponse {
        let response = try await self.call("RoleList", retry: .idempotent) { connection, options, metadata in
            try await connection.unary(
                Etcdserverpb_Auth.Method.RoleList.self, Etcdserverpb_AuthRoleListRequest(), metadata: metadata,
                options: options)
        }
        return EtcdRoleListResponse(header: EtcdResponseHeader(response.header), roles: response.roles)
    }

    /// Grants a permission to a role.
    ///
    /// ```swift
    /// try await client.roleGrantPermission("reader", .prefix(.read, "config/"))
    /// try await client.roleGrantPermission("writer", .init(.readwrite, key: "foo", rangeEnd: "zoo"))
    /// ```
    ///
    /// - Throws: ``EtcdClientError`` `roleNotFound`.
    @discardableResult
    public func roleGrantPermission(_ role: String, _ permission: EtcdPermission) async throws -> EtcdResponseHeader {
        var request = Etcdserverpb_AuthRoleGrantPermissionRequest()
        request.name = role
        request.perm = permission.proto
        return try await self.authMutation("RoleGrantPermission") { connection, options, metadata in
            try await connection.unary(
                Etcdserverpb_Auth.Method.RoleGrantPermission.self, request, metadata: metadata, options: options
            ).header
        }
    }

    /// Revokes the permission on `key` (and `rangeEnd`, if the permission had one) from a role.
    ///
    /// - Throws: ``EtcdClientError`` `roleNotFound`, `permissionNotGranted`.
    @discardableResult
    public func roleRevokePermission(
        _ role: String,
        key: some EtcdBytes,
        rangeEnd: some EtcdBytes = ""
    ) async throws -> EtcdResponseHeader {
        var request = Etcdserverpb_AuthRoleRevokePermissionRequest()
        request.role = role
        request.key = key.etcdData
        request.rangeEnd = rangeEnd.etcdData
        return try await self.authMutation("RoleRevokePermission") { connection, options, metadata in
            try await connection.unary(
                Etcdserverpb_Auth.Method.RoleRevokePermission.self, request, metadata: metadata, options: options
            ).header
        }
    }

    /// An auth-store change, which returns only a header. Not retried once sent: a repeat would
    /// report `userAlreadyExist`, `roleNotGranted` and the like for what the first attempt did.
    private func authMutation(
        _ method: String,
        _ body: (EndpointConnection, CallOptions, Metadata) async throws -> Etcdserverpb_ResponseHeader
    ) async throws -> EtcdResponseHeader {
        EtcdResponseHeader(try await self.call(method, retry: .mutation, body))
    }

    private static func checkName(_ name: String, _ code: EtcdClientError.Code, _ message: String)
        throws(EtcdClientError)
    {
        if name.isEmpty { throw EtcdClientError(code: code, message: message) }
    }
}
