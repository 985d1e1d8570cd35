// SPDX-License-Identifier: Apache-2.0

/// The result of ``EtcdClient/authStatus()``.
public struct EtcdAuthStatusResponse: Sendable {
    /// The header of the member that answered: cluster, member, revision and raft term.
    public var header: EtcdResponseHeader
    /// Whether authentication is on.
    public var enabled: Bool
    /// The auth store's revision: it grows with every user, role or permission change.
    public var authRevision: UInt64
}

/// The result of ``EtcdClient/userGet(_:)``.
public struct EtcdUserGetResponse: Sendable {
    /// The header of the member that answered: cluster, member, revision and raft term.
    public var header: EtcdResponseHeader
    /// The roles granted to the user.
    public var roles: [String]
}

/// The result of ``EtcdClient/userList()``.
public struct EtcdUserListResponse: Sendable {
    /// The header of the member that answered: cluster, member, revision and raft term.
    public var header: EtcdResponseHeader
    /// Every user's name, sorted.
    public var users: [String]
}

/// The result of ``EtcdClient/roleGet(_:)``.
public struct EtcdRoleGetResponse: Sendable {
    /// The header of the member that answered: cluster, member, revision and raft term.
    public var header: EtcdResponseHeader
    /// The permissions the role grants.
    public var permissions: [EtcdPermission]
}

/// The result of ``EtcdClient/roleList()``.
public struct EtcdRoleListResponse: Sendable {
    /// The header of the member that answered: cluster, member, revision and raft term.
    public var header: EtcdResponseHeader
    /// Every role's name, sorted.
    public var roles: [String]
}
