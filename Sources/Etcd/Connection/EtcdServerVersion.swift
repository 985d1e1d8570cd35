// SPDX-License-Identifier: Apache-2.0

/// An etcd server's version, as reported by Maintenance Status (`3.5.1`).
public struct EtcdServerVersion: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The major version (`3` in `3.5.1`).
    public var major: Int
    /// The minor version (`5` in `3.5.1`).
    public var minor: Int
    /// The patch version (`1` in `3.5.1`).
    public var patch: Int

    /// The version `major.minor.patch`.
    public init(major: Int, minor: Int, patch: Int = 0) {
        self.major = major
        self.minor = minor
        self.patch = patch
    }

    /// Parses `3.5.1` (pre-release suffixes such as `-rc.0` are ignored); `nil` when it is not a version.
    public init?(_ text: String) {
        let core = text.split(separator: "-", maxSplits: 1).first ?? ""
        let parts = core.split(separator: ".").map { Int($0) }
        guard parts.count >= 2, let major = parts[0], let minor = parts[1] else { return nil }
        self.init(major: major, minor: minor, patch: parts.count > 2 ? (parts[2] ?? 0) : 0)
    }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.major, lhs.minor, lhs.patch) < (rhs.major, rhs.minor, rhs.patch)
    }

    public var description: String { "\(self.major).\(self.minor).\(self.patch)" }

    static let v3_2 = Self(major: 3, minor: 2)
    static let v3_3 = Self(major: 3, minor: 3)
    static let v3_5 = Self(major: 3, minor: 5)
    static let v3_6 = Self(major: 3, minor: 6)
    static let v3_7 = Self(major: 3, minor: 7)
}
