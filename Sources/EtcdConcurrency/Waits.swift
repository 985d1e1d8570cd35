// SPDX-License-Identifier: Apache-2.0
import Etcd

/// The waits the recipes share: for a key's deletion, for the deletion of every older key under a
/// prefix, and for events on a key or prefix. Each watches from a known revision, so nothing that
/// happens between the read and the watch is missed.
enum Waits {
    /// Waits until `key` is deleted, watching from `revision`.
    static func delete(_ client: EtcdClient, key: String, from revision: Int64) async throws {
        _ = try await Self.events(client, key: key, prefix: false, from: revision, [.delete])
    }

    /// Waits until no key under `prefix` has a create revision up to `maxCreateRevision` (Go's
    /// `waitDeletes`): the keys queued before ours are all gone.
    static func deletes(_ client: EtcdClient, prefix: String, maxCreateRevision: Int64) async throws
        -> EtcdResponseHeader
    {
        while true {
            let response = try await client.get(prefix, options: [.lastCreate, .maxCreateRevision(maxCreateRevision)])
            guard let last = response.kvs.first else { return response.header }
            try await Self.delete(client, key: last.keyString, from: response.header.revision)
        }
    }

    /// Waits for events of the given types, in that order, on `key` (or under it, with `prefix`),
    /// watching from `revision`; returns the last one (Go's `WaitEvents`/`WaitPrefixEvents`).
    static func events(
        _ client: EtcdClient,
        key: String,
        prefix: Bool,
        from revision: Int64,
        _ types: [EtcdWatchEvent.EventType]
    ) async throws -> EtcdWatchEvent {
        let options: EtcdWatchOptions = prefix ? [.prefix, .revision(revision)] : .revision(revision)
        return try await client.watch(key, options: options) { responses in
            var matched = 0
            for try await response in responses {
                for event in response.events where event.type == types[matched] {
                    matched += 1
                    if matched == types.count { return event }
                }
            }
            throw EtcdClientError(
                code: .unavailable,
                message: "the watch on \(key) ended before the awaited change (the client is shutting down)"
            )
        }
    }
}

extension EtcdClient {
    /// Runs `body`, ending it with `sessionExpired` (after cancelling it) if `session` is lost first.
    func cancellingOnLoss<Result: Sendable>(
        of session: EtcdSession,
        _ what: String,
        _ body: @escaping @Sendable () async throws -> Result
    ) async throws -> Result {
        try await withThrowingTaskGroup(of: Result?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                let reason = try await session.lease.waitUntilLost()
                throw EtcdClientError(
                    code: .sessionExpired,
                    message: "the session's lease \(session.leaseID) was lost (\(reason.message)); \(what)",
                    cause: reason
                )
            }
            defer { group.cancelAll() }
            guard let result = try await group.next(), let value = result else {
                throw CancellationError()
            }
            return value
        }
    }
}
