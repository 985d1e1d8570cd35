// SPDX-License-Identifier: Apache-2.0
import Etcd
import Foundation
import Testing

@testable import EtcdTesting

@Suite("EtcdTesting", .timeLimit(.minutes(2)))
struct EtcdTestingTests {
    @Test("the binary is the one ETCD_BINARY names, when set, and reports its version")
    func binary() async throws {
        let binary = try await EtcdBinary.locate()
        if let explicit = ProcessInfo.processInfo.environment["ETCD_BINARY"], !explicit.isEmpty {
            #expect(binary == explicit)
        }
        let version = try await EtcdBinary.version(of: binary)
        #expect(EtcdServerVersion(version) != nil)
        print("etcd under test: \(binary) (\(version))")
    }

    @Test("free ports come from outside the kernel's ephemeral range, and none is handed out twice")
    func freePorts() throws {
        // Outgoing connections take their local ports from that range: a stopped member's port
        // there could be taken before it restarts.
        let candidates = FreePorts.candidates()
        let range = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)) ?? "?"
        try #require(!candidates.isEmpty, "the ephemeral range \(range) leaves fewer than 1,000 ports above 10000")
        let first = try FreePorts.allocate(40)
        let second = try FreePorts.allocate(40)
        #expect(Set(first + second).count == 80, "a port was handed out twice")
        for port in first + second {
            #expect(candidates.contains { $0.contains(port) }, "port \(port) is in the ephemeral range \(range)")
        }
    }

    @Test("the ports outside any ephemeral range the kernel may have, including ranges reaching 10000 or 65535")
    func freePortCandidates() {
        #expect(FreePorts.candidates(outside: "32768\t60999\n") == [10000...32767, 61000...65535])
        #expect(FreePorts.candidates(outside: "1024 65000") == [], "535 ports above it: too few")
        #expect(FreePorts.candidates(outside: "1024 60000") == [60001...65535])
        #expect(FreePorts.candidates(outside: "32768 65535") == [10000...32767])
        #expect(FreePorts.candidates(outside: "1024 65535") == [])
        #expect(FreePorts.candidates(outside: "70000 80000") == [10000...65535])
        #expect(FreePorts.candidates(outside: "garbage") == [])
    }

    @Test("a spawned process gets standard input, output and error, and none of the test's other descriptors")
    func processDescriptors() async throws {
        // An open socket in the test process must not reach the child.
        let socket = Foundation.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(socket >= 3)
        defer { close(socket) }
        // Lists /proc/self/fd without the descriptor the listing itself uses.
        let (status, output) = try await EtcdTestProcess.run(
            "/usr/bin/python3",
            ["-c", "import os; print(sorted(int(fd) for fd in os.listdir('/proc/self/fd')))"],
            timeout: .seconds(30))
        #expect(status == 0, "\(output)")
        let listed = output.trimmingCharacters(in: .whitespacesAndNewlines)
        // os.listdir holds one descriptor of its own while it reads the folder.
        #expect(listed == "[0, 1, 2, 3]", "the child saw \(listed)")
    }

    @Test("a spawned process reads its input pipe, and its exit status is the shell's (128 + signal when killed)")
    func processInputAndStatus() async throws {
        let cat = try EtcdTestProcess("/bin/cat", [], input: .pipe, output: .pipe)
        try cat.writeInput(Array("one\ntwo\n".utf8))
        cat.closeInput()
        let echoed = try await EtcdTestProcess.run("/bin/sh", ["-c", "exit 3"], timeout: .seconds(30))
        #expect(echoed.status == 3)
        #expect(await cat.waitForExit(timeout: .seconds(30)) == 0)
        #expect(String(decoding: cat.readOutputToEnd(), as: UTF8.self) == "one\ntwo\n")

        let sleeper = try EtcdTestProcess("/bin/sleep", ["60"])
        #expect(sleeper.isRunning)
        #expect(await sleeper.waitForExit(timeout: .milliseconds(100)) == nil)
        sleeper.send(SIGKILL)
        #expect(await sleeper.waitForExit(timeout: .seconds(30)) == 128 + SIGKILL)
        #expect(!sleeper.isRunning)

        // Writing to a process that has exited fails; it does not raise SIGPIPE in the test process.
        let quitter = try EtcdTestProcess("/bin/true", [], input: .pipe)
        #expect(await quitter.waitForExit(timeout: .seconds(30)) == 0)
        #expect(throws: EtcdTestingError.self) { try quitter.writeInput(Array("late\n".utf8)) }

        let missing = "/nonexistent/swift-etcd-tool"
        let error = #expect(throws: EtcdTestingError.self) { try EtcdTestProcess(missing, []) }
        #expect(error?.description == "cannot start \(missing): No such file or directory")
        let unwritable = "/nonexistent/swift-etcd-folder/out"
        let openError = #expect(throws: EtcdTestingError.self) {
            try EtcdTestProcess("/bin/true", [], input: .pipe, output: .file(unwritable))
        }
        #expect(openError?.description == "cannot open \(unwritable): No such file or directory")
    }

    @Test("a cluster's processes and folder are gone after the scoped function, also when the body throws")
    func cleanup() async throws {
        struct Planned: Error {}
        var directory = ""
        var pids: [Int32] = []
        await #expect(throws: Planned.self) {
            try await withEtcdTestCluster(.init(members: 2)) { cluster in
                directory = cluster.directory
                pids = cluster.members.compactMap(\.processID)
                #expect(FileManager.default.fileExists(atPath: directory))
                throw Planned()
            }
        }
        #expect(pids.count == 2)
        #expect(!FileManager.default.fileExists(atPath: directory))
        for pid in pids { #expect(kill(pid, 0) != 0, "process \(pid) still exists") }
    }

    @Test("a paused member answers nothing until it is resumed")
    func pauseAndResume() async throws {
        try await withEtcd { cluster, client in
            let member = cluster.members[0]
            try member.pause()
            let error = await etcdErrorCode {
                try await withEtcdTimeout(.milliseconds(500)) { _ = try await client.get("k") }
            }
            #expect(error?.code == .deadlineExceeded)
            try member.resume()
            let response = try await withEtcdTimeout(.seconds(5)) { try await client.get("k") }
            #expect(response.count == 0)
        }
    }

    @Test("a stopped single member restarts with its data")
    func restart() async throws {
        try await withEtcd { cluster, client in
            try await client.put("k", value: "kept")
            try await cluster.members[0].restart()
            try await cluster.waitUntilHealthy()
            let response = try await withEtcdTimeout(.seconds(10)) { try await client.get("k") }
            #expect(response.kvs.first?.valueString == "kept")
        }
    }

    @Test("answers at a member's port from another cluster's etcd are not taken for that member's")
    func answersFromAnotherCluster() async throws {
        try await withEtcdTestCluster(.init(members: 1)) { ours in
            try await withEtcdTestCluster(.init(members: 1)) { theirs in
                let (ourStatus, ourList) = try await withEtcdClient(ours.clientConfiguration()) { client in
                    (try await client.status(endpoint: ours.members[0].clientEndpoint), try await client.memberList())
                }
                let (theirStatus, theirList) = try await withEtcdClient(theirs.clientConfiguration()) { client in
                    (try await client.status(endpoint: theirs.members[0].clientEndpoint), try await client.memberList())
                }
                #expect(
                    EtcdTestCluster.membersAnsweredByOthers(ours.members, statuses: [ourStatus], list: ourList).isEmpty)
                // As if their etcd held our member's port: its status and its member list.
                let others = EtcdTestCluster.membersAnsweredByOthers(
                    ours.members, statuses: [theirStatus], list: theirList)
                #expect(others.map(\.name) == ["m0"])
                // Their status against our list: an ID our cluster does not have.
                #expect(
                    EtcdTestCluster.membersAnsweredByOthers(ours.members, statuses: [theirStatus], list: ourList)
                        .count == 1)
            }
        }
    }

    @Test("a member restarted while another etcd holds its client port is not reported healthy")
    func restartOntoTakenPort() async throws {
        try await withEtcdTestCluster(.init(members: 1)) { cluster in
            let member = cluster.members[0]
            try await member.stop()
            // Another etcd on the member's client port; its peer port is the kernel's choice, and
            // a single member never dials the peer URL it advertises.
            let folder = FileManager.default.temporaryDirectory
                .appendingPathComponent("swift-etcd-foreign-\(UUID().uuidString.prefix(8))").path
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let foreign = try EtcdTestProcess(
                cluster.binary,
                [
                    "--name", "foreign", "--data-dir", "\(folder)/data",
                    "--listen-client-urls", member.clientURL, "--advertise-client-urls", member.clientURL,
                    "--listen-peer-urls", "http://127.0.0.1:0",
                    "--initial-advertise-peer-urls", "http://127.0.0.1:1",
                    "--initial-cluster", "foreign=http://127.0.0.1:1",
                ],
                output: .file("\(folder)/log")
            )
            defer {
                foreign.send(SIGKILL)
                _ = foreign.waitUntilExit()
            }
            let foreignServes = try await withEtcdClient(.init(endpoints: [member.clientEndpoint])) { client in
                try await withEtcdTimeout(.seconds(20)) {
                    while (try? await client.status(endpoint: member.clientEndpoint))?.leader ?? 0 == 0 {
                        try await Task.sleep(for: .milliseconds(50))
                    }
                    return true
                }
            }
            #expect(foreignServes)
            try member.start()
            // The member cannot bind its port and exits; until then the foreign etcd answers there.
            await #expect(throws: EtcdTestingError.self) {
                try await cluster.waitUntilHealthy(timeout: .seconds(20))
            }
            #expect(!member.isRunning)
        }
    }

    @Test(
        "a stopped member's ports are held for it until it starts: another process's free-port probe cannot bind them, connections to them are refused, and the member starts on them again"
    )
    func stoppedMemberPortsHeld() async throws {
        var removed: EtcdTestMember?
        try await withEtcdTestCluster(.init(members: 1)) { cluster in
            let member = cluster.members[0]
            removed = member
            try await member.stop()
            #expect(member.heldPortCount == 2)
            for port in [member.clientPort, member.peerPort] {
                // A free-port probe binds without SO_REUSEADDR, as FreePorts does in another process.
                #expect(Self.bindError(port) == EADDRINUSE, "port \(port) of the stopped member can be bound")
                #expect(Self.connectError(port) == ECONNREFUSED, "port \(port) of the stopped member accepts")
            }
            try member.start()
            #expect(member.heldPortCount == 0)
            try await cluster.waitUntilHealthy()
            try await withEtcdClient(cluster.clientConfiguration()) { client in
                try await withEtcdTimeout(.seconds(10)) { try await client.put("k", value: "v") }
            }
            try await member.kill()
            #expect(member.heldPortCount == 2)
        }
        #expect(removed?.heldPortCount == 0, "the removed cluster's member still holds its ports")
    }

    /// The errno of binding 127.0.0.1:`port` without `SO_REUSEADDR` (0 when it binds).
    private static func bindError(_ port: Int) -> Int32 {
        Self.withSocket(port) { fd, address in bind(fd, address, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }

    /// The errno of connecting to 127.0.0.1:`port` (0 when it connects).
    private static func connectError(_ port: Int) -> Int32 {
        Self.withSocket(port) { fd, address in connect(fd, address, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }

    private static func withSocket(_ port: Int, _ body: (Int32, UnsafePointer<sockaddr>) -> Int32) -> Int32 {
        guard let fd = try? Loopback.socket() else { return -1 }
        defer { close(fd) }
        let result = withUnsafePointer(to: Loopback.address(port: port)) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body(fd, $0) }
        }
        return result == 0 ? 0 : errno
    }

    @Test("the leader of a 3-member cluster is found, and a new one is elected when it dies")
    func leader() async throws {
        try await withEtcdTestCluster(.init(members: 3)) { cluster in
            let first = try await cluster.leaderIndex()
            try await cluster.members[first].kill()
            try await cluster.waitUntilHealthy()
            let second = try await cluster.leaderIndex()
            #expect(second != first)
        }
    }
}
