// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Etcd
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// `check perf` and `check datascale`: etcdctl's load checks, with its workloads, thresholds and output.
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check", abstract: "commands for checking properties of the etcd cluster",
        subcommands: [Perf.self, Datascale.self])

    /// etcdctl's names for the workload models.
    static func model(_ load: String) throws -> String {
        let aliases = [
            "s": "s", "small": "s", "m": "m", "medium": "m", "l": "l", "large": "l", "xl": "xl", "xLarge": "xl",
        ]
        guard let model = aliases[load] else { throw FeatureError("unknown load option \(load)") }
        return model
    }

    /// `check perf [options]`: puts at a fixed rate for a minute, then judges throughput and latency.
    struct Perf: EtcdctlCommand {
        static let configuration = CommandConfiguration(abstract: "Check the performance of the etcd cluster")

        @Option(
            parsing: .unconditional,
            help:
                "The performance check's workload model. Accepted workloads: s(small), m(medium), l(large), xl(xLarge)"
        )
        var load = "s"
        @Option(parsing: .unconditional, help: "The prefix for writing the performance check's keys.") var prefix =
            "/etcdctl-check-perf/"
        @Flag(name: .customLong("auto-compact"), help: "Compact storage with last revision after test is finished.")
        var autoCompact = false
        @Flag(name: .customLong("auto-defrag"), help: "Defragment storage after test is finished.")
        var autoDefrag = false

        /// etcdctl's models: puts per second, clients, seconds.
        private static let models = [
            "s": (limit: 150, clients: 50, seconds: 60), "m": (limit: 1000, clients: 200, seconds: 60),
            "l": (limit: 8000, clients: 500, seconds: 60), "xl": (limit: 15000, clients: 1000, seconds: 60),
        ]

        /// Arguments etcdctl accepts here and ignores.
        @Argument(help: .hidden) var ignored: [String] = []

        func run(_ global: GlobalOptions) async throws {
            let model = Self.models[try CheckCommand.model(self.load)]!
            let (prefix, autoCompact, autoDefrag) = (self.prefix, self.autoCompact, self.autoDefrag)
            let report = try await CheckLoad.withClients(try global.configuration(), count: model.clients) {
                clients in
                try await CheckLoad.requireEmpty(clients[0], prefix: prefix, timeout: .seconds(model.seconds))
                let report = await CheckLoad.puts(
                    clients, prefix: prefix, keySize: 256, valueSize: 1024,
                    pace: .perSecond(model.limit, for: .seconds(model.seconds)),
                    progress: CheckProgress(total: model.seconds))
                try await CheckLoad.cleanUp(
                    clients[0], global, prefix: prefix, compact: autoCompact, defragment: autoDefrag)
                return report
            }
            var passed = report.printErrors()
            // etcdctl prints the rate rounded up, and fails it at 90 % of the model's.
            if report.requestsPerSecond / Double(model.limit) <= 0.9 {
                Printer.line("FAIL: Throughput too low: \(Int(report.requestsPerSecond) + 1) writes/s")
                passed = false
            } else {
                Printer.line("PASS: Throughput is \(Int(report.requestsPerSecond) + 1) writes/s")
            }
            if report.slowest > 0.5 {
                Printer.line("Slowest request took too long: \(CheckLoad.goFloat(report.slowest))s")
                passed = false
            } else {
                Printer.line("PASS: Slowest request took \(CheckLoad.goFloat(report.slowest))s")
            }
            if report.standardDeviation > 0.1 {
                Printer.line("Stddev too high: \(CheckLoad.goFloat(report.standardDeviation))s")
                passed = false
            } else {
                Printer.line("PASS: Stddev is \(CheckLoad.goFloat(report.standardDeviation))s")
            }
            guard passed else {
                Printer.line("FAIL")
                Foundation.exit(EtcdctlExit.error)
            }
            Printer.line("PASS")
        }
    }
}

extension CheckCommand {
    /// `check datascale [options]`: puts a model's number of keys and reports how much the first
    /// endpoint's resident memory grew.
    struct Datascale: EtcdctlCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the memory usage of holding data for different workloads on a given server endpoint.",
            discussion:
                "If no endpoint is provided, localhost will be used. If multiple endpoints are provided, first endpoint will be used."
        )

        @Option(
            parsing: .unconditional,
            help:
                "The datascale check's workload model. Accepted workloads: s(small), m(medium), l(large), xl(xLarge)"
        )
        var load = "s"
        @Option(parsing: .unconditional, help: "The prefix for writing the datascale check's keys.") var prefix =
            "/etcdctl-check-datascale/"
        @Flag(name: .customLong("auto-compact"), help: "Compact storage with last revision after test is finished.")
        var autoCompact = false
        @Flag(name: .customLong("auto-defrag"), help: "Defragment storage after test is finished.")
        var autoDefrag = false

        /// etcdctl's models: keys, bytes per key and value, clients.
        private static let models = [
            "s": (limit: 10_000, kvSize: 1024, clients: 50), "m": (limit: 100_000, kvSize: 1024, clients: 200),
            "l": (limit: 1_000_000, kvSize: 1024, clients: 500),
            // Three versions of 1M objects, etcd's upper bound.
            "xl": (limit: 3_000_000, kvSize: 1024, clients: 1000),
        ]

        /// Arguments etcdctl accepts here and ignores.
        @Argument(help: .hidden) var ignored: [String] = []

        func run(_ global: GlobalOptions) async throws {
            let model = Self.models[try CheckCommand.model(self.load)]!
            let (prefix, autoCompact, autoDefrag) = (self.prefix, self.autoCompact, self.autoDefrag)
            // Derived once: with --user and no password, deriving it asks for the password.
            let configuration = try global.configuration()
            let endpoint = global.endpoints[0]
            let outcome = try await CheckLoad.withClients(configuration, count: model.clients) {
                clients -> (report: CheckLoad.Report, megabytes: Double)? in
                try await CheckLoad.requireEmpty(clients[0], prefix: prefix, timeout: nil)
                guard let before = await MemberMetrics.residentMemory(at: endpoint, configuration, global) else {
                    Printer.line("FAIL: Could not read process_resident_memory_bytes before the put operations.")
                    return nil
                }
                Printer.line(
                    "Start data scale check for work load [\(model.limit) key-value pairs, \(model.kvSize) bytes per key-value, \(model.clients) concurrent clients]."
                )
                let report = await CheckLoad.puts(
                    clients, prefix: prefix, keySize: 512, valueSize: 512, pace: .count(model.limit),
                    progress: CheckProgress(total: model.limit))
                guard let after = await MemberMetrics.residentMemory(at: endpoint, configuration, global) else {
                    Printer.line("FAIL: Could not read process_resident_memory_bytes after the put operations.")
                    // etcdctl leaves its keys behind here, and refuses to run again until they are
                    // deleted by hand.
                    try await CheckLoad.cleanUp(
                        clients[0], global, prefix: prefix, compact: autoCompact, defragment: autoDefrag)
                    return nil
                }
                try await CheckLoad.cleanUp(
                    clients[0], global, prefix: prefix, compact: autoCompact, defragment: autoDefrag)
                return (report, (after - before) / (1024 * 1024))
            }
            guard let outcome, outcome.report.printErrors() else { Foundation.exit(EtcdctlExit.error) }
            Printer.line("PASS: Approximate system memory used : \(String(format: "%.2f", outcome.megabytes)) MB.")
        }
    }
}

/// A member's Prometheus metrics, read over HTTP(S) from its client URL as etcdctl reads them.
enum MemberMetrics {
    /// `process_resident_memory_bytes` of `endpoint`, or nil after printing why it could not be read
    /// (etcdctl's `fetch error: ...` lines).
    static func residentMemory(
        at endpoint: String, _ configuration: EtcdClient.Configuration, _ global: GlobalOptions
    ) async -> Double? {
        let name = "process_resident_memory_bytes"
        let text: String
        do {
            text = try await Self.fetch(endpoint, configuration, global)
        } catch {
            Printer.line("fetch error: \(error)")
            return nil
        }
        for line in text.split(separator: "\n") where line.hasPrefix(name) {
            let value = line.dropFirst(name.count).trimmingCharacters(in: .whitespaces)
            guard let bytes = Double(value) else {
                Printer.line("fetch error: cannot parse \(goQuoted(value)) as a number")
                return nil
            }
            return bytes
        }
        Printer.line("could not find: \(name)")
        return nil
    }

    /// The text of `GET /metrics` at `endpoint`, within the command timeout.
    private static func fetch(
        _ endpoint: String, _ configuration: EtcdClient.Configuration, _ global: GlobalOptions
    ) async throws -> String {
        let endpoint = try EtcdEndpoint.parse(endpoint, tlsByDefault: configuration.tls != nil)
        var serverHostname: String?
        let address: SocketAddress
        switch endpoint.host {
        case .ipv4(let host), .ipv6(let host): address = try SocketAddress(ipAddress: host, port: endpoint.port)
        case .dns(let name):
            address = try SocketAddress.makeAddressResolvingHost(name, port: endpoint.port)
            serverHostname = name
        case .unix(let path): address = try SocketAddress(unixDomainSocketPath: path)
        }
        var sslContext: NIOSSLContext?
        if endpoint.useTLS {
            let tls = configuration.tls ?? .init()
            sslContext = try tls.makeSSLContext(applicationProtocols: ["http/1.1"])
            if let name = tls.serverHostname { serverHostname = name }
        }
        let host = endpoint.hostString
        let (context, hostname) = (sslContext, serverHostname)
        return try await withEtcdTimeout(global.commandTimeout) {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.milliseconds(Int64(global.dialTimeout / .milliseconds(1))))
                .connect(to: address) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let context {
                            try channel.pipeline.syncOperations.addHandler(
                                try NIOSSLClientHandler(context: context, serverHostname: hostname))
                        }
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(
                            wrappingChannelSynchronously: channel)
                    }
                }
            return try await channel.executeThenClose { inbound, outbound in
                var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/metrics")
                head.headers.add(name: "Host", value: "\(host):\(endpoint.port)")
                head.headers.add(name: "Connection", value: "close")
                try await outbound.write(.head(head))
                try await outbound.write(.end(nil))
                var body = ByteBuffer()
                for try await part in inbound {
                    switch part {
                    case .head(let response) where response.status != .ok:
                        throw ExitError(EtcdctlExit.error, "GET /metrics answered \(response.status)")
                    case .head: break
                    case .body(let chunk): body.writeImmutableBuffer(chunk)
                    case .end: return String(buffer: body)
                    }
                }
                throw ExitError(EtcdctlExit.error, "the connection closed before the end of the metrics")
            }
        }
    }
}

/// The load the check commands put on a cluster, and what it measured.
enum CheckLoad {
    /// How fast puts are sent.
    enum Pace: Sendable {
        /// At most `rate` a second (etcdctl's limiter, burst 1) until `duration` has passed.
        case perSecond(Int, for: Duration)
        /// `count` puts, each as soon as a client is free.
        case count(Int)
    }

    /// What the puts measured, as etcd's `pkg/report` computes it.
    struct Report: Sendable {
        /// Each successful put's latency in seconds.
        var latencies: [Double] = []
        /// Failed puts by error message.
        var errors: [String: Int] = [:]
        /// Seconds from the first put sent to the last one answered.
        var elapsed = 0.0

        var requestsPerSecond: Double { self.elapsed > 0 ? Double(self.latencies.count) / self.elapsed : 0 }
        var slowest: Double { self.latencies.max() ?? 0 }
        /// The population standard deviation of the latencies.
        var standardDeviation: Double {
            guard !self.latencies.isEmpty else { return 0 }
            let count = Double(self.latencies.count)
            let mean = self.latencies.reduce(0, +) / count
            return (self.latencies.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / count).squareRoot()
        }

        /// Prints etcdctl's lines for failed puts; whether there were none.
        func printErrors() -> Bool {
            guard !self.errors.isEmpty else { return true }
            Printer.line("FAIL: too many errors")
            for (message, count) in self.errors.sorted(by: { $0.key < $1.key }) {
                Printer.line("FAIL: ERROR(\(message)) -> \(count)")
            }
            return false
        }
    }

    /// Runs `body` with `count` clients of `configuration`, each with connections of its own, as
    /// etcdctl's checks make them.
    static func withClients<Result: Sendable>(
        _ configuration: EtcdClient.Configuration, count: Int,
        _ body: @escaping @Sendable ([EtcdClient]) async throws -> Result
    ) async throws -> Result {
        let clients = try (0..<count).map { _ in try EtcdClient(configuration: configuration) }
        return try await withThrowingTaskGroup(of: Void.self) { group in
            for client in clients { group.addTask { try await client.run() } }
            do {
                let result = try await body(clients)
                for client in clients { client.shutdown() }
                try await group.waitForAll()
                return result
            } catch {
                for client in clients { client.shutdown() }
                group.cancelAll()
                throw error
            }
        }
    }

    /// Fails with etcdctl's message when `prefix` already holds keys: the check deletes them all
    /// afterwards. `timeout` nil: none, as in `check datascale`.
    static func requireEmpty(_ client: EtcdClient, prefix: String, timeout: Duration?) async throws {
        let response: EtcdGetResponse
        if let timeout {
            response = try await withEtcdTimeout(timeout) {
                try await client.get(prefix, options: [.prefix, .limit(1)])
            }
        } else {
            response = try await client.get(prefix, options: [.prefix, .limit(1)])
        }
        guard response.kvs.isEmpty else {
            throw ExitError(
                EtcdctlExit.invalidInput,
                "prefix \(goQuoted(prefix)) has keys. Delete with 'etcdctl del --prefix \(prefix)' first")
        }
    }

    /// Puts keys of `keySize` random bytes under `prefix` with values of `valueSize` zero bytes,
    /// spread over `clients`, one put in flight per client at most.
    static func puts(
        _ clients: [EtcdClient], prefix: String, keySize: Int, valueSize: Int, pace: Pace,
        progress: CheckProgress?
    ) async -> Report {
        let value = Data(count: valueSize)
        let prefix = prefix.etcdData
        let clock = ContinuousClock()
        let start = clock.now
        var report = Report()
        await withTaskGroup(of: Result<Double, any Error>.self) { group in
            var inFlight = 0
            var sent = 0
            var nextSlot = start
            func record(_ result: Result<Double, any Error>) {
                inFlight -= 1
                switch result {
                case .success(let seconds): report.latencies.append(seconds)
                case .failure(let error):
                    let message = (error as? EtcdClientError).map(etcdctlMessage) ?? "\(error)"
                    report.errors[message, default: 0] += 1
                }
                if case .count = pace { progress?.advance(to: sent - inFlight) }
            }
            sending: while true {
                switch pace {
                case .count(let count):
                    guard sent < count else { break sending }
                case .perSecond(let rate, let duration):
                    // A limiter with a burst of 1: a late slot is not caught up on. Like Go's, it
                    // refuses a wait that would end past the deadline.
                    let slot = max(nextSlot, clock.now)
                    guard slot <= start + duration else { break sending }
                    try? await Task.sleep(until: slot, clock: clock)
                    nextSlot = slot + .seconds(1) / rate
                    progress?.advance(to: Int((clock.now - start).seconds))
                }
                if inFlight == clients.count, let result = await group.next() { record(result) }
                let client = clients[sent % clients.count]
                let key = prefix + Self.randomKey(size: keySize)
                group.addTask {
                    let begin = clock.now
                    do {
                        try await client.put(key, value: value)
                        return .success((clock.now - begin).seconds)
                    } catch {
                        return .failure(error)
                    }
                }
                inFlight += 1
                sent += 1
            }
            for await result in group { record(result) }
        }
        progress?.finish()
        report.elapsed = (clock.now - start).seconds
        return report
    }

    /// etcdctl's key body: Go's `binary.PutVarint` of a random non-negative Int64, zero-padded to `size`.
    static func randomKey(size: Int) -> Data {
        var key = Data(count: size)
        var value = UInt64(Int64.random(in: 0..<Int64.max)) << 1  // zig-zag of a non-negative number
        var index = 0
        while index < size {
            if value < 0x80 {
                key[index] = UInt8(value)
                break
            }
            key[index] = UInt8(value & 0x7f) | 0x80
            value >>= 7
            index += 1
        }
        return key
    }

    /// Deletes the check's keys, then compacts and defragments when asked, printing what etcdctl prints.
    static func cleanUp(
        _ client: EtcdClient, _ global: GlobalOptions, prefix: String, compact: Bool, defragment: Bool
    ) async throws {
        let deleted = try await withEtcdTimeout(.seconds(30)) { try await client.delete(prefix, options: .prefix) }
        if compact {
            let revision = deleted.header.revision
            Printer.line("Compacting with revision \(revision)")
            _ = try await withEtcdTimeout(.seconds(30)) { try await client.compact(revision, physical: true) }
            Printer.line("Compacted with revision \(revision)")
        }
        if defragment {
            for endpoint in global.endpoints {
                Printer.line("Defragmenting \(goQuoted(endpoint))")
                _ = try await withEtcdTimeout(.seconds(30)) { try await client.defragment(endpoint: endpoint) }
                Printer.line("Defragmented \(goQuoted(endpoint))")
            }
        }
    }

    /// Go's `%f`: six decimals.
    static func goFloat(_ value: Double) -> String { String(format: "%.6f", value) }
}

/// etcdctl's progress bar (`current / total Booom   ! percent`), on a terminal only: elsewhere it
/// would fill the output with carriage returns.
final class CheckProgress: Sendable {
    private let total: Int
    /// The step last drawn, and when.
    private let drawn = Mutex<(done: Int, at: ContinuousClock.Instant)?>(nil)

    /// A bar for `total` steps, or nil when standard output is not a terminal.
    init?(total: Int) {
        guard isatty(STDOUT_FILENO) == 1, total > 0 else { return nil }
        self.total = total
    }

    /// Shows `done` steps of the total: redrawn at most five times a second, and at the end.
    func advance(to done: Int) {
        let done = min(done, self.total)
        let now = ContinuousClock.now
        let due = self.drawn.withLock { drawn in
            if let drawn, drawn.done == done || (done < self.total && now - drawn.at < .milliseconds(200)) {
                return false
            }
            drawn = (done, now)
            return true
        }
        guard due else { return }
        let width = 50
        let filled = width * done / self.total
        let bar =
            String(repeating: "o", count: max(0, filled - 1)) + (filled > 0 ? "m" : "")
            + String(repeating: " ", count: width - filled)
        let percent = String(format: "%.2f", 100 * Double(done) / Double(self.total))
        Printer.write("\r\(done) / \(self.total) B\(bar)! \(percent)%")
    }

    /// Shows the bar full and ends its line.
    func finish() {
        self.advance(to: self.total)
        Printer.line("")
    }
}

extension Duration {
    /// The duration in seconds, with its fraction.
    fileprivate var seconds: Double {
        let (seconds, attoseconds) = self.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
