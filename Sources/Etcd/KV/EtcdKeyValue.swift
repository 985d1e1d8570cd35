// SPDX-License-Identifier: Apache-2.0
package import EtcdAPI
public import FoundationEssentials

/// A key, its value, and the revisions etcd keeps for it.
public struct EtcdKeyValue: Sendable, Hashable, CustomStringConvertible {
    package var proto: Mvccpb_KeyValue

    package init(_ proto: Mvccpb_KeyValue) { self.proto = proto }

    /// The key's bytes.
    public var key: [UInt8] { [UInt8](self.proto.key) }
    /// The key's bytes as `Data`.
    public var keyData: Data { self.proto.key }
    /// The key decoded as UTF-8.
    public var keyString: String { self.proto.key.etcdString }
    /// The value's bytes (empty with `keysOnly`).
    public var value: [UInt8] { [UInt8](self.proto.value) }
    /// The value's bytes as `Data`.
    public var valueData: Data { self.proto.value }
    /// The value decoded as UTF-8.
    public var valueString: String { self.proto.value.etcdString }
    /// The revision at which the key was last created.
    public var createRevision: Int64 { self.proto.createRevision }
    /// The revision of the key's last modification.
    public var modRevision: Int64 { self.proto.modRevision }
    /// How many times the key was written since its creation (a delete resets it to 0).
    public var version: Int64 { self.proto.version }
    /// The lease the key is attached to, or 0.
    public var lease: Int64 { self.proto.lease }

    public var description: String { "\(self.keyString) : \(self.valueString)" }
}

/// The header etcd puts on every response.
public struct EtcdResponseHeader: Sendable, Hashable {
    /// The ID of the cluster that answered.
    public var clusterID: UInt64
    /// The ID of the member that answered.
    public var memberID: UInt64
    /// The store's revision when the request was applied.
    public var revision: Int64
    /// The raft term when the request was applied.
    public var raftTerm: UInt64

    package init(_ proto: Etcdserverpb_ResponseHeader) {
        self.clusterID = proto.clusterID
        self.memberID = proto.memberID
        self.revision = proto.revision
        self.raftTerm = proto.raftTerm
    }
}
