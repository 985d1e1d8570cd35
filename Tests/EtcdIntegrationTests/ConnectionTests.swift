// SPDX-License-Identifier: Apache-2.0
import Etcd
import EtcdTesting
import Foundation
import Testing

@Suite("Connections and lifecycle", .timeLimit(.minutes(2)))
struct ConnectionTests {
    @Test(
        "unix:// and unixs:// endpoints reach etcd on a Unix socket, named as etcd names it: calls, a watch, a lease, member list",
        arguments: [false, true]
    )
    func unixSocket(tls: Bool) async throws {
        let folder = try Self.temporaryFolder("unix")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let scheme = tls ? "unixs" : "unix"
        let certificates = tls ? try await EtcdTestCertificates.generate(in: "\(folder)/tls") : nil
        let etcd = try await Self.startEtcd(
            in: folder, scheme: scheme,
            certificate: certificates.map { ($0.serverCertificateFile, $0.serverKeyFile) })
        defer {
            etcd.send(SIGKILL)
            _ = etcd.waitUntilExit()
        }
        var configuration = EtcdClient.Configuration(endpoints: ["\(scheme)://\(folder)/localhost:2379"])
        configuration.tls = certificates.map { .init(trustedCAFile: $0.caFile) }
        try await withEtcdClient(configuration) { client in
            try await Self.waitUntilServing(client)
            #expect(client.endpoints == ["\(scheme)://\(folder)/localhost:2379"])
            try await client.watch("unix/", options: .prefix) { responses in
                try await client.put("unix/a", value: "over a socket")
                for try await response in responses where !response.events.isEmpty {
                    #expect(response.events.map(\.kv.keyString) == ["unix/a"])
                    break
                }
            }
            #expect(try await client.get("unix/a").kvs.first?.valueString == "over a socket")
            let lease = try await client.grant(ttl: 30)
            #expect(try await client.keepAliveOnce(lease.id).ttl > 0)
            #expect(try await client.memberList().members.first?.clientURLs == ["\(scheme)://localhost:2379"])
            // A server stream through grpc-swift's transport, the other connection an endpoint has.
            #expect(try await client.snapshot(to: "\(folder)/backup.db").size > 0)
        }
        if tls {
            // The server's certificate is checked: without the test CA it is refused.
            configuration.tls = .init()
            let error = await etcdErrorCode {
                try await withEtcdClient(configuration) { client in _ = try await client.get("unix/a") }
            }
            #expect(
                error?.message.contains("certificate could not be verified") == true, "\(String(describing: error))")
        }
    }

    @Test(
        "over unixs:// the certificate must name localhost, or the server name set, on both of an endpoint's connections"
    )
    func unixSocketServerName() async throws {
        let folder = try Self.temporaryFolder("unixs")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let certificates = try await EtcdTestCertificates.generate(in: "\(folder)/tls")
        // This certificate names only EtcdTestCertificates.namedServerName, not localhost.
        let etcd = try await Self.startEtcd(
            in: folder, scheme: "unixs",
            certificate: (certificates.namedServerCertificateFile, certificates.namedServerKeyFile))
        defer {
            etcd.send(SIGKILL)
            _ = etcd.waitUntilExit()
        }
        var configuration = EtcdClient.Configuration(endpoints: ["unixs://\(folder)/localhost:2379"])
        configuration.tls = .init(trustedCAFile: certificates.caFile, serverName: EtcdTestCertificates.namedServerName)
        try await withEtcdClient(configuration) { client in
            try await Self.waitUntilServing(client)
            try await client.put("k", value: "v")
            #expect(try await client.snapshot(to: "\(folder)/named.db").size > 0)
        }
        configuration.tls?.serverName = nil
        configuration.dialTimeout = .seconds(2)
        try await withEtcdClient(configuration) { client in
            let frames = await etcdErrorCode { _ = try await client.get("k") }
            #expect(frames?.message.contains("find localhost in certificate") == true, "\(String(describing: frames))")
            let stream = await etcdErrorCode { try await client.snapshot(to: "\(folder)/localhost.db") }
            #expect(stream?.message.contains("find localhost in certificate") == true, "\(String(describing: stream))")
        }
    }

    private static func temporaryFolder(_ name: String) throws -> String {
        let folder = FileManager.default.temporaryDirectory
            .appendingPathComponent("swift-etcd-\(name)-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        return folder
    }

    /// A single etcd in `folder` whose only client URL is `scheme://localhost:2379`: etcd makes it
    /// the socket file `localhost:2379` in its working folder.
    private static func startEtcd(
        in folder: String, scheme: String, certificate: (file: String, key: String)?
    ) async throws -> EtcdTestProcess {
        let etcd = try await EtcdBinary.locate()
        var flags = [
            "--name", "u", "--data-dir", "data",
            "--listen-client-urls", "\(scheme)://localhost:2379", "--advertise-client-urls",
            "\(scheme)://localhost:2379",
            "--listen-peer-urls", "http://127.0.0.1:0", "--initial-advertise-peer-urls", "http://127.0.0.1:1",
            "--initial-cluster", "u=http://127.0.0.1:1",
        ]
        if let certificate { flags += ["--cert-file", certificate.file, "--key-file", certificate.key] }
        return try EtcdTestProcess(
            "/bin/sh", ["-c", "cd \"$0\" && exec \"$@\"", folder, etcd] + flags,
            environment: ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("ETCD_") },
            output: .file("\(folder)/log"))
    }

    private static func waitUntilServing(_ client: EtcdClient) async throws {
        try await within(.seconds(20), "etcd to serve on its Unix socket") {
            while (try? await client.status(endpoint: client.endpoints[0]))?.leader ?? 0 == 0 {
                try await Task.sleep(for: .milliseconds(50))  // nothing announces readiness
            }
        }
    }

    @Test("a busy client keeps its connection: etcd's flood of PINGs does not close it")
    func busyConnectionSurvivesServerPings() async throws {
        // etcd (gRPC-Go) sends a PING whenever data arrives; without PingAnsweringHandler the
        // connection closed after ~200 of them and puts in flight failed with "Stream unexpectedly closed".
        try await withEtcd { _, client in
            let value = [UInt8](repeating: 0x62, count: 1024)
            for i in 0..<100 { try await client.put("big/\(1000 + i)", value: value) }
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for i in 0..<600 { try await client.put("w/\(i)", value: "v") }
                }
                group.addTask {
                    for _ in 0..<15 {
                        let response = try await client.get("big/", options: .prefix)
                        #expect(response.kvs.count == 100)
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await client.get("w/", options: [.prefix, .countOnly]).count == 600)
        }
    }

    @Test(
        "a call's body runs on its caller's executor: off the connection's loop from a plain task, on it from code that prefers it"
    )
    func callsRunWhereTheirCallerRuns() async throws {
        try await withEtcd { _, client in
            try await client.put("k", value: "v")  // the connection now exists
            let (onLoop, executor) = try await client.call("Range", retry: .idempotent) { connection, _, _ in
                (connection.loopExecutor.isCurrent, connection.loopExecutor)
            }
            #expect(!onLoop, "a plain task's call runs off the loop; only its frames go there")
            let preferring = try await withTaskExecutorPreference(client.taskExecutor) {
                try await client.call("Range", retry: .idempotent) { connection, _, _ in
                    connection.loopExecutor.isCurrent
                }
            }
            #expect(preferring, "code that prefers the client's executor stays on it through the call")
            #expect(!executor.isCurrent, "after the call, the caller is back on Swift's executor")
        }
    }

    @Test("every endpoint's connection uses the client's task executor; calls from code that prefers it complete")
    func oneExecutorForAllEndpoints() async throws {
        try await withEtcd(members: 3) { _, client in
            let executor = client.executor
            #expect((client.taskExecutor as? EventLoopTaskExecutor) === executor)
            #expect(client.connections.count == 3)
            for (index, connection) in client.connections.enumerated() {
                #expect(connection.loopExecutor === executor, "endpoint \(index) uses the client's executor")
                let onClientExecutor = try await withTaskExecutorPreference(client.taskExecutor) {
                    try await client.call("Range", retry: .idempotent, pinned: connection) { _, _, _ in
                        executor.isCurrent
                    }
                }
                #expect(onClientExecutor, "calls to endpoint \(index) stay on the client's executor")
            }
            // Calls go round-robin over the three endpoints; from code that prefers the client's
            // executor they complete like any others (nothing waits on the thread it runs on).
            let values = try await withTaskExecutorPreference(client.taskExecutor) {
                var values: [String] = []
                for i in 0..<6 {
                    try await client.put("executor/\(i)", value: "v\(i)")
                    values += try await client.get("executor/\(i)").kvs.map(\.valueString)
                }
                return values
            }
            #expect(values == (0..<6).map { "v\($0)" })
        }
    }

    @Test("shutdown before run lets run return at once; a second run is refused")
    func lifecycle() async throws {
        let early = try EtcdClient(configuration: .init(endpoints: ["127.0.0.1:1"]))
        early.shutdown()
        try await early.run()  // returns immediately
        let error = await etcdErrorCode { try await early.run() }
        #expect(error?.code == .invalidArgument)
        let afterShutdown = await etcdErrorCode { _ = try await early.get("k") }
        #expect(afterShutdown?.code == .unavailable)
    }

    @Test("shutdown() that comes after run() started but before its connections did lets run() return without an error")
    func shutdownWhileStarting() async throws {
        // run() logs this line after it has left idle and before it starts its connections.
        let started = try clientShuttingDown(at: "etcd client starting", .init(endpoints: ["127.0.0.1:1"]))
        try await within(.seconds(10), "run() to return after shutdown") { try await started.run() }
        let afterShutdown = await etcdErrorCode { _ = try await started.get("k") }
        #expect(afterShutdown?.code == .unavailable)
    }

    @Test(
        "a call made before run() waits for it and then succeeds; a call waiting when shutdown() comes instead ends with unavailable"
    )
    func callBeforeRun() async throws {
        try await withEtcdTestCluster { cluster in
            var configuration = cluster.clientConfiguration()
            // Far beyond the bounds below: a waiting call that is never woken fails them.
            configuration.dialTimeout = .seconds(60)
            func waitingForRun(_ lines: AsyncStream<LoggedLine>) async throws {
                _ = try await within(.seconds(10), "the call to wait for run()") {
                    await lines.first { $0.message == "etcd call waits for run() to start" }
                }
            }

            let (lines, logger) = streamingLogger()
            let client = try EtcdClient(configuration: configuration, logger: logger)
            let early = Task { try await client.put("early", value: "1") }
            try await waitingForRun(lines)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await client.run() }
                _ = try await within(.seconds(10), "the waiting call to finish once run() starts") {
                    try await early.value
                }
                #expect(try await client.get("early").kvs.map(\.valueString) == ["1"])
                client.shutdown()
                try await group.waitForAll()
            }

            let (otherLines, otherLogger) = streamingLogger()
            let other = try EtcdClient(configuration: configuration, logger: otherLogger)
            let waiting = Task { try await other.get("early") }
            try await waitingForRun(otherLines)
            other.shutdown()
            let error = await etcdErrorCode {
                _ = try await within(.seconds(10), "the waiting call to end at shutdown") { try await waiting.value }
            }
            #expect(error?.code == .unavailable)
            #expect(error?.message.contains("shut down") == true, "\(String(describing: error))")
        }
    }

    @Test(
        "a call on a client whose run() never starts ends with unavailable saying so, at the dial timeout or the caller's deadline"
    )
    func neverRun() async throws {
        var configuration = EtcdClient.Configuration(endpoints: ["127.0.0.1:1"])
        configuration.dialTimeout = .seconds(1)
        let client = try EtcdClient(configuration: configuration)
        defer { client.shutdown() }
        for deadline in [nil, Duration.milliseconds(200)] {
            let start = ContinuousClock.now
            let error = await etcdErrorCode {
                if let deadline {
                    _ = try await withEtcdTimeout(deadline) { try await client.get("k") }
                } else {
                    _ = try await client.get("k")
                }
            }
            let waited = ContinuousClock.now - start
            #expect(error?.code == .unavailable)
            #expect(error?.message.contains("call run()") == true, "\(String(describing: error))")
            #expect(waited >= (deadline ?? .seconds(1)), "it waited for run() until its limit")
            #expect(waited < .seconds(10))
        }
    }

    @Test("a call to an endpoint where nothing listens ends with unavailable after the dial timeout, not a hang")
    func unreachableEndpoint() async throws {
        var configuration = EtcdClient.Configuration(endpoints: ["127.0.0.1:1"])
        configuration.dialTimeout = .seconds(1)
        let start = ContinuousClock.now
        let error = await etcdErrorCode {
            try await withEtcdClient(configuration) { client in _ = try await client.get("k") }
        }
        #expect(error?.code == .unavailable)
        #expect(error?.message.contains("127.0.0.1:1") == true)
        #expect(ContinuousClock.now - start < .seconds(10))
    }

    @Test("a call to a plain HTTP server (not gRPC) ends with unavailable naming the endpoint after the dial timeout")
    func plainHTTPServer() async throws {
        try await withPlainHTTPServer { port in
            var configuration = EtcdClient.Configuration(endpoints: ["127.0.0.1:\(port)"])
            configuration.dialTimeout = .seconds(1)
            let start = ContinuousClock.now
            let error = await etcdErrorCode {
                try await withEtcdClient(configuration) { client in _ = try await client.get("k") }
            }
            #expect(error?.code == .unavailable)
            #expect(error?.endpoint?.contains("127.0.0.1:\(port)") == true, "\(String(describing: error))")
            #expect(ContinuousClock.now - start < .seconds(10))
        }
    }

    /// Runs Python's http.server on a free loopback port for the duration of `body`.
    private func withPlainHTTPServer(_ body: (Int) async throws -> Void) async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "swift-etcd-http-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let portFile = folder.appendingPathComponent("port").path
        // Binds port 0, then names the port it got in a file (written whole, by rename).
        let process = try EtcdTestProcess(
            "/usr/bin/env",
            [
                "python3", "-c",
                """
                import http.server, os, sys
                os.chdir(os.path.dirname(sys.argv[1]))
                server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
                open(sys.argv[1] + ".tmp", "w").write(str(server.server_address[1]))
                os.rename(sys.argv[1] + ".tmp", sys.argv[1])
                server.serve_forever()
                """,
                portFile,
            ])
        do {
            try await self.useServer(portFile, body)
        } catch {
            await self.stop(process)
            throw error
        }
        await self.stop(process)
    }

    private func useServer(_ portFile: String, _ body: (Int) async throws -> Void) async throws {
        let port = try await within(.seconds(10), "python3's http.server to start") {
            while true {
                if let text = try? String(contentsOfFile: portFile, encoding: .utf8), let port = Int(text) {
                    return port
                }
                try await Task.sleep(for: .milliseconds(20))  // the server writes the file when it listens
            }
        }
        try await body(port)
    }

    /// Kills the server (SIGKILL cannot be ignored) and waits until it is gone.
    private func stop(_ process: EtcdTestProcess) async {
        process.send(SIGKILL)
        _ = await process.waitForExit(timeout: .seconds(10))
    }

    @Test(
        "a call without a deadline to an endpoint that accepts but never answers ends with unavailable after the dial timeout"
    )
    func blackholedEndpointWithoutDeadline() async throws {
        try await withEtcdTestCluster { cluster in
            try await withEtcdTestBridges(for: cluster) { bridges in
                bridges[0].mode = .blackhole
                var configuration = EtcdClient.Configuration(endpoints: [bridges[0].endpoint])
                configuration.dialTimeout = .seconds(1)
                configuration.keepAlive = nil
                let start = ContinuousClock.now
                let error = await etcdErrorCode {
                    try await withEtcdClient(configuration) { client in _ = try await client.get("k") }
                }
                #expect(error?.code == .unavailable)
                #expect(error?.endpoint?.contains(bridges[0].endpoint) == true, "\(String(describing: error))")
                #expect(ContinuousClock.now - start < .seconds(5))
            }
        }
    }

    @Test("a call with a deadline to an unreachable endpoint ends with deadlineExceeded by its deadline")
    func deadline() async throws {
        var configuration = EtcdClient.Configuration(endpoints: ["127.0.0.1:1"])
        configuration.dialTimeout = .seconds(30)
        let error = await etcdErrorCode {
            try await withEtcdClient(configuration) { client in
                try await withEtcdTimeout(.milliseconds(500)) { _ = try await client.get("k") }
            }
        }
        #expect(error?.code == .deadlineExceeded)
    }

    @Test("cancelling the task of a call surfaces as CancellationError")
    func cancellation() async throws {
        var configuration = EtcdClient.Configuration(endpoints: ["127.0.0.1:1"])
        configuration.dialTimeout = .seconds(30)
        try await withEtcdClient(configuration) { client in
            let task = Task { try await client.get("k") }
            task.cancel()
            await #expect(throws: CancellationError.self) { _ = try await task.value }
        }
    }

    @Test("a mutation to a dead endpoint that never reached it fails over to a live one")
    func mutationFailover() async throws {
        try await withEtcdTestCluster { cluster in
            // The first endpoint has nothing listening: the put provably never reached a server.
            let configuration = EtcdClient.Configuration(endpoints: ["127.0.0.1:1"] + cluster.clientEndpoints)
            try await withEtcdClient(configuration) { client in
                for i in 0..<4 {
                    try await withEtcdTimeout(.seconds(5)) { try await client.put("k\(i)", value: "v") }
                }
                #expect(try await client.get("k", options: [.prefix, .countOnly]).count == 4)
            }
        }
    }
}
