// SPDX-License-Identifier: Apache-2.0
import Configuration
import Etcd
import EtcdConfigProvider
import EtcdTesting
import Testing

@Suite("swift-configuration provider (EtcdConfigProvider)", .timeLimit(.minutes(2)))
struct ConfigProviderTests {
    @Test("keys under the prefix are read as configuration values of the type asked for")
    func read() async throws {
        try await withEtcd { _, client in
            try await client.put("config/app/http/port", value: "8080")
            try await client.put("config/app/feature/enabled", value: "yes")
            try await client.put("config/app/hosts", value: "a.example, b.example")
            try await client.put("config/app/name", value: "billing")
            try await client.put("config/application", value: "outside the prefix")
            let provider = try await EtcdConfigProvider(client: client, prefix: "config/app/")
            let config = ConfigReader(provider: provider)
            #expect(config.int(forKey: "http.port") == 8080)
            #expect(config.bool(forKey: "feature.enabled") == true)
            #expect(config.stringArray(forKey: "hosts") == ["a.example", "b.example"])
            #expect(config.string(forKey: "name") == "billing")
            #expect(config.string(forKey: "missing", default: "fallback") == "fallback")
            #expect(config.bytes(forKey: "name") == Array("billing".utf8))
            // A value that does not convert is an error for that key.
            #expect(throws: (any Error).self) { try config.requiredInt(forKey: "name") }
            #expect(config.string(forKey: "lication") == nil)
            // fetch reads etcd itself, not the copy.
            try await client.put("config/app/http/port", value: "8081")
            #expect(try await config.fetchInt(forKey: "http.port") == 8081)
        }
    }

    @Test("running the provider follows etcd: watchers see each change, and deletion")
    func live() async throws {
        try await withEtcd { _, client in
            try await client.put("config/live/port", value: "8080")
            let provider = try await EtcdConfigProvider(client: client, prefix: "config/live/")
            let config = ConfigReader(provider: provider)
            try await withThrowingTaskGroup { group in
                group.addTask { try await provider.run() }
                try await within(.seconds(10), "the watcher seeing 8080, 9090, then nothing") {
                    try await config.watchInt(forKey: "port") { updates in
                        var iterator = updates.makeAsyncIterator()
                        #expect(try await iterator.next() == 8080)
                        try await client.put("config/live/port", value: "9090")
                        #expect(try await iterator.next() == 9090)
                        try await client.delete("config/live/port")
                        #expect(try await iterator.next() == .some(nil))
                    }
                }
                #expect(config.int(forKey: "port") == nil)
                group.cancelAll()
            }
        }
    }

    @Test(
        "while the watch catches up on more revisions than etcd sends at once, each snapshot is etcd's state at its revision"
    )
    func catchingUp() async throws {
        try await withEtcd { _, client in
            let provider = try await EtcdConfigProvider(client: client, prefix: "config/up/")
            // etcd sends a watch that is behind 1,000 revisions at a time, each response with the
            // current revision in its header.
            var written: Int64 = 0
            for i in 0..<1500 { written = try await client.put("config/up/k\(i % 5)", value: "\(i)").header.revision }
            let last = written
            try await withThrowingTaskGroup { group in
                group.addTask { try await provider.run() }
                try await within(.seconds(30), "the provider catching up") {
                    try await provider.watchSnapshot { snapshots in
                        for await snapshot in snapshots {
                            let revision = try #require(snapshot as? EtcdConfigSnapshot).revision
                            let etcd = try await client.get("config/up/", options: [.prefix, .revision(revision)])
                            for kv in etcd.kvs {
                                let key = String(kv.keyString.dropFirst("config/up/".count))
                                let value = try snapshot.value(forKey: [key], type: .string).value?.content
                                #expect(value == .string(kv.valueString), "\(key) at revision \(revision)")
                            }
                            if revision >= last { break }
                        }
                    }
                }
                group.cancelAll()
            }
        }
    }

    @Test("a provider whose start revision was compacted reads the prefix again and carries on")
    func compacted() async throws {
        try await withEtcd { _, client in
            try await client.put("config/c/a", value: "1")
            let provider = try await EtcdConfigProvider(client: client, prefix: "config/c/")
            // Changes made, then compacted away, before the provider starts watching.
            try await client.put("config/c/a", value: "2")
            let last = try await client.put("config/c/b", value: "3")
            try await client.compact(last.header.revision)
            try await withThrowingTaskGroup { group in
                group.addTask { try await provider.run() }
                let config = ConfigReader(provider: provider)
                try await within(.seconds(10), "the provider reading again after compaction, then the next change") {
                    try await provider.watchSnapshot { snapshots in
                        for await snapshot in snapshots {
                            if (snapshot as? EtcdConfigSnapshot)?.revision ?? 0 >= last.header.revision { break }
                        }
                        #expect(config.int(forKey: "a") == 2)
                        #expect(config.int(forKey: "b") == 3)
                        // And it watches again from there.
                        try await client.put("config/c/b", value: "4")
                        for await snapshot in snapshots
                        where (try? snapshot.value(forKey: ["b"], type: .int).value) != nil {
                            if try snapshot.value(forKey: ["b"], type: .int).value?.content == .int(4) { break }
                        }
                        #expect(config.int(forKey: "b") == 4)
                    }
                }
                group.cancelAll()
            }
        }
    }
}
