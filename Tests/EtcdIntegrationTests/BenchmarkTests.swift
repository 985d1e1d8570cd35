// SPDX-License-Identifier: Apache-2.0
import Etcd
import EtcdTesting
import Foundation
import Testing

/// The benchmark's own correctness: it counts what it did, reads back what it wrote, and prints
/// peer-bench's JSON line. Timings are not checked (they belong in benchmarks/RESULTS.md).
@Suite("etcd-swift-bench", .timeLimit(.minutes(2)))
struct BenchmarkTests {
    /// The benchmark executable SwiftPM built beside the test bundle.
    private func benchmark() throws -> String {
        let folder = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        var candidates = [folder.appendingPathComponent("etcd-swift-bench").path]
        // The test bundle may sit inside a .xctest folder.
        candidates.append(folder.deletingLastPathComponent().appendingPathComponent("etcd-swift-bench").path)
        guard let path = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw EtcdTestingError("etcd-swift-bench was not built beside the tests (looked in \(candidates))")
        }
        return path
    }

    /// Runs the benchmark to its end (EtcdTestProcess waits for it on a thread of its own, not on
    /// one of Swift's cooperative threads).
    private func run(_ arguments: [String], environment: [String: String] = [:]) async throws -> (
        status: Int32, output: String
    ) {
        try await EtcdTestProcess.run(
            try self.benchmark(), arguments,
            environment: ProcessInfo.processInfo.environment.merging(environment) { $1 }, timeout: .seconds(60))
    }

    private func json(_ output: String) throws -> [String: Any] {
        let line = try #require(output.split(separator: "\n").last)
        return try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    }

    @Test(
        "each workload prints peer-bench's fields, counts its operations, and reads back a sample of its writes",
        arguments: ["", "ETCD_BENCH_CLIENT_EXECUTOR", "ETCD_BENCH_NIO_GLOBAL_EXECUTOR"])
    func workloads(mode: String) async throws {
        // Plain tasks, workers on their client's executor, or NIO's loops as the global executor. The
        // bench exits 2 when a worker does not run where its mode says (on an event loop, or off),
        // so a mode that did not take effect fails here.
        let environment = mode.isEmpty ? [:] : [mode: "1"]
        try await withEtcdTestCluster { cluster in
            let endpoint = cluster.clientEndpoints[0]
            let fields = [
                "client", "op", "total", "errors", "conns", "clients", "seconds", "ops_per_sec", "p50_ms", "p99_ms",
                "cpu_user_s", "cpu_sys_s", "cpu_us_per_op", "max_rss_kb",
            ]
            for (command, total) in [
                (["put", "--total", "200"], 200), (["range", "--total", "100", "--consistency", "s"], 100),
                (["txn", "--total", "100"], 100), (["lease", "--total", "50"], 50),
                (["watch", "--watchers", "2", "--total", "100"], 200),
            ] {
                let (status, output) = try await self.run(
                    ["--endpoints", endpoint, "--clients", "4"] + command, environment: environment)
                #expect(status == 0, "\(command[0]): \(output)")
                let result = try self.json(output)
                #expect(Set(result.keys) == Set(fields), "\(command[0])")
                #expect(result["client"] as? String == "swift-etcd")
                #expect(result["op"] as? String == command[0])
                #expect(result["total"] as? Int == total, "\(command[0])")
                #expect(result["errors"] as? Int == 0, "\(command[0])")
            }
            // The put workload's keys are there with its value.
            let keys = try await cluster.etcdctl(["get", "--prefix", "--keys-only", "0"])
            #expect(!keys.isEmpty)
        }
    }

    @Test(
        "watch: puts the server refuses (its space quota is full) count as errors, and the run still ends with the latencies of the keys every watcher received"
    )
    func watchWithFailedPuts() async throws {
        // 256 KiB of space holds a few hundred of the 1 KiB values; etcd refuses the rest (NOSPACE),
        // so the watchers never see those keys.
        let test = EtcdTestCluster.Configuration(members: 1, extraArguments: ["--quota-backend-bytes", "262144"])
        try await withEtcdTestCluster(test) { cluster in
            let (status, output) = try await self.run([
                "--endpoints", cluster.clientEndpoints[0], "watch", "--watchers", "2", "--total", "1000", "--val-size",
                "1024",
            ])
            #expect(status == 0, "\(output)")
            let result = try self.json(output)
            #expect(result["total"] as? Int == 2000)
            let written = try await withEtcdClient(.init(endpoints: cluster.clientEndpoints)) { client in
                Int(try await client.get("watch-bench-", options: [.prefix, .countOnly]).count)
            }
            #expect(written > 0 && written < 1000, "\(written) keys written")
            // Every refused put is an error. (A put that failed for another reason, such as a
            // timeout on a loaded machine, may still have been written: it counts as an error too.)
            #expect((result["errors"] as? Int ?? 0) >= 1000 - written)
            #expect((result["p50_ms"] as? Double ?? 0) > 0)
        }
    }

    @Test(
        "watch: a watcher that goes silent while every put succeeds ends the run after the wait, its missed events counted as errors"
    )
    func watchWithSilentWatcher() async throws {
        try await withEtcdTestCluster { cluster in
            // The first of two watchers watches a prefix nobody writes: it never errs and never
            // receives. Before the wait was bounded for every run, this run never ended.
            let (status, output) = try await self.run(
                ["--endpoints", cluster.clientEndpoints[0], "watch", "--watchers", "2", "--total", "50"],
                environment: ["ETCD_BENCH_SILENT_WATCHERS": "1", "ETCD_BENCH_WATCH_WAIT": "2"])
            #expect(status == 0, "\(output)")
            let result = try self.json(output)
            #expect(result["total"] as? Int == 100)
            // Every put succeeded and reached the other watcher: the silent one's 50 are the errors.
            #expect(result["errors"] as? Int == 50, "\(output)")
            let written = try await withEtcdClient(.init(endpoints: cluster.clientEndpoints)) { client in
                Int(try await client.get("watch-bench-", options: [.prefix, .countOnly]).count)
            }
            #expect(written == 50)
        }
    }

    @Test("an unreachable server is counted as errors, not hidden; bad flags exit 2")
    func errors() async throws {
        // Nothing listens on port 1: every put fails after the dial timeout and is counted.
        let (status, output) = try await self.run([
            "--endpoints", "127.0.0.1:1", "--clients", "3", "put", "--total", "3",
        ])
        #expect(status == 0, "\(output)")
        #expect(try self.json(output)["errors"] as? Int == 3)
        let badFlag = try await self.run(["put", "--no-such-flag", "1"])
        #expect(badFlag.status == 2)
        #expect(badFlag.output.contains("flag provided but not defined"))
        for wait in ["soon", "-1", "1e300"] {
            let badWait = try await self.run(["watch"], environment: ["ETCD_BENCH_WATCH_WAIT": wait])
            #expect(badWait.status == 2, "\(wait)")
            #expect(badWait.output.contains("ETCD_BENCH_WATCH_WAIT must be seconds from 0 to 86400"), "\(wait)")
        }
    }
}
