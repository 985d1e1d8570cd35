// SPDX-License-Identifier: Apache-2.0
import Etcd
import Foundation

/// etcdctl's global flags, accepted before or after the command (as cobra's persistent flags are),
/// with `ETCDCTL_*` environment variables as defaults.
struct GlobalOptions: Sendable {
    var endpoints = ["127.0.0.1:2379"]
    var dialTimeout = Duration.seconds(2)
    var commandTimeout = Duration.seconds(5)
    /// Whether `--command-timeout` (or its variable) was given: `snapshot save` has no timeout otherwise.
    var commandTimeoutGiven = false
    var keepAliveTime = Duration.seconds(2)
    var keepAliveTimeout = Duration.seconds(6)
    var user: String?
    var password: String?
    var caFile: String?
    var certFile: String?
    var keyFile: String?
    var insecureSkipVerify = false
    var insecureTransport = true
    var writeOut = OutputFormat.simple
    var hex = false
    /// The command's shorthands split from a global one (`-i` from `-iw json`), with the argument
    /// they came from, which pflag names in its errors.
    var combinedShorthands: [String: String] = [:]

    /// The flags that take a value, by name (without dashes); `w` is `write-out`.
    private static let valued: Set<String> = [
        "endpoints", "dial-timeout", "command-timeout", "keepalive-time", "keepalive-timeout", "user", "password",
        "cacert", "cert", "key", "write-out", "w", "discovery-srv", "d", "discovery-srv-name",
    ]
    private static let booleans: Set<String> = [
        "insecure-skip-tls-verify", "insecure-transport", "hex", "debug", "insecure-discovery",
    ]

    /// Takes the global flags out of `arguments` (up to a `--`, after which everything belongs to
    /// the command), applying the environment first; returns the options and the rest.
    ///
    /// - Throws: ``ExitError`` as cobra fails on flags (exit code 1), or when a flag is given both
    ///   on the command line and in its variable (etcdctl refuses that, code 1, in a log line).
    static func extract(from arguments: [String], environment: [String: String]) throws(ExitError) -> (
        GlobalOptions, [String]
    ) {
        var arguments = arguments
        var options = GlobalOptions()
        var fromEnvironment: [String: String] = [:]  // flag name: variable
        for name in Self.valued.union(Self.booleans) where name.count > 1 {
            let variable = "ETCDCTL_" + name.uppercased().replacingOccurrences(of: "-", with: "_")
            // As etcd's flags package: an empty value is not applied, but the variable still
            // conflicts with its flag.
            if let value = environment[variable] {
                if !value.isEmpty { try options.set(name, value) }
                fromEnvironment[name] = variable
            }
        }
        var rest: [String] = []
        var endpointsGiven = false
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if argument == "--" {
                rest += arguments[index...]
                break
            }
            guard argument.hasPrefix("-"), argument.count > 1 else {
                rest.append(argument)
                index += 1
                continue
            }
            let dashes = argument.prefix(while: { $0 == "-" }).count
            let body = argument.dropFirst(dashes)
            let name: String
            let inline: String?
            if dashes == 1, let split = body.firstIndex(where: { Self.valued.contains(String($0)) }),
                split != body.startIndex, !body[..<split].contains("=")
            {
                // Shorthands combined, as pflag reads them: `-iw json` is the command's `-i` (its
                // shorthands are all boolean), then `-w json`.
                rest.append("-" + body[..<split])
                options.combinedShorthands["-" + body[..<split]] = argument
                arguments[index] = "-" + body[split...]
                continue
            }
            if dashes == 1 {
                // A shorthand, as pflag reads it: `-w json`, `-w=json` or `-wjson`.
                name = String(body.prefix(1))
                let after = body.dropFirst()
                inline = after.isEmpty ? nil : String(after.hasPrefix("=") ? after.dropFirst() : after)
            } else if dashes == 2 {
                (name, inline) =
                    body.firstIndex(of: "=").map { (String(body[..<$0]), String(body[body.index(after: $0)...])) }
                    ?? (String(body), nil)
            } else {
                rest.append(argument)  // the command's parser refuses it
                index += 1
                continue
            }
            if let variable = fromEnvironment[name == "w" ? "write-out" : name],
                Self.valued.contains(name) || Self.booleans.contains(name)
            {
                throw ExitError(
                    EtcdctlExit.error,
                    "conflicting environment variable \"\(variable)\" is shadowed by corresponding command-line flag (either unset environment variable or disable flag)",
                    asLog: true)
            }
            if Self.valued.contains(name) {
                guard let value = inline ?? (index + 1 < arguments.count ? arguments[index + 1] : nil) else {
                    // pflag names a shorthand flag by its letter.
                    let flag = argument.hasPrefix("--") ? argument : "'\(name)' in \(argument)"
                    throw ExitError(EtcdctlExit.error, "flag needs an argument: \(flag)")
                }
                // A list flag, as in etcdctl: the first --endpoints replaces the default, later ones add.
                let earlier = name == "endpoints" && endpointsGiven ? options.endpoints : []
                try options.set(name, value)
                if name == "endpoints" {
                    options.endpoints = earlier + options.endpoints
                    endpointsGiven = true
                }
                index += inline == nil ? 2 : 1
            } else if Self.booleans.contains(name) {
                try options.set(name, inline ?? "true")
                index += 1
            } else {
                rest.append(argument)
                index += 1
            }
        }
        return (options, rest)
    }

    private mutating func set(_ name: String, _ value: String) throws(ExitError) {
        switch name {
        case "endpoints": self.endpoints = value.split(separator: ",").map(String.init)
        case "dial-timeout": self.dialTimeout = try Self.duration(value, name)
        case "command-timeout":
            self.commandTimeout = try Self.duration(value, name)
            self.commandTimeoutGiven = true
        case "keepalive-time": self.keepAliveTime = try Self.duration(value, name)
        case "keepalive-timeout": self.keepAliveTimeout = try Self.duration(value, name)
        case "user": self.user = value
        case "password": self.password = value
        case "cacert": self.caFile = value
        case "cert": self.certFile = value
        case "key": self.keyFile = value
        case "insecure-skip-tls-verify": self.insecureSkipVerify = try parseBool(value, name)
        case "insecure-transport": self.insecureTransport = try parseBool(value, name)
        case "hex": self.hex = try parseBool(value, name)
        case "write-out", "w":
            guard let format = OutputFormat(rawValue: value) else {
                throw ExitError(EtcdctlExit.badFeature, "unsupported output format")
            }
            self.writeOut = format
        case "discovery-srv", "d":
            // Ignoring it would connect to the default endpoint instead of the domain's members.
            guard value.isEmpty else {
                throw ExitError(
                    EtcdctlExit.badFeature,
                    "DNS SRV discovery (--discovery-srv) is not supported by etcdctl-swift; list the members with --endpoints"
                )
            }
        default: break  // accepted for compatibility, without effect (debug; discovery's other flags)
        }
    }

    /// A Go duration: `5s`, `500ms`, `1m30s`, `2h`, `1.5s`.
    static func duration(_ text: String, _ name: String) throws(ExitError) -> Duration {
        let units: [(String, Double)] = [
            ("ns", 1e-9), ("us", 1e-6), ("µs", 1e-6), ("ms", 1e-3), ("s", 1), ("m", 60), ("h", 3600),
        ]
        var seconds = 0.0
        var rest = Substring(text)
        if rest == "0" { return .zero }
        while !rest.isEmpty {
            let number = rest.prefix(while: { $0.isNumber || $0 == "." })
            rest = rest.dropFirst(number.count)
            guard let value = Double(number),
                let unit = units.filter({ rest.hasPrefix($0.0) }).max(by: { $0.0.count < $1.0.count })
            else {
                throw ExitError(
                    EtcdctlExit.error,
                    "invalid argument \"\(text)\" for \"--\(name)\" flag: time: invalid duration \"\(text)\"")
            }
            rest = rest.dropFirst(unit.0.count)
            seconds += value * unit.1
        }
        return .milliseconds(Int64((seconds * 1000).rounded()))
    }

    /// The client configuration these flags describe.
    func configuration() throws -> EtcdClient.Configuration {
        var configuration = EtcdClient.Configuration(endpoints: self.endpoints)
        // gRPC-Go reads a dial timeout of 0 as none, which leaves the command timeout as the bound.
        configuration.dialTimeout = self.dialTimeout > .zero ? self.dialTimeout : self.commandTimeout
        configuration.keepAlive = .init(time: self.keepAliveTime, timeout: self.keepAliveTimeout)
        // As etcdctl: TLS for any TLS flag, for https:// endpoints, and with --insecure-transport=false
        // (then with the system's roots unless --cacert is given).
        let wantsTLS =
            self.caFile != nil || self.certFile != nil || self.keyFile != nil || self.insecureSkipVerify
            || !self.insecureTransport
            || self.endpoints.contains { $0.hasPrefix("https://") || $0.hasPrefix("unixs://") }
        if wantsTLS {
            var tls = EtcdClient.Configuration.TLS()
            tls.trustedCAFile = self.caFile
            tls.certificateFile = self.certFile
            tls.keyFile = self.keyFile
            tls.insecureSkipVerify = self.insecureSkipVerify
            configuration.tls = tls
        }
        if let user = self.user {
            var name = user
            var password = self.password
            if password == nil {
                if let colon = user.firstIndex(of: ":") {
                    name = String(user[..<colon])
                    password = String(user[user.index(after: colon)...])
                } else {
                    password = askSecret("Password: ")
                }
            } else if user.contains(":") {
                throw UsageError("username contains \":\" but --password is set")
            }
            configuration.authentication = .init(username: name, password: password ?? "")
        }
        return configuration
    }
}

/// etcdctl's password prompt (speakeasy's): `prompt` on standard output, then a line from the
/// terminal without echo, or from standard input when it is not a terminal.
func askSecret(_ prompt: String) -> String {
    Printer.write(prompt)
    var saved = termios()
    let terminal = isatty(STDIN_FILENO) == 1 && tcgetattr(STDIN_FILENO, &saved) == 0
    if terminal {
        var silent = saved
        silent.c_lflag &= ~tcflag_t(ECHO)
        tcsetattr(STDIN_FILENO, TCSANOW, &silent)
    }
    let line = Swift.readLine(strippingNewline: true) ?? ""
    if terminal { tcsetattr(STDIN_FILENO, TCSANOW, &saved) }
    Printer.line("")
    return line
}

/// How results are printed (`-w`).
enum OutputFormat: String, Sendable {
    case simple, json, fields, table, protobuf
}

/// A mistake in the command line: etcdctl exits with 128 for these.
struct UsageError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
