// SPDX-License-Identifier: Apache-2.0
import Etcd
import Synchronization

/// A double barrier (Go's `recipe.DoubleBarrier`, same key layout): ``enter()`` returns once
/// `count` participants have entered, ``leave()`` once all of them have left.
///
/// Participants write `<key>/waiters/<time>` attached to their session's lease; the last to enter
/// writes `<key>/ready`.
public final class EtcdDoubleBarrier: Sendable {
    /// The session whose lease holds this participant's key: a participant whose session ends has left.
    public let session: EtcdSession
    /// The barrier's key; its participants' keys live under it.
    public let key: String
    /// How many participants must enter before ``enter()`` returns.
    public let count: Int
    private let mine = Mutex<(key: String, revision: Int64)?>(nil)

    /// One participant of the barrier at `key` for `count` participants; making it writes nothing.
    public init(session: EtcdSession, key: String, count: Int) {
        self.session = session
        self.key = key
        self.count = count
    }

    /// Enters, and waits until `count` participants have entered.
    ///
    /// - Throws: `EtcdClientError` `tooManyClients` when `count` participants are already in.
    public func enter() async throws {
        let client = self.session.client
        let waiters = self.key + "/waiters"
        let entry = try await RecipeKeys.unique(client, prefix: waiters, value: "", lease: self.session.leaseID)
        self.mine.withLock { $0 = entry }
        let present = try await client.get(waiters + "/", options: .prefix)
        if present.kvs.count > self.count {
            throw EtcdClientError(
                code: .tooManyClients,
                message: "the double barrier \(self.key) already has its \(self.count) participants"
            )
        }
        if present.kvs.count == self.count {
            try await client.put(self.key + "/ready", value: "")
            return
        }
        _ = try await Waits.events(client, key: self.key + "/ready", prefix: false, from: entry.revision, [.put])
    }

    /// Leaves, and waits until every participant has left.
    public func leave() async throws {
        let client = self.session.client
        guard let mine = self.mine.withLock({ $0 }) else { return }
        while true {
            let present = try await client.get(self.key + "/waiters/", options: .prefix)
            guard !present.kvs.isEmpty else { return }
            let lowest = present.kvs.min { $0.modRevision < $1.modRevision }!
            let highest = present.kvs.max { $0.modRevision < $1.modRevision }!
            if present.kvs.count == 1 {
                // The last one out lowers the ready flag.
                try await client.delete(self.key + "/ready")
                try await client.delete(mine.key)
                self.mine.withLock { $0 = nil }
                return
            }
            if lowest.keyString == mine.key {
                // The lowest leaves last: wait for the highest, then look again.
                try await Waits.delete(client, key: highest.keyString, from: highest.modRevision)
            } else {
                try await client.delete(mine.key)
                try await Waits.delete(client, key: lowest.keyString, from: lowest.modRevision)
                // Go's recipe looks again here; with our key gone that would see the others only.
                self.mine.withLock { $0 = nil }
                return
            }
        }
    }
}
