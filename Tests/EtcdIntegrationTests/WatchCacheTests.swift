// SPDX-License-Identifier: Apache-2.0
import Etcd
import EtcdSync
import EtcdTesting
import Testing

@Suite("Watch-backed cache (EtcdSync)", .timeLimit(.minutes(2)))
struct WatchCacheTests {
    @Test("reads answer from the copy at a known revision; linearizable reads see every acknowledged write")
    func reads() async throws {
        try await withEtcd { _, client in
            try await client.put("c/a", value: "1")
            try await client.put("c/b", value: "2")
            try await client.put("d", value: "outside")
            let cache = try await EtcdWatchCache(client: client, prefix: "c/")
            let initial = try await cache.get("c/", prefix: true)
            #expect(initial.kvs.map(\.keyString) == ["c/a", "c/b"])
            #expect(initial.revision == 4)
            try await withThrowingTaskGroup { group in
                group.addTask { try await cache.run() }
                for i in 0..<20 {
                    let put = try await client.put("c/k\(i)", value: "\(i)")
                    let read = try await withEtcdTimeout(.seconds(10)) {
                        try await cache.get("c/k\(i)", linearizable: true)
                    }
                    #expect(read.kvs.first?.valueString == "\(i)")
                    #expect(read.revision >= put.header.revision)
                }
                try await client.delete("c/a")
                let afterDelete = try await cache.get("c/a", linearizable: true)
                #expect(afterDelete.kvs.isEmpty)

                // Writes elsewhere move etcd's revision but send the cache no events: the cache
                // checks that nothing under its prefix changed and moves forward.
                var last: Int64 = 0
                for i in 0..<5 { last = try await client.put("elsewhere/\(i)", value: "x").header.revision }
                let quiet = try await cache.get("c/b", linearizable: true)
                #expect(quiet.revision >= last)
                #expect(quiet.kvs.first?.valueString == "2")
                group.cancelAll()
            }
            let outside = await etcdErrorCode { _ = try await cache.get("d") }
            #expect(outside?.code == .invalidArgument)
            // A wider prefix than the cache's would silently miss keys: refused too.
            let wider = await etcdErrorCode { _ = try await cache.get("", prefix: true) }
            #expect(wider?.code == .invalidArgument)
        }
    }

    @Test(
        "linearizable reads racing puts, deletes and range deletes inside the prefix, and writes outside it, are linearizable"
    )
    func linearizable() async throws {
        try await withEtcd { _, client in
            // A missing key is the value "missing", which the keys hold before the workers start.
            let missing = "missing"
            var history = try await initialWrites(client, keys: ["c/k0", "c/k1", "c/k2"], value: missing)
            let cache = try await EtcdWatchCache(client: client, prefix: "c/")
            history += try await withThrowingTaskGroup(of: [EtcdRegisterOperation]?.self) { group in
                group.addTask {
                    try await cache.run()
                    return nil
                }
                for worker in 0..<4 {
                    group.addTask {
                        var random = SeededGenerator(seed: UInt64(worker + 1))
                        var operations: [EtcdRegisterOperation] = []
                        func read(_ key: String) async throws {
                            let call = ContinuousClock.now
                            let read = try await withEtcdTimeout(.seconds(10)) {
                                try await cache.get(key, linearizable: true)
                            }
                            let value = read.kvs.first?.valueString ?? missing
                            operations.append(.init(key: key, kind: .read(value), call: call, return: .now))
                        }
                        for step in 0..<50 {
                            let key = "c/k\(random.next() % 3)"
                            switch random.next() % 6 {
                            case 0:  // moves etcd's revision only
                                try await client.put("elsewhere", value: "\(step)")
                            case 1:  // a delete of one key or all, then a read
                                let call = ContinuousClock.now
                                let all = random.next() % 3 == 0
                                try await client.delete(all ? "c/" : key, options: all ? .prefix : [])
                                let returned = ContinuousClock.now
                                for deleted in all ? ["c/k0", "c/k1", "c/k2"] : [key] {
                                    operations.append(
                                        .init(key: deleted, kind: .write(missing), call: call, return: returned))
                                }
                                try await read(key)
                            case 2:  // a write, then a read that must see it or a later write
                                let (value, call) = ("\(worker)-\(step)", ContinuousClock.now)
                                try await client.put(key, value: value)
                                operations.append(.init(key: key, kind: .write(value), call: call, return: .now))
                                try await read(key)
                            default:
                                try await read(key)
                            }
                        }
                        return operations
                    }
                }
                var history: [EtcdRegisterOperation] = []
                var finished = 0
                while finished < 4, let operations = try await group.next() {
                    guard let operations else { continue }  // run() ended: the workers go on
                    history += operations
                    finished += 1
                }
                group.cancelAll()
                return history
            }
            #expect(history.count > 150)  // the seeds make it the same every run
            #expect(throws: Never.self) { try EtcdLinearizability.check(history) }
        }
    }

    /// Also a regression check: etcd 3.4.23 and 3.5.1 send progress notifications to a watch that
    /// has not caught up yet, so trusting them here would answer the stale c/a=1.
    @Test("a cache whose watch start was compacted lists the prefix again and keeps following")
    func compacted() async throws {
        try await withEtcd { _, client in
            try await client.put("c/a", value: "1")
            let cache = try await EtcdWatchCache(client: client, prefix: "c/")
            try await client.put("c/a", value: "2")
            try await client.delete("c/a")
            let last = try await client.put("c/b", value: "3")
            try await client.compact(last.header.revision)
            try await withThrowingTaskGroup { group in
                group.addTask { try await cache.run() }
                let read = try await cache.get("c/", prefix: true, linearizable: true)
                #expect(read.kvs.map { "\($0.keyString)=\($0.valueString)" } == ["c/b=3"])
                try await client.put("c/b", value: "4")
                #expect(try await cache.get("c/b", linearizable: true).kvs.first?.valueString == "4")
                group.cancelAll()
            }
        }
    }

    @Test("without run(), a linearizable read fails with deadlineExceeded instead of waiting forever")
    func notRunning() async throws {
        // The dial timeout bounds the wait; it also bounds the client's first call to the fresh member.
        try await withEtcd(configure: { $0.dialTimeout = .seconds(3) }) { _, client in
            let cache = try await EtcdWatchCache(client: client, prefix: "c/")
            try await client.put("c/x", value: "1")
            let error = await etcdErrorCode { _ = try await cache.get("c/x", linearizable: true) }
            #expect(error?.code == .deadlineExceeded)
            #expect(error?.message.contains("run()") == true)
        }
    }
}
