// SPDX-License-Identifier: Apache-2.0
import Etcd
import Testing

/// The Go client's documented KV examples (clientv3/example_kv_test.go), in Swift, with their printed output.
@Suite("Go client KV examples", .timeLimit(.minutes(2)))
struct GoExampleTests {
    @Test("ExampleKV_put")
    func put() async throws {
        try await withEtcd { _, client in
            let response = try await client.put("sample_key", value: "sample_value")
            #expect(response.header.revision > 1)
            #expect(try await client.get("sample_key").kvs.map(\.description) == ["sample_key : sample_value"])
        }
    }

    @Test("ExampleKV_putErrorHandling: an empty key is refused client-side")
    func putErrorHandling() async throws {
        try await withEtcd { _, client in
            let error = await etcdErrorCode { try await client.put("", value: "sample_value") }
            #expect(error?.code == .emptyKey)
            #expect(error?.message == "etcdserver: key is not provided")
        }
    }

    @Test("ExampleKV_get")
    func get() async throws {
        try await withEtcd { _, client in
            try await client.put("foo", value: "bar")
            let response = try await client.get("foo")
            #expect(response.kvs.map(\.description) == ["foo : bar"])
        }
    }

    @Test("ExampleKV_getWithRev prints foo : bar1")
    func getWithRevision() async throws {
        try await withEtcd { _, client in
            let first = try await client.put("foo", value: "bar1")
            try await client.put("foo", value: "bar2")
            let response = try await client.get("foo", options: .revision(first.header.revision))
            #expect(response.kvs.map(\.description) == ["foo : bar1"])
        }
    }

    @Test("ExampleKV_getSortedPrefix prints key_2, key_1, key_0")
    func getSortedPrefix() async throws {
        try await withEtcd { _, client in
            for i in 0..<3 { try await client.put("key_\(i)", value: "value") }
            let response = try await client.get("key", options: [.prefix, .sort(by: .key, order: .descending)])
            #expect(response.kvs.map(\.description) == ["key_2 : value", "key_1 : value", "key_0 : value"])
        }
    }

    @Test("ExampleKV_delete prints Deleted all keys: true")
    func delete() async throws {
        try await withEtcd { _, client in
            try await client.put("key1", value: "value1")
            try await client.put("key2", value: "value2")
            let before = try await client.get("key", options: .prefix)
            let response = try await client.delete("key", options: [.prefix, .prevKV])
            #expect("Deleted all keys: \(Int64(before.kvs.count) == response.deleted)" == "Deleted all keys: true")
            #expect(response.prevKVs.map(\.description) == ["key1 : value1", "key2 : value2"])
            let remaining = try await client.get("key", options: .prefix).count
            #expect(remaining == 0)
        }
    }

    @Test("ExampleKV_compact")
    func compact() async throws {
        try await withEtcd { _, client in
            try await client.put("foo", value: "bar")
            let response = try await client.get("foo")
            let revision = response.header.revision
            try await client.compact(revision)
            let error = await etcdErrorCode { _ = try await client.get("foo", options: .revision(revision - 1)) }
            #expect(error?.code == .compacted)
            try await client.put("foo", value: "baz")
            try await client.compact(revision + 1, physical: true)
        }
    }

    @Test("ExampleKV_txn prints key : XYZ")
    func txn() async throws {
        try await withEtcd { _, client in
            try await client.put("key", value: "xyz")
            let response = try await client.txn(
                if: [.value("key") > "abc"],
                then: [.put("key", value: "XYZ")],
                else: [.put("key", value: "ABC")]
            )
            #expect(response.succeeded)
            #expect(try await client.get("key").kvs.map(\.description) == ["key : XYZ"])
        }
    }

    @Test("ExampleKV_do")
    func doOps() async throws {
        try await withEtcd { _, client in
            let ops: [EtcdOp] = [.put("put-key", value: "123"), .get("put-key"), .put("put-key", value: "456")]
            var seen: [String] = []
            for op in ops {
                let response = try await client.do(op)
                if let get = response.get { seen += get.kvs.map(\.description) }
                if let put = response.put { #expect(put.header.revision > 0) }
            }
            #expect(seen == ["put-key : 123"])
            #expect(try await client.get("put-key").kvs.first?.valueString == "456")
        }
    }
}
