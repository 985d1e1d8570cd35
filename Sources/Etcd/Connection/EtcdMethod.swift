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
    /// The HTTP/2 `:path` of the method: each conformance stores ``pathFromDescriptor``, so that
    /// a call does not build the string (two allocations) again.
    static var path: String { get }
}

extension EtcdMethod {
    /// `/package.Service/Method`, from the generated descriptor.
    static var pathFromDescriptor: String { "/" + Self.descriptor.fullyQualifiedMethod }
}

// Every unary method of the generated services; of the streaming ones, lease keepalive and watch.
// The others (snapshot, range stream, election observe) stay on grpc-swift.
extension Etcdserverpb_Lease.Method.LeaseKeepAlive: EtcdMethod { package static let path = pathFromDescriptor }
extension Etcdserverpb_Watch.Method.Watch: EtcdMethod { package static let path = pathFromDescriptor }
extension Etcdserverpb_KV.Method.Range: EtcdMethod { package static let path = pathFromDescriptor }
extension Etcdserverpb_KV.Method.Put: EtcdMethod { package static let path = pathFromDescriptor }
extension Etcdserverpb_KV.Method.DeleteRange: EtcdMethod { package static let path = pathFromDescriptor }
extension Etcdserverpb_KV.Method.Txn: EtcdMethod { package static let path = pathFromDescriptor }
extension Etcdserverpb_KV.Method.Compact: EtcdMethod { package static let path = pathFromDescriptor }
extension Etcdserverpb_Lease.Method.LeaseGrant: EtcdMethod { package static let path = pathFromDescriptor }
extension Etcdserverpb_Lease.Method.LeaseRevoke: EtcdMethod { package static let path = pathFromDescriptor }
extension Etcdserverpb_Lease.Method.LeaseTimeToLive: EtcdMethod { package static let path = pathFromDescriptor }
extension Etcdserverpb_Lease.Method.LeaseLeases: EtcdMethod { package static let path = pathFromDescriptor }
extension Etcdserverpb_Cluster.Method.MemberAdd: EtcdMethod { package static let path = pathFromDescriptor }
extension Etcdserverpb_Cluster.Method.MemberRemove: EtcdMethod { package static let path = pathFromDescriptor }
extension Etcdserverpb_Cluster.Method.MemberUpdate: EtcdMethod { package static let path = pathFromDescriptor }
extension Etcdserverpb_Cluster.Method.MemberList: EtcdMethod { package static let path = pathFromDescriptor }
extension Etcdserverpb_Cluster.Method.MemberPromote: EtcdMethod { package static let path = pathFromDescriptor }
extension Etcdserverpb_Maintenance.Method.Alarm: EtcdMethod { package static let path = pathFromDescriptor }
extension Etcdserverpb_Maintenance.Method.Status: EtcdMethod { package static let path = pathFromDescriptor }
extension Etcdserverpb_Maintenance.Method.Defragment: EtcdMethod { package static let path = pathFromDescriptor }
extension Etcdserverpb_Maintenance.Method.Hash: EtcdMethod { package static let path = pathFromDescriptor }
extension Etcdserverpb_Maintenance.Method.HashKV: EtcdMethod { package static let path = pathFromDescriptor }
extension Etcdserverpb_Maintenance.Method.MoveLeader: EtcdMethod { package static let path = pathFromDescriptor }
extension Etcdserverpb_Maintenance.Method.Downgrade: EtcdMethod { package static let path = pathFromDescriptor }
extension Etcdserverpb_Auth.Method.AuthEnable: EtcdMethod { package static let path = pathFromDescriptor }
extension Etcdserverpb_Auth.Method.AuthDisable: EtcdMethod { package static let path = pathFromDescriptor }
extension Etcdserverpb_Auth.Method.AuthStatus: EtcdMethod { package static let path = pathFromDescriptor }
extension Etcdserverpb_Auth.Method.Authenticate: EtcdMethod { package static let path = pathFromDescriptor }
extension Etcdserverpb_Auth.Method.UserAdd: EtcdMethod { package static let path = pathFromDescriptor }
extension Etcdserverpb_Auth.Method.UserGet: EtcdMethod { package static let path = pathFromDescriptor }
extension Etcdserverpb_Auth.Method.UserList: EtcdMethod { package static let path = pathFromDescriptor }
extension Etcdserverpb_Auth.Method.UserDelete: EtcdMethod { package static let path = pathFromDescriptor }
extension Etcdserverpb_Auth.Method.UserChangePassword: EtcdMethod { package static let path = pathFromDescriptor }
extension Etcdserverpb_Auth.Method.UserGrantRole: EtcdMethod { package static let path = pathFromDescriptor }
extension Etcdserverpb_Auth.Method.UserRevokeRole: EtcdMethod { package static let path = pathFromDescriptor }
extension Etcdserverpb_Auth.Method.RoleAdd: EtcdMethod { package static let path = pathFromDescriptor }
extension Etcdserverpb_Auth.Method.RoleGet: EtcdMethod { package static let path = pathFromDescriptor }
extension Etcdserverpb_Auth.Method.RoleList: EtcdMethod { package static let path = pathFromDescriptor }
extension Etcdserverpb_Auth.Method.RoleDelete: EtcdMethod { package static let path = pathFromDescriptor }
extension Etcdserverpb_Auth.Method.RoleGrantPermission: EtcdMethod { package static let path = pathFromDescriptor }
extension Etcdserverpb_Auth.Method.RoleRevokePermission: EtcdMethod { package static let path = pathFromDescriptor }
extension V3electionpb_Election.Method.Campaign: EtcdMethod { package static let path = pathFromDescriptor }
extension V3electionpb_Election.Method.Proclaim: EtcdMethod { package static let path = pathFromDescriptor }
extension V3electionpb_Election.Method.Leader: EtcdMethod { package static let path = pathFromDescriptor }
extension V3electionpb_Election.Method.Resign: EtcdMethod { package static let path = pathFromDescriptor }
extension V3lockpb_Lock.Method.Lock: EtcdMethod { package static let path = pathFromDescriptor }
extension V3lockpb_Lock.Method.Unlock: EtcdMethod { package static let path = pathFromDescriptor }
