// SPDX-License-Identifier: Apache-2.0
import Etcd
import FoundationEssentials

/// Key helpers the recipes share, with the Go recipes' key layout (`contrib/recipes/key.go`).
enum RecipeKeys {
    /// Creates `key` if it does not exist; returns the revision of the creation.
    ///
    /// - Throws: ``EtcdClientError`` `keyExists` when the key exists.
    static func putNew(_ client: EtcdClient, key: String, value: String, lease: Int64 = 0) async throws -> Int64 {
        let response = try await client.txn(
            if: [.version(key) == 0],
            then: [.put(key, value: value, options: lease == 0 ? [] : .lease(lease))]
        )
        guard response.succeeded else {
            throw EtcdClientError(code: .keyExists, message: "key already exists: \(key)")
        }
        return response.header.revision
    }

    /// Creates a new key `<prefix>/<nanoseconds since 1970>`; returns it and its creation revision.
    static func unique(
        _ client: EtcdClient,
        prefix: String,
        value: String,
        lease: Int64 = 0
    ) async throws -> (key: String, revision: Int64) {
        while true {
            let key = "\(prefix)/\(Self.nanosecondsSince1970())"
            do {
                return (key, try await Self.putNew(client, key: key, value: value, lease: lease))
            } catch let error as EtcdClientError where error.code == .keyExists {
                continue
            }
        }
    }

    /// Creates the next key in the sequence `<prefix>/%016d`; returns it and its creation revision.
    static func sequential(_ client: EtcdClient, prefix: String, value: String) async throws -> (
        key: String, revision: Int64
    ) {
        while true {
            let last = try await client.get(prefix + "/", options: .lastKey)
            var next = 0
            if let key = last.kvs.first?.keyString {
                guard let number = key.split(separator: "/").last.flatMap({ Int($0) }) else {
                    throw EtcdClientError(
                        code: .invalidArgument,
                        message: "\(key) under the sequence \(prefix) does not end in a number"
                    )
                }
                next = number + 1
            }
            let digits = String(next)
            let key = "\(prefix)/" + String(repeating: "0", count: max(0, 16 - digits.count)) + digits
            // The marker key changes with every new key, so two writers cannot take the same number.
            let marker = "__" + prefix
            let response = try await client.txn(
                if: [.modRevision(marker) < last.header.revision + 1],
                then: [.put(marker, value: ""), .put(key, value: value)]
            )
            if response.succeeded { return (key, response.header.revision) }
        }
    }

    /// Deletes `key` if it is still at `revision`; returns whether it did.
    static func deleteIfUnchanged(_ client: EtcdClient, key: String, revision: Int64) async throws -> Bool {
        try await client.txn(if: [.modRevision(key) == revision], then: [.delete(key)]).succeeded
    }

    /// Deletes the first of `kvs` still unchanged, and returns it: the claim of a queue item.
    static func claimFirst(_ client: EtcdClient, _ kvs: [EtcdKeyValue]) async throws -> EtcdKeyValue? {
        for kv in kvs where try await Self.deleteIfUnchanged(client, key: kv.keyString, revision: kv.modRevision) {
            return kv
        }
        return nil
    }

    /// Wall-clock time as Go's `time.Now().UnixNano()` prints it (a collision just means another try).
    private static func nanosecondsSince1970() -> Int64 {
        Int64(Date.now.timeIntervalSince1970 * 1_000_000_000)
    }
}
