// SPDX-License-Identifier: Apache-2.0
public import Etcd
import Synchronization

/// A distributed lock (Go's `concurrency.Mutex`), with the same key layout so Swift and Go
/// processes (and `etcdctl lock`) exclude each other.
///
/// Each contender writes `<name>/<lease ID in hex>`, attached to its session's lease; the contender
/// whose key has the lowest create revision holds the lock, and the others each wait for the key
/// just before theirs to go. Waiters are served in order, and a holder whose session is lost
/// releases the lock by its lease expiring.
///
/// Holding the lock in etcd does not stop a holder that lost its session from carrying on. Use
/// ``withLock(_:)``, which cancels its body when the session is lost, and guard writes with
/// ``isOwner()`` in a transaction or with the ``fencingToken``.
public final class EtcdMutex: Sendable {
    /// The session whose lease the lock key is attached to.
    public let session: EtcdSession
    /// The prefix of the contenders' keys: the name with a trailing `/`.
    public let prefix: String

    private struct State {
        var key: String?
        var revision: Int64 = -1
        var header: EtcdResponseHeader?
    }
    private let state = Mutex(State())

    /// A lock named `name`; several mutexes of one session on one name share its key.
    public init(session: EtcdSession, name: String) {
        self.session = session
        self.prefix = name + "/"
    }

    /// This contender's key (`<name>/<lease ID in hex>`).
    public var key: String { self.prefix + String(self.session.leaseID, radix: 16) }

    /// The create revision of this contender's key while the lock is held: it increases with every
    /// new holder, so a store elsewhere can refuse writes carrying an older token.
    public var fencingToken: Int64? {
        self.state.withLock { state in state.key != nil && state.revision > 0 ? state.revision : nil }
    }

    /// The response header of the request that acquired the lock.
    public var header: EtcdResponseHeader? { self.state.withLock { $0.header } }

    /// A comparison that holds while this contender owns the lock; add it to a transaction's
    /// conditions to write only as the owner.
    public func isOwner() -> EtcdCompare {
        let revision = self.state.withLock { $0.revision }
        return .createRevision(self.key) == revision
    }

    /// Waits until the lock is held.
    ///
    /// - Throws: `EtcdClientError` `sessionExpired` when the session is lost before the lock is
    ///   taken; the request errors. On any error, and on cancellation (`CancellationError`), this
    ///   contender's key is removed so it does not hold up others.
    public func lock() async throws {
        let (response, ownerRevision) = try await self.tryAcquire()
        if ownerRevision == nil || ownerRevision == self.state.withLock({ $0.revision }) {
            self.state.withLock { $0.header = response.header }
            return
        }
        let client = self.session.client
        let (prefix, myRevision, key) = (self.prefix, self.state.withLock { $0.revision }, self.key)
        do {
            _ = try await client.cancellingOnLoss(of: self.session, "the lock was not taken") {
                try await Waits.deletes(client, prefix: prefix, maxCreateRevision: myRevision - 1)
            }
            // Our key must still be there: a lost session means the queue moved on without us.
            let mine = try await client.get(key)
            guard !mine.kvs.isEmpty else {
                self.state.withLock { $0 = State() }
                throw EtcdClientError(
                    code: .sessionExpired,
                    message: "the session's lease \(self.session.leaseID) expired while waiting for the lock \(prefix)"
                )
            }
            self.state.withLock { $0.header = mine.header }
        } catch {
            await self.releaseUnconditionally()
            throw error
        }
    }

    /// Takes the lock if it is free, without waiting (etcd 3.5's `TryLock`).
    ///
    /// - Throws: `EtcdClientError` `locked` when another session holds it (this contender's key
    ///   is removed again).
    public func tryLock() async throws {
        let (response, ownerRevision) = try await self.tryAcquire()
        if ownerRevision == nil || ownerRevision == self.state.withLock({ $0.revision }) {
            self.state.withLock { $0.header = response.header }
            return
        }
        try await self.session.client.delete(self.key)
        self.state.withLock { $0 = State() }
        throw EtcdClientError(code: .locked, message: "mutex: Locked by another session (\(self.prefix))")
    }

    /// Releases the lock (or withdraws from the queue) by deleting this contender's key.
    public func unlock() async throws {
        try await self.session.client.delete(self.key)
        self.state.withLock { $0 = State() }
    }

    /// Takes the lock, runs `body`, and releases the lock, also when `body` throws or is cancelled.
    ///
    /// When the session is lost while `body` runs (its lease expired, so another contender may
    /// already hold the lock), `body`'s task is cancelled and this throws `sessionExpired` once it
    /// has returned: work does not knowingly continue under a lock that is no longer held.
    ///
    /// - Parameter body: receives the fencing token (the lock key's create revision).
    @discardableResult
    public func withLock<Result: Sendable>(
        _ body: @escaping @Sendable (_ fencingToken: Int64) async throws -> Result
    ) async throws -> Result {
        try await self.lock()
        let token = self.state.withLock { $0.revision }
        do {
            let result = try await self.session.client.cancellingOnLoss(
                of: self.session, "the work under the lock \(self.prefix) was cancelled"
            ) {
                try await body(token)
            }
            await self.releaseUnconditionally()
            return result
        } catch {
            await self.releaseUnconditionally()
            throw error
        }
    }

    // MARK: -

    /// Puts this contender's key if it has none, and reads the current owner.
    /// Returns the owner's create revision, or nil when there is no owner.
    private func tryAcquire() async throws -> (EtcdTxnResponse, Int64?) {
        let key = self.key
        let response = try await self.session.client.txn(
            if: [.createRevision(key) == 0],
            then: [
                .put(key, value: "", options: .lease(self.session.leaseID)), .get(self.prefix, options: .firstCreate),
            ],
            else: [.get(key), .get(self.prefix, options: .firstCreate)]
        )
        var revision = response.header.revision
        if !response.succeeded, let existing = response.responses[0].get?.kvs.first {
            revision = existing.createRevision
        }
        self.state.withLock { state in
            state.key = key
            state.revision = revision
        }
        return (response, response.responses[1].get?.kvs.first?.createRevision)
    }

    /// Deletes this contender's key without regard to the caller's cancellation or deadline.
    private func releaseUnconditionally() async {
        let (client, key) = (self.session.client, self.key)
        self.state.withLock { $0 = State() }
        await Task.detached {
            _ = try? await withEtcdTimeout(client.configuration.dialTimeout) { try await client.delete(key) }
        }.value
    }
}
