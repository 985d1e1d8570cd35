// SPDX-License-Identifier: Apache-2.0
package import EtcdAPI

/// A member of the cluster, as the cluster lists it.
public struct EtcdMember: Sendable, Hashable, CustomStringConvertible {
    /// The member's ID.
    public var id: UInt64
    /// The member's name; empty for a member added but not started yet.
    public var name: String
    /// The URLs the member's peers reach it at.
    public var peerURLs: [String]
    /// The URLs clients reach it at; empty for a member not started yet.
    public var clientURLs: [String]
    /// Whether the member is a learner (a non-voting member catching up).
    public var isLearner: Bool

    package init(_ proto: Etcdserverpb_Member) {
        self.id = proto.id
        self.name = proto.name
        self.peerURLs = proto.peerUrls
        self.clientURLs = proto.clientUrls
        self.isLearner = proto.isLearner
    }

    public var description: String {
        let id = String(self.id, radix: 16)
        return "\(id), \(self.name), \(self.peerURLs.joined(separator: ",")), \(self.clientURLs.joined(separator: ","))"
            + (self.isLearner ? ", learner" : "")
    }
}

/// The result of a member list, add, remove, update or promote.
public struct EtcdMemberListResponse: Sendable {
    /// The header of the member that answered: cluster, member, revision and raft term.
    public var header: EtcdResponseHeader
    /// The cluster's members after the change.
    public var members: [EtcdMember]
    /// The member added, for ``EtcdClient/memberAdd(peerURLs:isLearner:)``.
    public var added: EtcdMember?

    package init(header: Etcdserverpb_ResponseHeader, members: [Etcdserverpb_Member], added: Etcdserverpb_Member? = nil)
    {
        self.header = EtcdResponseHeader(header)
        self.members = members.map(EtcdMember.init)
        self.added = added.map(EtcdMember.init)
    }
}
