// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Etcd
import Foundation

/// The endpoints a command with `--cluster` addresses: every member's client URLs, or the
/// `--endpoints` given.
func endpoints(_ global: GlobalOptions, cluster: Bool) async throws -> [String] {
    guard cluster else { return global.endpoints }
    var withoutAuth = global
    withoutAuth.user = nil  // as etcdctl: listing members needs no password
    withoutAuth.password = nil
    do {
        return try await withoutAuth.withClient { client in try await client.memberList().members.flatMap(\.clientURLs)
        }
    } catch let error as EtcdClientError {
        throw ExitError(
            EtcdctlExit.error, "failed to fetch endpoints from etcd cluster member list: \(etcdctlMessage(error))")
    }
}

/// `endpoint <subcommand>`
struct EndpointCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "endpoint", abstract: "Endpoint related commands",
        subcommands: [Health.self, Status.self, HashKV.self])

    struct Health: EtcdctlCommand {
        static let configuration = CommandConfiguration(
            abstract: "Checks the healthiness of endpoints specified in `--endpoints` flag")
        @Flag(help: "use all endpoints from the cluster member list") var cluster = false

        /// Arguments etcdctl accepts here and ignores.
        @Argument(help: .hidden) var ignored: [String] = []

        func run(_ global: GlobalOptions) async throws {
            let list = try await endpoints(global, cluster: self.cluster)
            // Each endpoint on a client of its own, all at once; a linearizable read proves a quorum.
            let results = await withTaskGroup(of: (Int, Printer.Health).self) { group in
                for (index, endpoint) in list.enumerated() {
                    group.addTask { (index, await Self.check(endpoint, global)) }
                }
                var results: [(Int, Printer.Health)] = []
                for await result in group { results.append(result) }
                return results.sorted { $0.0 < $1.0 }.map(\.1)
            }
            try global.printer.endpointHealth(results)
            if results.contains(where: { !$0.error.isEmpty }) {
                throw ExitError(EtcdctlExit.error, "unhealthy cluster")
            }
        }

        private static func check(_ endpoint: String, _ global: GlobalOptions) async -> Printer.Health {
            let dialed = ContinuousClock.now
            do {
                return try await global.withClient(endpoints: [endpoint]) { client in
                    // From the read on, as etcdctl (whose client dials before it starts the clock).
                    let start = ContinuousClock.now
                    do {
                        _ = try await client.get("health")
                    } catch let error as EtcdClientError where error.code == .permissionDenied {}
                    var health = Printer.Health(
                        endpoint: endpoint, health: true, took: goDuration(ContinuousClock.now - start), error: "")
                    // etcd 3.5: an active alarm makes the member unhealthy.
                    do {
                        let alarms = try await client.alarmList().alarms
                        if !alarms.isEmpty {
                            health.health = false
                            health.error = "Active Alarm(s): " + alarms.map { "\($0.type) " }.joined()
                        }
                    } catch {
                        health.health = false
                        health.error = "Unable to fetch the alarm list"
                    }
                    return health
                }
            } catch {
                let message = (error as? EtcdClientError).map(etcdctlMessage) ?? "\(error)"
                return Printer.Health(
                    endpoint: endpoint, health: false, took: goDuration(ContinuousClock.now - dialed), error: message)
            }
        }
    }

    struct Status: EtcdctlCommand {
        static let configuration = CommandConfiguration(
            abstract: "Prints out the status of endpoints specified in `--endpoints` flag")
        @Flag(help: "use all endpoints from the cluster member list") var cluster = false

        /// Arguments etcdctl accepts here and ignores.
        @Argument(help: .hidden) var ignored: [String] = []

        func run(_ global: GlobalOptions) async throws {
            let list = try await endpoints(global, cluster: self.cluster)
            let (statuses, failed) = try await global.withClient(endpoints: list) { client in
                var statuses: [(endpoint: String, status: EtcdStatusResponse)] = []
                var failed = false
                for endpoint in list {
                    do {
                        statuses.append((endpoint, try await client.status(endpoint: endpoint)))
                    } catch let error as EtcdClientError {
                        failed = true
                        Printer.standardError(
                            "Failed to get the status of endpoint \(endpoint) (\(etcdctlMessage(error)))")
                    }
                }
                return (statuses, failed)
            }
            try global.printer.endpointStatus(statuses)
            if failed { Foundation.exit(EtcdctlExit.error) }
        }
    }

    struct HashKV: EtcdctlCommand {
        static let configuration = CommandConfiguration(
            commandName: "hashkv", abstract: "Prints the KV history hash for each endpoint in --endpoints")
        @Flag(help: "use all endpoints from the cluster member list") var cluster = false
        @Option(parsing: .unconditional, help: "maximum revision to hash (default: all revisions)") var rev: Int64 = 0

        /// Arguments etcdctl accepts here and ignores.
        @Argument(help: .hidden) var ignored: [String] = []

        func run(_ global: GlobalOptions) async throws {
            let list = try await endpoints(global, cluster: self.cluster)
            let revision = self.rev
            let (hashes, failure) = try await global.withClient(endpoints: list) { client in
                var hashes: [(endpoint: String, hash: EtcdHashKVResponse)] = []
                var failure: String?
                for endpoint in list {
                    do {
                        hashes.append((endpoint, try await client.hashKV(endpoint: endpoint, revision: revision)))
                    } catch let error as EtcdClientError {
                        failure = etcdctlMessage(error)
                        Printer.standardError("Failed to get the hash of endpoint \(endpoint) (\(failure ?? ""))")
                    }
                }
                return (hashes, failure)
            }
            try global.printer.endpointHashKV(hashes)
            if let failure { throw ExitError(EtcdctlExit.error, failure) }
        }
    }
}

/// `alarm <subcommand>`
struct AlarmCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "alarm", abstract: "Alarm related commands", subcommands: [Disarm.self, List.self])

    struct Disarm: EtcdctlCommand {
        static let configuration = CommandConfiguration(abstract: "Disarms all alarms")
        @Argument var arguments: [String] = []

        func run(_ global: GlobalOptions) async throws {
            guard self.arguments.isEmpty else { throw UsageError("alarm disarm command accepts no arguments") }
            // Every alarm raised, as Go's AlarmDisarm with an empty member does.
            let response = try await global.withClient { client in
                let raised = try await client.alarmList()
                // Go's disarm-all answers without a header (JSON leaves it out).
                var disarmed = raised
                disarmed.alarms = []
                disarmed.header.clusterID = 0
                disarmed.header.memberID = 0
                disarmed.header.revision = 0
                disarmed.header.raftTerm = 0
                for alarm in raised.alarms {
                    disarmed.alarms += try await client.alarmDisarm(alarm).alarms
                }
                return disarmed
            }
            try global.printer.alarms(response)
        }
    }

    struct List: EtcdctlCommand {
        static let configuration = CommandConfiguration(abstract: "Lists all alarms")
        @Argument var arguments: [String] = []

        func run(_ global: GlobalOptions) async throws {
            guard self.arguments.isEmpty else { throw UsageError("alarm list command accepts no arguments") }
            let response = try await global.withClient { client in try await client.alarmList() }
            try global.printer.alarms(response)
        }
    }
}

/// `defrag [options]`
struct Defrag: EtcdctlCommand {
    static let configuration = CommandConfiguration(
        abstract: "Defragments the storage of the etcd members with given endpoints")
    @Flag(help: "use all endpoints from the cluster member list") var cluster = false

    /// Arguments etcdctl accepts here and ignores.
    @Argument(help: .hidden) var ignored: [String] = []

    func run(_ global: GlobalOptions) async throws {
        let list = try await endpoints(global, cluster: self.cluster)
        let failures = try await global.withClient(bounded: false, endpoints: list) { client in
            var failures = 0
            for endpoint in list {
                do {
                    try await withEtcdTimeout(global.commandTimeout) {
                        _ = try await client.defragment(endpoint: endpoint)
                    }
                    Printer.line("Finished defragmenting etcd member[\(endpoint)]")
                } catch let error as EtcdClientError {
                    failures += 1
                    Printer.standardError("Failed to defragment etcd member[\(endpoint)] (\(etcdctlMessage(error)))")
                }
            }
            return failures
        }
        if failures != 0 { Foundation.exit(EtcdctlExit.error) }
    }
}

/// `snapshot save <filename>`
struct SnapshotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot", abstract: "Manages etcd node snapshots", subcommands: [Save.self])

    struct Save: EtcdctlCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stores an etcd node backend snapshot to a given file")
        @Argument var arguments: [String] = []

        func run(_ global: GlobalOptions) async throws {
            guard self.arguments.count == 1 else { throw UsageError("snapshot save expects one argument") }
            guard global.endpoints.count == 1 else {
                throw ExitError(
                    EtcdctlExit.interrupted,
                    "snapshot must be requested to one selected node, not multiple [\(global.endpoints.joined(separator: " "))]"
                )
            }
            let path = self.arguments[0]
            // A file that cannot be created fails first, in etcdctl's words (the client's own are longer).
            let partial = path + ".part"
            let descriptor = open(partial, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            guard descriptor >= 0 else {
                let reason = String(cString: strerror(errno))
                let goReason = reason.prefix(1).lowercased() + reason.dropFirst()  // Go's errno text
                throw ExitError(EtcdctlExit.interrupted, "could not open \(partial) (open \(partial): \(goReason))")
            }
            close(descriptor)
            unlink(partial)
            var existing = stat()
            if stat(path, &existing) == 0, existing.st_mode & S_IFMT == S_IFDIR {
                // Go's os.Rename refuses to replace a folder, after the whole snapshot was received.
                throw ExitError(
                    EtcdctlExit.interrupted,
                    "could not rename \(partial) to \(path) (rename \(partial) \(path): file exists)")
            }
            // No timeout unless --command-timeout was given, as etcdctl.
            do {
                try await global.withClient(bounded: global.commandTimeoutGiven) { client in
                    _ = try await client.snapshot(to: path)
                }
            } catch let error as EtcdClientError {
                throw ExitError(EtcdctlExit.interrupted, etcdctlMessage(error))
            }
            Printer.line("Snapshot saved at \(path)")
        }
    }
}

/// `move-leader <transferee-member-id>`
struct MoveLeader: EtcdctlCommand {
    static let configuration = CommandConfiguration(
        commandName: "move-leader", abstract: "Transfers leadership to another etcd cluster member.")
    @Argument var arguments: [String] = []

    func run(_ global: GlobalOptions) async throws {
        guard self.arguments.count == 1 else { throw UsageError("move-leader command needs 1 argument") }
        guard let target = UInt64(self.arguments[0], radix: 16) else {
            throw UsageError("strconv.ParseUint: parsing \(goQuoted(self.arguments[0])): invalid syntax")
        }
        let (leader, header) = try await global.withClient { client in
            var leader: UInt64?
            for endpoint in global.endpoints {
                let status = try await client.status(endpoint: endpoint)
                if status.leader == status.header.memberID {
                    leader = status.leader
                    break
                }
            }
            guard let leader else {
                throw UsageError("no leader endpoint given at [\(global.endpoints.joined(separator: " "))]")
            }
            return (leader, try await client.moveLeader(to: target))
        }
        try global.printer.moveLeader(from: leader, to: target, header)
    }
}
