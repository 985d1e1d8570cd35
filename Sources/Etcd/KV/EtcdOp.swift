// SPDX-License-Identifier: Apache-2.0
package import EtcdAPI
import FoundationEssentials

/// One KV operation, to run with ``EtcdClient/do(_:)`` or inside a transaction (Go's `Op`).
///
/// Operations are checked when they are sent: an empty key or a bad option combination makes the
/// call throw before anything reaches the server.
public struct EtcdOp: Sendable {
    enum Kind: Sendable {
        case get(key: Data, options: EtcdGetOptions)
        case put(key: Data, value: Data, options: EtcdPutOptions)
        case delete(key: Data, options: EtcdDeleteOptions)
        case txn(compares: [EtcdCompare], then: [EtcdOp], else: [EtcdOp])
    }
    let kind: Kind

    /// Read a key or a range.
    public static func get(_ key: some EtcdBytes, options: EtcdGetOptions = []) -> Self {
        Self(kind: .get(key: key.etcdData, options: options))
    }
    /// Write a key.
    public static func put(_ key: some EtcdBytes, value: some EtcdBytes, options: EtcdPutOptions = []) -> Self {
        Self(kind: .put(key: key.etcdData, value: value.etcdData, options: options))
    }
    /// Delete a key or a range.
    public static func delete(_ key: some EtcdBytes, options: EtcdDeleteOptions = []) -> Self {
        Self(kind: .delete(key: key.etcdData, options: options))
    }
    /// A nested transaction (etcd 3.3 and newer).
    public static func txn(if compares: [EtcdCompare], then: [EtcdOp], else: [EtcdOp] = []) -> Self {
        Self(kind: .txn(compares: compares, then: then, else: `else`))
    }

    /// Whether the operation only reads (a get, or a transaction of gets).
    var isReadOnly: Bool {
        switch self.kind {
        case .get: return true
        case .put, .delete: return false
        case .txn(_, let then, let otherwise):
            return then.allSatisfy(\.isReadOnly) && otherwise.allSatisfy(\.isReadOnly)
        }
    }

    package func makeRequestOp() throws(EtcdClientError) -> Etcdserverpb_RequestOp {
        var op = Etcdserverpb_RequestOp()
        switch self.kind {
        case .get(let key, let options):
            if options.pageSize != nil {
                throw EtcdClientError(
                    code: .invalidArgument, message: ".paged(pageSize:) cannot be used inside a transaction")
            }
            op.requestRange = try EtcdRequests.range(key: key, options: options)
        case .put(let key, let value, let options):
            op.requestPut = try EtcdRequests.put(key: key, value: value, options: options)
        case .delete(let key, let options):
            op.requestDeleteRange = try EtcdRequests.deleteRange(key: key, options: options)
        case .txn(let compares, let then, let otherwise):
            op.requestTxn = try EtcdRequests.txn(compares: compares, then: then, else: otherwise)
        }
        return op
    }
}

/// A comparison guarding a transaction (Go's `Compare`), written with operators:
/// `.value("k") == "v"`, `.version("k") > 0`, `.modRevision("k") < rev`, `.createRevision("k") == 0`, `.lease("k") == id`.
public struct EtcdCompare: Sendable {
    var proto: Etcdserverpb_Compare

    /// Compare the value of a key (or, with `withPrefix()`/`withRange(end:)`, of every key in a range).
    public static func value(_ key: some EtcdBytes) -> ValueTarget { ValueTarget(key: key.etcdData) }
    /// Compare the version of a key (0 when it does not exist).
    public static func version(_ key: some EtcdBytes) -> NumberTarget {
        NumberTarget(key: key.etcdData, target: .version)
    }
    /// Compare the create revision of a key (0 when it does not exist).
    public static func createRevision(_ key: some EtcdBytes) -> NumberTarget {
        NumberTarget(key: key.etcdData, target: .create)
    }
    /// Compare the mod revision of a key (0 when it does not exist).
    public static func modRevision(_ key: some EtcdBytes) -> NumberTarget {
        NumberTarget(key: key.etcdData, target: .mod)
    }
    /// Compare the lease a key is attached to (0 for none).
    public static func lease(_ key: some EtcdBytes) -> NumberTarget { NumberTarget(key: key.etcdData, target: .lease) }

    /// Holds when the key exists (Go's `clientv3util.KeyExists`: its version is above 0), as a guard
    /// for deletes and updates.
    public static func keyExists(_ key: some EtcdBytes) -> EtcdCompare { Self.version(key) > 0 }
    /// Holds when the key does not exist (Go's `clientv3util.KeyMissing`: its version is 0), as a guard
    /// for create-if-absent.
    public static func keyMissing(_ key: some EtcdBytes) -> EtcdCompare { Self.version(key) == 0 }

    /// The left side of a value comparison.
    public struct ValueTarget: Sendable {
        var key: Data
        var rangeEnd: Data?
        /// Compare every key that starts with the key.
        public func withPrefix() -> Self { var t = self; t.rangeEnd = EtcdKeys.prefixEnd(key); return t }
        /// Compare every key in `[key, end)`.
        public func withRange(end: some EtcdBytes) -> Self { var t = self; t.rangeEnd = end.etcdData; return t }

        func compare(_ result: Etcdserverpb_Compare.CompareResult, _ value: some EtcdBytes) -> EtcdCompare {
            var c = Etcdserverpb_Compare()
            c.key = self.key
            if let rangeEnd { c.rangeEnd = rangeEnd }
            c.target = .value
            c.result = result
            c.value = value.etcdData
            return EtcdCompare(proto: c)
        }
        /// Holds when the value equals `rhs`.
        public static func == (lhs: Self, rhs: some EtcdBytes) -> EtcdCompare { lhs.compare(.equal, rhs) }
        /// Holds when the value differs from `rhs`.
        public static func != (lhs: Self, rhs: some EtcdBytes) -> EtcdCompare { lhs.compare(.notEqual, rhs) }
        /// Holds when the value sorts before `rhs` (byte order).
        public static func < (lhs: Self, rhs: some EtcdBytes) -> EtcdCompare { lhs.compare(.less, rhs) }
        /// Holds when the value sorts after `rhs` (byte order).
        public static func > (lhs: Self, rhs: some EtcdBytes) -> EtcdCompare { lhs.compare(.greater, rhs) }
    }

    /// The left side of a version, revision or lease comparison.
    public struct NumberTarget: Sendable {
        var key: Data
        var rangeEnd: Data?
        var target: Etcdserverpb_Compare.CompareTarget
        /// Compare every key that starts with the key.
        public func withPrefix() -> Self { var t = self; t.rangeEnd = EtcdKeys.prefixEnd(key); return t }
        /// Compare every key in `[key, end)`.
        public func withRange(end: some EtcdBytes) -> Self { var t = self; t.rangeEnd = end.etcdData; return t }

        func compare(_ result: Etcdserverpb_Compare.CompareResult, _ number: Int64) -> EtcdCompare {
            var c = Etcdserverpb_Compare()
            c.key = self.key
            if let rangeEnd { c.rangeEnd = rangeEnd }
            c.target = self.target
            c.result = result
            switch self.target {
            case .version: c.version = number
            case .create: c.createRevision = number
            case .mod: c.modRevision = number
            case .lease: c.lease = number
            default: break
            }
            return EtcdCompare(proto: c)
        }
        /// Holds when the number equals `rhs` (a key that does not exist has version, revisions and lease 0).
        public static func == (lhs: Self, rhs: Int64) -> EtcdCompare { lhs.compare(.equal, rhs) }
        /// Holds when the number differs from `rhs`.
        public static func != (lhs: Self, rhs: Int64) -> EtcdCompare { lhs.compare(.notEqual, rhs) }
        /// Holds when the number is less than `rhs`.
        public static func < (lhs: Self, rhs: Int64) -> EtcdCompare { lhs.compare(.less, rhs) }
        /// Holds when the number is greater than `rhs`.
        public static func > (lhs: Self, rhs: Int64) -> EtcdCompare { lhs.compare(.greater, rhs) }
    }
}

// Inside `[.value("k") == "v"]` Swift looks up `.value` on the operator's operand types, so the
// targets offer the same factories as ``EtcdCompare``.
extension EtcdCompare.ValueTarget {
    /// Compare the value of a key; see ``EtcdCompare/value(_:)``.
    public static func value(_ key: some EtcdBytes) -> Self { Self(key: key.etcdData) }
}

extension EtcdCompare.NumberTarget {
    /// Compare the version of a key; see ``EtcdCompare/version(_:)``.
    public static func version(_ key: some EtcdBytes) -> Self { Self(key: key.etcdData, target: .version) }
    /// Compare the create revision of a key; see ``EtcdCompare/createRevision(_:)``.
    public static func createRevision(_ key: some EtcdBytes) -> Self { Self(key: key.etcdData, target: .create) }
    /// Compare the mod revision of a key; see ``EtcdCompare/modRevision(_:)``.
    public static func modRevision(_ key: some EtcdBytes) -> Self { Self(key: key.etcdData, target: .mod) }
    /// Compare the lease of a key; see ``EtcdCompare/lease(_:)``.
    public static func lease(_ key: some EtcdBytes) -> Self { Self(key: key.etcdData, target: .lease) }
}
