// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Etcd
import Foundation

/// `member <subcommand>`
struct MemberCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "member", abstract: "Membership related commands",
        subcommands: [Add.self, Remove.self, Update.self, List.self, Promote.self])

    /// A member ID argument in hexadecimal.
    static func id(_ arguments: [String]) throws -> UInt64 {
        guard arguments.count == 1 else { throw UsageError("member ID is not provided") }
        guard let id = UInt64(arguments[0], radix: 16) else {
            let text = arguments[0]
            let digits = !text.isEmpty && text.allSatisfy(\.isHexDigit)
            throw UsageError(
                "bad member ID arg (strconv.ParseUint: parsing \(goQuoted(text)): \(digits ? "value out of range" : "invalid syntax")), expecting ID in Hex"
            )
        }
        return id
    }

    /// Peer URLs as Go's types.NewURLs checks them, with its words.
    static func peerURLs(_ text: String) throws -> [String] {
        let urls = text.split(separator: ",", omittingEmptySubsequences: false).map {
            $0.trimmingCharacters(in: .whitespaces)
        }
        for url in urls {
            let parsed = URLComponents(string: url)
            guard let scheme = parsed?.scheme, ["http", "https", "unix", "unixs"].contains(scheme) else {
                throw ExitError(EtcdctlExit.error, "URL scheme must be http, https, unix, or unixs: \(url)")
            }
            guard parsed?.host?.isEmpty == false, parsed?.port != nil else {
                throw ExitError(EtcdctlExit.error, "URL address does not have the form \"host:port\": \(url)")
            }
            if parsed?.path.isEmpty == false {
                throw ExitError(EtcdctlExit.error, "URL must not contain a path: \(url)")
            }
        }
        return urls
    }

    struct Add: EtcdctlCommand {
        static let configuration = CommandConfiguration(abstract: "Adds a member into the cluster")
        @Option(
            name: .customLong("peer-urls"), parsing: .unconditional,
            help: "comma separated peer URLs for the new member.") var peerURLs = ""
        @Flag(help: "indicates if the new member is raft learner") var learner = false
        @Argument var arguments: [String] = []

        func run(_ global: GlobalOptions) async throws {
            guard let name = self.arguments.first else { throw UsageError("member name not provided") }
            if self.arguments.count > 1 {
                var message = "too many arguments"
                for argument in self.arguments where argument.lowercased().hasPrefix("http") {
                    message += ", did you mean --peer-urls=\(argument)"
                }
                throw UsageError(message)
            }
            guard !self.peerURLs.isEmpty else { throw UsageError("member peer urls not provided") }
            let urls = try MemberCommand.peerURLs(self.peerURLs)
            let learner = self.learner
            let response = try await global.withClient { client in
                try await client.memberAdd(peerURLs: urls, isLearner: learner)
            }
            try global.printer.memberAdd(response, name: name, peerURLs: self.peerURLs)
        }
    }

    struct Remove: EtcdctlCommand {
        static let configuration = CommandConfiguration(abstract: "Removes a member from the cluster")
        @Argument var arguments: [String] = []

        func run(_ global: GlobalOptions) async throws {
            let id = try MemberCommand.id(self.arguments)
            let response = try await global.withClient { client in try await client.memberRemove(id) }
            try global.printer.memberChanged(id, "removed from", response)
        }
    }

    struct Update: EtcdctlCommand {
        static let configuration = CommandConfiguration(abstract: "Updates a member in the cluster")
        @Option(
            name: .customLong("peer-urls"), parsing: .unconditional,
            help: "comma separated peer URLs for the updated member.")
        var peerURLs = ""
        @Argument var arguments: [String] = []

        func run(_ global: GlobalOptions) async throws {
            let id = try MemberCommand.id(self.arguments)
            guard !self.peerURLs.isEmpty else { throw UsageError("member peer urls not provided") }
            let urls = try MemberCommand.peerURLs(self.peerURLs)
            let response = try await global.withClient { client in try await client.memberUpdate(id, peerURLs: urls) }
            try global.printer.memberChanged(id, "updated in", response)
        }
    }

    struct List: EtcdctlCommand {
        static let configuration = CommandConfiguration(abstract: "Lists all members in the cluster")

        /// Arguments etcdctl accepts here and ignores.
        @Argument(help: .hidden) var ignored: [String] = []

        func run(_ global: GlobalOptions) async throws {
            let response = try await global.withClient { client in
                // etcdctl 3.5 lists linearizably; etcd 3.4 cannot, and 3.4's etcdctl does not ask.
                do {
                    return try await client.memberList(linearizable: true)
                } catch let error as EtcdClientError where error.code == .notSupported {
                    return try await client.memberList()
                }
            }
            try global.printer.memberList(response)
        }
    }

    struct Promote: EtcdctlCommand {
        static let configuration = CommandConfiguration(abstract: "Promotes a non-voting member in the cluster")
        @Argument var arguments: [String] = []

        func run(_ global: GlobalOptions) async throws {
            let id = try MemberCommand.id(self.arguments)
            let response = try await global.withClient { client in try await client.memberPromote(id) }
            try global.printer.memberChanged(id, "promoted in", response)
        }
    }
}
