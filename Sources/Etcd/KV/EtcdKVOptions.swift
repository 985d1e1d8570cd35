// SPDX-License-Identifier: Apache-2.0
import FoundationEssentials

/// Which keys an operation covers besides the key itself: etcd's `range_end`.
struct EtcdRangeSpec: Sendable, Hashable {
    enum Kind: Sendable, Hashable {
        case prefix
        case fromKey
        case end(Data)
    }
    var kind: Kind

    /// Combines a range option into `existing`; two different ranges are recorded as a conflict,
    /// which the request builders report as `invalidArgument`.
    static func merge(_ new: EtcdRangeSpec?, into existing: inout EtcdRangeSpec?, conflicts: inout [String]) {
        guard let new else { return }
        if let existing, existing != new {
            conflicts.append("two different ranges (.prefix, .fromKey, .range(end:)) were given; choose one")
        }
        existing = new
    }
}

/// How ``EtcdClient/get(_:options:)`` sorts its result.
public struct EtcdSortTarget: Sendable, Hashable {
    let raw: Int
    /// By key, in byte order.
    public static let key = Self(raw: 0)
    /// By the key's version (how often it was written since its creation).
    public static let version = Self(raw: 1)
    /// By the revision that created the key.
    public static let createRevision = Self(raw: 2)
    /// By the revision that last changed the key.
    public static let modRevision = Self(raw: 3)
    /// By value, in byte order.
    public static let value = Self(raw: 4)
}

/// Ascending or descending order for ``EtcdSortTarget``.
public struct EtcdSortOrder: Sendable, Hashable {
    let raw: Int
    /// etcd's natural order (by key, ascending).
    public static let none = Self(raw: 0)
    /// Smallest first.
    public static let ascending = Self(raw: 1)
    /// Largest first.
    public static let descending = Self(raw: 2)
}

/// Options of a get, the Swift form of the Go client's `OpOption`s for `Get`.
///
/// Combine them with an array literal: `[.prefix, .limit(10), .sort(by: .key, order: .descending)]`.
/// Later options override earlier ones of the same kind; two different ranges in one list
/// (`.prefix` and `.fromKey`) are an error.
public struct EtcdGetOptions: Sendable, ExpressibleByArrayLiteral {
    var range: EtcdRangeSpec?
    var revision: Int64?
    var limit: Int64?
    var sort: (target: EtcdSortTarget, order: EtcdSortOrder)?
    var serializable: Bool?
    var keysOnly: Bool?
    var countOnly: Bool?
    var minModRevision: Int64?
    var maxModRevision: Int64?
    var minCreateRevision: Int64?
    var maxCreateRevision: Int64?
    var pageSize: Int?
    var conflicts: [String] = []

    /// No options.
    public init() {}

    /// Combines options in order; a later option overrides an earlier one of the same kind.
    public init(arrayLiteral elements: EtcdGetOptions...) {
        for element in elements { self.merge(element) }
    }

    mutating func merge(_ other: EtcdGetOptions) {
        EtcdRangeSpec.merge(other.range, into: &self.range, conflicts: &self.conflicts)
        self.revision = other.revision ?? self.revision
        self.limit = other.limit ?? self.limit
        self.sort = other.sort ?? self.sort
        self.serializable = other.serializable ?? self.serializable
        self.keysOnly = other.keysOnly ?? self.keysOnly
        self.countOnly = other.countOnly ?? self.countOnly
        self.minModRevision = other.minModRevision ?? self.minModRevision
        self.maxModRevision = other.maxModRevision ?? self.maxModRevision
        self.minCreateRevision = other.minCreateRevision ?? self.minCreateRevision
        self.maxCreateRevision = other.maxCreateRevision ?? self.maxCreateRevision
        self.pageSize = other.pageSize ?? self.pageSize
        self.conflicts += other.conflicts
    }

    /// All keys that start with the given key (Go's `WithPrefix`). An empty key with `.prefix` means every key.
    public static var prefix: Self { var o = Self(); o.range = .init(kind: .prefix); return o }
    /// All keys greater than or equal to the given key (Go's `WithFromKey`).
    public static var fromKey: Self { var o = Self(); o.range = .init(kind: .fromKey); return o }
    /// Keys in `[key, end)` (Go's `WithRange`); `end` must sort after the key.
    public static func range(end: some EtcdBytes) -> Self {
        var o = Self()
        o.range = .init(kind: .end(end.etcdData))
        return o
    }
    /// Read the store as of this revision (Go's `WithRev`); 0 means the latest.
    public static func revision(_ revision: Int64) -> Self { var o = Self(); o.revision = revision; return o }
    /// Return at most this many keys (Go's `WithLimit`); ``EtcdGetResponse/more`` tells if there were more.
    public static func limit(_ limit: Int64) -> Self { var o = Self(); o.limit = limit; return o }
    /// Sort the result (Go's `WithSort`). Sorting needs a range.
    public static func sort(by target: EtcdSortTarget, order: EtcdSortOrder) -> Self {
        var o = Self()
        o.sort = (target, order)
        return o
    }
    /// Answer from the local member without a quorum read (Go's `WithSerializable`): faster, possibly stale.
    public static var serializable: Self { var o = Self(); o.serializable = true; return o }
    /// Return keys without values (Go's `WithKeysOnly`).
    public static var keysOnly: Self { var o = Self(); o.keysOnly = true; return o }
    /// Return only the count of keys in the range (Go's `WithCountOnly`).
    public static var countOnly: Self { var o = Self(); o.countOnly = true; return o }
    /// Only keys whose mod revision is at least this (Go's `WithMinModRev`).
    public static func minModRevision(_ r: Int64) -> Self { var o = Self(); o.minModRevision = r; return o }
    /// Only keys whose mod revision is at most this (Go's `WithMaxModRev`).
    public static func maxModRevision(_ r: Int64) -> Self { var o = Self(); o.maxModRevision = r; return o }
    /// Only keys whose create revision is at least this (Go's `WithMinCreateRev`).
    public static func minCreateRevision(_ r: Int64) -> Self { var o = Self(); o.minCreateRevision = r; return o }
    /// Only keys whose create revision is at most this (Go's `WithMaxCreateRev`).
    public static func maxCreateRevision(_ r: Int64) -> Self { var o = Self(); o.maxCreateRevision = r; return o }
    /// Fetch the range in pages of at most `pageSize` keys, all read at the revision of the first
    /// page, and return them as one response: a consistent snapshot of a range too large for one
    /// response. Needs a range and the default order; not allowed inside transactions.
    public static func paged(pageSize: Int) -> Self { var o = Self(); o.pageSize = pageSize; return o }

    /// The lexically first key with the given prefix (Go's `WithFirstKey`).
    public static var firstKey: Self { [.prefix, .sort(by: .key, order: .ascending), .limit(1)] }
    /// The lexically last key with the given prefix (Go's `WithLastKey`).
    public static var lastKey: Self { [.prefix, .sort(by: .key, order: .descending), .limit(1)] }
    /// The key with the oldest modification under the prefix (Go's `WithFirstRev`).
    public static var firstRevision: Self { [.prefix, .sort(by: .modRevision, order: .ascending), .limit(1)] }
    /// The key with the newest modification under the prefix (Go's `WithLastRev`).
    public static var lastRevision: Self { [.prefix, .sort(by: .modRevision, order: .descending), .limit(1)] }
    /// The oldest created key under the prefix (Go's `WithFirstCreate`).
    public static var firstCreate: Self { [.prefix, .sort(by: .createRevision, order: .ascending), .limit(1)] }
    /// The newest created key under the prefix (Go's `WithLastCreate`).
    public static var lastCreate: Self { [.prefix, .sort(by: .createRevision, order: .descending), .limit(1)] }
}

/// Options of a put, the Swift form of the Go client's `OpOption`s for `Put`.
public struct EtcdPutOptions: Sendable, ExpressibleByArrayLiteral {
    var lease: Int64?
    var prevKV: Bool?
    var ignoreValue: Bool?
    var ignoreLease: Bool?

    /// No options.
    public init() {}

    /// Combines options in order; a later option overrides an earlier one of the same kind.
    public init(arrayLiteral elements: EtcdPutOptions...) {
        for other in elements {
            self.lease = other.lease ?? self.lease
            self.prevKV = other.prevKV ?? self.prevKV
            self.ignoreValue = other.ignoreValue ?? self.ignoreValue
            self.ignoreLease = other.ignoreLease ?? self.ignoreLease
        }
    }

    /// Attach the key to a lease (Go's `WithLease`); the key is deleted when the lease ends.
    public static func lease(_ id: Int64) -> Self { var o = Self(); o.lease = id; return o }
    /// Return the key's previous value (Go's `WithPrevKV`).
    public static var prevKV: Self { var o = Self(); o.prevKV = true; return o }
    /// Keep the current value and only update the lease (Go's `WithIgnoreValue`); the key must exist and the value must be empty.
    public static var ignoreValue: Self { var o = Self(); o.ignoreValue = true; return o }
    /// Keep the current lease and only update the value (Go's `WithIgnoreLease`); the key must exist.
    public static var ignoreLease: Self { var o = Self(); o.ignoreLease = true; return o }
}

/// Options of a delete, the Swift form of the Go client's `OpOption`s for `Delete`.
public struct EtcdDeleteOptions: Sendable, ExpressibleByArrayLiteral {
    var range: EtcdRangeSpec?
    var prevKV: Bool?
    var conflicts: [String] = []

    /// No options.
    public init() {}

    /// Combines options in order; a later option overrides an earlier one of the same kind.
    public init(arrayLiteral elements: EtcdDeleteOptions...) {
        for other in elements {
            EtcdRangeSpec.merge(other.range, into: &self.range, conflicts: &self.conflicts)
            self.prevKV = other.prevKV ?? self.prevKV
            self.conflicts += other.conflicts
        }
    }

    /// Delete all keys that start with the given key. An empty key with `.prefix` deletes every key.
    public static var prefix: Self { var o = Self(); o.range = .init(kind: .prefix); return o }
    /// Delete all keys greater than or equal to the given key.
    public static var fromKey: Self { var o = Self(); o.range = .init(kind: .fromKey); return o }
    /// Delete keys in `[key, end)`.
    public static func range(end: some EtcdBytes) -> Self {
        var o = Self()
        o.range = .init(kind: .end(end.etcdData))
        return o
    }
    /// Return the deleted keys with their values (Go's `WithPrevKV`).
    public static var prevKV: Self { var o = Self(); o.prevKV = true; return o }
}
