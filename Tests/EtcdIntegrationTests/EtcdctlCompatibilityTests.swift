// SPDX-License-Identifier: Apache-2.0
import Etcd
import EtcdConcurrency
import EtcdTesting
import Foundation
import Testing

/// What one etcdctl run printed and returned.
private struct Run: Equatable, CustomStringConvertible {
    var status: Int32
    var stdout: String
    /// The `Error:` line of standard error, else its first line that is not a Go client log line (JSON).
    var error: String
    /// Standard error without Go's log lines (not compared; see ``normalised``).
    var messages = ""

    /// etcdctl 3.4 writes `endpoint health` lines to standard error, 3.5 to standard output: a run
    /// that printed nothing but messages counts as having printed them.
    var normalised: Run {
        guard self.stdout.isEmpty, !self.error.hasPrefix("Error:"), !self.messages.isEmpty else { return self }
        return Run(status: self.status, stdout: self.messages, error: "", messages: self.messages)
    }

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

    private func run(
        _ tool: String, _ arguments: [String], stdin: String? = nil, environment: [String: String] = [:],
        timeout: Duration = .seconds(30)
    ) async throws -> Run {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "etcdctl-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let out = folder.appendingPathComponent("out")
        let err = folder.appendingPathComponent("err")
        let input = folder.appendingPathComponent("in")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        _ = FileManager.default.createFile(atPath: input.path, contents: Data((stdin ?? "").utf8))
        let process = try EtcdTestProcess(
            tool, arguments, environment: ["ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"].merging(environment) { $1 },
            input: .file(input.path), output: .file(out.path), error: .file(err.path))
        guard let status = await process.waitForExit(timeout: timeout) else {
            process.send(SIGKILL)
            throw EtcdTestingError("\(tool) \(arguments) did not exit within \(timeout)")
        }
        let stdout = String(decoding: try Data(contentsOf: out), as: UTF8.self)
        let stderr = String(decoding: try Data(contentsOf: err), as: UTF8.self)
        return Run(status: status, stdout: stdout, error: Self.errorLine(stderr), messages: Self.messages(stderr))
    }

    /// The line of standard error that matters: `Error: ...`, else the first that is not a Go log line.
    private static func errorLine(_ stderr: String) -> String {
        let lines = stderr.split(separator: "\n").filter { !Self.isNoise($0) }
        let line = lines.first { $0.hasPrefix("Error:") } ?? lines.first { !$0.hasPrefix("{") }
        return line.map(String.init) ?? ""
    }

    /// Standard error's lines other than Go's log lines.
    private static func messages(_ stderr: String) -> String {
        stderr.split(separator: "\n").filter { !$0.hasPrefix("{") && !Self.isNoise($0) }.map { $0 + "\n" }.joined()
    }

    /// etcdctl's password prompt runs `stty`, which complains when standard input is not a terminal.
    private static func isNoise(_ line: Substring) -> Bool { line.hasPrefix("stty: ") }

    /// The etcdctl beside the server under test.
    private static func reference(_ cluster: EtcdTestCluster) throws -> String {
        let reference = URL(fileURLWithPath: cluster.binary).deletingLastPathComponent().appendingPathComponent(
            "etcdctl"
        ).path
        try #require(FileManager.default.isExecutableFile(atPath: reference), "no etcdctl beside \(cluster.binary)")
        try #require(
            FileManager.default.isExecutableFile(atPath: Self.swiftTool),
            "etcdctl-swift is not built at \(Self.swiftTool)")
        return reference
    }

    /// Runs `arguments` through both tools; `prepare` runs before each (to give both the same state).
    private func compare(
        _ cluster: EtcdTestCluster, _ arguments: [String], stdin: String? = nil, environment: [String: String] = [:],
        timeout: Duration = .seconds(30), prepare: (() async throws -> Void)? = nil, mask: (String) -> String = { $0 },
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let reference = try Self.reference(cluster)
        try await prepare?()
        let expected = try await self.run(
            reference, arguments, stdin: stdin, environment: environment, timeout: timeout)
        try await prepare?()
        let actual = try await self.run(
            Self.swiftTool, arguments, stdin: stdin, environment: environment, timeout: timeout)
        Self.expectSame(expected, actual, arguments, mask: mask, sourceLocation: sourceLocation)
    }

    /// Compares two runs: exit code, the Error line, and standard output on success (masked).
    private static func expectSame(
        _ expected: Run, _ actual: Run, _ arguments: [String], mask: (String) -> String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        var (expected, actual) = (expected.normalised, actual.normalised)
        expected.messages = ""
        actual.messages = ""
        expected.stdout = mask(expected.stdout)
        actual.stdout = mask(actual.stdout)
        expected.error = mask(expected.error)
        actual.error = mask(actual.error)
        if expected.status != 0 {
            // On errors etcdctl prints its usage text; scripts depend on the exit code and the Error line.
            expected.stdout = ""
            actual.stdout = ""
        }
        #expect(actual == expected, "etcdctl-swift \(arguments.joined(separator: " "))", sourceLocation: sourceLocation)
    }

    /// Starts `arguments` in the background with `input` on its standard input, waits until its
    /// output satisfies `ready` (at most 20 seconds), runs `then`, closes its standard input, sends
    /// SIGINT unless `interrupt` is false, and returns what it printed.
    private func stream(
        _ tool: String, _ arguments: [String], input: String? = nil, interrupt: Bool = true,
        ready: @escaping @Sendable (String) -> Bool, then: (() async throws -> Void)? = nil
    ) async throws -> Run {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "etcdctl-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let out = folder.appendingPathComponent("out")
        let err = folder.appendingPathComponent("err")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        let process = try EtcdTestProcess(
            tool, arguments, environment: ["ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"],
            input: input == nil ? .null : .pipe, output: .file(out.path), error: .file(err.path))
        defer { process.send(SIGKILL) }
        if let input { try process.writeInput(Array(input.utf8)) }
        // The output file is the only channel: read it until it shows what we wait for.
        try await within(.seconds(20), "\(tool) \(arguments) to print what is expected") {
            while !ready((try? String(contentsOf: out, encoding: .utf8)) ?? "") {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        try await then?()
        process.closeInput()
        if interrupt { process.send(SIGINT) }
        guard let status = await process.waitForExit(timeout: .seconds(20)) else {
            throw EtcdTestingError("\(tool) \(arguments) did not exit within 20 s")
        }
        let stdout = String(decoding: try Data(contentsOf: out), as: UTF8.self)
        let stderr = String(decoding: try Data(contentsOf: err), as: UTF8.self)
        return Run(status: status, stdout: stdout, error: Self.errorLine(stderr), messages: Self.messages(stderr))
    }

    /// Runs a long-running command through both tools with ``stream(_:_:input:interrupt:ready:then:)``.
    private func compareStream(
        _ cluster: EtcdTestCluster, _ arguments: [String], interrupt: Bool = true,
        ready: @escaping @Sendable (String) -> Bool, prepare: (() async throws -> Void)? = nil,
        then: (() async throws -> Void)? = nil, mask: (String) -> String = { $0 },
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let reference = try Self.reference(cluster)
        try await prepare?()
        let expected = try await self.stream(reference, arguments, interrupt: interrupt, ready: ready, then: then)
        try await prepare?()
        let actual = try await self.stream(Self.swiftTool, arguments, interrupt: interrupt, ready: ready, then: then)
        Self.expectSame(expected, actual, arguments, mask: mask, sourceLocation: sourceLocation)
    }

    /// ``maskNumbers(_:)``, and lines and list items sorted: for output in the server's map order
    /// (the keys of a lease).
    private static func maskOrder(_ text: String) -> String {
        Self.maskNumbers(text).split(separator: "\n").map { line in
            line.replacing(/\[([^\[\]]*)\]/) { match in
                let separator: Character = match.1.contains(",") ? "," : " "
                return "[" + match.1.split(separator: separator).sorted().joined(separator: String(separator)) + "]"
            }
        }.sorted().joined(separator: "\n")
    }

    /// The number of lines in `text`.
    private static func lines(_ count: Int) -> @Sendable (String) -> Bool {
        { text in text.split(separator: "\n", omittingEmptySubsequences: false).count > count }
    }

    /// Every number replaced (for output with IDs, times, indexes and sizes that differ between runs).
    private static func maskNumbers(_ text: String) -> String {
        text.replacing(/[0-9a-f]{12,16}/) { _ in "H" }.replacing(/[0-9]+(\.[0-9]+)?/) { _ in "N" }
            .replacing(/N(µs|ms|ns)/) { _ in "Ns" }  // durations
            .replacing(/"key":"[^"]*"/) { _ in "\"key\":K" }  // keys named after lease IDs
            .replacing(/\ +/) { _ in " " }.replacing(/-+/) { _ in "-" }  // table columns sized by those numbers
    }

    /// Revisions and raft terms differ between two runs that write; the rest must not.
    private static func maskRevisions(_ text: String) -> String {
        text.replacing(/"(revision|raft_term|create_revision|mod_revision)":\d+/) { "\"\($0.1)\":N" }
            .replacing(/"((Prev)?(Revision|RaftTerm|CreateRevision|ModRevision))" : \d+/) { "\"\($0.1)\" : N" }
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
                    ["get", "b", "--prefix", "-w", "fields"], ["get", "bin", "-w", "fields"],
                    ["get", "a", "-w", "table"],
                    // errors
                    ["get"], ["get", "a", "--prefix", "--from-key"], ["get", "a", "c", "--prefix"],
                    ["get", "a", "--consistency", "x"], ["get", "a", "--order", "up"],
                    ["get", "a", "--sort-by", "size"],
                    ["get", "a", "--print-value-only", "-w", "json"], ["get", "--bogus", "a"], ["bogus", "a"],
                    ["get", "a", "--rev", "1000"],
                    // pflag's forms: a boolean flag's value, an empty value
                    ["get", "b", "--prefix=true"], ["get", "b", "--prefix=false"],
                    ["get", "b", "--prefix=T", "--keys-only=1"], ["get", "--limit=1", "b", "--from-key=t"],
                    ["get", "b", "--prefix=TrUe"], ["get", "b", "--prefix="], ["get", "--limit=", "b"],
                    ["get", "b", "--consistency="],
                    // what etcdctl sends and etcd accepts, which the client refuses as mistakes
                    ["get", "b", "--limit", "-1"], ["get", "b", "--prefix", "--limit", "-1"],
                    ["get", "b", "--sort-by=VALUE"],
                    ["get", "b", "--order", "descend"], ["get", "b", "a"], ["get", "b", "a", "-w", "json"],
                    ["get", "b", "b", "-w", "fields"], ["get", "b", "a", "--rev", "1000"], ["get", "b", ""],
                    // flag values that look like flags; a shorthand flag without its value, or with it attached
                    ["get", "b", "--limit", "--prefix"], ["get", "a", "-w"], ["get", "a", "-wjson"],
                    ["get", "a", "-w=json"],
                    ["get", "a", "-prefix"], ["get", "a", "---prefix"], ["get", "a", "-pw", "json"],
                ]
                for read in reads {
                    try await self.compare(cluster, endpoint + read)
                    try await self.compare(cluster, read + endpoint)
                }
                if !cluster.serverVersion.hasPrefix("3.4") {  // --count-only is etcdctl 3.5's
                    for read in [
                        ["get", "b", "--count-only"], ["get", "b", "--count-only", "--keys-only"],
                        ["get", "b", "--prefix", "--count-only", "-w", "fields"],
                    ] {
                        try await self.compare(cluster, endpoint + read)
                    }
                }
                // TLS (here to a plaintext server) when --insecure-transport is false.
                try await self.compare(cluster, endpoint + ["--insecure-transport=false", "get", "a"])
                try await self.compare(cluster, endpoint + ["--insecure-transport=maybe", "get", "a"])
                // An empty ETCDCTL_* variable is not applied, but still conflicts with its flag.
                try await self.compare(cluster, endpoint + ["get", "a"], environment: ["ETCDCTL_ENDPOINTS": ""])
                if !cluster.serverVersion.hasPrefix("3.4") {  // 3.4 also warns of it, as "unrecognized"
                    try await self.compare(cluster, endpoint + ["get", "a"], environment: ["ETCDCTL_WRITE_OUT": ""])
                }
                // DNS SRV discovery is refused, not ignored (etcdctl would look the domain up).
                let discovery = try await self.run(
                    Self.swiftTool, endpoint + ["--discovery-srv", "example.com", "get", "a"])
                #expect(discovery.status == 4)
                #expect(
                    discovery.error
                        == "Error: DNS SRV discovery (--discovery-srv) is not supported by etcdctl-swift; list the members with --endpoints"
                )
                // Help, in ArgumentParser's words (cobra's differ): the command's own, exit code 0.
                for (arguments, usage) in [
                    (["get", "--help"], "etcdctl-swift get "), (["get", "-h"], "etcdctl-swift get "),
                    (["help", "get"], "etcdctl-swift get "), (["user", "add", "--help"], "etcdctl-swift user add "),
                    (["snapshot"], "etcdctl-swift snapshot <subcommand>"), (["--help"], "etcdctl-swift <subcommand>"),
                ] {
                    let help = try await self.run(Self.swiftTool, arguments)
                    #expect(help.status == 0 && help.stdout.contains("USAGE: " + usage), "\(arguments): \(help.stdout)")
                }
                // gRPC-Go reads a dial timeout of 0 as none.
                try await self.compare(cluster, endpoint + ["--dial-timeout=0", "get", "a"])
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
                    ["put", "w/1", "x", "--prev-kv", "-w", "fields"],
                    ["del", "w/", "--prefix", "--prev-kv", "-w", "fields"],
                    ["put", "w/1", "x", "-w", "table"],
                    // errors
                    ["put"], ["put", "", "v"], ["put", "w/1", "v", "--lease", "zz"],
                    ["put", "w/1", "v", "--lease", "1234"],
                    ["put", "w/9", "--ignore-value"], ["put", "w/1", "v", "--lease", "1", "--ignore-lease"], ["del"],
                    ["del", "w/", "--prefix", "--from-key"],
                    ["put", "w/1", "v", "--prev-kv=true"], ["del", "w/", "--prefix=false"],
                    ["put", "w/1", "v", "--lease="], ["del", "w/1", "w/3", "w/4"],
                    // an empty range (the end not after the key), sent by etcdctl, refused by the client;
                    // an empty end, which etcd reads as none
                    ["del", "w/2", "w/1"], ["del", "w/1", "w/1", "-w", "json"], ["del", "w/2", "w/1", "-w", "fields"],
                    ["del", "w/1", ""],
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

    @Test("txn from standard input and interactive; compaction")
    func txnAndCompaction() async throws {
        try await withEtcdTestCluster { cluster in
            let endpoint = ["--endpoints", cluster.members[0].clientEndpoint]
            try await withEtcdClient(cluster.clientConfiguration()) { client in
                let reset: @Sendable () async throws -> Void = {
                    _ = try await client.delete("t/", options: .prefix)
                    try await client.put("t/a", value: "1")
                    try await client.put("t/b", value: "2")
                }
                let inputs: [(String, [String])] = [
                    ("value(\"t/a\") = \"1\"\n\nput t/c 3\nget t/ --prefix\ndel t/b\n\nget t/a\n\n", ["txn"]),
                    (
                        "value(\"t/a\") != \"1\"\nmod(\"t/a\") > \"0\"\n\nput t/c 3\n\nget t/ --prefix --keys-only\n\n",
                        ["txn"]
                    ),
                    (
                        "ver(\"t/a\") = \"1\"\nc(\"t/b\") < \"1000\"\n\nput t/c 3 --prev-kv\ndel t/ --prefix --prev-kv\n\n\n",
                        ["txn", "-w", "json"]
                    ),
                    ("create(\"t/z\") = \"0\"\n\nget t/a\n\nget t/b\n\n", ["txn", "-w", "fields"]),
                    ("value(\"t/a\") = \"1\"\n\nput t/d \"with space\"\n\n\n", ["txn", "--interactive"]),
                    ("value(\"t/a\") = \"1\"\n\nget t/a\n\n\n", ["txn", "-i", "-w", "table"]),
                    ("value(\"t/a\") = \"1\"\n\nget t/a\n\n\n", ["txn", "--interactive=false"]),
                    // a command's shorthand combined with a global one
                    ("value(\"t/a\") = \"1\"\n\nget t/a\n\n\n", ["txn", "-iw", "table"]),
                    ("value(\"t/a\") = \"1\"\n\nget t/a\n\n\n", ["txn", "-iwfields"]),
                    // pflag's forms in requests
                    ("\nget t/ --prefix=true --keys-only=f\nput t/e 5 --lease=\n\n", ["txn"]),
                    ("\nget t/ --prefix=yes\n\n\n", ["txn"]), ("\ndel t/ --prefix=true --prev-kv=1\n\n\n", ["txn"]),
                    // errors
                    ("bad\n", ["txn"]), ("value(\"t/a\")=\"1\"\n\n\n\n", ["txn"]),
                    ("zz(\"t/a\") = \"1\"\n\n\n\n", ["txn"]), ("ver(\"t/a\") = \"x\"\n\n\n\n", ["txn"]),
                    ("value(\"t/a\") = \"1\"\n\nbogus t/a\n\n\n", ["txn"]), ("\nget\n\n\n", ["txn"]),
                    ("\nput t/a\n\n\n", ["txn"]), ("\nget t/a --bogus\n\n\n", ["txn"]),
                    ("value(\"t/a\") = \"1\"\n", ["txn"]), ("", ["txn"]), ("\n\n\n", ["txn", "extra"]),
                    ("\n\n\n", ["txn", "--interactive=maybe"]),
                ]
                for (input, arguments) in inputs {
                    try await self.compare(
                        cluster, endpoint + arguments, stdin: input, prepare: reset, mask: Self.maskRevisions)
                }
                // Each tool compacts at a revision of its own; the output names it.
                let reference = try Self.reference(cluster)
                for physical in [[], ["--physical"]] {
                    let first = try await client.put("t/compact", value: "1").header.revision
                    let expected = try await self.run(reference, endpoint + ["compaction", "\(first)"] + physical)
                    let second = try await client.put("t/compact", value: "2").header.revision
                    let actual = try await self.run(Self.swiftTool, endpoint + ["compaction", "\(second)"] + physical)
                    Self.expectSame(expected, actual, ["compaction"] + physical, mask: Self.maskNumbers)
                }
                for arguments in [
                    ["compaction", "1"], ["compaction", "100000"], ["compaction"], ["compaction", "x"],
                ] {
                    try await self.compare(cluster, endpoint + arguments)
                }
            }
        }
    }

    @Test("lease grant, revoke, timetolive, list, keep-alive (once and until revoked)")
    func leases() async throws {
        try await withEtcdTestCluster { cluster in
            let endpoint = ["--endpoints", cluster.members[0].clientEndpoint]
            try await withEtcdClient(cluster.clientConfiguration()) { client in
                let lease = try await client.grant(ttl: 100)
                let hex = String(lease.id, radix: 16)
                try await client.put("l/1", value: "x", options: .lease(lease.id))
                try await client.put("l/2", value: "y", options: .lease(lease.id))
                // Lease IDs, remaining TTLs and revisions differ from run to run.
                for arguments: [String] in [
                    ["lease", "grant", "100"], ["lease", "grant", "100", "-w", "json"],
                    ["lease", "grant", "100", "-w", "fields"], ["lease", "timetolive", hex],
                    ["lease", "timetolive", hex, "--keys"], ["lease", "timetolive", hex, "--keys", "-w", "json"],
                    ["lease", "timetolive", hex, "--keys", "-w", "fields"], ["lease", "list"],
                    ["lease", "list", "-w", "json"], ["lease", "keep-alive", "--once", hex],
                    ["lease", "keep-alive", "--once", hex, "-w", "json"],
                    ["lease", "timetolive", "123"], ["lease", "timetolive", "123", "-w", "json"],
                    // errors
                    ["lease", "grant"], ["lease", "grant", "x"], ["lease", "revoke", "zz"], ["lease", "revoke", "123"],
                    ["lease", "revoke"], ["lease", "timetolive"], ["lease", "keep-alive", "--once", "123"],
                    ["lease", "keep-alive"], ["lease", "grant", "100", "-w", "table"],
                    // etcd grants its minimum TTL for a negative one
                    ["lease", "grant", "--", "-5"],
                ] {
                    try await self.compare(cluster, endpoint + arguments, mask: Self.maskOrder)
                }
                // Revoke: each tool revokes a lease of its own.
                let reference = try Self.reference(cluster)
                let first = try await client.grant(ttl: 100).id
                let expected = try await self.run(reference, endpoint + ["lease", "revoke", String(first, radix: 16)])
                let second = try await client.grant(ttl: 100).id
                let actual = try await self.run(
                    Self.swiftTool, endpoint + ["lease", "revoke", String(second, radix: 16)])
                Self.expectSame(expected, actual, ["lease", "revoke"], mask: Self.maskNumbers)
                // keep-alive until the lease is revoked: a line per renewal, then "expired or revoked".
                for format in [[], ["-w", "json"]] {
                    let reference = try Self.reference(cluster)
                    var runs: [Run] = []
                    for tool in [reference, Self.swiftTool] {
                        let id = try await client.grant(ttl: 3).id
                        runs.append(
                            try await self.stream(
                                tool, endpoint + format + ["lease", "keep-alive", String(id, radix: 16)],
                                interrupt: false, ready: { $0.contains("TTL") },
                                then: { _ = try await client.revoke(id) }))
                    }
                    // The number of renewals before the revoke depends on timing: compare the first and last lines.
                    let shape: (String) -> String = { text in
                        let lines = text.split(separator: "\n")
                        return Self.maskNumbers(
                            [lines.first, lines.count > 1 ? lines.last : nil].compactMap { $0 }.joined(separator: "\n"))
                    }
                    Self.expectSame(runs[0], runs[1], ["lease", "keep-alive"] + format, mask: shape)
                }
            }
        }
    }

    @Test("member, endpoint, alarm, defrag, snapshot save and move-leader on a three-member cluster")
    func cluster() async throws {
        try await withEtcdTestCluster(.init(members: 3)) { cluster in
            let all = ["--endpoints", cluster.clientEndpoints.joined(separator: ",")]
            let one = ["--endpoints", cluster.members[0].clientEndpoint]
            try await withEtcdClient(cluster.clientConfiguration()) { client in
                let memberID = try await client.status(endpoint: cluster.members[0].clientEndpoint).header.memberID
                // Times, indexes and revisions differ between runs; the shape and the rest must not.
                for arguments: [String] in [
                    ["member", "list"], ["member", "list", "-w", "json"], ["member", "list", "-w", "fields"],
                    ["member", "list", "-w", "table"], ["endpoint", "status"], ["endpoint", "status", "-w", "json"],
                    ["endpoint", "status", "-w", "table"], ["endpoint", "status", "-w", "fields"],
                    ["endpoint", "status", "--cluster"], ["endpoint", "hashkv"], ["endpoint", "hashkv", "-w", "json"],
                    ["endpoint", "hashkv", "--cluster", "-w", "table"], ["endpoint", "hashkv", "-w", "fields"],
                    ["endpoint", "health"], ["endpoint", "health", "-w", "json"],
                    ["endpoint", "health", "-w", "table"],
                    ["endpoint", "health", "--cluster", "-w", "fields"], ["alarm", "list"],
                    ["alarm", "list", "-w", "json"],
                    ["alarm", "disarm"], ["alarm", "disarm", "-w", "json"],
                    ["defrag"], ["defrag", "--cluster"],
                    // errors
                    ["member", "add"], ["member", "add", "m4"], ["member", "add", "m4", "http://127.0.0.1:1"],
                    ["member", "add", "m4", "--peer-urls", "bogus"], ["member", "remove"], ["member", "remove", "zz"],
                    ["member", "remove", "1234"], ["member", "update", "1234", "--peer-urls", "http://127.0.0.1:1"],
                    ["member", "update", "1234"], ["member", "promote", "1234"],
                    ["member", "promote", String(memberID, radix: 16)],
                    ["alarm", "list", "x"], ["move-leader"], ["move-leader", "zz"], ["snapshot", "save"],
                    // arguments etcdctl ignores
                    ["member", "list", "x"], ["lease", "list", "x"], ["endpoint", "status", "x"],
                    ["endpoint", "health", "x"], ["endpoint", "hashkv", "x"], ["defrag", "x"],
                ] {
                    try await self.compare(cluster, all + arguments, mask: Self.maskNumbers)
                }
                if !cluster.serverVersion.hasPrefix("3.4") {  // 3.4 ignores --hex in JSON
                    try await self.compare(
                        cluster, all + ["member", "list", "-w", "json", "--hex"], mask: Self.maskNumbers)
                }
                // An unreachable endpoint.
                let unreachable = ["--endpoints", "127.0.0.1:1", "--dial-timeout", "1s", "--command-timeout", "1s"]
                for arguments in [
                    ["endpoint", "health"], ["endpoint", "status"], ["endpoint", "hashkv"], ["defrag"],
                ] {
                    try await self.compare(cluster, unreachable + arguments, mask: Self.maskNumbers)
                }
                // --endpoints given more than once: the lists add up (etcdctl's string slice flag).
                let endpoints = cluster.clientEndpoints
                try await self.compare(
                    cluster,
                    ["--endpoints", endpoints[0], "--endpoints=\(endpoints[1]),\(endpoints[2])", "endpoint", "status"],
                    mask: Self.maskNumbers)

                // member add (as learner): each tool adds a member of its own, removed again afterwards.
                let removeLearners: @Sendable () async throws -> Void = {
                    // Linearizable where the server can (3.5): a follower's list may still show a removed member.
                    let list = try await { () async throws -> EtcdMemberListResponse in
                        do { return try await client.memberList(linearizable: true) } catch let error
                            as EtcdClientError where error.code == .notSupported
                        { return try await client.memberList() }
                    }()
                    for member in list.members where member.isLearner || member.name.isEmpty {
                        _ = try await client.memberRemove(member.id)
                    }
                    // Every member must have applied the removal before the next add (or it answers
                    // "member not found"): read each one's own list until it has.
                    for endpoint in cluster.clientEndpoints {
                        var configuration = cluster.clientConfiguration()
                        configuration.endpoints = [endpoint]
                        try await withEtcdClient(configuration) { single in
                            try await within(.seconds(10), "\(endpoint) to apply the removal") {
                                while try await single.memberList().members.contains(where: \.isLearner) {
                                    try await Task.sleep(for: .milliseconds(20))
                                }
                            }
                        }
                    }
                }
                // etcd derives a new member's ID from its peer URLs and the current second, and refuses
                // an ID it removed: every add here uses a peer URL of its own.
                let reference = try Self.reference(cluster)
                var port = 10
                func nextPeer() -> String {
                    port += 1
                    return "http://127.0.0.1:\(port)"
                }
                for format in [[], ["-w", "json"]] {
                    var runs: [Run] = []
                    for tool in [reference, Self.swiftTool] {
                        try await removeLearners()
                        runs.append(
                            try await self.run(
                                tool, all + format + ["member", "add", "m4", "--learner", "--peer-urls", nextPeer()]))
                    }
                    // Members come sorted by ID, and the new one's ID is random: its place in the list is too.
                    Self.expectSame(
                        runs[0], runs[1], ["member", "add"] + format,
                        mask: { Self.maskNumbers($0).replacing(/,"members":\[.*\]/) { _ in "" } })
                }
                // update, promote and remove of a learner.
                for command in [["update", "--peer-urls", "http://127.0.0.1:9"], ["promote"], ["remove"]] {
                    var runs: [Run] = []
                    for tool in [reference, Self.swiftTool] {
                        try await removeLearners()
                        let added = try await client.memberAdd(peerURLs: [nextPeer()], isLearner: true).added
                        let id = String(try #require(added).id, radix: 16)
                        runs.append(try await self.run(tool, all + ["member", command[0], id] + command.dropFirst()))
                    }
                    Self.expectSame(runs[0], runs[1], ["member"] + command, mask: Self.maskNumbers)
                }
                try await removeLearners()

                // snapshot save to the same path (removed in between); multiple endpoints are refused.
                let path = cluster.directory + "/etcdctl.db"
                try await self.compare(
                    cluster, one + ["snapshot", "save", path],
                    prepare: { try? FileManager.default.removeItem(atPath: path) })
                try await self.compare(cluster, all + ["snapshot", "save", path])
                try await self.compare(cluster, one + ["snapshot", "save", cluster.directory + "/missing/etcdctl.db"])
                let folder = cluster.directory + "/kept"
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false)
                try await self.compare(cluster, one + ["snapshot", "save", folder])
                #expect(try FileManager.default.contentsOfDirectory(atPath: folder).isEmpty)
                let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
                #expect(mode == 0o600, "etcdctl-swift's snapshot mode \(String(mode ?? 0, radix: 8))")

                // move-leader: each tool moves leadership to the next member; the endpoints must include the leader.
                for _ in 0..<2 {
                    let leader = try await cluster.leaderIndex()
                    let target = cluster.members[(leader + 1) % 3]
                    let targetID = try await client.status(endpoint: target.clientEndpoint).header.memberID
                    try await self.compare(
                        cluster, all + ["move-leader", String(targetID, radix: 16)],
                        prepare: {
                            // Leadership back on `leader` before each tool's run.
                            let current = try await cluster.leaderIndex()
                            if current != leader {
                                let leaderID = try await client.status(endpoint: cluster.members[leader].clientEndpoint)
                                    .header.memberID
                                try await client.moveLeader(to: leaderID)
                            }
                        }, mask: Self.maskNumbers)
                    let follower = cluster.members[((try await cluster.leaderIndex()) + 1) % 3]
                    try await self.compare(
                        cluster, ["--endpoints", follower.clientEndpoint, "move-leader", String(targetID, radix: 16)],
                        mask: Self.maskNumbers)
                }
            }
        }
    }

    @Test("alarm list and disarm with a NOSPACE alarm raised; endpoint health reports it")
    func alarms() async throws {
        try await withEtcdTestCluster(.init(extraArguments: ["--quota-backend-bytes", "\(1 << 20)"])) { cluster in
            let endpoint = ["--endpoints", cluster.members[0].clientEndpoint]
            try await withEtcdClient(cluster.clientConfiguration()) { client in
                let raise: @Sendable () async throws -> Void = {
                    let value = String(repeating: "x", count: 100_000)
                    for index in 0..<100 {
                        do {
                            try await client.put("big\(index % 4)", value: value)
                        } catch let error as EtcdClientError where error.code == .noSpace {
                            return
                        }
                    }
                }
                try await raise()
                // (etcd 3.4 answers an alarm list without a header: etcdctl 3.4 panics printing its fields.)
                for arguments in [["alarm", "list"], ["alarm", "list", "-w", "json"]] {
                    try await self.compare(cluster, endpoint + arguments, mask: Self.maskRevisions)
                }
                try await self.compare(cluster, endpoint + ["put", "more", "1"])
                for arguments in [["alarm", "disarm"], ["alarm", "disarm", "-w", "json"]] {
                    try await self.compare(cluster, endpoint + arguments, prepare: raise, mask: Self.maskRevisions)
                }
                // etcdctl 3.5 reports an active alarm as unhealthy (3.4's does not look): etcdctl-swift is 3.5's.
                if !cluster.serverVersion.hasPrefix("3.4") {
                    try await raise()
                    try await self.compare(
                        cluster, endpoint + ["endpoint", "health", "-w", "json"], mask: Self.maskNumbers)
                }
            }
        }
    }

    @Test("watch: history from a revision, prefix, prev-kv, JSON, the exec form, interactive, errors")
    func watch() async throws {
        try await withEtcdTestCluster { cluster in
            let endpoint = ["--endpoints", cluster.members[0].clientEndpoint]
            try await withEtcdClient(cluster.clientConfiguration()) { client in
                let start = try await client.put("w/a", value: "1").header.revision
                try await client.put("w/b", value: "2")
                try await client.put("w/a", value: "3")
                try await client.delete("w/b")
                let rev = ["--rev", "\(start)"]
                // Each run prints the history, then is interrupted.
                for (arguments, lines) in [
                    (["watch", "w/a"] + rev, 6), (["watch", "w/", "--prefix"] + rev, 12),
                    (["watch", "w/", "--prefix", "--prev-kv"] + rev, 16), (["watch", "w/a", "w/c"] + rev, 12),
                    (["watch", "w/", "--prefix", "-w", "json"] + rev, 1), (["watch", "w/a", "-w", "fields"] + rev, 18),
                    (["watch", "w/a", "--hex"] + rev, 6), (["-w", "json", "watch", "", "--prefix"] + rev, 1),
                ] {
                    try await self.compareStream(cluster, endpoint + arguments, ready: Self.lines(lines))
                }
                if !cluster.serverVersion.hasPrefix("3.4") {
                    try await self.compareStream(
                        cluster, endpoint + ["watch", "w/a", "--progress-notify"] + rev, ready: Self.lines(6))
                }
                // The exec form: a command per event, with the event in its environment.
                let script = "echo $ETCD_WATCH_REVISION $ETCD_WATCH_EVENT_TYPE $ETCD_WATCH_KEY $ETCD_WATCH_VALUE"
                try await self.compareStream(
                    cluster, endpoint + ["watch", "w/", "--prefix"] + rev + ["--", "sh", "-c", script],
                    ready: Self.lines(16))
                try await self.compare(cluster, endpoint + ["watch", "-i=maybe"])
                // Interactive: watch lines and a progress request, read from standard input.
                let reference = try Self.reference(cluster)
                var runs: [Run] = []
                for tool in [reference, Self.swiftTool] {
                    runs.append(
                        try await self.stream(
                            tool, endpoint + ["watch", "-i"], input: "watch w/a --rev \(start)\nbogus\n",
                            interrupt: false, ready: Self.lines(6)))
                }
                // (etcdctl 3.4 capitalises "Error reading watch request line", 3.5 does not.)
                Self.expectSame(runs[0], runs[1], ["watch", "-i"], mask: { $0.lowercased() })
                // A compacted start revision ends the watch (exit code 5).
                let compacted = try await client.put("w/c", value: "x").header.revision
                try await client.compact(compacted)
                try await self.compare(cluster, endpoint + ["watch", "w/a", "--rev", "\(start)"])
                // Errors.
                for arguments in [
                    ["watch"], ["watch", "w/a", "--"], ["watch", "w/a", "w/b", "--prefix"],
                    ["watch", "--bogus", "w/a"],
                    ["watch", "w/a", "--rev", "x"],
                ] {
                    try await self.compare(cluster, endpoint + arguments)
                }
                try await self.compare(cluster, endpoint + ["watch"], environment: ["ETCDCTL_WATCH_RANGE_END": "z"])
                try await self.compare(cluster, endpoint + ["watch", "w/a"], environment: ["ETCDCTL_WATCH_KEY": "w/a"])
            }
        }
    }

    @Test("lock and elect: held until interrupted, the exec form, observers, errors")
    func lockAndElect() async throws {
        try await withEtcdTestCluster { cluster in
            let endpoint = ["--endpoints", cluster.members[0].clientEndpoint]
            // The lock key names the session's lease: masked.
            try await self.compareStream(
                cluster, endpoint + ["lock", "l1"], ready: Self.lines(2), mask: Self.maskNumbers)
            try await self.compareStream(
                cluster, endpoint + ["lock", "l1", "--ttl", "5", "-w", "json"], ready: Self.lines(1),
                mask: Self.maskNumbers)
            try await self.compare(
                cluster, endpoint + ["lock", "l1", "--", "sh", "-c", "echo $ETCD_LOCK_KEY $ETCD_LOCK_REV"],
                mask: Self.maskNumbers)
            // (etcdctl 3.5 exits with the command's status, 3.4 with 1: status 1 reads the same in both.)
            try await self.compare(cluster, endpoint + ["lock", "l1", "--", "sh", "-c", "exit 1"])
            try await self.compare(cluster, endpoint + ["lock"])
            try await self.compare(cluster, endpoint + ["lock", "l1", "sh", "-c", "true"])
            try await self.compareStream(
                cluster, endpoint + ["elect", "e1", "proposal"], ready: Self.lines(2), mask: Self.maskNumbers)
            try await withEtcdClient(cluster.clientConfiguration()) { client in
                // An observer sees the current leader.
                let session = try await EtcdSession(client: client)
                let election = EtcdElection(session: session, name: "e2")
                try await election.campaign("leading")
                try await self.compareStream(
                    cluster, endpoint + ["elect", "-l", "e2"], ready: Self.lines(2), mask: Self.maskNumbers)
                try await election.resign()
                try await session.close()
            }
            for arguments in [
                ["elect"], ["elect", "e1"], ["elect", "-l", "e1", "p"], ["elect", "a", "b", "c"],
                ["elect", "-l=maybe"],
                ["elect", "--listen=maybe", "e1"],
                // concurrency.WithTTL ignores a TTL that is not positive
                ["lock", "--ttl", "-1", "l1", "sh", "-c", "true"], ["lock", "--ttl=0", "l1", "sh", "-c", "true"],
            ] {
                try await self.compare(cluster, endpoint + arguments)
            }
        }
    }

    @Test("auth, user and role: every command, permission denied, wrong password, the root role made by auth enable")
    func auth() async throws {
        try await withEtcdTestCluster { cluster in
            let endpoint = ["--endpoints", cluster.members[0].clientEndpoint]
            try await withEtcdClient(cluster.clientConfiguration()) { client in
                // The auth store before each run: user u (role r: read on a..b, readwrite on prefix p/), role empty.
                let fixture: @Sendable () async throws -> Void = {
                    for user in try await client.userList().users { try await client.userDelete(user) }
                    for role in try await client.roleList().roles { try await client.roleDelete(role) }
                    try await client.userAdd("u", password: "pw")
                    try await client.roleAdd("r")
                    try await client.roleAdd("empty")
                    try await client.roleGrantPermission("r", .init(.read, key: "a", rangeEnd: "b"))
                    try await client.roleGrantPermission("r", .prefix(.readwrite, "p/"))
                    try await client.roleGrantPermission("r", .fromKey(.write, "z"))
                    try await client.roleGrantPermission("r", .init(.read, key: "single"))
                    try await client.userGrantRole("u", role: "r")
                }
                let commands: [([String], String?)] = [
                    (["user", "add", "v:secret"], nil), (["user", "add", "v", "--new-user-password", "secret"], nil),
                    (["user", "add", "v", "--interactive=false"], "secret\n"),
                    (["user", "add", "v", "--no-password"], nil), (["user", "add", "v", "--no-password=true"], nil),
                    (["user", "add", "v", "--new-user-password=", "--interactive=false"], "secret\n"),
                    (["user", "add", "v:secret", "-w", "json"], nil),
                    (["user", "add", "v:secret", "-w", "fields"], nil),
                    (["user", "get", "u"], nil), (["user", "get", "u", "-w", "json"], nil),
                    (["user", "get", "u", "--detail"], nil),
                    (["user", "list"], nil), (["user", "list", "-w", "json"], nil),
                    (["user", "passwd", "u", "--interactive=false"], "new\n"),
                    (["user", "grant-role", "u", "empty"], nil),
                    (["user", "revoke-role", "u", "r"], nil), (["user", "delete", "u"], nil),
                    (["user", "delete", "u", "-w", "json"], nil),
                    (["role", "add", "s"], nil), (["role", "get", "r"], nil),
                    (["role", "get", "r", "-w", "json"], nil),
                    (["role", "get", "r", "-w", "fields"], nil), (["role", "list"], nil),
                    (["role", "list", "-w", "json"], nil),
                    (["role", "list", "-w", "fields"], nil), (["role", "delete", "empty"], nil),
                    (["role", "grant-permission", "empty", "read", "k"], nil),
                    (["role", "grant-permission", "empty", "readwrite", "k", "m"], nil),
                    (["role", "grant-permission", "empty", "WRITE", "k", "--prefix"], nil),
                    (["role", "grant-permission", "empty", "read", "k", "--from-key"], nil),
                    (["role", "grant-permission", "empty", "read", "", "--prefix"], nil),
                    (["role", "revoke-permission", "r", "a", "b"], nil),
                    (["role", "revoke-permission", "r", "p/", "--prefix"], nil),
                    (["role", "revoke-permission", "r", "z", "--from-key"], nil),
                    (["role", "revoke-permission", "r", "single"], nil),
                    (["auth", "enable"], nil), (["auth", "disable"], nil), (["user", "add", "v"], "same\nsame\n"),
                    (["user", "add", "v"], "one\nother\n"), (["user", "passwd", "u"], "new\nnew\n"),
                    // --interactive is a boolean flag that is true by default: bare, it takes no value.
                    (["user", "add", "v", "--interactive"], "same\nsame\n"),
                    (["user", "add", "--interactive", "v"], "same\nsame\n"),
                    (["user", "add", "v", "--interactive=false", "--interactive"], "same\nsame\n"),
                    (["user", "add", "v", "--interactive", "--interactive=false"], "secret\n"),
                    (["user", "passwd", "u", "--interactive"], "new\nnew\n"),
                    // errors
                    (["user", "add"], nil), (["user", "add", ":pw"], nil), (["user", "add", "u:pw"], nil),
                    (["user", "get", "nobody"], nil), (["user", "delete", "nobody"], nil),
                    (["user", "grant-role", "u"], nil),
                    (["user", "grant-role", "u", "nothing"], nil), (["user", "revoke-role", "u", "empty"], nil),
                    (["user", "passwd"], nil), (["user", "list", "x"], nil),
                    (["user", "get", "u", "-w", "fields"], nil),
                    (["role", "add"], nil), (["role", "add", "r"], nil), (["role", "get", "nothing"], nil),
                    (["role", "delete", "nothing"], nil), (["role", "grant-permission", "r", "read"], nil),
                    (["role", "grant-permission", "r", "execute", "k"], nil),
                    (["role", "grant-permission", "r", "read", "k", "m", "--prefix"], nil),
                    (["role", "grant-permission", "r", "read", "k", "--prefix", "--from-key"], nil),
                    (["role", "revoke-permission", "r"], nil), (["role", "revoke-permission", "r", "nothing"], nil),
                    (["auth", "enable", "x"], nil), (["user", "add", "v", "--interactive=maybe"], nil),
                    (["user", "add", "v", "--interactive", "false"], "secret\n"),
                ]
                for (arguments, input) in commands {
                    try await self.compare(
                        cluster, endpoint + arguments, stdin: input, prepare: fixture, mask: Self.maskRevisions)
                }
                // etcdctl-swift's own spelling of --interactive=false (its help lists it).
                try await fixture()
                let noInteractive = try await self.run(
                    Self.swiftTool, endpoint + ["user", "add", "w", "--no-interactive"], stdin: "secret\n")
                #expect(noInteractive.status == 0 && noInteractive.stdout == "User w created\n")
                // auth enable without a root user; then with one (the root role is created).
                try await fixture()
                try await self.compare(cluster, endpoint + ["auth", "enable"])
                try await client.userAdd("root", password: "rootpw")
                let root = endpoint + ["--user", "root:rootpw"]
                // Auth off and no root role before each run.
                let disable: @Sendable () async throws -> Void = {
                    var configuration = cluster.clientConfiguration()
                    configuration.authentication = .init(username: "root", password: "rootpw")
                    do {
                        _ = try await client.roleList()  // answers without a token only while auth is off
                    } catch {
                        try await withEtcdClient(configuration) { root in _ = try await root.authDisable() }
                    }
                    if try await client.roleList().roles.contains("root") { try await client.roleDelete("root") }
                }
                try await self.compare(cluster, endpoint + ["auth", "enable"], prepare: disable)
                // With auth on (as the last run left it): permission denied, a wrong password, the password given apart.
                var rootConfiguration = cluster.clientConfiguration()
                rootConfiguration.authentication = .init(username: "root", password: "rootpw")
                try await withEtcdClient(rootConfiguration) { root in _ = try await root.put("p/x", value: "1") }
                for arguments in [
                    ["--user", "u:pw", "get", "p/x"], ["--user", "u:pw", "put", "a", "1"],
                    ["--user", "u:wrong", "get", "p/x"], ["--user", "u", "--password", "pw", "get", "p/x"],
                    ["--user", "nobody:pw", "get", "a"], ["get", "p/x"], ["--user", "u:pw", "user", "list"],
                    ["--user", "u:pw", "endpoint", "health"],
                ] {
                    try await self.compare(cluster, endpoint + arguments, mask: Self.maskNumbers)
                }
                // --user without a password asks for it.
                try await self.compare(cluster, endpoint + ["--user", "u", "get", "p/x"], stdin: "pw\n")
                try await self.compare(cluster, endpoint + ["--user", "u", "get", "p/x"], stdin: "wrong\n")
                if !cluster.serverVersion.hasPrefix("3.4") {  // AuthStatus is etcd 3.5's
                    for arguments in [["auth", "status"], ["auth", "status", "-w", "json"]] {
                        try await self.compare(cluster, root + arguments, mask: Self.maskRevisions)
                    }
                }
                try await self.compare(cluster, root + ["auth", "disable"])
            }
        }
    }

    @Test(
        "make-mirror's etcdctl 3.6 flags: --max-txn-ops applies a source revision in parts a destination allowing fewer operations accepts, --rev follows from a revision without copying first; bad values are refused"
    )
    func makeMirrorMaxTxnOps() async throws {
        try await withEtcdTestCluster { source in
            try await withEtcdTestCluster(.init(extraArguments: ["--max-txn-ops", "2"])) { destination in
                try await withEtcdClient(source.clientConfiguration()) { client in
                    try await withEtcdClient(destination.clientConfiguration()) { target in
                        let endpoint = ["--endpoints", source.members[0].clientEndpoint]
                        let run = try await self.stream(
                            Self.swiftTool,
                            endpoint + ["make-mirror", "--max-txn-ops", "2", destination.members[0].clientEndpoint],
                            ready: { _ in true },
                            then: {
                                try await within(.seconds(20), "the mirror to copy a revision of three puts") {
                                    // Once the first key arrived, the mirror has read its base: the
                                    // transaction's revision comes to it as an update.
                                    try await client.put("m/first", value: "1")
                                    try await target.watch("m/", options: [.prefix, .revision(1)]) { responses in
                                        var seen = 0
                                        for try await response in responses {
                                            if seen == 0 {
                                                try await client.txn(
                                                    if: [],
                                                    then: [
                                                        .put("m/a", value: "a"), .put("m/b", value: "b"),
                                                        .put("m/c", value: "c"),
                                                    ])
                                            }
                                            seen += response.events.filter { $0.type == .put }.count
                                            if seen >= 4 { return }
                                        }
                                    }
                                }
                            })
                        #expect(run.stdout.isEmpty, "etcdctl-swift printed \(run.stdout)")
                        #expect(try await target.get("m/", options: .prefix).count == 4)
                        let refused = try await self.run(
                            Self.swiftTool, endpoint + ["make-mirror", "--max-txn-ops", "0", "127.0.0.1:1"])
                        #expect(refused.status == 128 && refused.error.contains("--max-txn-ops"), "\(refused)")

                        // --rev: from that revision on, with no copy first (which would bring m/first back).
                        try await target.delete("m/first")
                        let start = try await client.put("m/d", value: "d")
                        let resumed = try await self.stream(
                            Self.swiftTool,
                            endpoint + [
                                "make-mirror", "--rev", "\(start.header.revision)",
                                destination.members[0].clientEndpoint,
                            ],
                            ready: { _ in true },
                            then: {
                                try await within(.seconds(20), "the mirror to copy m/d and m/e") {
                                    try await client.put("m/e", value: "e")
                                    // Only the mirror writes m/e in the destination.
                                    try await target.watch("m/e", options: .revision(1)) { responses in
                                        for try await _ in responses { return }
                                    }
                                }
                            })
                        #expect(resumed.stdout.isEmpty, "etcdctl-swift printed \(resumed.stdout)")
                        let keys = try await target.get("m/", options: .prefix).kvs.map(\.keyString)
                        #expect(keys == ["m/a", "m/b", "m/c", "m/d", "m/e"])
                        let negative = try await self.run(
                            Self.swiftTool, endpoint + ["make-mirror", "--rev", "-1", "127.0.0.1:1"])
                        #expect(negative.status == 128 && negative.error.contains("--rev"), "\(negative)")
                    }
                }
            }
        }
    }

    @Test("make-mirror copies a prefix to another cluster until interrupted")
    func makeMirror() async throws {
        try await withEtcdTestCluster { source in
            try await withEtcdTestCluster { destination in
                try await withEtcdClient(source.clientConfiguration()) { client in
                    for index in 0..<5 { try await client.put("m/\(index)", value: "v\(index)") }
                }
                try await withEtcdClient(destination.clientConfiguration()) { target in
                    let endpoint = ["--endpoints", source.members[0].clientEndpoint]
                    let reference = try Self.reference(source)
                    for tool in [reference, Self.swiftTool] {
                        let cleared = try await target.delete("", options: .fromKey)
                        // The copy shows in the destination: watch it there, from after the previous tool's
                        // copy was deleted, until the five keys (renamed) arrived.
                        let run = try await self.stream(
                            tool,
                            endpoint + [
                                "make-mirror", "--prefix", "m/", "--dest-prefix", "copy/",
                                destination.members[0].clientEndpoint,
                            ],
                            ready: { _ in true },
                            then: {
                                try await within(.seconds(20), "the mirror to copy the keys") {
                                    let after = cleared.header.revision + 1
                                    try await target.watch("copy/", options: [.prefix, .revision(after)]) { responses in
                                        var seen = 0
                                        for try await response in responses {
                                            seen += response.events.filter { $0.type == .put }.count
                                            if seen >= 5 { return }
                                        }
                                    }
                                }
                            })
                        #expect(run.stdout.isEmpty, "\(tool) printed \(run.stdout)")
                        let copied = try await target.get("copy/", options: .prefix)
                        #expect(copied.kvs.map(\.valueString) == ["v0", "v1", "v2", "v3", "v4"], "\(tool)")
                    }
                    for arguments in [
                        ["make-mirror"], ["make-mirror", "a", "b"],
                        ["make-mirror", "--dest-prefix", "x", "--no-dest-prefix", "127.0.0.1:1"],
                        ["make-mirror", "--dest-insecure-transport=maybe", "x"],
                        ["make-mirror", "--dest-insecure-transport", "a", "b"],
                    ] {
                        try await self.compare(source, endpoint + arguments)
                    }
                }
            }
        }
    }

    @Test(
        "check datascale puts its model's keys, reports memory, compacts, defragments and deletes its keys; check perf and datascale refuse an unknown load and a prefix that holds keys"
    )
    func checkDatascale() async throws {
        try await withEtcdTestCluster { cluster in
            let endpoint = ["--endpoints", cluster.members[0].clientEndpoint]
            try await withEtcdClient(cluster.clientConfiguration()) { client in
                for command in ["perf", "datascale"] {
                    try await self.compare(cluster, endpoint + ["check", command, "--load", "huge"])
                    let prefix = "/etcdctl-check-\(command)/"
                    // etcdctl 3.4 prints the advice without quotes, 3.5 (and etcdctl-swift) with them.
                    try await self.compare(
                        cluster, endpoint + ["check", command],
                        prepare: { try await client.put(prefix + "left", value: "x") },
                        mask: { $0.replacingOccurrences(of: "'", with: "") })
                    let kept = try await client.get(prefix, options: .prefix)
                    #expect(kept.kvs.map(\.keyString) == [prefix + "left"], "a refused check deleted keys")
                    try await client.delete(prefix, options: .prefix)
                }
                try await client.put("outside", value: "kept")
                let before = try await client.get("outside").header.revision
                // etcdctl draws its progress bar whether or not its output is a terminal; etcdctl-swift
                // draws it only on one.
                try await self.compare(
                    cluster, endpoint + ["check", "datascale", "--auto-compact", "--auto-defrag"],
                    timeout: .seconds(120),
                    mask: { text in
                        // The memory grown can be negative (the second tool runs after the defragmentation).
                        Self.maskNumbers(
                            text.split(separator: "\n").filter { !$0.hasPrefix("\r") }.joined(separator: "\n")
                        )
                        .replacingOccurrences(of: ": -N MB", with: ": N MB")
                    })
                let after = try await client.get("outside")
                #expect(after.kvs.map(\.valueString) == ["kept"])
                // Each tool: 10,000 puts and one delete.
                #expect(after.header.revision - before == 2 * 10_001)
                let left = try await client.get("/etcdctl-check-datascale/", options: [.prefix, .countOnly])
                #expect(left.count == 0)
                let error = await etcdErrorCode { _ = try await client.get("outside", options: .revision(before)) }
                #expect(error?.code == .compacted, "--auto-compact did not compact")
            }
        }
    }

    @Test("check perf puts at 150 a second for 60 s over 50 clients, judges as etcdctl, compacts and deletes its keys")
    func checkPerf() async throws {
        // Only etcdctl-swift runs it: two runs of a minute each would not fit the time limit.
        try await withEtcdTestCluster { cluster in
            try await withEtcdClient(cluster.clientConfiguration()) { client in
                try await client.put("outside", value: "kept")
                let before = try await client.get("outside").header.revision
                let run = try await self.run(
                    Self.swiftTool,
                    ["--endpoints", cluster.members[0].clientEndpoint, "check", "perf", "--auto-compact"],
                    timeout: .seconds(120))
                let lines = run.stdout.split(separator: "\n").map(String.init)
                let after = try await client.get("outside")
                #expect(after.kvs.map(\.valueString) == ["kept"])
                let revision = after.header.revision
                #expect(lines.contains("Compacting with revision \(revision)"), "\(lines)")
                #expect(lines.contains("Compacted with revision \(revision)"), "\(lines)")
                #expect(!run.stdout.contains("too many errors"), "\(lines)")
                // The rate is a limit: at most 150 puts a second (etcdctl prints it rounded up), and
                // below 136 the check fails.
                let throughput = lines.first { $0.hasPrefix("PASS: Throughput is ") }.flatMap {
                    Int($0.dropFirst("PASS: Throughput is ".count).prefix { $0.isNumber })
                }
                #expect(throughput.map { (136...151).contains($0) } == true, "\(lines)")
                let puts = revision - before - 1  // the delete
                #expect((136 * 60...150 * 60 + 1).contains(puts), "\(puts) puts")
                // Latency depends on the machine's load: the verdict must match the lines printed.
                let slow = lines.contains {
                    $0.hasPrefix("Slowest request took too long") || $0.hasPrefix("Stddev too high")
                }
                #expect(lines.last == (slow ? "FAIL" : "PASS"), "\(lines)")
                #expect(run.status == (slow ? 1 : 0))
                let left = try await client.get("/etcdctl-check-perf/", options: [.prefix, .countOnly])
                #expect(left.count == 0)
                let error = await etcdErrorCode { _ = try await client.get("outside", options: .revision(before)) }
                #expect(error?.code == .compacted, "--auto-compact did not compact")
            }
        }
    }

    @Test("TLS flags and ETCDCTL_* variables: mutual TLS, skipped verification, a missing certificate")
    func tls() async throws {
        var configuration = EtcdTestCluster.Configuration()
        configuration.tls = .mutual
        try await withEtcdTestCluster(configuration) { cluster in
            let certificates = try #require(cluster.certificates)
            let endpoint = ["--endpoints", cluster.members[0].clientEndpoint]
            let client = ["--cert", certificates.clientCertificateFile, "--key", certificates.clientKeyFile]
            let quick = ["--dial-timeout", "1s", "--command-timeout", "2s"]
            try await withEtcdClient(cluster.clientConfiguration()) { etcd in try await etcd.put("a", value: "1") }
            for arguments in [
                endpoint + ["--cacert", certificates.caFile] + client + ["get", "a"],
                endpoint + ["--insecure-skip-tls-verify"] + client + ["get", "a", "-w", "json"],
                // errors: no client certificate; no TLS at all
                endpoint + ["--cacert", certificates.caFile] + quick + ["get", "a"],
                endpoint + ["--insecure-transport=false", "--cacert", certificates.caFile, "--cert"],
            ] {
                try await self.compare(cluster, arguments, mask: Self.maskRevisions)
            }
            let environment = [
                "ETCDCTL_ENDPOINTS": cluster.members[0].clientEndpoint, "ETCDCTL_CACERT": certificates.caFile,
                "ETCDCTL_CERT": certificates.clientCertificateFile, "ETCDCTL_KEY": certificates.clientKeyFile,
                "ETCDCTL_WRITE_OUT": "json",
            ]
            try await self.compare(cluster, ["get", "a"], environment: environment, mask: Self.maskRevisions)
            // A flag given twice, by variable and on the command line, is refused (etcdctl logs it, in
            // 3.4's log format or 3.5's JSON: the exit code is what compares).
            try await self.compare(
                cluster, ["get", "a", "-w", "simple"], environment: environment,
                mask: { $0.contains("pkg/flags") ? "" : $0 })
            for arguments in [
                ["get", "a", "-w", "xml"], ["get", "a", "--dial-timeout", "x"], ["--hex=maybe", "get", "a"],
            ] {
                try await self.compare(cluster, endpoint + arguments)
            }
            // check datascale reads /metrics over HTTPS with the TLS flags, --cacert included. Not
            // compared: etcdctl trusts only the system's roots there.
            let datascale = try await self.run(
                Self.swiftTool, endpoint + ["--cacert", certificates.caFile] + client + ["check", "datascale"],
                timeout: .seconds(120))
            #expect(datascale.status == 0, "\(datascale)")
            #expect(datascale.stdout.contains("PASS: Approximate system memory used : "), "\(datascale)")
        }
    }
}
