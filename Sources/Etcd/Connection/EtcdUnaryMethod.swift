// SPDX-License-Identifier: Apache-2.0
package import EtcdAPI
import GRPCCore
import SwiftProtobuf

/// A method of etcd's API sent as one request answered by one response, as
/// ``EndpointConnection/unary(_:_:metadata:options:)`` sends it: its generated `Method` namespace
/// (request and response types, descriptor). Every unary method, and LeaseKeepAlive for a single
/// renewal (the request half-closes the stream; etcd answers once and ends it).
package protocol EtcdUnaryMethod {
    associatedtype Input: SwiftProtobuf.Message
    associatedtype Output: SwiftProtobuf.Message
    static var descriptor: MethodDescriptor { get }
}

extension EtcdUnaryMethod {
    /// The HTTP/2 `:path` of the method.
    static var path: String { "/" + Self.descriptor.fullyQualifiedMethod }
}

// Every unary method of the generated services; streaming ones stay on grpc-swift, except a
// single keepalive (``EtcdClient/keepAliveOnce(_:)``).
extension Etcdserverpb_Lease.Method.LeaseKeepAlive: EtcdUnaryMethod {}
extension Etcdserverpb_KV.Method.Range: EtcdUnaryMethod {}
extension Etcdserverpb_KV.Method.Put: EtcdUnaryMethod {}
extension Etcdserverpb_KV.Method.DeleteRange: EtcdUnaryMethod {}
extension Etcdserverpb_KV.Method.Txn: EtcdUnaryMethod {}
extension Etcdserverpb_KV.Method.Compact: EtcdUnaryMethod {}
extension Etcdserverpb_Lease.Method.LeaseGrant: EtcdUnaryMethod {}
extension Etcdserverpb_Lease.Method.LeaseRevoke: EtcdUnaryMethod {}
extension Etcdserverpb_Lease.Method.LeaseTimeToLive: EtcdUnaryMethod {}
extension Etcdserverpb_Lease.Method.LeaseLeases: EtcdUnaryMethod {}
extension Etcdserverpb_Cluster.Method.MemberAdd: EtcdUnaryMethod {}
extension Etcdserverpb_Cluster.Method.MemberRemove: EtcdUnaryMethod {}
extension Etcdserverpb_Cluster.Method.MemberUpdate: EtcdUnaryMethod {}
extension Etcdserverpb_Cluster.Method.MemberList: EtcdUnaryMethod {}
extension Etcdserverpb_Cluster.Method.MemberPromote: EtcdUnaryMethod {}
extension Etcdserverpb_Maintenance.Method.Alarm: EtcdUnaryMethod {}
extension Etcdserverpb_Maintenance.Method.Status: EtcdUnaryMethod {}
extension Etcdserverpb_Maintenance.Method.Defragment: EtcdUnaryMethod {}
extension Etcdserverpb_Maintenance.Method.Hash: EtcdUnaryMethod {}
extension Etcdserverpb_Maintenance.Method.HashKV: EtcdUnaryMethod {}
extension Etcdserverpb_Maintenance.Method.MoveLeader: EtcdUnaryMethod {}
extension Etcdserverpb_Maintenance.Method.Downgrade: EtcdUnaryMethod {}
extension Etcdserverpb_Auth.Method.AuthEnable: EtcdUnaryMethod {}
extension Etcdserverpb_Auth.Method.AuthDisable: EtcdUnaryMethod {}
extension Etcdserverpb_Auth.Method.AuthStatus: EtcdUnaryMethod {}
extension Etcdserverpb_Auth.Method.Authenticate: EtcdUnaryMethod {}
extension Etcdserverpb_Auth.Method.UserAdd: EtcdUnaryMethod {}
extension Etcdserverpb_Auth.Method.UserGet: EtcdUnaryMethod {}
extension Etcdserverpb_Auth.Method.UserList: EtcdUnaryMethod {}
extension Etcdserverpb_Auth.Method.UserDelete: EtcdUnaryMethod {}
extension Etcdserverpb_Auth.Method.UserChangePassword: EtcdUnaryMethod {}
extension Etcdserverpb_Auth.Method.UserGrantRole: EtcdUnaryMethod {}
extension Etcdserverpb_Auth.Method.UserRevokeRole: EtcdUnaryMethod {}
extension Etcdserverpb_Auth.Method.RoleAdd: EtcdUnaryMethod {}
extension Etcdserverpb_Auth.Method.RoleGet: EtcdUnaryMethod {}
extension Etcdserverpb_Auth.Method.RoleList: EtcdUnaryMethod {}
extension Etcdserverpb_Auth.Method.RoleDelete: EtcdUnaryMethod {}
extension Etcdserverpb_Auth.Method.RoleGrantPermission: EtcdUnaryMethod {}
extension Etcdserverpb_Auth.Method.RoleRevokePermission: EtcdUnaryMethod {}
extension V3electionpb_Election.Method.Campaign: EtcdUnaryMethod {}
extension V3electionpb_Election.Method.Proclaim: EtcdUnaryMethod {}
extension V3electionpb_Election.Method.Leader: EtcdUnaryMethod {}
extension V3electionpb_Election.Method.Resign: EtcdUnaryMethod {}
extension V3lockpb_Lock.Method.Lock: EtcdUnaryMethod {}
extension V3lockpb_Lock.Method.Unlock: EtcdUnaryMethod {}
