// SPDX-License-Identifier: Apache-2.0
import Dispatch
import Etcd
import EtcdSync
import EtcdTesting
import Synchronization
import Testing

@Suite("Leasing KV (EtcdSync)", .timeLimit(.minutes(2)))
struct LeasingKVTests {
    /// Two clients, each with its own leasing KV on the same prefix, as two processes would have.
    private func withTwo(
        revokeBackoff: Duration = .seconds(2),
        _ body: (EtcdClient, EtcdLeasingKV, EtcdLeasingKV) async throws -> Void
    ) async throws {
        try await withEtcd { cluster, client in
            try await withEtcdClient(.init(endpoints: cluster.clientEndpoints)) { other in
                try await withEtcdLeasingKV(client: client, prefix: "leasing/", revokeBackoff: revokeBackoff) { first in
                    try await withEtcdLeasingKV(client: other, prefix: "leasing/", revokeBackoff: revokeBackoff) {
                        second in
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

    @Test(
        "a key given up to a writer is read through rather than acquired again for a while (Go's two seconds), then acquired"
    )
    func revokeBackoff() async throws {
        try await withTwo { client, writer, reader in
            try await client.put("k", value: "1")
            _ = try await reader.get("k")
            try await writer.put("k", value: "2")  // the reader gives k up
            #expect(try await reader.get("k").kvs.first?.valueString == "2")
            #expect(try await client.get("leasing/k").count == 0)  // read through: not owned
            // Nothing signals the end of the backoff, so this asks every 100 ms.
            try await within(.seconds(10), "the key acquired again") {
                while try await client.get("leasing/k").count == 0 {
                    #expect(try await reader.get("k").kvs.first?.valueString == "2")
                    try await Task.sleep(for: .milliseconds(100))
                }
            }
            let before = reader.cachedReads
            #expect(try await reader.get("k").kvs.first?.valueString == "2")
            #expect(reader.cachedReads == before + 1)
        }
    }

    @Test("gets of owned keys, with options, are answered from memory as etcd answers them")
    func getOptionsFromMemory() async throws {
        try await withTwo { client, kv, _ in
            try await client.put("k", value: "v")
            try await client.put("k", value: "w")  // modified after its creation
            try await client.put("counted", value: "c")
            // An acquisition with an option answers with it, and caches the key.
            let counted = try await kv.get("counted", options: .countOnly)
            #expect(counted.count == 1 && counted.kvs.isEmpty)
            _ = try await kv.get("k")
            _ = try await kv.get("absent")
            let stored = try #require(try await client.get("k").kvs.first)
            let (create, mod) = (stored.createRevision, stored.modRevision)
            let cases: [EtcdGetOptions] = [
                [], .countOnly, .keysOnly, [.keysOnly, .countOnly], .serializable, .limit(1),
                .minModRevision(mod), .minModRevision(mod + 1),
                .maxModRevision(mod), .maxModRevision(mod - 1), .minCreateRevision(create),
                .minCreateRevision(create + 1), .maxCreateRevision(create), .maxCreateRevision(create - 1),
            ]
            for key in ["k", "absent", "counted"] {
                for (index, options) in cases.enumerated() {
                    let before = kv.cachedReads
                    let answer = try await kv.get(key, options: options)
                    #expect(kv.cachedReads == before + 1, "\(key), options \(index)")
                    let etcd = try await client.get(key, options: options)
                    #expect(answer.kvs == etcd.kvs, "\(key), options \(index)")
                    #expect(answer.count == etcd.count && answer.more == etcd.more, "\(key), options \(index)")
                }
            }
            // A past revision, or a range, is etcd's to answer.
            let before = kv.cachedReads
            #expect(try await kv.get("k", options: .revision(create)).kvs.first?.valueString == "v")
            #expect(try await kv.get("k", options: .prefix).count == 1)
            #expect(kv.cachedReads == before)
        }
    }

    @Test(
        "a transaction that only reads owned keys is answered from memory as etcd answers it; others go to etcd and see every completed write"
    )
    func readOnlyTransactions() async throws {
        try await withTwo { client, kv, other in
            try await client.put("k", value: "v")
            _ = try await kv.get("k")
            _ = try await kv.get("absent")
            let k = try #require(try await client.get("k").kvs.first)
            let compares: [[EtcdCompare]] = [
                [], [.value("k") == "v"], [.value("k") != "v"], [.value("k") > "u"], [.value("k") < "u"],
                [.version("k") == 1], [.createRevision("k") == k.createRevision], [.modRevision("k") > k.modRevision],
                [.lease("k") == 0], [.keyMissing("absent")], [.keyExists("absent")],
                // etcd fails a value compare on a missing key, even `!=`.
                [.value("absent") == ""], [.value("absent") != "x"], [.createRevision("absent") == 0],
                [.lease("absent") != 0], [.value("k") == "v", .keyMissing("absent")],
                [.value("k") == "v", .keyExists("absent")],
            ]
            let then: [EtcdOp] = [.get("k"), .get("absent"), .get("k", options: .keysOnly)]
            let otherwise: [EtcdOp] = [.get("k", options: .countOnly)]
            for (index, compare) in compares.enumerated() {
                let before = kv.cachedReads
                let answer = try await kv.txn(if: compare, then: then, else: otherwise)
                #expect(kv.cachedReads == before + 1, "compares \(index)")
                let etcd = try await client.txn(if: compare, then: then, else: otherwise)
                #expect(answer.succeeded == etcd.succeeded, "compares \(index)")
                #expect(answer.responses.map(\.get?.kvs) == etcd.responses.map(\.get?.kvs), "compares \(index)")
                #expect(answer.responses.map(\.get?.count) == etcd.responses.map(\.get?.count), "compares \(index)")
            }
            // A key not owned, a range, a past revision, a nested transaction, nothing read: etcd's.
            try await client.put("unowned", value: "u")
            let throughEtcd: [(compares: [EtcdCompare], then: [EtcdOp])] = [
                ([.value("unowned") == "u"], then), ([], [.get("k"), .get("unowned")]),
                ([.version("k").withPrefix() > 0], then), ([], [.get("k", options: .prefix)]),
                ([], [.get("k", options: .revision(k.modRevision))]), ([], [.txn(if: [], then: [.get("k")])]),
                ([], []),
            ]
            for (index, txn) in throughEtcd.enumerated() {
                let before = kv.cachedReads
                let answer = try await kv.txn(if: txn.compares, then: txn.then)
                #expect(kv.cachedReads == before, "case \(index)")
                #expect(answer.succeeded, "case \(index)")
                #expect(answer.responses.count == txn.then.count, "case \(index)")
            }
            // The other leasing KV's write made this one give the key up: the next read sees it.
            try await other.put("k", value: "new")
            let after = try await kv.txn(if: [.value("k") == "new"], then: [.get("k")])
            #expect(after.succeeded)
            #expect(after.responses.first?.get?.kvs.first?.valueString == "new")
        }
    }

    @Test("a range deleted inside a transaction is given up by its other owners, and this leasing KV's copies go")
    func transactionRangeDelete() async throws {
        try await withTwo { client, writer, reader in
            for key in ["r/1", "r/2", "r/3"] { try await client.put(key, value: "x") }
            _ = try await reader.get("r/1")
            _ = try await writer.get("r/2")
            _ = try await reader.get("r/3")
            let nested = EtcdOp.txn(if: [], then: [.delete("r/3", options: .range(end: "r/4"))])
            let response = try await writer.txn(if: [], then: [.delete("r/", options: .range(end: "r/3")), nested])
            #expect(response.succeeded)
            #expect(try await client.get("r/", options: .prefix).count == 0)
            #expect(try await reader.get("r/1").kvs.isEmpty)
            #expect(try await writer.get("r/2").kvs.isEmpty)
            #expect(try await reader.get("r/3").kvs.isEmpty)
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

    @Test(
        "concurrent gets, puts, deletes (ranges too) and transactions through three leasing KVs on three keys are linearizable"
    )
    func linearizable() async throws {
        // Without the backoff, keys change owner more often within the test's second or two.
        try await withTwo(revokeBackoff: .zero) { client, first, second in
            try await withEtcdLeasingKV(client: client, prefix: "leasing/", revokeBackoff: .zero) { third in
                // A missing key is the value "missing", which the keys hold before the workers start.
                let missing = "missing"
                var history = try await initialWrites(client, keys: ["k0", "k1", "k2"], value: missing)
                history += try await withThrowingTaskGroup(of: [EtcdRegisterOperation].self) { group in
                    for (worker, kv) in [first, second, third].enumerated() {
                        group.addTask {
                            var random = SeededGenerator(seed: UInt64(worker + 1))
                            var operations: [EtcdRegisterOperation] = []
                            for step in 0..<150 {
                                let key = "k\(random.next() % 3)"
                                let value = "\(worker)-\(step)"
                                let call = ContinuousClock.now
                                var written: [String] = [key]
                                let kind: EtcdRegisterOperation.Kind
                                switch random.next() % 10 {
                                case 0:
                                    try await kv.put(key, value: value)
                                    kind = .write(value)
                                case 1:
                                    try await kv.txn(if: [], then: [.put(key, value: value)])
                                    kind = .write(value)
                                case 2:
                                    try await kv.delete(key)
                                    kind = .write(missing)
                                case 3:  // every key: one write per key to the checker, which checks keys apart
                                    if step.isMultiple(of: 2) {
                                        try await kv.txn(if: [], then: [.delete("k", options: .prefix)])
                                    } else {
                                        try await kv.delete("k", options: .prefix)
                                    }
                                    written = ["k0", "k1", "k2"]
                                    kind = .write(missing)
                                case 4:
                                    let read = try await kv.txn(if: [], then: [.get(key)])
                                    kind = .read(read.responses.first?.get?.kvs.first?.valueString ?? missing)
                                default:
                                    kind = .read(try await kv.get(key).kvs.first?.valueString ?? missing)
                                }
                                let returned = ContinuousClock.now
                                for key in written {
                                    operations.append(.init(key: key, kind: kind, call: call, return: returned))
                                }
                            }
                            return operations
                        }
                    }
                    return try await group.reduce(into: []) { $0 += $1 }
                }
                #expect(throws: Never.self) { try EtcdLinearizability.check(history) }
                #expect(first.cachedReads + second.cachedReads + third.cachedReads > 0)
            }
        }
    }

    /// A write that completes while a get's acquisition is answered but not yet cached.
    enum RacingWrite: String, CaseIterable, CustomTestStringConvertible {
        case otherPut = "the other leasing KV's put"
        case ownPut = "this leasing KV's put"
        case ownTxn = "this leasing KV's txn"
        var testDescription: String { self.rawValue }
    }

    @Test(
        "a write that completes while a get's answer waits to be cached is seen by the next get",
        arguments: RacingWrite.allCases)
    func writeDuringAcquisition(_ write: RacingWrite) async throws {
        try await withTwo { client, first, second in
            try await client.put("raced", value: "old")
            let held = HoldingExecutor()
            let owned = Task {
                try await withTaskExecutorPreference(held) { try await first.get("raced") }
            }
            // Let the get run one step at a time until etcd has recorded its ownership: its answer
            // is then on the way back or already held, and is not cached until `release`.
            try await within(.seconds(10), "the get's ownership key") {
                for await _ in held.arrivals {
                    if try await client.get("leasing/raced").count == 1 { return }
                    held.step()
                }
            }
            try await within(.seconds(10), "the racing write") {
                switch write {
                case .otherPut: try await second.put("raced", value: "new")
                case .ownPut: try await first.put("raced", value: "new")
                case .ownTxn: try await first.txn(if: [], then: [.put("raced", value: "new")])
                }
            }
            held.release()
            #expect(try await owned.value.kvs.first?.valueString == "old")  // read before the write
            #expect(try await first.get("raced").kvs.first?.valueString == "new")
        }
    }

    @Test(
        "a write of the owner that completes after its next write leaves the later value cached",
        arguments: ["put", "delete"])
    func ownWritesOutOfOrder(_ earlier: String) async throws {
        try await withTwo { client, first, _ in
            try await client.put("raced", value: "old")
            _ = try await first.get("raced")  // owned and cached
            let held = HoldingExecutor()
            let write = Task {
                try await withTaskExecutorPreference(held) {
                    if earlier == "put" {
                        try await first.put("raced", value: "earlier")
                    } else {
                        try await first.delete("raced")
                    }
                }
            }
            // Let the earlier write run one step at a time until etcd has applied it.
            try await within(.seconds(10), "the earlier write") {
                for await _ in held.arrivals {
                    if try await client.get("raced").kvs.first?.valueString != "old" { return }
                    held.step()
                }
            }
            try await first.put("raced", value: "later")
            held.release()
            try await write.value
            #expect(try await first.get("raced").kvs.first?.valueString == "later")
            #expect(try await client.get("raced").kvs.first?.valueString == "later")
        }
    }

    @Test("past the session lease's deadline, a get is not answered from memory, even before the loss is handled")
    func leaseDeadline() async throws {
        try await withEtcd { cluster, client in
            try await client.put("k", value: "v")
            // The leasing KV's own tasks (its revocation watch, and its session task, which marks
            // the session lost) run on `held`, so that the test can stop them; the gets below do not.
            let held = HoldingExecutor(running: true)
            let (opened, open) = AsyncStream.makeStream(of: EtcdLeasingKV.self)
            let (finished, finish) = AsyncStream.makeStream(of: Void.self)
            let scope = Task {
                try await withTaskExecutorPreference(held) {
                    try await withEtcdLeasingKV(client: client, prefix: "leasing/", ttl: 5) { kv in
                        open.yield(kv)
                        for await _ in finished {}
                    }
                }
            }
            defer {  // also when a step below throws
                held.release()
                finish.finish()
            }
            let kv = try #require(
                await within(.seconds(10), "the leasing KV") { await opened.first { _ in true } })
            _ = try await kv.get("k")
            #expect(try await kv.get("k").kvs.first?.valueString == "v")
            #expect(kv.cachedReads == 1)
            // No renewal is answered from now on, and the loss is not handled: its task is held.
            held.hold()
            try cluster.members[0].pause()
            // The client's deadline counts from a renewal sent before the pause.
            try await Task.sleep(for: .seconds(5) + .milliseconds(500))
            await #expect(throws: EtcdClientError.self) {
                try await withEtcdTimeout(.seconds(1)) { try await kv.get("k") }
            }
            #expect(kv.cachedReads == 1)
            try cluster.members[0].resume()
            held.release()
            finish.finish()
            try await within(.seconds(20), "the leasing KV's end") { try await scope.value }
        }
    }

    @Test(
        "after its session lease is revoked, a leasing KV takes a new one: keys are owned and served from memory again")
    func newSession() async throws {
        try await withEtcd { _, client in
            try await withEtcdLeasingKV(client: client, prefix: "leasing/", ttl: 5) { kv in
                try await client.put("k", value: "1")
                _ = try await kv.get("k")
                let old = try #require(try await client.get("leasing/k").kvs.first).lease
                try await client.revoke(old)  // its ownership key goes with it
                try await client.put("k", value: "2")  // nobody to ask now
                #expect(try await kv.get("k").kvs.first?.valueString == "2")
                // This client revoked it, so it knows at once; the session task then grants a new
                // lease, and a get owns the key again. Nothing signals the new session, so this asks
                // every 100 ms.
                let owner = try await within(.seconds(10), "an ownership key of a new session") {
                    while true {
                        #expect(try await kv.get("k").kvs.first?.valueString == "2")
                        if let owner = try await client.get("leasing/k").kvs.first, owner.lease != old {
                            return owner
                        }
                        try await Task.sleep(for: .milliseconds(100))
                    }
                }
                #expect(try await client.timeToLive(owner.lease).ttl > 0)
                let before = kv.cachedReads
                #expect(try await kv.get("k").kvs.first?.valueString == "2")
                #expect(kv.cachedReads == before + 1)
            }
            #expect(try await client.get("leasing/", options: .prefix).count == 0)
        }
    }

    @Test(
        "a get that would acquire a key under a session lease revoked by another client reads through instead of failing, and drops the copies"
    )
    func revokedElsewhere() async throws {
        try await withTwo { client, first, second in
            try await client.put("a", value: "1")
            try await client.put("b", value: "2")
            _ = try await first.get("a")
            let lease = try #require(try await client.get("leasing/a").kvs.first).lease
            // Revoked through the other client: `first`'s client hears of it at its next renewal, in 20 s.
            try await second.client.revoke(lease)
            try await second.put("a", value: "changed")  // nobody owns it now
            #expect(try await first.get("b").kvs.first?.valueString == "2")
            // That acquisition told `first` its lease is gone: its copy of a goes too.
            #expect(try await first.get("a").kvs.first?.valueString == "changed")
        }
    }

    @Test(
        "keys attached to a lease are not cached; leaving the scope deletes the ownership keys; a session lease that cannot be granted fails the scope"
    )
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
            // A session lease that cannot be granted fails the scope before its body runs.
            await #expect(throws: EtcdClientError.self) {
                try await withEtcdLeasingKV(client: client, prefix: "leasing/", ttl: 10_000_000_000) { _ in
                    Issue.record("the body ran without a session")
                }
            }
        }
    }

    @Test(
        "an empty prefix, and writes that would change ownership keys, are refused with invalidArgument and change nothing"
    )
    func ownershipKeysProtected() async throws {
        try await withTwo { client, kv, _ in
            // With no prefix, the ownership key of a key would be the key itself.
            let empty = await etcdErrorCode {
                try await withEtcdLeasingKV(client: client, prefix: "") { _ in _ = Issue.record("the body ran") }
            }
            #expect(empty?.code == .invalidArgument)

            try await client.put("k", value: "v")
            try await client.put("zz", value: "v")
            _ = try await kv.get("k")
            _ = try await kv.get("zz")
            let before = try await client.get("", options: .fromKey)
            let refused: [(String, @Sendable () async throws -> Void)] = [
                ("put", { try await kv.put("leasing/k", value: "REVOKE") }),
                ("delete", { try await kv.delete("leasing/k") }),
                ("prefix delete", { try await kv.delete("leasing/", options: .prefix) }),
                ("overlapping range", { try await kv.delete("a", options: .range(end: "m")) }),
                ("range from a key", { try await kv.delete("b", options: .fromKey) }),
                ("txn", { try await kv.txn(if: [], then: [.put("k", value: "x"), .delete("leasing/zz")]) }),
            ]
            for (what, write) in refused {
                let error = await etcdErrorCode { try await write() }
                #expect(error?.code == .invalidArgument, "\(what)")
                #expect(error?.message.contains("leasing/") == true, "\(what): \(String(describing: error))")
            }
            let after = try await client.get("", options: .fromKey)
            #expect(after.kvs == before.kvs)
            #expect(after.header.revision == before.header.revision)
            // Reads of such keys are fine, and so are writes beside the prefix.
            #expect(try await kv.get("leasing/k").kvs.first?.lease != 0)
            try await kv.delete("a", options: .range(end: "leasing/"))
            #expect(try await client.get("k").kvs.isEmpty)
            #expect(try await kv.get("zz").kvs.first?.valueString == "v")
        }
    }
}

/// A task executor that runs a job only when the test lets it (`step`), and every job after
/// `release` (until `hold`): it holds a task at a point the test chooses.
private final class HoldingExecutor: TaskExecutor {
    private let queue = DispatchQueue(label: "holding-executor")
    private let held: Mutex<(jobs: [UnownedJob], released: Bool)>
    /// An element for each job held.
    let arrivals: AsyncStream<Void>
    private let arrived: AsyncStream<Void>.Continuation

    /// Holds jobs from the start, or with `running`, from ``hold()`` on.
    init(running: Bool = false) {
        self.held = Mutex((jobs: [], released: running))
        (self.arrivals, self.arrived) = AsyncStream.makeStream()
    }

    /// Holds the jobs that come from now on.
    func hold() { self.held.withLock { $0.released = false } }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let run = self.held.withLock { held in
            if held.released { return true }
            held.jobs.append(job)
            return false
        }
        if run { self.run(job) } else { self.arrived.yield() }
    }

    /// Runs the oldest held job.
    func step() {
        if let job = self.held.withLock({ $0.jobs.isEmpty ? nil : $0.jobs.removeFirst() }) { self.run(job) }
    }

    /// Runs the held jobs, and every later one as it comes.
    func release() {
        let jobs = self.held.withLock { held in
            held.released = true
            defer { held.jobs = [] }
            return held.jobs
        }
        jobs.forEach(self.run)
    }

    private func run(_ job: UnownedJob) {
        self.queue.async { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
