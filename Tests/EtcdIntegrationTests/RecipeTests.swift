// SPDX-License-Identifier: Apache-2.0
import Etcd
import EtcdConcurrency
import EtcdTesting
import Foundation
import Testing

@Suite("Concurrency: recipes and server-side services", .timeLimit(.minutes(3)))
struct RecipeTests {
    @Test("RWMutex: readers share the lock; a writer waits for them, and later readers wait for the writer")
    func rwMutex() async throws {
        try await withEtcd { _, client in
            try await client.withSession { s1 in
                try await client.withSession { s2 in
                    try await client.withSession { s3 in
                        let reader1 = EtcdRWMutex(session: s1, name: "rw")
                        let reader2 = EtcdRWMutex(session: s2, name: "rw")
                        let writer = EtcdRWMutex(session: s3, name: "rw")
                        try await within(.seconds(5), "two readers at once") {
                            try await reader1.readLock()
                            try await reader2.readLock()
                        }
                        let readersGone = SharedCounter()
                        let writing = Task {
                            try await writer.lock()
                            #expect(readersGone.count == 2, "the writer got the lock while readers held it")
                        }
                        // The writer's key is queued once it exists.
                        try await client.watch("rw/write/", options: .prefix) { responses in
                            if try await client.get("rw/write/", options: .prefix).kvs.isEmpty {
                                _ = try await within(.seconds(5), "the writer to queue") {
                                    try await collectEvents(responses, count: 1)
                                }
                            }
                        }
                        readersGone.increment()
                        try await reader1.readUnlock()
                        readersGone.increment()
                        try await reader2.readUnlock()
                        try await within(.seconds(5), "the writer") { try await writing.value }
                        // A reader arriving while the writer holds the lock waits for it.
                        let writerGone = SharedCounter()
                        let reading = Task {
                            try await reader1.readLock()
                            #expect(writerGone.count == 1, "a reader got the lock while the writer held it")
                        }
                        try await client.watch("rw/read/", options: .prefix) { responses in
                            if try await client.get("rw/read/", options: .prefix).kvs.isEmpty {
                                _ = try await within(.seconds(5), "the reader to queue") {
                                    try await collectEvents(responses, count: 1)
                                }
                            }
                        }
                        writerGone.increment()
                        try await writer.unlock()
                        try await within(.seconds(5), "the late reader") { try await reading.value }
                        try await reader1.readUnlock()
                    }
                }
            }
        }
    }

    @Test("Barrier: wait blocks while it is held and returns once released")
    func barrier() async throws {
        try await withEtcd { _, client in
            let barrier = EtcdBarrier(client: client, key: "barrier")
            try await barrier.wait()  // not held: returns at once
            try await barrier.hold()
            #expect(await etcdErrorCode { try await barrier.hold() }?.code == .keyExists)
            let released = SharedCounter()
            let waiter = Task {
                try await barrier.wait()
                #expect(released.count == 1, "wait returned before the barrier was released")
            }
            released.increment()
            try await barrier.release()
            try await within(.seconds(5), "the waiter") { try await waiter.value }
        }
    }

    @Test("DoubleBarrier: enter returns once all 3 entered, leave once all left; a 4th is refused")
    func doubleBarrier() async throws {
        try await withEtcd { _, client in
            let entered = SharedCounter()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<3 {
                    group.addTask {
                        try await client.withSession { session in
                            let barrier = EtcdDoubleBarrier(session: session, key: "double", count: 3)
                            entered.increment()
                            try await within(.seconds(10), "enter") { try await barrier.enter() }
                            #expect(entered.count == 3)
                            try await within(.seconds(10), "leave") { try await barrier.leave() }
                        }
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await client.get("double/", options: .prefix).kvs.isEmpty)
            try await client.withSession { session in
                // Three participants are in (their keys exist): a fourth is one too many.
                for index in 0..<3 { try await client.put("full/waiters/\(index)", value: "") }
                let barrier = EtcdDoubleBarrier(session: session, key: "full", count: 3)
                #expect(await etcdErrorCode { try await barrier.enter() }?.code == .tooManyClients)
            }
        }
    }

    @Test("Queue: FIFO, and two consumers dequeue every item exactly once")
    func queue() async throws {
        try await withEtcd { _, client in
            let queue = EtcdQueue(client: client, prefix: "jobs")
            for item in ["a", "b", "c"] { try await queue.enqueue(item) }
            #expect(try await queue.dequeue() == "a")
            #expect(try await queue.dequeue() == "b")
            #expect(try await queue.dequeue() == "c")
            let results = Shared<[String]>([])
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<2 {
                    group.addTask {
                        try await within(.seconds(20), "10 items dequeued") {
                            for _ in 0..<10 {
                                let item = try await queue.dequeue()
                                results.mutate { $0.append(item) }
                            }
                        }
                    }
                }
                for index in 0..<20 { try await queue.enqueue("item-\(index)") }
                try await group.waitForAll()
            }
            #expect(results.value.sorted() == (0..<20).map { "item-\($0)" }.sorted())
            #expect(try await client.get("jobs/", options: .prefix).kvs.isEmpty)
        }
    }

    @Test("PriorityQueue: lowest priority number first, FIFO within a priority")
    func priorityQueue() async throws {
        try await withEtcd { _, client in
            let queue = EtcdPriorityQueue(client: client, key: "pq")
            try await queue.enqueue("low-1", priority: 10)
            try await queue.enqueue("high-1", priority: 1)
            try await queue.enqueue("low-2", priority: 10)
            try await queue.enqueue("high-2", priority: 1)
            var order: [String] = []
            for _ in 0..<4 { order.append(try await queue.dequeue()) }
            #expect(order == ["high-1", "high-2", "low-1", "low-2"])
            let waiting = Task { try await queue.dequeue() }
            try await queue.enqueue("late", priority: 5)
            #expect(try await within(.seconds(5), "a dequeue that waited") { try await waiting.value } == "late")
        }
    }

    @Test("server-side Lock service: a second locker waits for unlock; it excludes EtcdMutex on the same name")
    func lockService() async throws {
        try await withEtcd { _, client in
            let service = EtcdLockService(client: client)
            try await client.withLease(ttl: 30) { first in
                try await client.withLease(ttl: 30) { second in
                    let held = try await service.lock("svc", lease: first.id)
                    #expect(held.keyString == "svc/" + String(first.id, radix: 16))
                    let unlocked = SharedCounter()
                    let waiting = Task {
                        let lock = try await service.lock("svc", lease: second.id)
                        #expect(unlocked.count == 1, "the second lock was granted while the first was held")
                        return lock
                    }
                    // An EtcdMutex on the same name is excluded too.
                    try await client.withSession { session in
                        let mutex = EtcdMutex(session: session, name: "svc")
                        #expect(await etcdErrorCode { try await mutex.tryLock() }?.code == .locked)
                    }
                    unlocked.increment()
                    try await service.unlock(key: held.key)
                    let next = try await within(.seconds(5), "the second lock") { try await waiting.value }
                    try await service.unlock(key: next.key)
                }
            }
            #expect(await etcdErrorCode { _ = try await service.lock("svc", lease: 0x5151) }?.code == .leaseNotFound)
        }
    }

    @Test("server-side Election service: campaign, leader, proclaim, observe, resign")
    func electionService() async throws {
        try await withEtcd { _, client in
            let service = EtcdElectionService(client: client)
            try await client.withLease(ttl: 30) { lease in
                #expect(await etcdErrorCode { _ = try await service.leader("svc-election") }?.code == .electionNoLeader)
                let leader = try await service.campaign("svc-election", lease: lease.id, value: "one")
                #expect(try await service.leader("svc-election").valueString == "one")
                try await service.observe("svc-election") { leaders in
                    var iterator = leaders.makeAsyncIterator()
                    #expect(try await iterator.next()?.valueString == "one")
                    try await service.proclaim(leader, value: "two")
                    #expect(try await iterator.next()?.valueString == "two")
                }
                // The client-side election sees the same leader.
                try await client.withSession { session in
                    let election = EtcdElection(session: session, name: "svc-election")
                    let seen = try await election.leader()
                    #expect(seen.valueString == "two")
                }
                try await service.resign(leader)
                #expect(await etcdErrorCode { _ = try await service.leader("svc-election") }?.code == .electionNoLeader)
            }
        }
    }
}

@Suite("Concurrency: interoperation with Go's etcdctl", .timeLimit(.minutes(2)))
struct EtcdctlInteropTests {
    @Test("while `etcdctl lock` holds a lock our mutex waits, and takes it once etcdctl exits")
    func lockAgainstEtcdctl() async throws {
        try await withEtcd { cluster, client in
            let etcdctl = try cluster.startEtcdctl(["lock", "shared-lock"])
            // etcdctl prints the lock's key once it holds the lock.
            let printed = try await within(.seconds(10), "etcdctl to take the lock") {
                for await line in etcdctl.lines where line.hasPrefix("shared-lock/") { return line }
                return ""
            }
            #expect(printed.hasPrefix("shared-lock/"))
            try await client.withSession { session in
                let mutex = EtcdMutex(session: session, name: "shared-lock")
                #expect(await etcdErrorCode { try await mutex.tryLock() }?.code == .locked)
                let released = SharedCounter()
                let locking = Task {
                    try await mutex.lock()
                    #expect(released.count == 1, "our mutex took the lock while etcdctl held it")
                }
                // Our key is queued behind etcdctl's.
                try await client.watch("shared-lock/", options: .prefix) { responses in
                    if try await client.get("shared-lock/", options: .prefix).count < 2 {
                        _ = try await within(.seconds(5), "our key") { try await collectEvents(responses, count: 1) }
                    }
                }
                released.increment()
                etcdctl.send(SIGINT)
                #expect(await etcdctl.waitForExit(timeout: .seconds(10)) == 0)
                try await within(.seconds(10), "our mutex to take the lock") { try await locking.value }
                #expect(try await client.get("shared-lock/", options: .prefix).kvs.map(\.keyString) == [mutex.key])
                try await mutex.unlock()
            }
        }
    }

    @Test("`etcdctl elect` and our Election see the same leader, and etcdctl observes ours")
    func electAgainstEtcdctl() async throws {
        try await withEtcd { cluster, client in
            let goCandidate = try cluster.startEtcdctl(["elect", "shared-election", "go-proposal"])
            // etcdctl prints the leader key and value once elected.
            try await within(.seconds(10), "etcdctl to be elected") {
                for await line in goCandidate.lines where line == "go-proposal" { return }
            }
            try await client.withSession { session in
                let election = EtcdElection(session: session, name: "shared-election")
                #expect(try await election.leader().valueString == "go-proposal")
                let campaign = Task { try await election.campaign("swift-proposal") }
                goCandidate.send(SIGINT)  // etcdctl resigns and exits
                #expect(await goCandidate.waitForExit(timeout: .seconds(10)) == 0)
                try await within(.seconds(10), "our campaign") { try await campaign.value }
                let listener = try cluster.startEtcdctl(["elect", "--listen", "shared-election"])
                try await within(.seconds(10), "etcdctl to observe our leader") {
                    for await line in listener.lines where line == "swift-proposal" { return }
                }
                listener.send(SIGINT)
                _ = await listener.waitForExit(timeout: .seconds(10))
                try await election.resign()
            }
        }
    }
}
