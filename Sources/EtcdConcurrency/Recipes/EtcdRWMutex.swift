// SPDX-License-Identifier: Apache-2.0
import Etcd
import Synchronization

/// A distributed readers-writer lock (Go's `recipe.RWMutex`, same key layout): any number of
/// readers, or one writer. Requests are served in order, so a waiting writer holds back later readers.
///
/// Readers write `<name>/read/<time>`, writers `<name>/write/<time>`, attached to the session's
/// lease. One value takes one lock at a time.
public final class EtcdRWMutex: Sendable {
    /// The session whose lease holds the lock's keys: the lock is released if the session ends.
    public let session: EtcdSession
    /// The prefix of the lock's keys: the name with a trailing `/`.
    public let prefix: String
    private let held = Mutex<(key: String, revision: Int64)?>(nil)

    /// The lock `name` held through `session`; making it writes nothing.
    public init(session: EtcdSession, name: String) {
        self.session = session
        self.prefix = name + "/"
    }

    /// Waits until no writer that asked earlier holds or waits for the lock.
    public func readLock() async throws {
        try await self.acquire(kind: "read", blockers: self.prefix + "write")
    }

    /// Waits until nobody that asked earlier, reader or writer, holds or waits for the lock.
    public func lock() async throws {
        try await self.acquire(kind: "write", blockers: self.prefix)
    }

    /// Releases a read lock.
    public func readUnlock() async throws { try await self.release() }

    /// Releases the write lock.
    public func unlock() async throws { try await self.release() }

    private func acquire(kind: String, blockers: String) async throws {
        let client = self.session.client
        let mine = try await RecipeKeys.unique(
            client, prefix: self.prefix + kind, value: "", lease: self.session.leaseID)
        self.held.withLock { $0 = mine }
        do {
            try await client.cancellingOnLoss(of: self.session, "the lock \(self.prefix) was not taken") {
                // Wait for the last earlier blocker to go, until there is none.
                while true {
                    let last = try await client.get(
                        blockers, options: [.lastRevision, .maxModRevision(mine.revision - 1)])
                    guard let blocker = last.kvs.first else { return }
                    try await Waits.delete(client, key: blocker.keyString, from: mine.revision)
                }
            }
        } catch {
            try? await self.releaseDetached()
            throw error
        }
    }

    private func release() async throws {
        guard let key = self.held.withLock({ $0?.key }) else { return }
        try await self.session.client.delete(key)
        self.held.withLock { $0 = nil }
    }

    private func releaseDetached() async throws {
        let client = self.session.client
        guard let key = self.held.withLock({ $0?.key }) else { return }
        self.held.withLock { $0 = nil }
        try await Task.detached {
            _ = try await withEtcdTimeout(client.configuration.dialTimeout) { try await client.delete(key) }
        }.value
    }
}
