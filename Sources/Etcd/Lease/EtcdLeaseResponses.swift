// SPDX-License-Identifier: Apache-2.0
package import EtcdAPI
public import FoundationEssentials

/// The result of ``EtcdClient/grant(ttl:id:)``.
public struct EtcdLeaseGrantResponse: Sendable {
    /// The header of the member that answered: cluster, member, revision and raft term.
    public var header: EtcdResponseHeader
    /// The new lease's ID, to attach keys with `.lease(id)`.
    public var id: Int64
    /// The TTL the server granted, in seconds (it raises TTLs below its minimum).
    public var ttl: Int64

    package init(_ proto: Etcdserverpb_LeaseGrantResponse) {
        self.header = EtcdResponseHeader(proto.header)
        self.id = proto.id
        self.ttl = proto.ttl
    }
}

/// The result of ``EtcdClient/revoke(_:)``.
public struct EtcdLeaseRevokeResponse: Sendable {
    /// The header of the member that answered: cluster, member, revision and raft term.
    public var header: EtcdResponseHeader

    package init(_ proto: Etcdserverpb_LeaseRevokeResponse) {
        self.header = EtcdResponseHeader(proto.header)
    }
}

/// The result of ``EtcdClient/timeToLive(_:attachedKeys:)``.
public struct EtcdLeaseTimeToLiveResponse: Sendable {
    /// The header of the member that answered: cluster, member, revision and raft term.
    public var header: EtcdResponseHeader
    /// The lease's ID.
    public var id: Int64
    /// The seconds the lease has left.
    public var ttl: Int64
    /// The TTL the lease was granted with, in seconds.
    public var grantedTTL: Int64
    /// The keys attached to the lease (only when asked for with `attachedKeys: true`).
    public var keys: [Data]

    /// The attached keys decoded as UTF-8.
    public var keyStrings: [String] { self.keys.map(\.etcdString) }

    package init(_ proto: Etcdserverpb_LeaseTimeToLiveResponse) {
        self.header = EtcdResponseHeader(proto.header)
        self.id = proto.id
        self.ttl = proto.ttl
        self.grantedTTL = proto.grantedTtl
        self.keys = proto.keys
    }
}

/// One acknowledged renewal of a lease.
public struct EtcdLeaseKeepAliveResponse: Sendable {
    /// The header of the member that answered: cluster, member, revision and raft term.
    public var header: EtcdResponseHeader
    /// The lease's ID.
    public var id: Int64
    /// The TTL the lease was renewed to, in seconds.
    public var ttl: Int64

    package init(_ proto: Etcdserverpb_LeaseKeepAliveResponse) {
        self.header = EtcdResponseHeader(proto.header)
        self.id = proto.id
        self.ttl = proto.ttl
    }
}

/// The result of ``EtcdClient/leases()``.
public struct EtcdLeaseLeasesResponse: Sendable {
    /// The header of the member that answered: cluster, member, revision and raft term.
    public var header: EtcdResponseHeader
    /// The IDs of every lease the cluster holds.
    public var ids: [Int64]

    package init(_ proto: Etcdserverpb_LeaseLeasesResponse) {
        self.header = EtcdResponseHeader(proto.header)
        self.ids = proto.leases.map(\.id)
    }
}
