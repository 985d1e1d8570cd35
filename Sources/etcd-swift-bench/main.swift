// SPDX-License-Identifier: Apache-2.0
// etcd-swift-bench: the workloads of ../shared/peer-bench (etcd's Go client) through swift-etcd, with
// the same flags and the same one-line JSON, so both clients can be run side by side on one server.
//
//   etcd-swift-bench [global flags] put   --total N --key-size B --val-size B --key-space K
//   etcd-swift-bench [global flags] range --total N --consistency l|s --key KEY
//   etcd-swift-bench [global flags] txn   --total N --key-space K
//   etcd-swift-bench [global flags] watch --watchers W --total N
//   etcd-swift-bench [global flags] lease --total N      (grant + keepalive-once + revoke)
//
// Global flags: --endpoints a,b,c --conns C --clients M
//
// Two scale workloads of our own (no Go counterpart), each printing a JSON line of its own:
//   etcd-swift-bench [global flags] watch-scale --watches N    (N watches on distinct keys in one client)
//   etcd-swift-bench [global flags] lease-scale --leases N --seconds S   (N leases kept alive by one client)
//
// After a workload, a sample of what it wrote is read back; a mismatch is reported and exits 3.
// ETCD_BENCH_CLIENT_EXECUTOR=1 runs the workers (and the watch workload's watchers and writer) in
// tasks that prefer their client's `taskExecutor`, as README recommends for code that makes many calls
// in a row; by default they are plain tasks on Swift's global executor.
// ETCD_BENCH_NIO_GLOBAL_EXECUTOR=1 makes NIO's event loops Swift's global executor before anything
// runs (NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor, an
// application's choice that README describes), so plain tasks run on the loops the clients use.
// Every worker checks on start that it runs where its mode says (exit 2 if not).
// The watch workload ends at the latest ETCD_BENCH_WATCH_WAIT seconds (default 30) after its last
// put; events still missing then count as errors. ETCD_BENCH_SILENT_WATCHERS=N (default 0) is a
// self-test: its first N watchers watch a prefix nobody writes, as a watcher whose stream went silent.
import Etcd
import Foundation
import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("etcd-swift-bench: \(message)\n".utf8))
    exit(2)
}

/// Go's flag syntax: `-name value`, `--name value`, `-name=value`; stops at the first non-flag.
func parseFlags(_ arguments: ArraySlice<String>, known: [String: String]) -> ([String: String], ArraySlice<String>) {
    var values = known
    var rest = arguments
    while let first = rest.first, first.hasPrefix("-"), first != "-", first != "--" {
        rest = rest.dropFirst()
        var name = String(first.drop { $0 == "-" })
        var value: String?
        if let equals = name.firstIndex(of: "=") {
            value = String(name[name.index(after: equals)...])
            name = String(name[..<equals])
        }
        guard values[name] != nil else { fail("flag provided but not defined: -\(name)") }
        if value == nil {
            guard let next = rest.first else { fail("flag needs an argument: -\(name)") }
            value = next
            rest = rest.dropFirst()
        }
        values[name] = value
    }
    if rest.first == "--" { rest = rest.dropFirst() }
    return (values, rest)
}

func int(_ flags: [String: String], _ name: String) -> Int {
    guard let value = flags[name].flatMap({ Int($0) }) else { fail("invalid value for -\(name)") }
    return value
}

struct Usage {
    var user: Double
    var sys: Double
    var maxRSS: Int

    static func now() -> Usage {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return Usage(user: seconds(usage.ru_utime), sys: seconds(usage.ru_stime), maxRSS: usage.ru_maxrss)
    }
}

/// A counter shared by tasks.
final class Counter: Sendable {
    private let value = Atomic<Int>(0)
    func next() -> Int { self.value.wrappingAdd(1, ordering: .relaxed).oldValue }
    var count: Int { self.value.load(ordering: .relaxed) }
}

/// Mutable state shared by tasks.
final class Shared<Value: Sendable>: Sendable {
    private let value: Mutex<Value>
    init(_ value: Value) { self.value = Mutex(value) }
    func withLock<R: Sendable>(_ body: (inout Value) -> R) -> R { self.value.withLock { body(&$0) } }
}

/// Latencies in milliseconds, written by index from many tasks.
final class Latencies: Sendable {
    private let values: Mutex<[Double]>
    init(count: Int) { self.values = Mutex([Double](repeating: 0, count: count)) }
    func set(_ index: Int, _ value: Double) { self.values.withLock { $0[index] = value } }
    var sorted: [Double] { self.values.withLock { $0.sorted() } }
    var unsorted: [Double] { self.values.withLock { $0 } }
}

func milliseconds(_ duration: Duration) -> Double {
    let (seconds, attoseconds) = duration.components
    return Double(seconds) * 1e3 + Double(attoseconds) / 1e15
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    sorted.isEmpty ? 0 : sorted[Int(Double(sorted.count - 1) * p)]
}

/// Whether workers prefer their client's task executor (`ETCD_BENCH_CLIENT_EXECUTOR=1`).
let onClientExecutor = ProcessInfo.processInfo.environment["ETCD_BENCH_CLIENT_EXECUTOR"] == "1"

/// Whether NIO's event loops are Swift's global executor (`ETCD_BENCH_NIO_GLOBAL_EXECUTOR=1`).
let onNIOGlobalExecutor = ProcessInfo.processInfo.environment["ETCD_BENCH_NIO_GLOBAL_EXECUTOR"] == "1"

/// How long the watch workload waits after its last put for events still missing
/// (`ETCD_BENCH_WATCH_WAIT`, seconds).
let watchWait: Duration = {
    guard let text = ProcessInfo.processInfo.environment["ETCD_BENCH_WATCH_WAIT"] else { return .seconds(30) }
    guard let seconds = Double(text), seconds >= 0, seconds <= 86_400 else {
        fail("ETCD_BENCH_WATCH_WAIT must be seconds from 0 to 86400, not \"\(text)\"")
    }
    return .milliseconds(Int64(seconds * 1000))
}()

/// Watchers of the watch workload that watch a prefix nobody writes (`ETCD_BENCH_SILENT_WATCHERS`).
let silentWatchers: Int = {
    guard let text = ProcessInfo.processInfo.environment["ETCD_BENCH_SILENT_WATCHERS"] else { return 0 }
    guard let count = Int(text), count >= 0 else {
        fail("ETCD_BENCH_SILENT_WATCHERS must be a count, not \"\(text)\"")
    }
    return count
}()

/// The executor a worker calling `client` prefers: its `taskExecutor`, or none (Swift's global executor).
func preference(_ client: EtcdClient) -> (any TaskExecutor)? {
    onClientExecutor ? client.taskExecutor : nil
}

/// Exits 2 unless the calling worker runs where its mode says: on an event loop with either
/// ETCD_BENCH_* executor variable, on Swift's own threads without. A mode that did not take effect
/// then fails the run instead of measuring something else under its name.
func checkWorkerPlacement() {
    let onLoop = MultiThreadedEventLoopGroup.currentEventLoop != nil
    let expected = onClientExecutor || onNIOGlobalExecutor
    if onLoop != expected {
        fail(
            "a worker runs \(onLoop ? "on" : "off") NIO's event loops, but its mode puts it \(expected ? "on" : "off") them"
        )
    }
}

/// Spreads `total` calls of `op` over `workers` tasks, round-robin over the clients (Go's `run`).
func run(
    _ clients: [EtcdClient],
    workers: Int,
    total: Int,
    _ op: @escaping @Sendable (EtcdClient, Int) async throws -> Void
) async -> (Latencies, Int, Duration) {
    let latencies = Latencies(count: total)
    let next = Counter()
    let errors = Counter()
    let clock = ContinuousClock()
    let start = clock.now
    await withTaskGroup(of: Void.self) { group in
        for worker in 0..<workers {
            let client = clients[worker % clients.count]
            group.addTask(executorPreference: preference(client)) {
                checkWorkerPlacement()
                while true {
                    let i = next.next()
                    if i >= total { return }
                    let t = clock.now
                    do { try await op(client, i) } catch { _ = errors.next() }
                    latencies.set(i, milliseconds(clock.now - t))
                }
            }
        }
    }
    return (latencies, errors.count, clock.now - start)
}

func benchmark() async -> String {
    let arguments = CommandLine.arguments.dropFirst()
    let (global, afterGlobal) = parseFlags(
        arguments, known: ["endpoints": "127.0.0.1:2379", "conns": "1", "clients": "1"])
    guard let command = afterGlobal.first else { fail("need a command: put, range, txn, watch, lease") }
    let (flags, _) = parseFlags(
        afterGlobal.dropFirst(),
        known: [
            "total": "10000", "key-size": "8", "val-size": "256", "key-space": "10000", "consistency": "l",
            "key": "bench-key", "watchers": "1", "watches": "10000", "leases": "10000", "seconds": "30",
        ]
    )
    var total = int(flags, "total")
    let keySize = int(flags, "key-size")
    let keySpace = int(flags, "key-space")
    let value = String(repeating: "v", count: int(flags, "val-size"))
    let conns = int(global, "conns")
    let workers = int(global, "clients")
    let watchers = int(flags, "watchers")
    let benchKey = flags["key"]!
    let serializable = flags["consistency"] == "s"
    let endpoints = global["endpoints"]!.split(separator: ",").map(String.init)

    /// Keys as peer-bench makes them: `i % keySpace`, zero-padded to `size` digits, keeping the last `size`.
    struct Keys: Sendable {
        let size: Int
        let space: Int
        func callAsFunction(_ i: Int) -> String {
            var key = String(i % self.space)
            if key.count < self.size { key = String(repeating: "0", count: self.size - key.count) + key }
            if key.count > self.size { key = String(key.suffix(self.size)) }
            return key
        }
    }
    let keyOf = Keys(size: keySize, space: keySpace)

    /// The put workload's random key numbers, one per put, as peer-bench's `rand.Int()` gives them:
    /// SplitMix64 over the put's index from one random seed. `Int.random` would ask the kernel
    /// (`getrandom`) on every put, a system call that Go's generator does not make.
    struct RandomNumbers: Sendable {
        let seed = UInt64.random(in: .min ... .max)
        func callAsFunction(_ i: Int) -> Int {
            var z = self.seed &+ UInt64(truncatingIfNeeded: i) &* 0x9E37_79B9_7F4A_7C15
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Int(truncatingIfNeeded: (z ^ (z >> 31)) >> 1)
        }
    }
    let randomNumber = RandomNumbers()

    guard ["put", "range", "txn", "watch", "lease", "watch-scale", "lease-scale"].contains(command) else {
        fail("unknown command \"\(command)\"")
    }
    // The environment's settings are checked before anything connects.
    _ = (watchWait, silentWatchers)

    var clients: [EtcdClient] = []
    for _ in 0..<max(conns, 1) {
        do { clients.append(try EtcdClient(configuration: .init(endpoints: endpoints))) } catch {
            fail("connect: \(error)")
        }
    }
    let runningClients = clients

    let output: String = await withTaskGroup(of: Void.self) { group in
        for client in runningClients { group.addTask { try? await client.run() } }
        defer { for client in runningClients { client.shutdown() } }
        do {
            try await runningClients[0].put(benchKey, value: value)
        } catch {
            if command == "range" { fail("seed key: \(error)") }
        }

        if command == "watch-scale" {
            return await watchScale(runningClients[0], watches: int(flags, "watches"), value: value)
        }
        if command == "lease-scale" {
            return await leaseScale(runningClients[0], leases: int(flags, "leases"), seconds: int(flags, "seconds"))
        }
        let usage0 = Usage.now()
        var verification: (@Sendable () async throws -> Int)?
        var latencies: [Double] = []
        var errors = 0
        var elapsed = Duration.zero
        switch command {
        case "put":
            let written = Shared([String]())
            let r = await run(runningClients, workers: workers, total: total) { client, i in
                let key = keyOf(randomNumber(i))
                try await client.put(key, value: value)
                if i % 97 == 0 { written.withLock { $0.append(key) } }
            }
            (latencies, errors, elapsed) = (r.0.sorted, r.1, r.2)
            verification = { try await verify(runningClients[0], keys: written.withLock { $0 }, value: value) }
        case "lease":
            let r = await run(runningClients, workers: workers, total: total) { client, _ in
                let lease = try await client.grant(ttl: 60)
                _ = try await client.keepAliveOnce(lease.id)
                try await client.revoke(lease.id)
            }
            (latencies, errors, elapsed) = (r.0.sorted, r.1, r.2)
        case "range":
            let options: EtcdGetOptions = serializable ? .serializable : []
            let r = await run(runningClients, workers: workers, total: total) { client, _ in
                _ = try await client.get(benchKey, options: options)
            }
            (latencies, errors, elapsed) = (r.0.sorted, r.1, r.2)
        case "txn":
            let r = await run(runningClients, workers: workers, total: total) { client, i in
                let key = "txn-" + keyOf(i)
                _ = try await client.txn(
                    if: [.version(key) < (1 << 62)], then: [.put(key, value: value)], else: [.get(key)])
            }
            (latencies, errors, elapsed) = (r.0.sorted, r.1, r.2)
            let sample = stride(from: 0, to: min(total, keySpace), by: 97).map { "txn-" + keyOf($0) }
            verification = { try await verify(runningClients[0], keys: sample, value: value) }
        case "watch":
            // W watchers on one prefix; one writer puts total keys; figures are for total*W delivered
            // events, latency is put-to-delivery of the last watcher (as peer-bench measures it).
            // Unlike peer-bench, which waits forever when a put fails, the run ends once every
            // written key has reached every watcher, or `watchWait` after the last put (keys whose
            // put failed never come; a watcher may go silent without an error). Each failed put and
            // each event a watcher missed or could not read counts as an error.
            let runID = UInt64(Date().timeIntervalSince1970 * 1e9)
            let prefix = "watch-bench-\(runID)/"
            // The self-test's silent watchers: nothing is written under this prefix.
            let silentPrefix = "watch-bench-silent-\(runID)/"
            let prefixLength = prefix.utf8.count
            let clock = ContinuousClock()
            let sent = Shared([ContinuousClock.Instant](repeating: clock.now, count: total))
            let counts = Shared([Int](repeating: 0, count: total))
            let got = Latencies(count: total)
            let ready = Counter()
            let unreadable = Counter()
            // Events delivered so far, to all watchers together.
            let delivered = Counter()
            let writes = total
            let (start, failedPuts): (ContinuousClock.Instant, Int) = await withTaskGroup(of: Void.self) { watchGroup in
                for w in 0..<watchers {
                    let client = runningClients[w % runningClients.count]
                    watchGroup.addTask(executorPreference: preference(client)) {
                        checkWorkerPlacement()
                        try? await client.watch(w < silentWatchers ? silentPrefix : prefix, options: .prefix) {
                            responses in
                            _ = ready.next()
                            var seen = 0
                            for try await response in responses {
                                let now = clock.now
                                for event in response.events {
                                    seen += 1
                                    // By UTF-8 offset: String.count and dropFirst walk characters.
                                    guard let i = Int(Substring(event.kv.keyString.utf8.dropFirst(prefixLength))),
                                        (0..<writes).contains(i)
                                    else {
                                        _ = unreadable.next()
                                        continue
                                    }
                                    let complete = counts.withLock { counts -> Bool in
                                        counts[i] += 1
                                        return counts[i] == watchers
                                    }
                                    if complete { got.set(i, milliseconds(now - sent.withLock { $0[i] })) }
                                    _ = delivered.next()
                                }
                                if seen >= writes { return }
                            }
                        }
                    }
                }
                // watch() returns control to its body once the server created the watch.
                let readyBy = clock.now + .seconds(30)
                while ready.count < watchers {
                    if clock.now > readyBy { fail("only \(ready.count) of \(watchers) watches were created in 30 s") }
                    try? await Task.sleep(for: .milliseconds(1))
                }
                let start = clock.now
                let failed = await withTaskExecutorPreference(preference(runningClients[0])) {
                    var failed = 0
                    for i in 0..<writes {
                        let now = clock.now
                        sent.withLock { $0[i] = now }
                        do { try await runningClients[0].put("\(prefix)\(i)", value: value) } catch { failed += 1 }
                    }
                    return failed
                }
                // Each watcher returns once it has seen every key. Keys whose put failed never come,
                // and a watcher whose stream went silent sees no more: so the run waits for the
                // events of the keys written, at most `watchWait`, then cancels those still waiting.
                let expected = (writes - failed) * watchers
                let deliveredBy = clock.now + watchWait
                while delivered.count < expected && clock.now < deliveredBy {
                    try? await Task.sleep(for: .milliseconds(1))
                }
                watchGroup.cancelAll()
                await watchGroup.waitForAll()
                return (start, failed)
            }
            elapsed = clock.now - start
            // Events missed: of the keys written, those a watcher did not receive.
            let missed = max(0, (writes - failedPuts) * watchers - delivered.count)
            errors = failedPuts + missed + unreadable.count
            // Only keys every watcher received have a latency.
            let complete = counts.withLock { $0 }
            latencies = zip(got.unsorted, complete).filter { $1 == watchers }.map(\.0).sorted()
            total = total * watchers
        default:
            fail("unknown command \"\(command)\"")
        }
        let usage1 = Usage.now()
        if let verification {
            do {
                let mismatches = try await verification()
                if mismatches > 0 {
                    FileHandle.standardError.write(
                        Data("etcd-swift-bench: \(mismatches) written keys read back wrong\n".utf8))
                    exit(3)
                }
            } catch {
                fail("reading back what was written: \(error)")
            }
        }
        let user = usage1.user - usage0.user
        let sys = usage1.sys - usage0.sys
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let fields: [(String, String)] = [
            ("client", "\"swift-etcd\""), ("op", "\"\(command)\""), ("total", "\(total)"), ("errors", "\(errors)"),
            ("conns", "\(conns)"), ("clients", "\(workers)"), ("seconds", "\(seconds)"),
            ("ops_per_sec", "\(Double(total) / seconds)"), ("p50_ms", "\(percentile(latencies, 0.5))"),
            ("p99_ms", "\(percentile(latencies, 0.99))"), ("cpu_user_s", "\(user)"), ("cpu_sys_s", "\(sys)"),
            ("cpu_us_per_op", "\((user + sys) * 1e6 / Double(total))"), ("max_rss_kb", "\(usage1.maxRSS)"),
        ]
        return "{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
    }
    return output
}

if onNIOGlobalExecutor,
    !NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
{
    fail("ETCD_BENCH_NIO_GLOBAL_EXECUTOR=1: NIO's event loops could not be made Swift's global executor")
}
print(await benchmark())
