// SPDX-License-Identifier: Apache-2.0
import Etcd
import EtcdTesting
import Foundation
import Testing

/// What one etcdctl run printed and returned.
private struct Run: Equatable, CustomStringConvertible {
    var status: Int32
    var stdout: String
    /// The first line of standard error that is not a Go client log line (JSON).
    var error: String

    var description: String {
        "exit \(self.status), stdout \(self.stdout.debugDescription), error \(self.error.debugDescription)"
    }
}

/// Runs the same command lines through etcdctl-swift and the etcdctl beside the server under test,
/// against the same member, and compares exit codes, standard output (on success), and the `Error:` line.
@Suite("etcdctl compatibility", .serialized, .timeLimit(.minutes(3)))
struct EtcdctlCompatibilityTests {
    private static var swiftTool: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(
            "etcdctl-swift"
        ).path
    }

    private func run(_ tool: String, _ arguments: [String], stdin: String? = nil) async throws -> Run {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "etcdctl-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let out = folder.appendingPathComponent("out")
        let err = folder.appendingPathComponent("err")
        let input = folder.appendingPathComponent("in")
        FileManager.default.createFile(atPath: out.path, contents: nil)
        FileManager.default.createFile(atPath: err.path, contents: nil)
        FileManager.default.createFile(atPath: input.path, contents: Data((stdin ?? "").utf8))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        process.environment = ["ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"]
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        process.standardInput = try FileHandle(forReadingFrom: input)
        let exited = AsyncStream.makeStream(of: Int32.self)
        process.terminationHandler = { exited.continuation.yield($0.terminationStatus) }
        try process.run()
        let status = try await within(.seconds(30), "\(tool) \(arguments) to exit") {
            for await status in exited.stream { return status }
            return -1
        }
        let stdout = try String(contentsOf: out, encoding: .utf8)
        let stderr = try String(contentsOf: err, encoding: .utf8)
        let error = stderr.split(separator: "\n").first { !$0.hasPrefix("{") }.map(String.init) ?? ""
        return Run(status: status, stdout: stdout, error: error)
    }

    /// Runs `arguments` through both tools; `prepare` runs before each (to give both the same state).
    private func compare(
        _ cluster: EtcdTestCluster, _ arguments: [String], stdin: String? = nil,
        prepare: (() async throws -> Void)? = nil, mask: (String) -> String = { $0 }
    ) async throws {
        let reference = URL(fileURLWithPath: cluster.binary).deletingLastPathComponent().appendingPathComponent(
            "etcdctl"
        ).path
        try #require(FileManager.default.isExecutableFile(atPath: reference), "no etcdctl beside \(cluster.binary)")
        try #require(
            FileManager.default.isExecutableFile(atPath: Self.swiftTool),
            "etcdctl-swift is not built at \(Self.swiftTool)")
        try await prepare?()
        var expected = try await self.run(reference, arguments, stdin: stdin)
        try await prepare?()
        var actual = try await self.run(Self.swiftTool, arguments, stdin: stdin)
        expected.stdout = mask(expected.stdout)
        actual.stdout = mask(actual.stdout)
        if expected.status != 0 {
            // On errors etcdctl prints its usage text; scripts depend on the exit code and the Error line.
            expected.stdout = ""
            actual.stdout = ""
        }
        #expect(actual == expected, "etcdctl-swift \(arguments.joined(separator: " "))")
    }

    /// Revisions and raft terms differ between two runs that write; the rest must not.
    private static func maskRevisions(_ text: String) -> String {
        text.replacing(/"(revision|raft_term|create_revision|mod_revision)":\d+/) { "\"\($0.1)\":N" }
    }

    @Test("get, put and del: simple and JSON output, every get flag, global flags before or after the command")
    func keyValue() async throws {
        try await withEtcdTestCluster { cluster in
            let endpoint = ["--endpoints", cluster.members[0].clientEndpoint]
            try await withEtcdClient(cluster.clientConfiguration()) { client in
                for (key, value) in [("a", "1"), ("b", "2"), ("b/x", "3"), ("c", "4"), ("bin", "\u{1}\u{ff}")] {
                    try await client.put(key, value: value)
                }
                try await client.put("b", value: "2 again")
                let reads: [[String]] = [
                    ["get", "a"], ["get", "missing"], ["get", "b", "--prefix"], ["get", "b", "--from-key"],
                    ["get", "a", "c"], ["get", "", "--prefix"], ["get", "", "--from-key", "--limit", "2"],
                    ["get", "a", "--prefix", "--keys-only"], ["get", "b", "--print-value-only"],
                    ["get", "a", "z", "--order", "DESCEND", "--sort-by", "MODIFY"],
                    ["get", "a", "z", "--sort-by", "VALUE", "--order", "ascend"], ["get", "b", "--rev", "4"],
                    ["get", "b", "--consistency", "s"], ["get", "bin", "--hex"],
                    ["get", "b", "--prefix", "-w", "json"],
                    ["-w", "json", "get", "a", "z", "--limit", "1"], ["get", "missing", "-w", "json"],
                    // errors
                    ["get"], ["get", "a", "--prefix", "--from-key"], ["get", "a", "c", "--prefix"],
                    ["get", "a", "--consistency", "x"], ["get", "a", "--order", "up"],
                    ["get", "a", "--sort-by", "size"],
                    ["get", "a", "--print-value-only", "-w", "json"], ["get", "--bogus", "a"],
                    ["get", "a", "--rev", "1000"],
                ]
                for read in reads {
                    try await self.compare(cluster, endpoint + read)
                    try await self.compare(cluster, read + endpoint)
                }
                // Writes: each tool starts from the same state.
                let reset: @Sendable () async throws -> Void = {
                    _ = try await client.delete("w/", options: .prefix)
                    try await client.put("w/1", value: "one")
                    try await client.put("w/2", value: "two")
                }
                let writes: [[String]] = [
                    ["put", "w/1", "uno"], ["put", "w/1", "uno", "--prev-kv"],
                    ["put", "w/1", "--ignore-value", "--prev-kv"],
                    ["put", "w/3", "three", "-w", "json"], ["put", "w/1", "x", "--prev-kv", "-w", "json"],
                    ["del", "w/1"], ["del", "w/", "--prefix", "--prev-kv"], ["del", "w/1", "w/3"],
                    ["del", "w/", "--from-key"],
                    ["del", "w/", "--prefix", "--prev-kv", "-w", "json"], ["del", "nothing"],
                    // errors
                    ["put"], ["put", "", "v"], ["put", "w/1", "v", "--lease", "zz"],
                    ["put", "w/1", "v", "--lease", "1234"],
                    ["put", "w/9", "--ignore-value"], ["put", "w/1", "v", "--lease", "1", "--ignore-lease"], ["del"],
                    ["del", "w/", "--prefix", "--from-key"],
                ]
                for write in writes {
                    try await self.compare(cluster, endpoint + write, prepare: reset, mask: Self.maskRevisions)
                }
                try await self.compare(
                    cluster, endpoint + ["put", "w/stdin"], stdin: "from standard input", prepare: reset)
            }
            // Unreachable endpoint.
            try await self.compare(cluster, ["--endpoints", "127.0.0.1:1", "--dial-timeout", "1s", "get", "a"])
        }
    }
}
