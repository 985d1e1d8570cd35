// SPDX-License-Identifier: Apache-2.0
import Etcd
import Testing

@Suite("KV options against etcd", .timeLimit(.minutes(2)))
struct KVOptionTests {
    @Test("fromKey, range(end:) and prefix select the keys etcd says")
    func ranges() async throws {
        try await withEtcd { _, client in
            for key in ["a", "b", "b1", "c", "d"] { try await client.put(key, value: key) }
            #expect(try await client.get("b", options: .fromKey).kvs.map(\.keyString) == ["b", "b1", "c", "d"])
            #expect(try await client.get("b", options: .range(end: "d")).kvs.map(\.keyString) == ["b", "b1", "c"])
            #expect(try await client.get("b", options: .prefix).kvs.map(\.keyString) == ["b", "b1"])
            #expect(try await client.get("", options: .prefix).count == 5)
            #expect(try await client.get("", options: .fromKey).count == 5)
            #expect(try await client.delete("c", options: .fromKey).deleted == 2)
            #expect(try await client.delete("a", options: .range(end: "b1")).deleted == 2)
            #expect(try await client.get("", options: .prefix).kvs.map(\.keyString) == ["b1"])
        }
    }

    @Test("limit returns that many keys, with more and the full count")
    func limitAndMore() async throws {
        try await withEtcd { _, client in
            for i in 0..<5 { try await client.put("k\(i)", value: "v") }
            let response = try await client.get("k", options: [.prefix, .limit(2)])
            #expect(response.kvs.map(\.keyString) == ["k0", "k1"])
            #expect(response.more)
            #expect(response.count == 5)
            let all = try await client.get("k", options: [.prefix, .limit(5)])
            #expect(!all.more)
        }
    }

    @Test("sort orders and targets")
    func sorting() async throws {
        try await withEtcd { _, client in
            // Create order c, a, b; values reversed; versions a=3, b=2, c=1.
            try await client.put("s/c", value: "1")
            try await client.put("s/a", value: "3")
            try await client.put("s/b", value: "2")
            try await client.put("s/a", value: "3")
            try await client.put("s/b", value: "2")
            try await client.put("s/a", value: "3")
            func keys(_ target: EtcdSortTarget, _ order: EtcdSortOrder) async throws -> [String] {
                try await client.get("s/", options: [.prefix, .sort(by: target, order: order)]).kvs.map(\.keyString)
            }
            #expect(try await keys(.key, .ascending) == ["s/a", "s/b", "s/c"])
            #expect(try await keys(.key, .descending) == ["s/c", "s/b", "s/a"])
            #expect(try await keys(.createRevision, .ascending) == ["s/c", "s/a", "s/b"])
            #expect(try await keys(.createRevision, .descending) == ["s/b", "s/a", "s/c"])
            #expect(try await keys(.modRevision, .descending) == ["s/a", "s/b", "s/c"])
            #expect(try await keys(.version, .ascending) == ["s/c", "s/b", "s/a"])
            #expect(try await keys(.value, .ascending) == ["s/c", "s/b", "s/a"])
            #expect(try await keys(.value, .descending) == ["s/a", "s/b", "s/c"])
            #expect(try await client.get("s/", options: .lastCreate).kvs.map(\.keyString) == ["s/b"])
            #expect(try await client.get("s/", options: .firstCreate).kvs.map(\.keyString) == ["s/c"])
            #expect(try await client.get("s/", options: .lastKey).kvs.map(\.keyString) == ["s/c"])
            #expect(try await client.get("s/", options: .firstKey).kvs.map(\.keyString) == ["s/a"])
            #expect(try await client.get("s/", options: .lastRevision).kvs.map(\.keyString) == ["s/a"])
            #expect(try await client.get("s/", options: .firstRevision).kvs.map(\.keyString) == ["s/c"])
        }
    }

    @Test("keysOnly drops values; countOnly returns only the count")
    func keysOnlyAndCountOnly() async throws {
        try await withEtcd { _, client in
            for i in 0..<3 { try await client.put("k\(i)", value: "value\(i)") }
            let keys = try await client.get("k", options: [.prefix, .keysOnly])
            #expect(keys.kvs.map(\.keyString) == ["k0", "k1", "k2"])
            #expect(keys.kvs.allSatisfy { $0.value.isEmpty })
            let count = try await client.get("k", options: [.prefix, .countOnly])
            #expect(count.kvs.isEmpty)
            #expect(count.count == 3)
        }
    }

    @Test("min/max mod and create revisions filter the range")
    func revisionFilters() async throws {
        try await withEtcd { _, client in
            let a = try await client.put("r/a", value: "1").header.revision
            let b = try await client.put("r/b", value: "1").header.revision
            let c = try await client.put("r/c", value: "1").header.revision
            let a2 = try await client.put("r/a", value: "2").header.revision
            func keys(_ options: EtcdGetOptions) async throws -> [String] {
                try await client.get("r/", options: [.prefix, options]).kvs.map(\.keyString)
            }
            #expect(try await keys(.minModRevision(b)) == ["r/a", "r/b", "r/c"])
            #expect(try await keys(.minModRevision(c)) == ["r/a", "r/c"])
            #expect(try await keys(.maxModRevision(c)) == ["r/b", "r/c"])
            #expect(try await keys(.minCreateRevision(b)) == ["r/b", "r/c"])
            #expect(try await keys(.maxCreateRevision(b)) == ["r/a", "r/b"])
            #expect(try await keys([.minModRevision(a2), .maxCreateRevision(a)]) == ["r/a"])
        }
    }

    @Test("serializable reads answer from the member")
    func serializable() async throws {
        try await withEtcd { _, client in
            try await client.put("k", value: "v")
            let response = try await client.get("k", options: .serializable)
            #expect(response.kvs.map(\.valueString) == ["v"])
        }
    }

    @Test("prevKV, ignoreValue and ignoreLease on puts")
    func putOptions() async throws {
        try await withEtcd { _, client in
            #expect(try await client.put("k", value: "1", options: .prevKV).prevKV == nil)
            let second = try await client.put("k", value: "2", options: .prevKV)
            #expect(second.prevKV?.valueString == "1")
            // ignoreValue keeps the value, ignoreLease keeps the lease.
            try await client.put("k", value: "", options: .ignoreValue)
            #expect(try await client.get("k").kvs.first?.valueString == "2")
            try await client.put("k", value: "3", options: .ignoreLease)
            #expect(try await client.get("k").kvs.first?.valueString == "3")
        }
    }

    @Test("ignoreValue and ignoreLease on a missing key fail with keyNotFound")
    func ignoreOnMissingKey() async throws {
        try await withEtcd { _, client in
            let value = await etcdErrorCode { try await client.put("missing", value: "", options: .ignoreValue) }
            #expect(value?.code == .keyNotFound)
            #expect(value?.message == "etcdserver: key not found")
            let lease = await etcdErrorCode { try await client.put("missing", value: "v", options: .ignoreLease) }
            #expect(lease?.code == .keyNotFound)
            let remaining = try await client.get("missing").count
            #expect(remaining == 0)
        }
    }

    @Test("a put with an unknown lease fails with leaseNotFound")
    func unknownLease() async throws {
        try await withEtcd { _, client in
            let error = await etcdErrorCode { try await client.put("k", value: "v", options: .lease(0x1234)) }
            #expect(error?.code == .leaseNotFound)
            let remaining = try await client.get("k").count
            #expect(remaining == 0)
        }
    }

    @Test("transactions: compare targets, else branch, nested txn and read results")
    func transactions() async throws {
        try await withEtcd { _, client in
            let created = try await client.put("t/a", value: "1").header.revision
            let miss = try await client.txn(
                if: [.version("t/a") == 5],
                then: [.put("t/then", value: "x")],
                else: [.put("t/else", value: "y"), .get("t/a")]
            )
            #expect(!miss.succeeded)
            #expect(miss.responses.count == 2)
            #expect(miss.responses[1].get?.kvs.first?.valueString == "1")
            let remaining = try await client.get("t/then").count
            #expect(remaining == 0)
            let hit = try await client.txn(
                if: [
                    .createRevision("t/a") == created, .modRevision("t/a") < created + 100, .value("t/a") != "2",
                    .version("t/missing") == 0, .lease("t/a") == 0, .version("t/").withPrefix() > 0,
                ],
                then: [
                    .txn(if: [.value("t/else") == "y"], then: [.delete("t/else")], else: []),
                    .put("t/a", value: "2", options: .prevKV),
                ]
            )
            #expect(hit.succeeded)
            #expect(hit.responses[0].txn?.succeeded == true)
            #expect(hit.responses[0].txn?.responses.first?.delete?.deleted == 1)
            #expect(hit.responses[1].put?.prevKV?.valueString == "1")
            #expect(try await client.get("t/", options: .prefix).kvs.map(\.description) == ["t/a : 2"])
        }
    }
}
