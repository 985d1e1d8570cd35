// SPDX-License-Identifier: Apache-2.0
package import EtcdAPI

/// One member's status (Maintenance Status): version, database size, raft position, alarms.
public struct EtcdStatusResponse: Sendable {
    /// The header of the member that answered: cluster, member, revision and raft term.
    public var header: EtcdResponseHeader
    /// The member's etcd version (`3.5.1`).
    public var version: String
    /// The backend database's allocated size, in bytes.
    public var dbSize: Int64
    /// The backend database's size in use, in bytes.
    public var dbSizeInUse: Int64
    /// The member ID this member believes is the leader.
    public var leader: UInt64
    /// The member's raft committed index.
    public var raftIndex: UInt64
    /// The member's current raft term.
    public var raftTerm: UInt64
    /// The last raft log index the member has applied to its store.
    public var raftAppliedIndex: UInt64
    /// Alarm and health messages.
    public var errors: [String]
    /// Whether the member is a raft learner.
    public var isLearner: Bool
    /// The database file's storage version; `nil` when the member runs etcd older than 3.6.
    public var storageVersion: String?
    /// The configured backend quota in bytes; `nil` when the member runs etcd older than 3.6.
    public var dbSizeQuota: Int64?
    /// Whether a downgrade is enabled and to which version; `nil` when the member runs etcd older than 3.6.
    public var downgradeInfo: (enabled: Bool, targetVersion: String)?

    package init(_ proto: Etcdserverpb_StatusResponse) {
        self.header = EtcdResponseHeader(proto.header)
        self.version = proto.version
        self.dbSize = proto.dbSize
        self.dbSizeInUse = proto.dbSizeInUse
        self.leader = proto.leader
        self.raftIndex = proto.raftIndex
        self.raftTerm = proto.raftTerm
        self.raftAppliedIndex = proto.raftAppliedIndex
        self.errors = proto.errors
        self.isLearner = proto.isLearner
        let has36 = EtcdServerVersion(proto.version).map { $0 >= .v3_6 } ?? false
        self.storageVersion = has36 ? proto.storageVersion : nil
        self.dbSizeQuota = has36 ? proto.dbSizeQuota : nil
        self.downgradeInfo = has36 ? (proto.downgradeInfo.enabled, proto.downgradeInfo.targetVersion) : nil
    }
}
