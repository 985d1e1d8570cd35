// SPDX-License-Identifier: Apache-2.0
public import Etcd

/// A queue whose items come out lowest priority number first, FIFO within a priority (Go's
/// `recipe.PriorityQueue`, same key layout: `<key>/<priority %05d>/<sequence %016d>`).
public struct EtcdPriorityQueue: Sendable {
    /// The client the queue works through.
    public let client: EtcdClient
    /// The prefix under which items are stored, by priority and sequence.
    public let key: String

    /// The queue under `key`; making it writes nothing.
    public init(client: EtcdClient, key: String) {
        self.client = client
        self.key = key
    }

    /// Adds `value` with `priority` (0 comes out first).
    public func enqueue(_ value: String, priority: UInt16) async throws {
        let digits = String(priority)
        let prefix = "\(self.key)/" + String(repeating: "0", count: max(0, 5 - digits.count)) + digits
        _ = try await RecipeKeys.sequential(self.client, prefix: prefix, value: value)
    }

    /// Removes and returns the item with the lowest priority number, waiting for one if empty.
    public func dequeue() async throws -> String {
        try await EtcdQueue.dequeue(self.client, prefix: self.key + "/", oldest: .firstKey)
    }
}
