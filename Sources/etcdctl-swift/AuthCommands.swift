// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Etcd
import Foundation

/// `auth <enable or disable or status>`
struct AuthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "auth", abstract: "Enable or disable authentication",
        subcommands: [Enable.self, Disable.self, Status.self])

    struct Enable: EtcdctlCommand {
        static let configuration = CommandConfiguration(abstract: "Enables authentication")
        @Argument var arguments: [String] = []

        func run(_ global: GlobalOptions) async throws {
            guard self.arguments.isEmpty else {
                throw UsageError("auth enable command does not accept any arguments")
            }
            _ = try await global.withClient { client in
                do {
                    try await client.authEnable()
                } catch let error as EtcdClientError where error.code == .rootRoleNotExist {
                    // As etcdctl: create the root role, grant it to root, and try again.
                    try await client.roleAdd("root")
                    try await client.userGrantRole("root", role: "root")
                    try await client.authEnable()
                }
            }
            Printer.line("Authentication Enabled")
        }
    }

    struct Disable: EtcdctlCommand {
        static let configuration = CommandConfiguration(abstract: "Disables authentication")
        @Argument var arguments: [String] = []

        func run(_ global: GlobalOptions) async throws {
            guard self.arguments.isEmpty else {
                throw UsageError("auth disable command does not accept any arguments")
            }
            _ = try await global.withClient { client in try await client.authDisable() }
            Printer.line("Authentication Disabled")
        }
    }

    struct Status: EtcdctlCommand {
        static let configuration = CommandConfiguration(abstract: "Returns authentication status")
        @Argument var arguments: [String] = []

        func run(_ global: GlobalOptions) async throws {
            guard self.arguments.isEmpty else {
                throw UsageError("auth status command does not accept any arguments")
            }
            let response = try await global.withClient { client in try await client.authStatus() }
            try global.printer.authStatus(response)
        }
    }
}

/// A password: the first word of standard input (`--interactive=false`), or asked twice on the terminal.
private func readPassword(_ name: String, interactive: Bool) throws -> String {
    guard interactive else {
        let input = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
        return input.split(whereSeparator: { $0.isWhitespace }).first.map(String.init) ?? ""
    }
    let first = askSecret("Password of \(name): ")
    guard !first.isEmpty else { throw UsageError("empty password") }
    let second = askSecret("Type password of \(name) again for confirmation: ")
    guard first == second else { throw UsageError("given passwords are different") }
    return first
}

/// `user <subcommand>`
struct UserCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "user", abstract: "User related commands",
        subcommands: [
            Add.self, Delete.self, Get.self, List.self, Passwd.self, GrantRole.self, RevokeRole.self,
        ])

    struct Add: EtcdctlCommand {
        static let configuration = CommandConfiguration(abstract: "Adds a new user")
        @Flag(
            name: .customLong("interactive"), inversion: .prefixedNo, exclusivity: .chooseLast,
            help: "Read password from stdin instead of interactive terminal")
        var interactive = true
        @Option(
            name: .customLong("new-user-password"), parsing: .unconditional,
            help: "Supply password from the command line flag")
        var newUserPassword = ""
        @Flag(name: .customLong("no-password"), help: "Create a user without password (CN based auth only)")
        var noPassword = false
        @Argument var arguments: [String] = []

        func run(_ global: GlobalOptions) async throws {
            guard self.arguments.count == 1 else {
                throw UsageError("user add command requires user name as its argument")
            }
            var user = self.arguments[0]
            var password: String?
            if !self.noPassword {
                if !self.newUserPassword.isEmpty {
                    password = self.newUserPassword
                } else if let colon = user.firstIndex(of: ":") {
                    password = String(user[user.index(after: colon)...])
                    user = String(user[..<colon])
                    if user.isEmpty { throw UsageError("empty user name is not allowed") }
                } else {
                    password = try readPassword(user, interactive: self.interactive)
                }
            }
            let (name, secret) = (user, password)
            let header = try await global.withClient { client in try await client.userAdd(name, password: secret) }
            try global.printer.authChange("User \(user) created", header)
        }
    }

    struct Delete: EtcdctlCommand {
        static let configuration = CommandConfiguration(abstract: "Deletes a user")
        @Argument var arguments: [String] = []

        func run(_ global: GlobalOptions) async throws {
            guard self.arguments.count == 1 else {
                throw UsageError("user delete command requires user name as its argument")
            }
            let name = self.arguments[0]
            let header = try await global.withClient { client in try await client.userDelete(name) }
            try global.printer.authChange("User \(name) deleted", header)
        }
    }

    struct Get: EtcdctlCommand {
        static let configuration = CommandConfiguration(abstract: "Gets detailed information of a user")
        @Flag(help: "Show permissions of roles granted to the user") var detail = false
        @Argument var arguments: [String] = []

        func run(_ global: GlobalOptions) async throws {
            guard self.arguments.count == 1 else {
                throw UsageError("user get command requires user name as its argument")
            }
            let name = self.arguments[0]
            let detail = self.detail
            let (user, roles) = try await global.withClient { client in
                let user = try await client.userGet(name)
                var roles: [(String, EtcdRoleGetResponse)] = []
                if detail {
                    for role in user.roles { roles.append((role, try await client.roleGet(role))) }
                }
                return (user, roles)
            }
            guard detail else { return try global.printer.userGet(name, user) }
            Printer.line("User: \(name)")
            for (role, response) in roles {
                Printer.line("")
                try global.printer.roleGet(role, response)
            }
        }
    }

    struct List: EtcdctlCommand {
        static let configuration = CommandConfiguration(abstract: "Lists all users")
        @Argument var arguments: [String] = []

        func run(_ global: GlobalOptions) async throws {
            guard self.arguments.isEmpty else { throw UsageError("user list command requires no arguments") }
            let response = try await global.withClient { client in try await client.userList() }
            try global.printer.userList(response)
        }
    }

    struct Passwd: EtcdctlCommand {
        static let configuration = CommandConfiguration(abstract: "Changes password of user")
        @Flag(
            name: .customLong("interactive"), inversion: .prefixedNo, exclusivity: .chooseLast,
            help: "If true, read password from stdin instead of interactive terminal") var interactive = true
        @Argument var arguments: [String] = []

        func run(_ global: GlobalOptions) async throws {
            guard self.arguments.count == 1 else {
                throw UsageError("user passwd command requires user name as its argument")
            }
            let name = self.arguments[0]
            let password = try readPassword(name, interactive: self.interactive)
            let header = try await global.withClient { client in
                try await client.userChangePassword(name, password: password)
            }
            try global.printer.authChange("Password updated", header)
        }
    }

    struct GrantRole: EtcdctlCommand {
        static let configuration = CommandConfiguration(commandName: "grant-role", abstract: "Grants a role to a user")
        @Argument var arguments: [String] = []

        func run(_ global: GlobalOptions) async throws {
            guard self.arguments.count == 2 else {
                throw UsageError("user grant command requires user name and role name as its argument")
            }
            let (user, role) = (self.arguments[0], self.arguments[1])
            let header = try await global.withClient { client in try await client.userGrantRole(user, role: role) }
            try global.printer.authChange("Role \(role) is granted to user \(user)", header)
        }
    }

    struct RevokeRole: EtcdctlCommand {
        static let configuration = CommandConfiguration(
            commandName: "revoke-role", abstract: "Revokes a role from a user")
        @Argument var arguments: [String] = []

        func run(_ global: GlobalOptions) async throws {
            guard self.arguments.count == 2 else {
                throw UsageError("user revoke-role requires user name and role name as its argument")
            }
            let (user, role) = (self.arguments[0], self.arguments[1])
            let header = try await global.withClient { client in try await client.userRevokeRole(user, role: role) }
            try global.printer.authChange("Role \(role) is revoked from user \(user)", header)
        }
    }
}

/// `role <subcommand>`
struct RoleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "role", abstract: "Role related commands",
        subcommands: [Add.self, Delete.self, Get.self, List.self, GrantPermission.self, RevokePermission.self])

    struct Add: EtcdctlCommand {
        static let configuration = CommandConfiguration(abstract: "Adds a new role")
        @Argument var arguments: [String] = []

        func run(_ global: GlobalOptions) async throws {
            guard self.arguments.count == 1 else {
                throw UsageError("role add command requires role name as its argument")
            }
            let name = self.arguments[0]
            let header = try await global.withClient { client in try await client.roleAdd(name) }
            try global.printer.authChange("Role \(name) created", header)
        }
    }

    struct Delete: EtcdctlCommand {
        static let configuration = CommandConfiguration(abstract: "Deletes a role")
        @Argument var arguments: [String] = []

        func run(_ global: GlobalOptions) async throws {
            guard self.arguments.count == 1 else {
                throw UsageError("role delete command requires role name as its argument")
            }
            let name = self.arguments[0]
            let header = try await global.withClient { client in try await client.roleDelete(name) }
            try global.printer.authChange("Role \(name) deleted", header)
        }
    }

    struct Get: EtcdctlCommand {
        static let configuration = CommandConfiguration(abstract: "Gets detailed information of a role")
        @Argument var arguments: [String] = []

        func run(_ global: GlobalOptions) async throws {
            guard self.arguments.count == 1 else {
                throw UsageError("role get command requires role name as its argument")
            }
            let name = self.arguments[0]
            let response = try await global.withClient { client in try await client.roleGet(name) }
            try global.printer.roleGet(name, response)
        }
    }

    struct List: EtcdctlCommand {
        static let configuration = CommandConfiguration(abstract: "Lists all roles")
        @Argument var arguments: [String] = []

        func run(_ global: GlobalOptions) async throws {
            guard self.arguments.isEmpty else { throw UsageError("role list command requires no arguments") }
            let response = try await global.withClient { client in try await client.roleList() }
            try global.printer.roleList(response)
        }
    }

    /// etcdctl's key and range end for `<key> [endkey]` with `--prefix` / `--from-key`.
    static func range(_ arguments: ArraySlice<String>, prefix: Bool, fromKey: Bool) throws -> (String, String) {
        let key = arguments[arguments.startIndex]
        if key.isEmpty {
            if prefix && fromKey { throw UsageError("--from-key and --prefix flags are mutually exclusive") }
            return ("\u{0}", prefix || fromKey ? "\u{0}" : "")
        }
        if arguments.count == 1 {
            if prefix {
                if fromKey { throw UsageError("--from-key and --prefix flags are mutually exclusive") }
                return (key, String(decoding: EtcdKeys.prefixEnd(Data(key.utf8)), as: UTF8.self))
            }
            return (key, fromKey ? "\u{0}" : "")
        }
        if prefix { throw UsageError("unexpected endkey argument with --prefix flag") }
        if fromKey { throw UsageError("unexpected endkey argument with --from-key flag") }
        return (key, arguments[arguments.startIndex + 1])
    }

    struct GrantPermission: EtcdctlCommand {
        static let configuration = CommandConfiguration(
            commandName: "grant-permission", abstract: "Grants a key to a role")
        @Flag(help: "grant a prefix permission") var prefix = false
        @Flag(
            name: .customLong("from-key"),
            help: "grant a permission of keys that are greater than or equal to the given key using byte compare")
        var fromKey = false
        @Argument var arguments: [String] = []

        func run(_ global: GlobalOptions) async throws {
            guard self.arguments.count >= 3 else {
                throw UsageError(
                    "role grant command requires role name, permission type, and key [endkey] as its argument")
            }
            let access: EtcdPermission.Access
            switch self.arguments[1].uppercased() {
            case "READ": access = .read
            case "WRITE": access = .write
            case "READWRITE": access = .readwrite
            default: throw UsageError("invalid permission type: \(self.arguments[1])")
            }
            let (key, end) = try RoleCommand.range(
                self.arguments.dropFirst(2), prefix: self.prefix, fromKey: self.fromKey)
            let role = self.arguments[0]
            let permission =
                end.isEmpty ? EtcdPermission(access, key: key) : EtcdPermission(access, key: key, rangeEnd: end)
            let header = try await global.withClient { client in try await client.roleGrantPermission(role, permission)
            }
            try global.printer.authChange("Role \(role) updated", header)
        }
    }

    struct RevokePermission: EtcdctlCommand {
        static let configuration = CommandConfiguration(
            commandName: "revoke-permission", abstract: "Revokes a key from a role")
        @Flag(help: "revoke a prefix permission") var prefix = false
        @Flag(
            name: .customLong("from-key"),
            help: "revoke a permission of keys that are greater than or equal to the given key using byte compare")
        var fromKey = false
        @Argument var arguments: [String] = []

        func run(_ global: GlobalOptions) async throws {
            guard self.arguments.count >= 2 else {
                throw UsageError("role revoke-permission command requires role name and key [endkey] as its argument")
            }
            let (key, end) = try RoleCommand.range(
                self.arguments.dropFirst(1), prefix: self.prefix, fromKey: self.fromKey)
            let role = self.arguments[0]
            let header = try await global.withClient { client in
                try await client.roleRevokePermission(role, key: key, rangeEnd: end)
            }
            let message: String
            if end.isEmpty {
                message = "Permission of key \(self.arguments[1]) is revoked from role \(role)"
            } else if end == "\u{0}" {
                message = "Permission of range [\(self.arguments[1]), <open ended> is revoked from role \(role)"
            } else {
                message = "Permission of range [\(self.arguments[1]), \(end)) is revoked from role \(role)"
            }
            try global.printer.authChange(message, header)
        }
    }
}
