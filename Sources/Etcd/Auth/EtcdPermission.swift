// SPDX-License-Identifier: Apache-2.0
package import EtcdAPI
public import FoundationEssentials

/// A permission a role grants: read, write or both, on a key or a range of keys.
public struct EtcdPermission: Sendable, Hashable, CustomStringConvertible {
    /// What a permission allows.
    public struct Access: Sendable, Hashable, CustomStringConvertible {
        let proto: Authpb_Permission.TypeEnum
        /// Reading (get, watch).
        public static let read = Self(proto: .read)
        /// Writing (put, delete).
        public static let write = Self(proto: .write)
        /// Both.
        public static let readwrite = Self(proto: .readwrite)

        public var description: String {
            switch self.proto {
            case .read: "read"
            case .write: "write"
            case .readwrite: "readwrite"
            case .UNRECOGNIZED(let value): "unknown(\(value))"
            }
        }
    }

    /// What the permission allows.
    public var access: Access
    /// The key, or the start of the range.
    public var key: Data
    /// The end of the range (exclusive); empty for the key alone, `[0]` for every key from `key` on.
    public var rangeEnd: Data

    /// A permission on `key` alone.
    public init(_ access: Access, key: some EtcdBytes) {
        self.access = access
        self.key = key.etcdData
        self.rangeEnd = Data()
    }

    /// A permission on the keys in [`key`, `end`) (Go's `RoleGrantPermission` with a range end).
    public init(_ access: Access, key: some EtcdBytes, rangeEnd end: some EtcdBytes) {
        self.access = access
        self.key = key.etcdData
        self.rangeEnd = end.etcdData
    }

    /// A permission on every key starting with `prefix` (etcdctl's `--prefix`).
    public static func prefix(_ access: Access, _ prefix: some EtcdBytes) -> Self {
        Self(access, key: prefix, rangeEnd: EtcdKeys.prefixEnd(prefix.etcdData))
    }

    /// A permission on every key from `key` on (etcdctl's `--from-key`).
    public static func fromKey(_ access: Access, _ key: some EtcdBytes) -> Self {
        Self(access, key: key, rangeEnd: Data([0]))
    }

    package init(_ proto: Authpb_Permission) {
        self.access = Access(proto: proto.permType)
        self.key = proto.key
        self.rangeEnd = proto.rangeEnd
    }

    package var proto: Authpb_Permission {
        var proto = Authpb_Permission()
        proto.permType = self.access.proto
        proto.key = self.key
        proto.rangeEnd = self.rangeEnd
        return proto
    }

    public var description: String {
        let end =
            self.rangeEnd.isEmpty ? "" : ", \(self.rangeEnd == Data([0]) ? "<open ended>" : self.rangeEnd.etcdString)"
        return "\(self.access) [\(self.key.etcdString)\(end))"
    }
}
