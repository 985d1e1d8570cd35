// SPDX-License-Identifier: Apache-2.0
public import Etcd
public import FoundationEssentials

/// Reads a prefix at one revision, then follows its changes (Go's `mirror.Syncer`).
///
/// ```swift
/// let syncer = EtcdSyncer(client: client, prefix: "config/")
/// let revision = try await syncer.syncBase { page in for kv in page.kvs { cache[kv.keyString] = kv.valueString } }
/// try await syncer.syncUpdates(after: revision) { responses in
///     for try await response in responses { apply(response.events) }
/// }
/// ```
///
/// The base is read in pages at one revision, so together the pages are one consistent snapshot;
/// the updates start at the revision after it, so nothing is missed or seen twice. If the base
/// revision is compacted before the pages are read or the watch starts, the call fails with
/// `compacted`: start again from a fresh base.
public struct EtcdSyncer: Sendable {
    /// The client reading the source.
    public let client: EtcdClient
    /// The prefix synced; empty for the whole keyspace.
    public let prefix: Data

    /// A syncer for every key under `prefix` (an empty prefix syncs the whole keyspace).
    public init(client: EtcdClient, prefix: some EtcdBytes) {
        self.client = client
        self.prefix = prefix.etcdData
    }

    /// Reads every key under the prefix at `revision` (0: the current one) in pages of `pageSize`
    /// keys, calling `body` for each page in key order, and returns the revision read.
    ///
    /// - Throws: `EtcdClientError` `compacted` when the revision is no longer available; whatever
    ///   `body` throws.
    public func syncBase(
        revision: Int64 = 0,
        pageSize: Int = 1000,
        _ body: (EtcdGetResponse) async throws -> Void
    ) async throws -> Int64 {
        guard pageSize > 0 else {
            throw EtcdClientError(code: .invalidArgument, message: "pageSize must be positive, got \(pageSize)")
        }
        var revision = revision
        var key = self.prefix
        while true {
            // The whole keyspace runs from "\0" to its end; a prefix to the key after it.
            let range: EtcdGetOptions = self.prefix.isEmpty ? .fromKey : .range(end: EtcdKeys.prefixEnd(self.prefix))
            let options: EtcdGetOptions = [.limit(Int64(pageSize)), range, revision > 0 ? .revision(revision) : []]
            let page = try await self.client.get(key.isEmpty ? Data([0]) : key, options: options)
            if revision == 0 { revision = page.header.revision }
            try await body(page)
            guard page.more, let last = page.kvs.last else { return revision }
            key = last.keyData + [0]
        }
    }

    /// Watches the prefix from the revision after `revision` for the duration of `body`; see
    /// `EtcdClient.watch(_:options:isolation:_:)`.
    public func syncUpdates<Result: Sendable>(
        after revision: Int64,
        options: EtcdWatchOptions = [],
        isolation: isolated (any Actor)? = #isolation,
        _ body: (EtcdWatchResponses) async throws -> Result
    ) async throws -> Result {
        try await self.client.watch(self.prefix, options: [.prefix, .revision(revision + 1), options], body)
    }
}

/// Copies a prefix from one cluster to another and keeps the copy current (etcdctl's `make-mirror`).
///
/// ``run(from:progress:)`` copies every key under the prefix, then applies each later change of the
/// source to the destination, one transaction per source revision, until it is cancelled or fails.
/// Keys are renamed from ``prefix`` to ``destinationPrefix``. Values are copied; leases are not
/// (a lease belongs to its cluster), as with etcdctl. A source revision with more changes than
/// ``maxOperationsPerTransaction`` (a range delete of many keys, say) is applied in several
/// transactions, as etcdctl 3.6's `--max-txn-ops` does: readers of the destination may see part of
/// it meanwhile.
public struct EtcdMirror: Sendable {
    /// How far a mirror has got.
    public struct Progress: Sendable, Hashable {
        /// Puts and deletes applied to the destination so far (etcdctl's running total).
        public var keys: Int64
        /// The source revision the destination now reflects.
        public var revision: Int64
    }

    /// The cluster read from.
    public let source: EtcdClient
    /// The cluster written to.
    public let destination: EtcdClient
    /// The source prefix copied; empty for the whole keyspace.
    public let prefix: Data
    /// What ``prefix`` becomes in the destination (by default the same prefix).
    public let destinationPrefix: Data
    /// The most operations the mirror puts in one destination transaction: at most the
    /// destination's `--max-txn-ops` (etcd's default, 128, by default).
    public let maxOperationsPerTransaction: Int

    /// A mirror of `prefix` from `source` into `destination`, renaming it to `destinationPrefix`
    /// (`nil`: the same prefix; empty: no prefix, etcdctl's `--no-dest-prefix`), writing at most
    /// `maxOperationsPerTransaction` operations per destination transaction.
    public init(
        source: EtcdClient,
        destination: EtcdClient,
        prefix: some EtcdBytes = "",
        destinationPrefix: (any EtcdBytes)? = nil,
        maxOperationsPerTransaction: Int = 128
    ) {
        self.source = source
        self.destination = destination
        self.prefix = prefix.etcdData
        self.destinationPrefix = destinationPrefix?.etcdData ?? prefix.etcdData
        self.maxOperationsPerTransaction = maxOperationsPerTransaction
    }

    /// Copies the prefix, then follows it until the task is cancelled; or, from `startRevision`,
    /// only follows it (etcdctl 3.6's `make-mirror --rev`).
    ///
    /// `progress` is called after the base copy and after each applied revision. To resume a mirror
    /// that stopped, without copying everything again, pass the last progress's revision + 1 as
    /// `startRevision`.
    ///
    /// - Parameters:
    ///   - startRevision: 0 to copy the prefix first; otherwise the first source revision whose
    ///     changes are applied, with no base copy.
    ///   - progress: told the keys written so far and the source revision the destination reflects.
    /// - Throws: `EtcdClientError`: `invalidArgument` when ``maxOperationsPerTransaction`` is below
    ///   1 or `startRevision` is negative; `compacted` when the source compacted revisions the mirror
    ///   had not applied yet (start a new mirror: the base copy overwrites, but keys deleted meanwhile
    ///   stay in the destination); errors of the destination's writes. `CancellationError` when
    ///   cancelled. (A start revision the source has not reached yet is waited for.)
    public func run(from startRevision: Int64 = 0, progress: @Sendable (Progress) -> Void = { _ in }) async throws {
        let limit = self.maxOperationsPerTransaction
        guard limit > 0 else {
            throw EtcdClientError(
                code: .invalidArgument,
                message:
                    "maxOperationsPerTransaction must be at least 1 (at most the destination's --max-txn-ops), got \(limit)"
            )
        }
        guard startRevision >= 0 else {
            throw EtcdClientError(
                code: .invalidArgument,
                message:
                    "a mirror's start revision must be 0 (copy everything first) or a revision, got \(startRevision)")
        }
        let syncer = EtcdSyncer(client: self.source, prefix: self.prefix)
        var total: Int64 = 0
        var base = startRevision - 1
        if startRevision == 0 {
            base = try await syncer.syncBase { page in
                for kv in page.kvs {
                    try await self.destination.put(self.rename(kv.keyData), value: kv.valueData)
                    total += 1
                }
            }
            progress(Progress(keys: total, revision: base))
        }
        try await syncer.syncUpdates(after: base) { responses in
            for try await response in responses {
                var ops: [EtcdOp] = []
                var revision: Int64 = 0
                for event in response.events {
                    if revision != 0 && event.kv.modRevision > revision {
                        try await self.destination.txn(if: [], then: ops)
                        progress(Progress(keys: total, revision: revision))
                        ops = []
                    }
                    if ops.count == limit {  // the same revision goes on: apply this part
                        try await self.destination.txn(if: [], then: ops)
                        ops = []
                    }
                    revision = event.kv.modRevision
                    let key = self.rename(event.kv.keyData)
                    ops.append(event.type == .put ? .put(key, value: event.kv.valueData) : .delete(key))
                    total += 1
                }
                if !ops.isEmpty {
                    try await self.destination.txn(if: [], then: ops)
                    progress(Progress(keys: total, revision: revision))
                }
            }
        }
    }

    private func rename(_ key: Data) -> Data {
        self.destinationPrefix + key.dropFirst(self.prefix.count)
    }
}
