// SPDX-License-Identifier: Apache-2.0
package import EtcdAPI
import GRPCCore
import SwiftProtobuf

/// A method of etcd's API as ``FrameChannel`` sends it: its generated `Method` namespace (request
/// and response types, descriptor). Every unary method, LeaseKeepAlive both for a single renewal
/// (the request half-closes the stream; etcd answers once and ends it) and as the keepalive stream,
/// and Watch (``EndpointConnection/stream(_:metadata:options:onResponse:requests:)``).
package protocol EtcdMethod {
    associatedtype Input: SwiftProtobuf.Message
    associatedtype Output: SwiftProtobuf.Message
    static var descriptor: MethodDescriptor { get }
}

extension EtcdMethod {
    /// The HTTP/2 `:path` of the method.
    static var path: String { "/" + Self.descriptor.fullyQualifiedMethod }
}

// Every unary method of the generated services; of the streaming ones, lease keepalive and watch.
// The others (snapshot, range stream, election observe) stay on grpc-swift.
extension Etcdserverpb_Lease.Method.LeaseKeepAlive: EtcdMethod {}
extension Etcdserverpb_Watch.Method.Watch: EtcdMethod {}
extension Etcdserverpb_KV.Method.Range: EtcdMethod {}
extension Etcdserverpb_KV.Method.Put: EtcdMethod {}
extension Etcdserverpb_KV.Method.DeleteRange: EtcdMethod {}
extension Etcdserverpb_KV.Method.Txn: EtcdMethod {}
extension Etcdserverpb_KV.Method.Compact: EtcdMethod {}
extension Etcdserverpb_Lease.Method.LeaseGrant: EtcdMethod {}
extension Etcdserverpb_Lease.Method.LeaseRevoke: EtcdMethod {}
extension Etcdserverpb_Lease.Method.LeaseTimeToLive: EtcdMethod {}
extension Etcdserverpb_Lease.Method.LeaseLeases: EtcdMethod {}
extension Etcdserverpb_Cluster.Method.MemberAdd: EtcdMethod {}
extension Etcdserverpb_Cluster.Method.MemberRemove: EtcdMethod {}
extension Etcdserverpb_Cluster.Method.MemberUpdate: EtcdMethod {}
extension Etcdserverpb_Cluster.Method.MemberList: EtcdMethod {}
extension Etcdserverpb_Cluster.Method.MemberPromote: EtcdMethod {}
extension Etcdserverpb_Maintenance.Method.Alarm: EtcdMethod {}
extension Etcdserverpb_Maintenance.Method.Status: EtcdMethod {}
extension Etcdserverpb_Maintenance.Method.Defragment: EtcdMethod {}
extension Etcdserverpb_Maintenance.Method.Hash: EtcdMethod {}
extension Etcdserverpb_Maintenance.Method.HashKV: EtcdMethod {}
extension Etcdserverpb_Maintenance.Method.MoveLeader: EtcdMethod {}
extension Etcdserverpb_Maintenance.Method.Downgrade: EtcdMethod {}
extension Etcdserverpb_Auth.Method.AuthEnable: EtcdMethod {}
extension Etcdserverpb_Auth.Method.AuthDisable: EtcdMethod {}
extension Etcdserverpb_Auth.Method.AuthStatus: EtcdMethod {}
extension Etcdserverpb_Auth.Method.Authenticate: EtcdMethod {}
extension Etcdserverpb_Auth.Method.UserAdd: EtcdMethod {}
extension Etcdserverpb_Auth.Method.UserGet: EtcdMethod {}
extension Etcdserverpb_Auth.Method.UserList: EtcdMethod {}
extension Etcdserverpb_Auth.Method.UserDelete: EtcdMethod {}
extension Etcdserverpb_Auth.Method.UserChangePassword: EtcdMethod {}
extension Etcdserverpb_Auth.Method.UserGrantRole: EtcdMethod {}
extension Etcdserverpb_Auth.Method.UserRevokeRole: EtcdMethod {}
extension Etcdserverpb_Auth.Method.RoleAdd: EtcdMethod {}
extension Etcdserverpb_Auth.Method.RoleGet: EtcdMethod {}
extension Etcdserverpb_Auth.Method.RoleList: EtcdMethod {}
extension Etcdserverpb_Auth.Method.RoleDelete: EtcdMethod {}
extension Etcdserverpb_Auth.Method.RoleGrantPermission: EtcdMethod {}
extension Etcdserverpb_Auth.Method.RoleRevokePermission: EtcdMethod {}
extension V3electionpb_Election.Method.Campaign: EtcdMethod {}
extension V3electionpb_Election.Method.Proclaim: EtcdMethod {}
extension V3electionpb_Election.Method.Leader: EtcdMethod {}
extension V3electionpb_Election.Method.Resign: EtcdMethod {}
extension V3lockpb_Lock.Method.Lock: EtcdMethod {}
extension V3lockpb_Lock.Method.Unlock: EtcdMethod {}
