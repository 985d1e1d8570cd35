// SPDX-License-Identifier: Apache-2.0
import FoundationEssentials

/// Options of a watch, the Swift form of the Go client's `OpOption`s for `Watch`.
///
/// Combine them with an array literal: `[.prefix, .prevKV, .revision(42)]`.
public struct EtcdWatchOptions: Sendable, ExpressibleByArrayLiteral {
    var range: EtcdRangeSpec?
    var startRevision: Int64?
    var prevKV: Bool?
    var filterPut: Bool?
    var filterDelete: Bool?
    var progressNotify: Bool?
    var createdNotify: Bool?
    var fragment: Bool?
    var requireLeader: Bool?
    var conflicts: [String] = []

    /// No options: watch the one key, from the revision after the current one.
    public init() {}

    /// Combines options in order; a later option overrides an earlier one of the same kind.
    public init(arrayLiteral elements: EtcdWatchOptions...) {
        for other in elements {
            EtcdRangeSpec.merge(other.range, into: &self.range, conflicts: &self.conflicts)
            self.startRevision = other.startRevision ?? self.startRevision
            self.prevKV = other.prevKV ?? self.prevKV
            self.filterPut = other.filterPut ?? self.filterPut
            self.filterDelete = other.filterDelete ?? self.filterDelete
            self.progressNotify = other.progressNotify ?? self.progressNotify
            self.createdNotify = other.createdNotify ?? self.createdNotify
            self.fragment = other.fragment ?? self.fragment
            self.requireLeader = other.requireLeader ?? self.requireLeader
            self.conflicts += other.conflicts
        }
    }

    /// Watch every key that starts with the given key (Go's `WithPrefix`).
    public static var prefix: Self { var o = Self(); o.range = .init(kind: .prefix); return o }
    /// Watch every key greater than or equal to the given key (Go's `WithFromKey`).
    public static var fromKey: Self { var o = Self(); o.range = .init(kind: .fromKey); return o }
    /// Watch keys in `[key, end)` (Go's `WithRange`).
    public static func range(end: some EtcdBytes) -> Self {
        var o = Self()
        o.range = .init(kind: .end(end.etcdData))
        return o
    }
    /// Start from this revision, inclusive (Go's `WithRev`); without it the watch starts after the
    /// revision current when it is created.
    public static func revision(_ revision: Int64) -> Self { var o = Self(); o.startRevision = revision; return o }
    /// Deliver each event with the key's previous value (Go's `WithPrevKV`).
    public static var prevKV: Self { var o = Self(); o.prevKV = true; return o }
    /// Leave out put events (Go's `WithFilterPut`).
    public static var filterPut: Self { var o = Self(); o.filterPut = true; return o }
    /// Leave out delete events (Go's `WithFilterDelete`).
    public static var filterDelete: Self { var o = Self(); o.filterDelete = true; return o }
    /// Ask the server for periodic progress notifications while nothing changes (Go's `WithProgressNotify`).
    public static var progressNotify: Self { var o = Self(); o.progressNotify = true; return o }
    /// Deliver the server's "created" response as the first element (Go's `WithCreatedNotify`).
    public static var createdNotify: Self { var o = Self(); o.createdNotify = true; return o }
    /// Let the server split very large revisions into several messages (Go's `WithFragment`); the
    /// client reassembles them, so each element still holds whole revisions.
    public static var fragment: Self { var o = Self(); o.fragment = true; return o }
    /// End the watch with `noLeader` when its member loses its leader, instead of waiting (Go's
    /// `WithRequireLeader` on the context).
    public static var requireLeader: Self { var o = Self(); o.requireLeader = true; return o }
}
