// SPDX-License-Identifier: Apache-2.0
import Etcd
import EtcdTesting
import Testing

@Suite("Namespaces and key conditions", .timeLimit(.minutes(2)))
struct NamespaceTests {
    @Test("KV calls live under the prefix; ranges and fromKey stay inside it; keys come back without it")
    func kv() async throws {
        try await withEtcd { _, client in
            let app = client.namespace("app/")
            // Neighbours that sort just before and just after the namespace.
            try await client.put("app", value: "outside")
            try await client.put("app0", value: "outside")
            try await app.put("a", value: "1")
            try await app.put("b", value: "2")
            try await app.put("c/d", value: "3")

            #expect(try await client.get("app/a").kvs.first?.valueString == "1")
            let all = try await app.get("", options: .prefix)
            #expect(all.kvs.map(\.keyString) == ["a", "b", "c/d"])
            #expect(all.count == 3)
            let fromB = try await app.get("b", options: .fromKey)
            #expect(fromB.kvs.map(\.keyString) == ["b", "c/d"])
            let ranged = try await app.get("a", options: .range(end: "c"))
            #expect(ranged.kvs.map(\.keyString) == ["a", "b"])
            let paged = try await app.get("", options: [.prefix, .paged(pageSize: 2)])
            #expect(paged.kvs.map(\.keyString) == ["a", "b", "c/d"])
            let counted = try await app.get("", options: [.fromKey, .countOnly])
            #expect(counted.count == 3)

            let put = try await app.put("a", value: "1b", options: .prevKV)
            #expect(put.prevKV?.keyString == "a")
            let nested = client.namespace("app/").namespace("c/")
            #expect(try await nested.get("d").kvs.map(\.keyString) == ["d"])

            let deleted = try await app.delete("", options: [.prefix, .prevKV])
            #expect(deleted.deleted == 3)
            #expect(Set(deleted.prevKVs.map(\.keyString)) == ["a", "b", "c/d"])
            // The neighbours outside the namespace are untouched.
            let outside = try await client.get("app", options: .prefix)
            #expect(outside.kvs.map(\.keyString) == ["app", "app0"])

            let emptyKey = await etcdErrorCode { try await app.put("", value: "x") }
            #expect(emptyKey?.code == .emptyKey)
        }
    }

    @Test("transactions compare and write inside the namespace, nested ones too")
    func txn() async throws {
        try await withEtcd { _, client in
            let ns = client.namespace("tx/")
            try await client.put("k", value: "outside")
            let created = try await ns.txn(
                if: [.keyMissing("k")],
                then: [.put("k", value: "v1"), .txn(if: [.keyMissing("j")], then: [.put("j", value: "w")])],
                else: []
            )
            #expect(created.succeeded)
            let read = try await ns.txn(
                if: [.value("k") == "v1", .keyExists("j")],
                then: [.get("", options: .prefix)],
                else: []
            )
            #expect(read.succeeded)
            #expect(read.responses.first?.get?.kvs.map(\.keyString) == ["j", "k"])
            #expect(try await client.get("k").kvs.first?.valueString == "outside")
            let viaDo = try await ns.do(.delete("j", options: .prevKV))
            #expect(viaDo.delete?.prevKVs.map(\.keyString) == ["j"])
        }
    }

    @Test("a namespace watch sees only its own keys, without the prefix, prevKV included")
    func watch() async throws {
        try await withEtcd { _, client in
            let ns = client.namespace("w/")
            try await ns.watch("", options: [.prefix, .prevKV]) { responses in
                try await client.put("w", value: "outside")
                try await client.put("x/a", value: "outside")
                try await ns.put("a", value: "1")
                try await ns.put("a", value: "2")
                try await ns.delete("a")
                var events: [String] = []
                for try await response in responses {
                    for event in response.events {
                        events.append(
                            "\(event.type) \(event.kv.keyString) \(event.kv.valueString) prev=\(event.prevKV?.keyString ?? "-")"
                        )
                    }
                    if events.count >= 3 { break }
                }
                #expect(events == ["PUT a 1 prev=-", "PUT a 2 prev=a", "DELETE a  prev=a"])
            }
        }
    }

    @Test("a lease's attached keys are those inside the namespace, without the prefix")
    func leaseKeys() async throws {
        try await withEtcd { _, client in
            let ns = client.namespace("l/")
            let lease = try await client.grant(ttl: 60)
            try await ns.put("a", value: "1", options: .lease(lease.id))
            try await client.put("other", value: "1", options: .lease(lease.id))
            let ttl = try await ns.timeToLive(lease.id, attachedKeys: true)
            #expect(ttl.keyStrings == ["a"])
            #expect(Set(try await client.timeToLive(lease.id, attachedKeys: true).keyStrings) == ["l/a", "other"])
        }
    }

    @Test("Go's clientv3util examples: put only if missing, delete only if present")
    func conditions() async throws {
        try await withEtcd { _, client in
            let first = try await client.txn(
                if: [.keyMissing("purpleidea")], then: [.put("purpleidea", value: "hello world")])
            #expect(first.succeeded)
            let second = try await client.txn(
                if: [.keyMissing("purpleidea")], then: [.put("purpleidea", value: "overwritten")])
            #expect(!second.succeeded)
            #expect(try await client.get("purpleidea").kvs.first?.valueString == "hello world")
            let deleted = try await client.txn(if: [.keyExists("purpleidea")], then: [.delete("purpleidea")])
            #expect(deleted.succeeded)
            let again = try await client.txn(if: [.keyExists("purpleidea")], then: [.delete("purpleidea")])
            #expect(!again.succeeded)
        }
    }
}
