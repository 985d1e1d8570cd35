// SPDX-License-Identifier: Apache-2.0
import Etcd
import EtcdTesting
import Synchronization
import Testing

/// Reads responses until `count` events arrived (or the sequence ended), within the caller's time limit.
func collectEvents(_ responses: EtcdWatchResponses, count: Int) async throws -> [EtcdWatchEvent] {
    var events: [EtcdWatchEvent] = []
    for try await response in responses {
        events += response.events
        if events.count >= count { break }
    }
    return events
}

@Suite("Watch", .timeLimit(.minutes(2)))
struct WatchTests {
    @Test("ExampleWatcher_watch: a put on the watched key arrives as a PUT event")
    func watch() async throws {
        try await withEtcd { _, client in
            try await client.watch("foo") { responses in
                try await client.put("foo", value: "bar")
                let events = try await collectEvents(responses, count: 1)
                #expect(events.map { "\($0.type) \($0.kv.keyString) : \($0.kv.valueString)" } == ["PUT foo : bar"])
                #expect(events[0].isCreate && !events[0].isModify)
            }
        }
    }

    @Test("ExampleWatcher_watchWithPrefix and fromKey")
    func prefixAndFromKey() async throws {
        try await withEtcd { _, client in
            try await client.watch("foo", options: .prefix) { responses in
                try await client.put("bar1", value: "x")
                try await client.put("foo1", value: "bar")
                #expect(try await collectEvents(responses, count: 1).map(\.kv.keyString) == ["foo1"])
            }
            try await client.watch("m", options: .fromKey) { responses in
                try await client.put("a", value: "x")
                try await client.put("z", value: "y")
                #expect(try await collectEvents(responses, count: 1).map(\.kv.keyString) == ["z"])
            }
        }
    }

    @Test("ExampleWatcher_watchWithRange: only keys in [foo1, foo4)")
    func range() async throws {
        try await withEtcd { _, client in
            try await client.watch("foo1", options: .range(end: "foo4")) { responses in
                try await client.put("foo1", value: "bar1")
                try await client.put("foo5", value: "bar5")
                try await client.put("foo2", value: "bar2")
                try await client.put("foo3", value: "bar3")
                let events = try await collectEvents(responses, count: 3)
                #expect(events.map(\.kv.keyString) == ["foo1", "foo2", "foo3"])
            }
        }
    }

    @Test("filters, prevKV, deletes and modify events")
    func filtersAndPrevKV() async throws {
        try await withEtcd { _, client in
            try await client.watch("k", options: [.prefix, .filterPut, .prevKV]) { deletes in
                try await client.watch("k", options: [.prefix, .filterDelete]) { puts in
                    try await client.put("k1", value: "v1")
                    try await client.put("k1", value: "v2")
                    try await client.delete("k1")
                    let putEvents = try await collectEvents(puts, count: 2)
                    #expect(putEvents.map(\.type) == [.put, .put])
                    #expect(putEvents.map(\.isModify) == [false, true])
                    let deleteEvents = try await collectEvents(deletes, count: 1)
                    #expect(deleteEvents.map(\.type) == [.delete])
                    #expect(deleteEvents.first?.prevKV?.valueString == "v2")
                }
            }
        }
    }

    @Test("createdNotify delivers the creation notice first; a start revision replays history")
    func createdNotifyAndRevision() async throws {
        try await withEtcd { _, client in
            let first = try await client.put("h", value: "1").header.revision
            try await client.put("h", value: "2")
            try await client.watch("h", options: [.createdNotify, .revision(first)]) { responses in
                var iterator = responses.makeAsyncIterator()
                let created = try #require(try await iterator.next())
                #expect(created.isCreated && created.events.isEmpty)
                var values: [String] = []
                while values.count < 2, let response = try await iterator.next() {
                    values += response.events.map(\.kv.valueString)
                }
                #expect(values == ["1", "2"])
            }
        }
    }

    @Test("ExampleWatcher_watchWithProgressNotify: periodic progress while nothing changes")
    func progressNotify() async throws {
        try await withEtcd(arguments: ["--experimental-watch-progress-notify-interval", "200ms"]) { _, client in
            let revision = try await client.put("other", value: "x").header.revision
            try await client.watch("quiet", options: .progressNotify) { responses in
                for try await response in responses where response.isProgressNotify {
                    #expect(response.events.isEmpty)
                    #expect(response.header.revision >= revision)
                    break
                }
            }
        }
    }

    @Test("requestProgress: every watch gets a progress notification at the current revision")
    func progressOnDemand() async throws {
        try await withEtcd { _, client in
            let revision = try await client.put("other", value: "x").header.revision
            try await client.watch("a") { a in
                try await client.watch("b") { b in
                    try await client.requestProgress()
                    for responses in [a, b] {
                        for try await response in responses {
                            #expect(response.isProgressNotify)
                            #expect(response.header.revision == revision)
                            break
                        }
                    }
                }
            }
        }
    }

    @Test("a watch from a compacted revision ends with compacted and the compact revision")
    func compacted() async throws {
        try await withEtcd { _, client in
            for i in 0..<5 { try await client.put("c", value: "\(i)") }
            let current = try await client.get("c").header.revision
            try await client.compact(current)
            let error = await etcdErrorCode {
                try await client.watch("c", options: .revision(2)) { responses in
                    for try await _ in responses {}
                }
            }
            #expect(error?.code == .compacted)
            #expect(error?.compactRevision == current)
        }
    }

    @Test("bad watch input is refused before anything is sent")
    func badInput() async throws {
        try await withEtcd { _, client in
            #expect(await etcdErrorCode { try await client.watch("") { _ in } }?.code == .emptyKey)
            #expect(
                await etcdErrorCode { try await client.watch("k", options: [.prefix, .fromKey]) { _ in } }?.code
                    == .invalidArgument)
            #expect(
                await etcdErrorCode { try await client.watch("k", options: .revision(-1)) { _ in } }?.code
                    == .invalidArgument)
        }
    }

    @Test("a large revision split into fragments arrives as one response")
    func fragments() async throws {
        try await withEtcd(arguments: ["--max-request-bytes", "4096"]) { _, client in
            let value = [UInt8](repeating: 0x66, count: 1000)
            for i in 0..<40 { try await client.put("frag/\(i)", value: value) }
            try await client.watch("frag/", options: [.prefix, .prevKV, .fragment]) { responses in
                let deleted = try await client.delete("frag/", options: .prefix)
                #expect(deleted.deleted == 40)
                for try await response in responses {
                    #expect(response.events.count == 40)
                    #expect(Set(response.events.map(\.kv.modRevision)) == [deleted.header.revision])
                    #expect(response.events.allSatisfy { $0.prevKV?.value.count == 1000 })
                    break
                }
            }
        }
    }

    @Test("watch responses larger than an HTTP/2 frame, and more in all than the stream's window, arrive whole")
    func largeResponses() async throws {
        try await withEtcd(configure: { $0.maxCallReceiveMessageSize = 64 << 20 }) { _, client in
            // 12 values of 1 MiB with prevKV: each response spans many 16 KiB frames, and the stream
            // carries about 24 MiB, three times its 8 MiB window; small puts in between share frames.
            let large = [UInt8](repeating: 0x6c, count: 1 << 20)
            for index in 0..<12 { try await client.put("big/\(index)", value: large) }
            try await client.watch("big/", options: [.prefix, .prevKV]) { responses in
                for index in 0..<12 {
                    try await client.put("big/\(index)", value: large + [UInt8(index)])
                    try await client.put("big/small\(index)", value: "s")
                }
                let events = try await within(.seconds(30), "24 events") {
                    try await collectEvents(responses, count: 24)
                }
                #expect(events.count == 24)
                let bigOnes = events.filter { !$0.kv.keyString.contains("small") }
                #expect(bigOnes.count == 12)
                for (index, event) in bigOnes.enumerated() {
                    #expect(event.kv.keyString == "big/\(index)")
                    #expect(event.kv.value.count == (1 << 20) + 1 && event.kv.value.last == UInt8(index))
                    #expect(event.prevKV?.value.count == 1 << 20)
                }
            }
        }
    }

    @Test(
        "a watch response over the receive limit ends that watch with responseTooLarge; the stream's other watches lose nothing"
    )
    func responseOverLimit() async throws {
        try await withEtcd(configure: { $0.maxCallReceiveMessageSize = 256 << 10 }) { cluster, client in
            let member = cluster.members[0]
            func watchers() throws -> Double { try member.metrics()["etcd_debugging_mvcc_watcher_total"] ?? -1 }
            try await client.watch("small") { small in
                let before = try watchers()
                let large = [UInt8](repeating: 0x62, count: 512 << 10)
                let seen = Mutex<[String]>([])
                let error = await etcdErrorCode {
                    try await client.watch("big", options: .prefix) { responses in
                        try await client.put("small", value: "1")
                        try await client.put("big/a", value: "fits")
                        try await client.put("big/b", value: large)
                        try await client.put("small", value: "2")
                        do {
                            try await within(.seconds(20), "the watch over the limit ends") {
                                for try await response in responses {
                                    seen.withLock { $0 += response.events.map(\.kv.keyString) }
                                }
                                Issue.record("the watch ended without an error")
                            }
                        } catch {
                            // While this closure still runs, the server has dropped the watch.
                            let deadline = ContinuousClock.now + .seconds(10)
                            while try watchers() != before, ContinuousClock.now < deadline {
                                try await Task.sleep(for: .milliseconds(20))
                            }
                            #expect(try watchers() == before)
                            throw error
                        }
                    }
                }
                #expect(error?.code == .responseTooLarge)
                #expect(error?.message.contains("maxCallReceiveMessageSize") == true)
                #expect(error?.message.contains(".fragment") == true)
                // What came before the response over the limit was delivered.
                #expect(seen.withLock { $0 } == ["big/a"])
                // The other watch got every event once, in order, and still runs.
                try await client.put("small", value: "3")
                let events = try await within(.seconds(20), "the small watch's events") {
                    try await collectEvents(small, count: 3)
                }
                #expect(events.map(\.kv.valueString) == ["1", "2", "3"])
            }
        }
    }

    @Test(
        "a watch the server refuses as over its gRPC limit ends with requestTooLarge; the stream's other watches lose nothing"
    )
    func createOverServerLimit() async throws {
        // The server takes requests up to --max-request-bytes plus 512 KiB: 528,384 bytes here.
        try await withEtcd(arguments: ["--max-request-bytes", "4096"]) { _, client in
            try await client.watch("small") { small in
                try await client.put("small", value: "1")
                let error = await etcdErrorCode {
                    try await within(.seconds(20), "the refused watch ends") {
                        try await client.watch(String(repeating: "k", count: 600 << 10)) { responses in
                            for try await _ in responses {}
                            Issue.record("the watch ended without an error")
                        }
                    }
                }
                #expect(error?.code == .requestTooLarge)
                #expect(error?.message.contains("limit of 528384 bytes") == true, "\(String(describing: error))")
                try await client.put("small", value: "2")
                let events = try await within(.seconds(20), "the small watch's events") {
                    try await collectEvents(small, count: 2)
                }
                #expect(events.map(\.kv.valueString) == ["1", "2"])
            }
        }
    }

    @Test("leaving the closure cancels the watch on the server")
    func cancelOnServer() async throws {
        try await withEtcd { cluster, client in
            let member = cluster.members[0]
            func watchers() throws -> Double { try member.metrics()["etcd_debugging_mvcc_watcher_total"] ?? -1 }
            let before = try watchers()
            try await client.watch("x") { _ in
                try await client.watch("y") { _ in
                    let during = try watchers()
                    #expect(during == before + 2)
                }
            }
            // The cancel requests are asynchronous: wait (bounded) for the server to drop both.
            let deadline = ContinuousClock.now + .seconds(10)
            while try watchers() != before, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            let after = try watchers()
            #expect(after == before)
        }
    }

    @Test("1,000 concurrent watches share one stream and all receive their events")
    func manyWatches() async throws {
        try await withEtcd { cluster, client in
            let count = 1000
            let ready = SharedCounter()
            try await withThrowingTaskGroup(of: String.self) { group in
                for i in 0..<count {
                    group.addTask {
                        try await client.watch("many/\(i)") { responses in
                            ready.increment()
                            for try await response in responses {
                                if let event = response.events.first { return event.kv.valueString }
                            }
                            return ""
                        }
                    }
                }
                // Each watch counts itself once created.
                try await within(.seconds(30), "all \(count) watches to be created") {
                    while ready.count < count { try await Task.sleep(for: .milliseconds(10)) }
                }
                let metrics = try cluster.members[0].metrics()
                #expect(metrics["etcd_debugging_mvcc_watch_stream_total"] == 1)
                #expect((metrics["etcd_debugging_mvcc_watcher_total"] ?? 0) >= Double(count))
                for i in 0..<count { try await client.put("many/\(i)", value: "v\(i)") }
                var values = Set<String>()
                for try await value in group { values.insert(value) }
                #expect(values == Set((0..<count).map { "v\($0)" }))
            }
        }
    }

    @Test("a slow consumer loses nothing and does not hold up other watches")
    func slowConsumer() async throws {
        try await withEtcd(configure: { $0.watchBufferSize = 4 }) { cluster, client in
            try await client.watch("slow/", options: .prefix) { slow in
                try await client.watch("fast") { fast in
                    var revisions: [Int64] = []
                    for i in 0..<100 {
                        revisions.append(try await client.put("slow/\(i % 7)", value: "\(i)").header.revision)
                    }
                    // Bounded: the slow watch is suspended on the server; only the fast one remains there.
                    let deadline = ContinuousClock.now + .seconds(10)
                    var watchers = try cluster.members[0].metrics()["etcd_debugging_mvcc_watcher_total"]
                    while watchers != 1, ContinuousClock.now < deadline {
                        try await Task.sleep(for: .milliseconds(20))
                        watchers = try cluster.members[0].metrics()["etcd_debugging_mvcc_watcher_total"]
                    }
                    #expect(watchers == 1)
                    // The slow watch's buffer is long full; the fast one still gets its event at once.
                    try await client.put("fast", value: "now")
                    #expect(try await collectEvents(fast, count: 1).map(\.kv.valueString) == ["now"])
                    let seen = try await collectEvents(slow, count: 100).map(\.kv.modRevision)
                    #expect(seen == revisions)
                }
            }
        }
    }

    @Test(
        "a watch stream whose task falls behind holds its window: the server waits, other calls go on, and every event arrives once it catches up"
    )
    func streamTaskBehind() async throws {
        try await withEtcd { cluster, client in
            let value = String(repeating: "w", count: 64 << 10)
            // The whole exchange is bounded: the reading after the hold waits on the server too.
            try await within(.seconds(90), "the held-back watch to deliver every event") {
                try await client.watch("big", options: .createdNotify) { responses in
                    var iterator = responses.makeAsyncIterator()
                    #expect(try await iterator.next()?.isCreated == true)
                    // The stream's task handles nothing more, as when it gets no CPU; the puts go on.
                    let hold = OneTimeEvent()
                    client.watchStreamHold.withLock { $0 = hold }
                    defer { hold.signal() }
                    var revisions: [Int64] = []
                    for _ in 0..<600 {
                        revisions.append(try await client.put("big", value: value).header.revision)
                    }
                    // 37.5 MiB were written. The client takes 4 MiB behind its task plus one window (8 MiB),
                    // then returns no more window: the server's sends block, and etcd counts the watcher
                    // as slow (its channel of 128 responses fills). Bounded wait for the server's view.
                    let deadline = ContinuousClock.now + .seconds(20)
                    func slowWatchers() throws -> Double? {
                        try cluster.members[0].metrics()["etcd_debugging_mvcc_slow_watcher_total"]
                    }
                    var slow = try slowWatchers()
                    while slow != 1, ContinuousClock.now < deadline {
                        try await Task.sleep(for: .milliseconds(20))
                        slow = try slowWatchers()
                    }
                    #expect(slow == 1, "the server was never held back")
                    hold.signal()
                    var seen: [Int64] = []
                    while seen.count < revisions.count, let response = try await iterator.next() {
                        for event in response.events {
                            #expect(event.kv.value.count == value.utf8.count)
                            seen.append(event.kv.modRevision)
                        }
                    }
                    #expect(seen == revisions)
                }
            }
            client.watchStreamHold.withLock { $0 = nil }
        }
    }

    @Test("a watch on a client shut down before it ran ends at once; a watch after shutdown is refused")
    func shutdownBeforeRun() async throws {
        var configuration = EtcdClient.Configuration(endpoints: ["127.0.0.1:1"])
        configuration.dialTimeout = .milliseconds(200)
        let client = try EtcdClient(configuration: configuration)
        try await client.watch("k") { responses in
            client.shutdown()
            for try await _ in responses {}
        }
        let error = await etcdErrorCode { try await client.watch("k") { _ in } }
        #expect(error?.code == .unavailable)
    }

    @Test(
        "with no member reachable, a watch's body starts once the dial timeout has passed, or the call deadline if that comes first"
    )
    func creationWaitBounds() async throws {
        var configuration = EtcdClient.Configuration(endpoints: ["127.0.0.1:1"])
        configuration.dialTimeout = .milliseconds(500)
        let client = try EtcdClient(configuration: configuration)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await client.run() }
            defer { client.shutdown() }
            let clock = ContinuousClock()
            let start = clock.now
            let waited = try await within(.seconds(10), "the body after the dial timeout") {
                try await client.watch("k") { _ in clock.now - start }
            }
            #expect(waited >= .milliseconds(500))
            configuration.dialTimeout = .seconds(60)
            let patient = try EtcdClient(configuration: configuration)
            group.addTask { try await patient.run() }
            defer { patient.shutdown() }
            let deadline = clock.now + .milliseconds(300)
            let started = try await within(.seconds(10), "the body at the call deadline") {
                try await withEtcdDeadline(deadline) { try await patient.watch("k") { _ in clock.now } }
            }
            #expect(started >= deadline)
        }
    }

    @Test("shutdown ends every watch's sequence")
    func shutdownEndsWatches() async throws {
        try await withEtcdTestCluster { cluster in
            let client = try EtcdClient(configuration: .init(endpoints: cluster.clientEndpoints))
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await client.run() }
                try await client.watch("k") { responses in
                    client.shutdown()
                    for try await _ in responses {}
                }
                try await group.waitForAll()
            }
        }
    }

    @Test("a watch being opened when shutdown() comes ends with the others, and does not wait for its creation")
    func shutdownWhileOpening() async throws {
        try await withEtcdTestCluster { cluster in
            var configuration = cluster.clientConfiguration()
            // Far beyond the bound below: a watch left waiting for its creation fails it.
            configuration.dialTimeout = .seconds(60)
            // watch() logs this line after its shutdown check and before it joins the stream.
            let watching = try clientShuttingDown(at: "etcd watch opening", configuration)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await watching.run() }
                let responses = try await within(.seconds(10), "the watch to end at shutdown") {
                    try await watching.watch("k") { responses in try await collectEvents(responses, count: 1) }
                }
                #expect(responses.isEmpty)
                try await group.waitForAll()
            }
        }
    }
}
