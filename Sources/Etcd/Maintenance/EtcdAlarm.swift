// SPDX-License-Identifier: Apache-2.0
package import EtcdAPI

/// An alarm raised on a member.
public struct EtcdAlarm: Sendable, Hashable, CustomStringConvertible {
    /// Which alarm.
    public struct AlarmType: Sendable, Hashable, CustomStringConvertible {
        let proto: Etcdserverpb_AlarmType
        /// The backend quota is exhausted: writes fail with `noSpace` until compaction,
        /// defragmentation and a disarm.
        public static let noSpace = Self(proto: .nospace)
        /// The member's data is corrupt.
        public static let corrupt = Self(proto: .corrupt)

        public var description: String {
            switch self.proto {
            case .nospace: "NOSPACE"
            case .corrupt: "CORRUPT"
            case .none: "NONE"
            case .UNRECOGNIZED(let value): "UNKNOWN(\(value))"
            }
        }
    }

    /// The member the alarm is raised on.
    public var memberID: UInt64
    /// Which alarm is raised.
    public var type: AlarmType

    /// An alarm of `type` on the member `memberID` (to disarm one, say).
    public init(memberID: UInt64, type: AlarmType) {
        self.memberID = memberID
        self.type = type
    }

    package init(_ proto: Etcdserverpb_AlarmMember) {
        self.memberID = proto.memberID
        self.type = AlarmType(proto: proto.alarm)
    }

    /// As etcdctl prints it: `memberID:<id> alarm:NOSPACE`.
    public var description: String { "memberID:\(self.memberID) alarm:\(self.type)" }
}

/// The result of ``EtcdClient/alarmList()`` and ``EtcdClient/alarmDisarm(_:)``.
public struct EtcdAlarmResponse: Sendable {
    /// The header of the member that answered: cluster, member, revision and raft term.
    public var header: EtcdResponseHeader
    /// The alarms raised (for a list) or cleared (for a disarm).
    public var alarms: [EtcdAlarm]
}

/// The result of ``EtcdClient/hashKV(endpoint:revision:)``.
public struct EtcdHashKVResponse: Sendable, Hashable {
    /// The header of the member that answered: cluster, member, revision and raft term.
    public var header: EtcdResponseHeader
    /// The hash of the store's keys and values up to ``hashRevision``.
    public var hash: UInt32
    /// The revision the store was last compacted at.
    public var compactRevision: Int64
    /// The revision the hash covers (etcd 3.5.5+; 0 before).
    public var hashRevision: Int64
}
