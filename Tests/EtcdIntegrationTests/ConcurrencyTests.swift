// SPDX-License-Identifier: Apache-2.0
import Etcd
import EtcdConcurrency
import EtcdTesting
import Synchronization
import Testing

@Suite("Concurrency: Session and Mutex", .timeLimit(.minutes(3)))
struct MutexTests {
    @Test("10 tasks x 50 critical sections on one mutex: the shared counter in etcd ends exact, none overlap")
    func mutualExclusion() async throws {
        try await withEtcd { _, client in
            try await client.put("counter", value: "0")
            let inside = SharedCounter()
            let overlaps = SharedCounter()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<10 {
                    group.addTask {
                        try await client.withSession(ttl: 10) { session in
                            let mutex = EtcdMutex(session: session, name: "counter-lock")
                            for _ in 0..<50 {
                                try await mutex.lock()
                                inside.increment()
                                if inside.count > 1 { overlaps.increment() }
                                let value = Int(try await client.get("counter").kvs[0].valueString)!
                                try await client.put("counter", value: String(value + 1))
                                inside.decrement()
                                try await mutex.unlock()
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await client.get("counter").kvs[0].valueString == "500")
            #expect(overlaps.count == 0)
            // Every session was closed: no lock keys are left.
            #expect(try await client.get("counter-lock/", options: .prefix).kvs.isEmpty)
        }
    }

    @Test("tryLock fails with locked while another session holds the lock, and leaves no key behind")
    func tryLock() async throws {
        try await withEtcd { _, client in
            try await client.withSession { first in
                try await client.withSession { second in
                    let held = EtcdMutex(session: first, name: "try")
                    try await held.lock()
                    let other = EtcdMutex(session: second, name: "try")
                    let error = await etcdErrorCode { try await other.tryLock() }
                    #expect(error?.code == .locked)
                    #expect(try await client.get("try/", options: .prefix).kvs.map(\.keyString) == [held.key])
                    try await held.unlock()
                    try await other.tryLock()
                    #expect(other.fencingToken != nil)
                    try await other.unlock()
                }
            }
        }
    }

    @Test("a lock held by a client that dies is released to the next waiter within TTL + 1 s")
    func holderDies() async throws {
        try await withEtcd { cluster, client in
            let ttl: Int64 = 3
            // The waiter's session exists first, so only the hand-over is timed.
            try await client.withSession { session in
                // The holder takes the lock and its client shuts down without closing the session, as a
                // crashed process would: nothing renews the lease any more.
                let holderKey = try await withEtcdClient(cluster.clientConfiguration()) { holder in
                    let session = try await EtcdSession(client: holder, ttl: ttl)
                    let mutex = EtcdMutex(session: session, name: "job")
                    try await mutex.lock()
                    return mutex.key
                }
                let diedAt = ContinuousClock.now
                let mutex = EtcdMutex(session: session, name: "job")
                try await within(.seconds(ttl) + .seconds(1), "the lock to pass to the waiter") {
                    try await mutex.lock()
                }
                #expect(ContinuousClock.now - diedAt <= .seconds(ttl) + .seconds(1))
                #expect(try await client.get(holderKey).kvs.isEmpty)
                try await mutex.unlock()
            }
        }
    }

    @Test("withLock cancels its body when the session is lost, and the next holder has a higher fencing token")
    func withLockCancelledOnLoss() async throws {
        try await withEtcd { _, client in
            let session = try await EtcdSession(client: client, ttl: 3)
            let mutex = EtcdMutex(session: session, name: "fenced")
            let (started, startedContinuation) = AsyncStream.makeStream(of: Int64.self)
            let bodyCancelled = SharedCounter()
            let work = Task {
                try await mutex.withLock { token in
                    startedContinuation.yield(token)
                    do {
                        try await Task.sleep(for: .seconds(600))
                    } catch {
                        bodyCancelled.increment()
                        throw error
                    }
                }
            }
            var iterator = started.makeAsyncIterator()
            let token = try #require(await iterator.next())
            #expect(token > 0)
            // Writes guarded by ownership go through while the lock is held.
            let guarded = try await client.txn(if: [mutex.isOwner()], then: [.put("fenced-data", value: "1")])
            #expect(guarded.succeeded)
            let staleOwnership = mutex.isOwner()
            session.orphan()  // the process stops renewing, as if partitioned
            let error = try await within(.seconds(10), "withLock to end") {
                await etcdErrorCode { _ = try await work.value }
            }
            #expect(error?.code == .sessionExpired)
            #expect(bodyCancelled.count == 1)
            try await client.withSession { next in
                let nextMutex = EtcdMutex(session: next, name: "fenced")
                try await within(.seconds(10), "the next holder") { try await nextMutex.lock() }
                #expect(try #require(nextMutex.fencingToken) > token)
                // The old holder's ownership check fails now.
                let late = try await client.txn(if: [staleOwnership], then: [.put("fenced-data", value: "2")])
                #expect(!late.succeeded)
                try await nextMutex.unlock()
            }
        }
    }

    @Test("a session is closed after withSession, also when its body throws; its keys are gone")
    func sessionScope() async throws {
        struct Failure: Error {}
        try await withEtcd { _, client in
            let id = try await client.withSession(ttl: 30) { session in
                try await client.put("owned", value: "x", options: .lease(session.leaseID))
                #expect(!session.isLost)
                return session.leaseID
            }
            #expect(try await client.get("owned").kvs.isEmpty)
            #expect(await etcdErrorCode { _ = try await client.timeToLive(id) }?.code == .leaseNotFound)
            await #expect(throws: Failure.self) {
                try await client.withSession(ttl: 30) { session in
                    try await client.put("owned", value: "y", options: .lease(session.leaseID))
                    throw Failure()
                }
            }
            #expect(try await client.get("owned").kvs.isEmpty)
            #expect(await etcdErrorCode { _ = try await EtcdSession(client: client, ttl: 0) }?.code == .invalidArgument)
        }
    }

    @Test(
        "TestV3LeaseFailureOverlap: sessions opened and closed before, during and after a 2-member cluster loses quorum for a second all succeed, each within 15 s"
    )
    func sessionsAcrossQuorumLoss() async throws {
        try await withEtcdTestCluster(.init(members: 2)) { cluster in
            try await withEtcdClient(.init(endpoints: [cluster.members[0].clientEndpoint])) { client in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    // Five sessions at a time, each granted, kept alive and revoked; those started
                    // without quorum wait for it (Go's test allows only a lost-connection timeout).
                    let wave = { (group: inout ThrowingTaskGroup<Void, any Error>) in
                        for _ in 0..<5 {
                            group.addTask {
                                try await within(.seconds(15), "a session to open and close") {
                                    try await client.withSession { _ in }
                                }
                            }
                        }
                    }
                    wave(&group)
                    try await cluster.members[1].stop()
                    wave(&group)
                    try await Task.sleep(for: .seconds(1))  // the outage itself, as in Go's test
                    wave(&group)
                    try cluster.members[1].start()
                    wave(&group)
                    try await group.waitForAll()
                }
            }
        }
    }
}

@Suite("Concurrency: Election", .timeLimit(.minutes(3)))
struct ElectionTests {
    @Test("campaign, proclaim, resign: the next candidate leads, and observe sees every leader in order")
    func electionLifecycle() async throws {
        try await withEtcd { _, client in
            try await client.withSession { first in
                try await client.withSession { second in
                    let a = EtcdElection(session: first, name: "leader")
                    let b = EtcdElection(session: second, name: "leader")
                    #expect(await etcdErrorCode { _ = try await a.leader() }?.code == .electionNoLeader)
                    let observed = try await b.observe { leaders in
                        var iterator = leaders.makeAsyncIterator()
                        try await a.campaign("a")
                        #expect(try await iterator.next()?.valueString == "a")
                        let bCampaign = Task { try await b.campaign("b") }
                        try await a.proclaim("a2")
                        #expect(try await iterator.next()?.valueString == "a2")
                        #expect(try await a.leader().valueString == "a2")
                        try await a.resign()
                        try await within(.seconds(10), "b to be elected") { try await bCampaign.value }
                        let next = try await iterator.next()
                        #expect(try await b.leader().valueString == "b")
                        #expect(await etcdErrorCode { try await a.proclaim("late") }?.code == .electionNotLeader)
                        return next?.valueString
                    }
                    #expect(observed == "b")
                    try await b.resign()
                }
            }
        }
    }

    @Test("cancelling the task observing an election throws CancellationError from its sequence")
    func observeCancelled() async throws {
        try await withEtcd { _, client in
            try await client.withSession { session in
                let election = EtcdElection(session: session, name: "unled")
                let (reading, started) = AsyncStream.makeStream(of: Void.self)
                let observer = Task {
                    try await election.observe { leaders in
                        started.yield()
                        for try await _ in leaders {}  // nobody campaigns: no leader arrives
                    }
                }
                try await within(.seconds(10), "the observer to start reading") {
                    var iterator = reading.makeAsyncIterator()
                    await iterator.next()
                }
                observer.cancel()
                let outcome = try await within(.seconds(10), "the observer to end") {
                    await observer.result
                }
                #expect(throws: CancellationError.self) { try outcome.get() }
            }
        }
    }

    @Test("when the leader's session is lost, the next candidate is elected")
    func leaderFailover() async throws {
        try await withEtcd { _, client in
            let doomed = try await EtcdSession(client: client, ttl: 3)
            let leader = EtcdElection(session: doomed, name: "failover")
            try await leader.campaign("old")
            try await client.withSession { session in
                let candidate = EtcdElection(session: session, name: "failover")
                let campaign = Task { try await candidate.campaign("new") }
                doomed.orphan()
                try await within(.seconds(10), "the candidate to be elected") { try await campaign.value }
                #expect(try await candidate.leader().valueString == "new")
                try await candidate.resign()
            }
        }
    }

    @Test("withLeadership runs its body as leader and resigns afterwards")
    func withLeadership() async throws {
        try await withEtcd { _, client in
            try await client.withSession { session in
                let election = EtcdElection(session: session, name: "scoped")
                let value = try await election.withLeadership("me") {
                    try await client.get("scoped/", options: .prefix).kvs.first?.valueString
                }
                #expect(value == "me")
                #expect(await etcdErrorCode { _ = try await election.leader() }?.code == .electionNoLeader)
            }
        }
    }
}

@Suite("Concurrency: STM", .timeLimit(.minutes(3)))
struct STMTests {
    @Test(
        "bank transfers under contention keep the total",
        arguments: [EtcdSTMIsolation.serializableSnapshot, .serializable, .repeatableReads]
    )
    func bank(level: EtcdSTMIsolation) async throws {
        try await withEtcd { _, client in
            let accounts = (0..<5).map { "accounts/\($0)" }
            for account in accounts { try await client.put(account, value: "100") }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<8 {
                    group.addTask {
                        var generator = SeededGenerator(seed: UInt64(worker + 1))
                        for _ in 0..<15 {
                            let from = accounts[Int.random(in: 0..<5, using: &generator)]
                            let to = accounts[Int.random(in: 0..<5, using: &generator)]
                            let amount = Int.random(in: 1...20, using: &generator)
                            try await client.runSTM(isolationLevel: level) { stm in
                                let fromBalance = Int(try await stm.get(from))!
                                let toBalance = Int(try await stm.get(to))!
                                guard from != to, fromBalance >= amount else { return }
                                stm.put(from, String(fromBalance - amount))
                                stm.put(to, String(toBalance + amount))
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            let balances = try await client.get("accounts/", options: .prefix).kvs.map { Int($0.valueString)! }
            #expect(balances.reduce(0, +) == 500)
            #expect(balances.allSatisfy { $0 >= 0 })
        }
    }

    @Test("an STM reads its own writes, retries on conflict, and commits nothing when its function throws")
    func semantics() async throws {
        struct Abort: Error {}
        try await withEtcd { _, client in
            try await client.put("stm/a", value: "1")
            let attempts = SharedCounter()
            try await client.runSTM(prefetch: ["stm/a", "stm/b"]) { stm in
                attempts.increment()
                #expect(try await stm.get("stm/a") == "1" || attempts.count > 1)
                #expect(try await stm.get("stm/missing") == "")
                if attempts.count == 1 {
                    // Another writer changes what this transaction read: the commit must fail and retry.
                    try await client.put("stm/a", value: "2")
                }
                stm.put("stm/b", try await stm.get("stm/a") + "!")
                #expect(try await stm.get("stm/b") == (attempts.count == 1 ? "1!" : "2!"))
            }
            #expect(attempts.count == 2)
            #expect(try await client.get("stm/b").kvs.first?.valueString == "2!")
            await #expect(throws: Abort.self) {
                try await client.runSTM(isolationLevel: .readCommitted) { stm in
                    stm.put("stm/c", "never")
                    throw Abort()
                }
            }
            #expect(try await client.get("stm/c").kvs.isEmpty)
            try await client.runSTM(isolationLevel: .readCommitted) { stm in
                stm.delete("stm/b")
            }
            #expect(try await client.get("stm/b").kvs.isEmpty)
        }
    }
}

/// A deterministic random source, so a failing run can be repeated.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { self.state = seed }
    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
