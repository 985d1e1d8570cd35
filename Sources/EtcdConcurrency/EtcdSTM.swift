// SPDX-License-Identifier: Apache-2.0
public import Etcd

/// How much a software transaction sees of other writers (Go's `concurrency.Isolation`).
public struct EtcdSTMIsolation: Sendable, Hashable, CustomStringConvertible {
    private enum Base: String, Hashable, Sendable {
        case serializableSnapshot, serializable, repeatableReads, readCommitted
    }
    private let base: Base

    /// Every read is from one snapshot (the revision of the first read), and the commit fails if
    /// any key read or written changed since: the strictest level, and the default.
    public static let serializableSnapshot = Self(base: .serializableSnapshot)
    /// Reads are from one snapshot; the commit fails if a key read changed since.
    public static let serializable = Self(base: .serializable)
    /// Each key is read once (later reads repeat it); the commit fails if a key read changed since.
    public static let repeatableReads = Self(base: .repeatableReads)
    /// Reads see committed values; the commit never fails on conflicts.
    public static let readCommitted = Self(base: .readCommitted)

    public var description: String { self.base.rawValue }

    var snapshot: Bool { self.base == .serializableSnapshot || self.base == .serializable }
}

/// The view of etcd a software transaction's function works on: reads go to etcd (and are
/// remembered), writes are buffered until the commit.
///
/// Used only inside `EtcdClient.runSTM(isolationLevel:prefetch:isolation:_:)`'s function, which may run
/// several times.
public final class EtcdSTM {
    let client: EtcdClient
    let level: EtcdSTMIsolation
    /// Reads, by key (a response with no kvs for a key that did not exist).
    private var reads: [String: EtcdGetResponse] = [:]
    private var writes: [String: (value: String?, op: EtcdOp)] = [:]
    private var writeOrder: [String] = []
    /// With snapshot isolation: the revision every read is taken at, fixed by the first read.
    private var snapshotRevision: Int64?
    /// Read results handed over from a failed commit, used by the next attempt's first reads.
    var prefetched: [String: EtcdGetResponse] = [:]

    init(client: EtcdClient, level: EtcdSTMIsolation) {
        self.client = client
        self.level = level
    }

    /// The value of the first of `keys` written in this transaction, else read from etcd; "" for a missing key.
    nonisolated(nonsending) public func get(_ keys: String...) async throws -> String {
        try await self.get(keys)
    }

    /// The value of the first of `keys` written in this transaction, else read from etcd; "" for a missing key.
    nonisolated(nonsending) public func get(_ keys: [String]) async throws -> String {
        for key in keys {
            if let write = self.writes[key] { return write.value ?? "" }
        }
        return try await self.fetch(keys)?.kvs.first?.valueString ?? ""
    }

    /// The modification revision of `key` as this transaction sees it; 0 for a missing key.
    nonisolated(nonsending) public func revision(_ key: String) async throws -> Int64 {
        try await self.fetch([key])?.kvs.first?.modRevision ?? 0
    }

    /// Writes `value` to `key` at commit.
    public func put(_ key: String, _ value: String, options: EtcdPutOptions = []) {
        self.record(key, value, .put(key, value: value, options: options))
    }

    /// Deletes `key` at commit.
    public func delete(_ key: String) {
        self.record(key, nil, .delete(key))
    }

    private func record(_ key: String, _ value: String?, _ op: EtcdOp) {
        if self.writes[key] == nil { self.writeOrder.append(key) }
        self.writes[key] = (value, op)
    }

    /// Reads `keys` in one request (the first already read answers instead), remembering them all.
    nonisolated(nonsending) private func fetch(_ keys: [String]) async throws -> EtcdGetResponse? {
        guard !keys.isEmpty else { return nil }
        if self.level.snapshot {
            for key in keys {
                if let prefetched = self.prefetched.removeValue(forKey: key) { self.reads[key] = prefetched }
            }
        }
        if let known = keys.lazy.compactMap({ self.reads[$0] }).first {
            // A prefetched read (from the failed commit) fixes the snapshot like a fresh one.
            if self.level.snapshot && self.snapshotRevision == nil { self.snapshotRevision = known.header.revision }
            return known
        }
        var options: EtcdGetOptions = []
        if self.level == .repeatableReads || self.level == .readCommitted {
            options = .serializable
        } else if let revision = self.snapshotRevision {
            options = [.revision(revision), .serializable]
        }
        let response = try await self.client.txn(if: [], then: keys.map { .get($0, options: options) })
        for (key, result) in zip(keys, response.responses) {
            if let get = result.get { self.reads[key] = get }
        }
        let first = response.responses.first?.get
        if self.level.snapshot && self.snapshotRevision == nil, let first {
            self.snapshotRevision = first.header.revision
        }
        return first
    }

    /// Commits the writes if nothing this transaction depends on changed. Returns the response, or
    /// nil on a conflict (the keys read are then re-read for the next attempt).
    nonisolated(nonsending) func commit() async throws -> EtcdTxnResponse? {
        let puts = self.writeOrder.compactMap { self.writes[$0]?.op }
        var conditions: [EtcdCompare] = []
        if self.level != .readCommitted {
            for (key, read) in self.reads {
                conditions.append(.modRevision(key) == (read.kvs.first?.modRevision ?? 0))
            }
        }
        if self.level == .serializableSnapshot {
            // Keys only written must not have changed since the snapshot either.
            let first = self.reads.values.map(\.header.revision).min() ?? (Int64.max - 1)
            for key in self.writeOrder { conditions.append(.modRevision(key) < first + 1) }
        }
        let readKeys = Array(self.reads.keys)
        let response = try await self.client.txn(
            if: conditions,
            then: puts,
            else: self.level.snapshot ? readKeys.map { .get($0) } : []
        )
        if response.succeeded { return response }
        if self.level.snapshot {
            var fresh: [String: EtcdGetResponse] = [:]
            for (key, result) in zip(readKeys, response.responses) {
                if let get = result.get { fresh[key] = get }
            }
            self.prefetched = fresh
        }
        return nil
    }

    /// Forgets reads and writes before another attempt (prefetched reads are kept).
    func reset() {
        self.reads = [:]
        self.writes = [:]
        self.writeOrder = []
        self.snapshotRevision = nil
    }
}

extension EtcdClient {
    /// Runs `apply` as a software transaction (Go's `concurrency.NewSTM`): its reads and buffered
    /// writes are committed atomically if nothing it read changed meanwhile (per `level`),
    /// else `apply` runs again on fresh values, until a commit succeeds.
    ///
    /// ```swift
    /// try await client.runSTM { stm in
    ///     let from = Int(try await stm.get("accounts/alice"))!
    ///     let to = Int(try await stm.get("accounts/bob"))!
    ///     stm.put("accounts/alice", String(from - 10))
    ///     stm.put("accounts/bob", String(to + 10))
    /// }
    /// ```
    ///
    /// - Parameters:
    ///   - level: how much the transaction sees of other writers; see ``EtcdSTMIsolation``.
    ///   - prefetch: keys read in one request before `apply` runs.
    ///   - isolation: the actor `apply` runs on; the caller's, by default.
    ///   - apply: reads and writes through the ``EtcdSTM``; it may run several times, so it should
    ///     have no other side effects. An error it throws ends the transaction without a commit.
    /// - Returns: the response of the committed transaction.
    @discardableResult
    public func runSTM(
        isolationLevel level: EtcdSTMIsolation = .serializableSnapshot,
        prefetch: [String] = [],
        isolation: isolated (any Actor)? = #isolation,
        _ apply: (EtcdSTM) async throws -> Void
    ) async throws -> EtcdTxnResponse {
        let stm = EtcdSTM(client: self, level: level)
        while true {
            try Task.checkCancellation()
            stm.reset()
            if !prefetch.isEmpty { _ = try await stm.get(prefetch) }
            try await apply(stm)
            if let response = try await stm.commit() { return response }
        }
    }
}
