// SPDX-License-Identifier: Apache-2.0
// etcdctl-swift: etcdctl v3's commands, flags, output and exit codes, on swift-etcd's public API.
import ArgumentParser
import Etcd
import Foundation

/// A command that runs with the global flags.
protocol EtcdctlCommand: ParsableCommand {
    func run(_ global: GlobalOptions) async throws
}

/// A valid flag with a value etcdctl does not support: exit code 4.
struct FeatureError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A failure with etcdctl's message and exit code.
struct ExitError: Error, CustomStringConvertible {
    var code: Int32
    var description: String
    /// Printed as etcdctl's fatal log line rather than an `Error:` line.
    var asLog = false
    init(_ code: Int32, _ description: String, asLog: Bool = false) {
        self.code = code
        self.description = description
        self.asLog = asLog
    }

    /// Go's strconv.ParseInt error for `text`.
    static func parseInt(_ text: String, code: Int32 = EtcdctlExit.error) -> ExitError {
        ExitError(code, goParseIntError(text))
    }
}

/// strconv.ParseInt's wording, which etcdctl prints as it is.
func goParseIntError(_ text: String) -> String {
    let digits = !text.isEmpty && text.drop(while: { $0 == "-" || $0 == "+" }).allSatisfy(\.isNumber)
    return "strconv.ParseInt: parsing \(goQuoted(text)): \(digits ? "value out of range" : "invalid syntax")"
}

/// Go's strconv.ParseBool, which pflag uses for a boolean flag's value; `nil` for what it refuses.
func goParseBool(_ text: String) -> Bool? {
    switch text {
    case "1", "t", "T", "TRUE", "true", "True": true
    case "0", "f", "F", "FALSE", "false", "False": false
    default: nil
    }
}

/// pflag's error for a boolean flag's value that strconv.ParseBool refuses (`flag` with its dashes).
func invalidBoolError(_ text: String, flag: String) -> ExitError {
    ExitError(
        EtcdctlExit.error,
        "invalid argument \(goQuoted(text)) for \"\(flag)\" flag: strconv.ParseBool: parsing \(goQuoted(text)): invalid syntax"
    )
}

/// A boolean flag's value read by hand (the global flags): Go's spellings, else pflag's error for `--name`.
func parseBool(_ text: String, _ name: String) throws(ExitError) -> Bool {
    guard let value = goParseBool(text) else { throw invalidBoolError(text, flag: "--" + name) }
    return value
}

/// The boolean flags that are true by default (`user add --interactive`, `make-mirror
/// --dest-insecure-transport`). They are declared with ArgumentParser's `--no-` inversion, which
/// ``pflagForms(_:parse:)`` writes for `--name=false`.
private let trueByDefault = ["interactive", "dest-insecure-transport"]

/// A boolean flag as pflag names it in errors: `-l, --listen` where `command` gives it a shorthand,
/// else `--name`.
private func pflagName(_ flag: String, command: String?) -> String {
    // The boolean flags etcdctl gives a shorthand, by command.
    let shorthands = ["watch": ["interactive": "i"], "txn": ["interactive": "i"], "elect": ["listen": "l"]]
    let table = command.flatMap { shorthands[$0] } ?? [:]
    let long = flag.hasPrefix("--") ? String(flag.dropFirst(2)) : table.first { "-" + $0.value == flag }?.key
    guard let long else { return flag }
    return table[long].map { "-\($0), --\(long)" } ?? "--\(long)"
}

/// The command's arguments with pflag's `--name=value` forms rewritten into what ArgumentParser
/// reads the same way: a boolean flag with a value (`--prefix=true`, `--prefix=false`, which
/// ArgumentParser refuses) and an empty value (`--limit=`, which ArgumentParser takes as no value,
/// so that an option would take the next argument as its value).
///
/// ArgumentParser does not say which names are flags, so an empty value is first marked, and the
/// refusals of `parse` (the command line's parser, or one command's for a `txn` request) show
/// which `name=value` arguments belong to flags. `--name=false` is dropped, or for a flag that is
/// true by default, written as its `--no-name` inversion.
///
/// - Throws: ``ExitError`` with pflag's message (exit code 1) for a flag's value that is not a Go boolean.
func pflagForms(
    _ arguments: [String], parse: ([String]) throws -> Void = { _ = try EtcdctlSwift.parseAsRoot($0) }
) throws(ExitError) -> [String] {
    let mark = "\u{1}empty\u{1}"
    var end = arguments.firstIndex(of: "--") ?? arguments.endIndex
    var arguments = arguments
    let command = arguments[..<end].first { !$0.hasPrefix("-") }
    for index in arguments[..<end].indices {
        let argument = arguments[index]
        if argument.hasPrefix("-"), argument.firstIndex(of: "=") == argument.index(before: argument.endIndex) {
            arguments[index] += mark
        }
    }
    let refused = /^The option '(-[^']+)' does not take any value, but '(?s:.*)' was specified\.$/
    var inverted: Set<String> = []  // the `--no-` inversions written here
    while true {
        let message: String
        do {
            try parse(arguments)
            break
        } catch {
            message = EtcdctlSwift.message(for: error)
        }
        // An inversion the command does not have: its flag is false by default, so drop it.
        if let unknown = message.firstMatch(of: /^Unknown option '(--no-[^']+)'/).map({ String($0.1) }),
            inverted.contains(unknown), let index = arguments[..<end].firstIndex(of: unknown)
        {
            arguments.remove(at: index)
            end -= 1
            continue
        }
        guard let flag = message.firstMatch(of: refused).map({ String($0.1) }),
            let index = arguments[..<end].firstIndex(where: { $0.hasPrefix(flag + "=") })
        else { break }
        var value = String(arguments[index].dropFirst(flag.count + 1))
        if value == mark { value = "" }
        guard let on = goParseBool(value) else {
            throw invalidBoolError(value, flag: pflagName(flag, command: command))
        }
        if on {
            arguments[index] = flag
        } else if flag.hasPrefix("--"), trueByDefault.contains(String(flag.dropFirst(2))) {
            arguments[index] = "--no-" + flag.dropFirst(2)
            inverted.insert(arguments[index])
        } else {
            arguments.remove(at: index)
            end -= 1
        }
    }
    // What is still marked is an option's empty value.
    return arguments[..<end].flatMap { argument in
        argument.hasSuffix("=" + mark) ? [String(argument.dropLast(mark.count + 1)), ""] : [argument]
    } + arguments[end...]
}

struct EtcdctlSwift: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "etcdctl-swift",
        abstract: "A simple command line client for etcd3, on swift-etcd.",
        subcommands: [
            Get.self, Put.self, Del.self, Txn.self, Compaction.self, Watch.self, LeaseCommand.self, MemberCommand.self,
            EndpointCommand.self, AlarmCommand.self, Defrag.self, SnapshotCommand.self, MoveLeader.self, Lock.self,
            Elect.self, AuthCommand.self, UserCommand.self, RoleCommand.self, MakeMirror.self, CheckCommand.self,
            Version.self,
        ]
    )
}

/// `version`
struct Version: EtcdctlCommand {
    static let configuration = CommandConfiguration(abstract: "Prints the version of etcdctl")
    /// Arguments etcdctl accepts here and ignores.
    @Argument(help: .hidden) var ignored: [String] = []

    func run(_ global: GlobalOptions) async throws {
        Printer.line("etcdctl version: 3.5.0 (etcdctl-swift)")
        Printer.line("API version: 3.5")
    }
}

extension GlobalOptions {
    var printer: Printer { Printer(format: self.writeOut, hex: self.hex) }

    /// Runs `body` with a client for these flags; the command timeout bounds the calls (not the
    /// dial) unless `bounded` is false (for commands that run until interrupted).
    func withClient<Result: Sendable>(
        bounded: Bool = true, endpoints: [String]? = nil,
        _ body: @escaping @Sendable (EtcdClient) async throws -> Result
    ) async throws -> Result {
        var configuration = try self.configuration()
        if let endpoints { configuration.endpoints = endpoints }
        let timeout = self.commandTimeout
        return try await withEtcdClient(configuration) { client in
            guard bounded else { return try await body(client) }
            return try await withEtcdTimeout(timeout) { try await body(client) }
        }
    }
}

/// etcdctl's exit codes.
enum EtcdctlExit {
    static let error: Int32 = 1
    static let badConnection: Int32 = 2
    static let invalidInput: Int32 = 3
    static let badFeature: Int32 = 4
    static let interrupted: Int32 = 5
    static let badArgs: Int32 = 128
}

func fail(_ error: ExitError) -> Never {
    guard error.asLog else { fail(error.description, code: error.code) }
    let log = JSON.object([("level", .string("fatal")), ("msg", .string(error.description))])
    FileHandle.standardError.write(Data((log.rendered + "\n").utf8))
    exit(error.code)
}

func fail(_ message: String, code: Int32) -> Never {
    FileHandle.standardError.write(Data("Error: \(message)\n".utf8))
    exit(code)
}

/// etcd's own wording for errors this client reports before sending, as etcdctl (which sends
/// everything) prints them.
func etcdctlMessage(_ error: EtcdClientError) -> String {
    switch error.code {
    case .emptyKey: return "etcdserver: key is not provided"
    case .deadlineExceeded: return "context deadline exceeded"
    case .compacted: return "etcdserver: mvcc: required revision has been compacted"
    case .userEmpty: return "etcdserver: user name is empty"
    case .leaseNotFound: return "etcdserver: requested lease not found"
    case .roleEmpty: return "etcdserver: role name is empty"
    case .unavailable: return "context deadline exceeded"
    default: return error.message
    }
}

let arguments = Array(CommandLine.arguments.dropFirst())
let global: GlobalOptions
let rest: [String]
do {
    (global, rest) = try GlobalOptions.extract(from: arguments, environment: ProcessInfo.processInfo.environment)
} catch {
    fail(error)
}
// cobra's wording for a command it does not know.
if let first = rest.first, !first.hasPrefix("-"),
    !EtcdctlSwift.configuration.subcommands.contains(where: { $0._commandName == first }), first != "help"
{
    fail("unknown command \(goQuoted(first)) for \"etcdctl\"", code: EtcdctlExit.error)
}
let command: any ParsableCommand
do {
    command = try EtcdctlSwift.parseAsRoot(try pflagForms(rest))
} catch {
    if EtcdctlSwift.exitCode(for: error) == .success {
        Printer.line(EtcdctlSwift.fullMessage(for: error))
        exit(0)
    }
    // cobra's wording for flag errors, and its exit code (etcdctl's ExitError).
    var message = EtcdctlSwift.message(for: error)
    if let match = message.firstMatch(of: /^Unknown option '(-([^-])[^']*)'(\. Did you mean .*)?$/) {
        message =
            "unknown shorthand flag: '\(match.2)' in \(global.combinedShorthands[String(match.1)] ?? String(match.1))"
    } else if let match = message.firstMatch(of: /^Invalid option: (---.*)$/) {
        message = "bad flag syntax: \(match.1)"
    } else if message.hasPrefix("Unknown option '"), message.hasSuffix("'") {
        message = "unknown flag: " + message.dropFirst("Unknown option '".count).dropLast()
    } else if let match = message.firstMatch(of: /The value '(.*)' is invalid for '(--[a-z-]+)/) {
        message =
            "invalid argument \(goQuoted(String(match.1))) for \"\(match.2)\" flag: \(goParseIntError(String(match.1)))"
    } else if let match = message.firstMatch(of: /Missing value for '(--[a-z-]+)/) {
        message = "flag needs an argument: \(match.1)"
    }
    fail(message, code: EtcdctlExit.error)
}
guard let runnable = command as? any EtcdctlCommand else {
    // `--help`, `-h` or `help` for a command (ArgumentParser's help command), or a command group
    // without its subcommand (`snapshot`): run, they ask for the command's help, as etcdctl prints it.
    do {
        var command = command
        try command.run()
    } catch {
        Printer.line(EtcdctlSwift.fullMessage(for: error))
    }
    exit(0)
}
/// Runs the command and exits as etcdctl would.
func execute(_ runnable: sending any EtcdctlCommand, _ global: GlobalOptions) async -> Never {
    do {
        try await runnable.run(global)
    } catch let error as UsageError {
        fail(error.description, code: EtcdctlExit.badArgs)
    } catch let error as FeatureError {
        fail(error.description, code: EtcdctlExit.badFeature)
    } catch let error as ExitError {
        fail(error)
    } catch let error as EtcdClientError where error.code == .authFailed {
        // etcdctl authenticates while connecting: a refused password is a bad connection.
        fail(etcdctlMessage(error), code: EtcdctlExit.badConnection)
    } catch let error as EtcdClientError {
        fail(etcdctlMessage(error), code: EtcdctlExit.error)
    } catch {
        fail("\(error)", code: EtcdctlExit.error)
    }
    exit(0)
}

await execute(runnable, global)
