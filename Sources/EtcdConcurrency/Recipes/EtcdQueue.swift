// SPDX-License-Identifier: Apache-2.0
public import Etcd

/// A multi-producer, multi-consumer FIFO queue in etcd (Go's `recipe.Queue`, same key layout:
/// `<prefix>/<time>`). Each item is dequeued by exactly one consumer.
public struct EtcdQueue: Sendable {
    /// The client the queue works through.
    public let client: EtcdClient
    /// The prefix under which items are stored, one key each.
    public let prefix: String

    /// The queue under `prefix`; making it writes nothing.
    public init(client: EtcdClient, prefix: String) {
        self.client = client
        self.prefix = prefix
    }

    /// Appends `value`.
    public func enqueue(_ value: String) async throws {
        _ = try await RecipeKeys.unique(self.client, prefix: self.prefix, value: value)
    }

    /// Removes and returns the oldest item, waiting for one if the queue is empty.
    public func dequeue() async throws -> String {
        try await Self.dequeue(self.client, prefix: self.prefix + "/", oldest: .firstRevision)
    }

    /// Claims the first item `oldest` finds, or waits for the next put under `prefix`.
    static func dequeue(_ client: EtcdClient, prefix: String, oldest: EtcdGetOptions) async throws -> String {
        while true {
            let response = try await client.get(prefix, options: oldest)
            if let claimed = try await RecipeKeys.claimFirst(client, response.kvs) { return claimed.valueString }
            if response.more { continue }
            let event = try await Waits.events(
                client, key: prefix, prefix: true, from: response.header.revision, [.put])
            if try await RecipeKeys.deleteIfUnchanged(client, key: event.kv.keyString, revision: event.kv.modRevision) {
                return event.kv.valueString
            }
        }
    }
}
