// SPDX-License-Identifier: Apache-2.0
public import Etcd

/// A barrier (Go's `recipe.Barrier`): while its key exists, ``wait()`` blocks; deleting the key
/// releases every waiter.
public struct EtcdBarrier: Sendable {
    /// The client the barrier works through.
    public let client: EtcdClient
    /// The key whose existence raises the barrier.
    public let key: String

    /// The barrier at `key`; making it writes nothing.
    public init(client: EtcdClient, key: String) {
        self.client = client
        self.key = key
    }

    /// Raises the barrier.
    ///
    /// - Throws: `EtcdClientError` `keyExists` when it is already raised.
    public func hold() async throws {
        _ = try await RecipeKeys.putNew(self.client, key: self.key, value: "")
    }

    /// Lowers the barrier, releasing every waiter.
    public func release() async throws {
        try await self.client.delete(self.key)
    }

    /// Returns once the barrier is down (at once if it is not raised).
    public func wait() async throws {
        let response = try await self.client.get(self.key)
        guard !response.kvs.isEmpty else { return }
        // Go's recipe waits for a put and then a delete from the read's revision, missing an earlier
        // put; the barrier is down at the first delete after the read.
        try await Waits.delete(self.client, key: self.key, from: response.header.revision + 1)
    }
}
