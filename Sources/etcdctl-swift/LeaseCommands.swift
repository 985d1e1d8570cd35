// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Etcd
import Foundation

/// `lease <subcommand>`
struct LeaseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lease", abstract: "Lease related commands",
        subcommands: [Grant.self, Revoke.self, TimeToLive.self, List.self, KeepAlive.self])

    /// A lease ID argument in hexadecimal, as etcdctl reads it.
    static func id(_ text: String) throws -> Int64 {
        guard let id = Int64(text, radix: 16) else {
            throw UsageError("bad lease ID arg (\(goParseIntError(text))), expecting ID in Hex")
        }
        return id
    }

    struct Grant: EtcdctlCommand {
        static let configuration = CommandConfiguration(abstract: "Creates leases")
        @Argument var arguments: [String] = []

        func run(_ global: GlobalOptions) async throws {
            guard self.arguments.count == 1 else { throw UsageError("lease grant command needs TTL argument") }
            guard let ttl = Int64(self.arguments[0]) else {
                throw UsageError("bad TTL (\(goParseIntError(self.arguments[0])))")
            }
            let response = try await global.withClient { client in
                do {
                    // etcd grants its minimum TTL for a negative one, as for 0; the client refuses it as a mistake.
                    return try await client.grant(ttl: max(ttl, 0))
                } catch let error as EtcdClientError {
                    throw ExitError(EtcdctlExit.error, "failed to grant lease (\(etcdctlMessage(error)))")
                }
            }
            try global.printer.grant(response)
        }
    }

    struct Revoke: EtcdctlCommand {
        static let configuration = CommandConfiguration(abstract: "Revokes leases")
        @Argument var arguments: [String] = []

        func run(_ global: GlobalOptions) async throws {
            guard self.arguments.count == 1 else { throw UsageError("lease revoke command needs 1 argument") }
            let id = try LeaseCommand.id(self.arguments[0])
            let response = try await global.withClient { client in
                do {
                    return try await client.revoke(id)
                } catch let error as EtcdClientError {
                    throw ExitError(EtcdctlExit.error, "failed to revoke lease (\(etcdctlMessage(error)))")
                }
            }
            try global.printer.revoke(id, response)
        }
    }

    struct TimeToLive: EtcdctlCommand {
        static let configuration = CommandConfiguration(commandName: "timetolive", abstract: "Get lease information")
        @Flag(help: "Get keys attached to this lease") var keys = false
        @Argument var arguments: [String] = []

        func run(_ global: GlobalOptions) async throws {
            guard self.arguments.count == 1 else {
                throw UsageError("lease timetolive command needs lease ID as argument")
            }
            let id = try LeaseCommand.id(self.arguments[0])
            let keys = self.keys
            let printer = global.printer
            try await global.withClient { client in
                try await badConnection {
                    do {
                        try printer.timeToLive(try await client.timeToLive(id, attachedKeys: keys), keys: keys)
                    } catch let error as EtcdClientError where error.code == .leaseNotFound {
                        // The header of the cluster's answer, for the JSON and fields forms.
                        try printer.expiredLease(id, try await client.leases().header)
                    }
                }
            }
        }
    }

    struct List: EtcdctlCommand {
        static let configuration = CommandConfiguration(abstract: "List all active leases")

        /// Arguments etcdctl accepts here and ignores.
        @Argument(help: .hidden) var ignored: [String] = []

        func run(_ global: GlobalOptions) async throws {
            let response = try await global.withClient { client in try await badConnection { try await client.leases() }
            }
            try global.printer.leases(response)
        }
    }

    struct KeepAlive: EtcdctlCommand {
        static let configuration = CommandConfiguration(
            commandName: "keep-alive", abstract: "Keeps leases alive (renew)")
        @Flag(help: "Resets the keep-alive time to its original value and exits immediately") var once = false
        @Argument var arguments: [String] = []

        func run(_ global: GlobalOptions) async throws {
            guard self.arguments.count == 1 else {
                throw UsageError("lease keep-alive command needs lease ID as argument")
            }
            let id = try LeaseCommand.id(self.arguments[0])
            let printer = global.printer
            if self.once {
                let response = try await global.withClient { client in
                    try await badConnection { try await client.keepAliveOnce(id) }
                }
                try printer.keepAlive(response)
                return
            }
            // Until the lease expires or is revoked (or the process is interrupted).
            try await global.withClient(bounded: false) { client in
                try await client.keepAlive(id) { responses in
                    do {
                        for try await response in responses { try printer.keepAlive(response) }
                    } catch let error as EtcdClientError where error.code != .leaseNotFound {
                        throw ExitError(EtcdctlExit.badConnection, etcdctlMessage(error))
                    } catch is EtcdClientError {}
                }
            }
            if global.writeOut == .simple { Printer.line("lease \(Printer.leaseID(id)) expired or revoked.") }
        }
    }
}

/// Runs a call whose failures etcdctl reports with ExitBadConnection (2).
func badConnection<Result: Sendable>(_ body: () async throws -> Result) async throws -> Result {
    do {
        return try await body()
    } catch let error as EtcdClientError {
        throw ExitError(EtcdctlExit.badConnection, etcdctlMessage(error))
    }
}
