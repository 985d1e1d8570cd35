// SPDX-License-Identifier: Apache-2.0
import Etcd
import EtcdSync
import EtcdTesting
import Testing

@Suite("Leasing KV (EtcdSync)", .timeLimit(.minutes(2)))
struct LeasingKVTests {
    /// Two clients, each with its own leasing KV on the same prefix, as two processes would have.
    private func withTwo(_ body: (EtcdClient, EtcdLeasingKV, EtcdLeasingKV) async throws -> Void) async throws {
        try await withEtcd { cluster, client in
            try await withEtcdClient(.init(endpoints: cluster.clientEndpoints)) { other in
                try await withEtcdLeasingKV(client: client, prefix: "leasing/") { first in
                    try await withEtcdLeasingKV(client: other, prefix: "leasing/") { second in
                        try await body(client, first, second)
                    }
                }
            }
        }
    }

    @Test("Go's example: a get acquires the key, repeated gets come from memory, another writer revokes it")
    func goExample() async throws {
        try await withTwo { client, first, second in
            try await client.put("abc", value: "123")
            #expect(try await first.get("abc").kvs.first?.valueString == "123")
            #expect(try await client.get("leasing/abc").count == 1)  // the ownership key
            let before = first.cachedReads
            #expect(try await first.get("abc").kvs.first?.valueString == "123")
            #expect(first.cachedReads == before + 1)
            try await second.put("abc", value: "456")
            #expect(try await first.get("abc").kvs.first?.valueString == "456")
        }
    }

    @Test("every read after a completed write by the other leasing KV sees it, while unchanged keys come from memory")
    func coherence() async throws {
        try await withTwo { _, writer, reader in
            for value in 1...30 {
                try await writer.put("k", value: "\(value)")
                #expect(try await reader.get("k").kvs.first?.valueString == "\(value)")
                #expect(try await reader.get("k").kvs.first?.valueString == "\(value)")
                // The owner's own writes update its copy.
                try await reader.put("mine", value: "\(value)")
                #expect(try await reader.get("mine").kvs.first?.valueString == "\(value)")
            }
            #expect(reader.cachedReads >= 30)

            try await writer.delete("k")
            #expect(try await reader.get("k").kvs.isEmpty)
            try await writer.txn(if: [.keyMissing("k")], then: [.put("k", value: "txn")])
            #expect(try await reader.get("k").kvs.first?.valueString == "txn")

            _ = try await reader.get("r/1")
            try await writer.put("r/1", value: "a")
            try await writer.put("r/2", value: "b")
            #expect(try await reader.get("r/1").kvs.first?.valueString == "a")
            #expect(try await reader.get("r/2").kvs.first?.valueString == "b")
            let deleted = try await writer.delete("r/", options: .prefix)
            #expect(deleted.deleted == 2)
            #expect(try await reader.get("r/1").kvs.isEmpty)
            #expect(try await reader.get("r/2").kvs.isEmpty)
        }
    }

    @Test("concurrent increments through two leasing KVs with guarded transactions lose nothing")
    func concurrentIncrements() async throws {
        try await withTwo { client, first, second in
            try await client.put("n", value: "0")
            try await withThrowingTaskGroup { group in
                for kv in [first, second] {
                    group.addTask {
                        var done = 0
                        while done < 20 {
                            let current = try await kv.get("n").kvs.first!
                            let next = (Int(current.valueString) ?? 0) + 1
                            let swapped = try await kv.txn(
                                if: [.modRevision("n") == current.modRevision], then: [.put("n", value: "\(next)")])
                            if swapped.succeeded { done += 1 }
                        }
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await client.get("n").kvs.first?.valueString == "40")
        }
    }

    @Test("keys attached to a lease are not cached; leaving the scope deletes the ownership keys")
    func leasesAndScope() async throws {
        try await withEtcd { _, client in
            let lease = try await client.grant(ttl: 60)
            try await client.put("leased", value: "x", options: .lease(lease.id))
            try await withEtcdLeasingKV(client: client, prefix: "leasing/") { kv in
                _ = try await kv.get("leased")
                _ = try await kv.get("leased")
                #expect(kv.cachedReads == 0)
                _ = try await kv.get("plain")
                #expect(try await client.get("leasing/", options: .prefix).count == 1)
            }
            #expect(try await client.get("leasing/", options: .prefix).count == 0)
        }
    }
}
