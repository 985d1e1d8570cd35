// SPDX-License-Identifier: Apache-2.0
public import Etcd
public import FoundationEssentials
public import ServiceLifecycle
import Synchronization

/// A local copy of every key under a prefix, kept current by one watch, that answers reads at a
/// known revision (what Go's `cache` package does for etcd 3.6).
///
/// ```swift
/// let cache = try await EtcdWatchCache(client: etcd, prefix: "services/")
/// // Run it (a ServiceLifecycle Service) to follow changes.
/// let instances = try await cache.get("services/", prefix: true)          // from memory, at cache.revision
/// let fresh = try await cache.get("services/", prefix: true, linearizable: true)  // at least etcd's revision now
/// ```
///
/// The cache lists the prefix at one revision, then watches from the revision after it, so it
/// always equals etcd's state at ``revision``: never a mix of two revisions. Plain reads answer
/// from memory at once. Linearizable reads first learn etcd's current revision (a count-only read)
/// and wait until the cache has caught up with it (see ``waitForRevision(_:)``). If the watch falls
/// behind a compaction, the cache lists the prefix again and carries on.
public final class EtcdWatchCache: Service, Sendable {
    /// What a read returns: the keys and the revision of etcd they reflect.
    public struct Read: Sendable {
        /// The matching keys, in key order.
        public var kvs: [EtcdKeyValue]
        /// The revision the cache reflected when it answered.
        public var revision: Int64
    }

    /// The client reading etcd.
    public let client: EtcdClient
    /// The prefix cached.
    public let prefix: Data

    private struct State {
        var kvs: [Data: EtcdKeyValue]
        var revision: Int64
        var waiters: [(id: Int, revision: Int64, continuation: CheckedContinuation<Void, Never>)] = []
        var nextWaiter = 0
        /// Waits started whose waiter has not registered yet, and those of them given up already.
        var pending: Set<Int> = []
        var released: Set<Int> = []
    }
    private let state: Mutex<State>

    /// Lists the prefix and returns a cache holding it; ``run()`` keeps it current.
    public init(client: EtcdClient, prefix: some EtcdBytes) async throws {
        self.client = client
        self.prefix = prefix.etcdData
        let (kvs, revision) = try await Self.list(client, self.prefix)
        self.state = Mutex(State(kvs: kvs, revision: revision))
    }

    private static func list(_ client: EtcdClient, _ prefix: Data) async throws -> ([Data: EtcdKeyValue], Int64) {
        let response = try await client.get(prefix, options: [.prefix, .paged(pageSize: 1000)])
        var kvs: [Data: EtcdKeyValue] = [:]
        for kv in response.kvs { kvs[kv.keyData] = kv }
        return (kvs, response.header.revision)
    }

    /// The revision of etcd the cache reflects.
    public var revision: Int64 { self.state.withLock { $0.revision } }

    /// Reads a key, or with `prefix` every key starting with it, from the cache.
    ///
    /// Without `linearizable`, the answer is the cache's state now, at ``Read/revision``, which may
    /// be behind etcd. With it, the answer reflects every write acknowledged before the call.
    ///
    /// - Throws: `EtcdClientError` `invalidArgument` for a key outside the cached prefix; for a
    ///   linearizable read, the error of the revision check, or `deadlineExceeded` when the cache does
    ///   not catch up within the client's dial timeout.
    public func get(_ key: some EtcdBytes, prefix: Bool = false, linearizable: Bool = false) async throws -> Read {
        let key = key.etcdData
        // A shorter prefix would cover keys the cache does not hold.
        guard key.starts(with: self.prefix) else {
            throw EtcdClientError(
                code: .invalidArgument,
                message: "the cache holds the keys under its prefix only; read other keys from the client")
        }
        if linearizable {
            try await self.waitUntilCurrent()
        }
        return self.state.withLock { state in
            let kvs: [EtcdKeyValue]
            if prefix {
                kvs = state.kvs.values.filter { $0.keyData.starts(with: key) }.sorted {
                    $0.keyData.lexicographicallyPrecedes($1.keyData)
                }
            } else {
                kvs = state.kvs[key].map { [$0] } ?? []
            }
            return Read(kvs: kvs, revision: state.revision)
        }
    }

    /// Waits until the cache reflects etcd's revision at the time of the call.
    public func waitUntilCurrent() async throws {
        // A count-only read of the prefix is linearizable and cheap; its header has etcd's revision.
        let current = try await self.client.get(self.prefix, options: [.prefix, .countOnly]).header.revision
        try await self.waitForRevision(current)
    }

    /// Waits until the cache reflects `revision` or a later one (of etcd's current revisions).
    ///
    /// Watches only deliver events of the prefix, so the cache's revision stays behind while the
    /// rest of the keyspace changes. To catch up, the cache asks etcd whether anything under the
    /// prefix changed between its revision and `revision` (two small reads at `revision`: a key
    /// modified since, and the number of keys); if nothing did, it holds etcd's state at
    /// `revision` already. Otherwise it waits for the watch to deliver the changes and asks again.
    /// (Progress notifications would be cheaper, but etcd before 3.4.25 and 3.5.8 sends them to
    /// watches that have not caught up yet, which would make a stale read look current.)
    ///
    /// - Throws: `EtcdClientError` `deadlineExceeded` when the cache does not catch up within the
    ///   client's dial timeout (is ``run()`` running?); the errors of the two reads.
    public func waitForRevision(_ revision: Int64) async throws {
        let limit = ContinuousClock.now + self.client.configuration.dialTimeout
        while true {
            let (current, count) = self.state.withLock { ($0.revision, $0.kvs.count) }
            if current >= revision { return }
            let total = try await self.client.get(self.prefix, options: [.prefix, .countOnly, .revision(revision)])
                .count
            // etcd applies the modification filter to the keys returned, not to the count.
            let changed = try await self.client.get(
                self.prefix,
                options: [.prefix, .keysOnly, .limit(1), .revision(revision), .minModRevision(current + 1)]
            )
            if changed.kvs.isEmpty && Int(total) == count {
                // Nothing under the prefix changed from `current` to `revision`: the copy is etcd's
                // state at `revision`. (Keys created and deleted in between leave no trace; their
                // events arrive later and are skipped as already covered.)
                if self.advance(from: current, to: revision) { return }
                continue
            }
            guard ContinuousClock.now < limit else {
                throw EtcdClientError(
                    code: .deadlineExceeded,
                    message: """
                        the cache of \(String(decoding: self.prefix, as: UTF8.self)) did not reach revision \(revision) \
                        in time (it is at \(current)); is run() running?
                        """
                )
            }
            // Changes are on their way: wait for the watch to deliver the next one.
            await self.wait(for: current + 1, until: limit)
        }
    }

    private func advance(from current: Int64, to revision: Int64) -> Bool {
        let (advanced, ready) = self.state.withLock { state -> (Bool, [CheckedContinuation<Void, Never>]) in
            guard state.revision == current else { return (false, []) }
            state.revision = revision
            return (true, self.takeReady(&state))
        }
        for continuation in ready { continuation.resume() }
        return advanced
    }

    /// Returns once the cache reaches `revision`, at `limit`, or on cancellation.
    private func wait(for revision: Int64, until limit: ContinuousClock.Instant) async {
        let id = self.state.withLock { state -> Int in
            state.nextWaiter += 1
            state.pending.insert(state.nextWaiter)
            return state.nextWaiter
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    let ready = self.state.withLock { state -> Bool in
                        state.pending.remove(id)
                        if state.revision >= revision || state.released.remove(id) != nil { return true }
                        state.waiters.append((id, revision, continuation))
                        return false
                    }
                    if ready { continuation.resume() }
                }
            }
            group.addTask { try? await Task.sleep(until: limit) }
            await group.next()
            group.cancelAll()
            // Whichever finished first, release the other.
            self.release(id)
        }
    }

    private func release(_ id: Int) {
        let waiting = self.state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard let index = state.waiters.firstIndex(where: { $0.id == id }) else {
                // Not registered yet: make the late registration return at once. (Otherwise it was resumed.)
                if state.pending.contains(id) { state.released.insert(id) }
                return nil
            }
            return state.waiters.remove(at: index).continuation
        }
        waiting?.resume()
    }

    /// Follows the prefix until cancelled or graceful shutdown.
    ///
    /// - Throws: `EtcdClientError` when the watch fails for another reason than compaction.
    public func run() async throws {
        try await cancelWhenGracefulShutdown {
            while true {
                do {
                    try await self.client.watch(self.prefix, options: [.prefix, .revision(self.revision + 1)]) {
                        responses in
                        for try await response in responses { self.apply(response) }
                    }
                    return  // the client shut down
                } catch let error as EtcdClientError where error.code == .compacted {
                    let (kvs, revision) = try await Self.list(self.client, self.prefix)
                    self.replace(kvs, revision: revision)
                }
            }
        }
    }

    private func apply(_ response: EtcdWatchResponse) {
        let ready = self.state.withLock { state in
            for event in response.events where event.kv.modRevision > state.revision {
                // Events at or below the revision are already covered (see waitForRevision).
                state.kvs[event.kv.keyData] = event.type == .put ? event.kv : nil
            }
            // Only events move the revision: progress notifications are not trusted (see waitForRevision).
            if let last = response.events.last?.kv.modRevision { state.revision = max(state.revision, last) }
            return self.takeReady(&state)
        }
        for continuation in ready { continuation.resume() }
    }

    private func replace(_ kvs: [Data: EtcdKeyValue], revision: Int64) {
        let ready = self.state.withLock { state in
            state.kvs = kvs
            state.revision = max(state.revision, revision)
            return self.takeReady(&state)
        }
        for continuation in ready { continuation.resume() }
    }

    private func takeReady(_ state: inout State) -> [CheckedContinuation<Void, Never>] {
        let revision = state.revision
        let ready = state.waiters.filter { $0.revision <= revision }.map(\.continuation)
        state.waiters.removeAll { $0.revision <= revision }
        return ready
    }
}
