// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Etcd
import Foundation

/// `watch [options] [key or prefix] [range_end] [--] [exec-command arg1 arg2 ...]`, or `watch -i`
/// to read `watch ...` and `progress` lines from standard input.
struct Watch: EtcdctlCommand {
    static let configuration = CommandConfiguration(abstract: "Watches events stream on keys or prefixes")

    @Flag(name: .shortAndLong, help: "Interactive mode") var interactive = false
    @Flag(help: "Watch on a prefix if prefix is set") var prefix = false
    @Option(parsing: .unconditional, help: "Revision to start watching") var rev: Int64 = 0
    @Flag(name: .customLong("prev-kv"), help: "get the previous key-value pair before the event happens")
    var prevKV = false
    @Flag(name: .customLong("progress-notify"), help: "get periodic watch progress notification from server")
    var progressNotify = false
    /// Keys, then (after `--`) the command to run for each event.
    @Argument var arguments: [String] = []

    /// The command after `--` on the command line (ArgumentParser passes it on as arguments).
    private static var command: [String]? {
        CommandLine.arguments.firstIndex(of: "--").map { Array(CommandLine.arguments[($0 + 1)...]) }
    }

    func run(_ global: GlobalOptions) async throws {
        let environment = ProcessInfo.processInfo.environment
        let envKey = environment["ETCDCTL_WATCH_KEY"] ?? ""
        let envRange = environment["ETCDCTL_WATCH_RANGE_END"] ?? ""
        if envKey.isEmpty && !envRange.isEmpty {
            throw UsageError("ETCDCTL_WATCH_KEY is empty but got ETCDCTL_WATCH_RANGE_END=\(goQuoted(envRange))")
        }
        if self.interactive {
            try await self.interactive(global, envKey: envKey, envRange: envRange)
            return
        }
        let command = Self.command ?? []
        if Self.command?.isEmpty == true {
            throw UsageError("bad number of arguments (found separator --, but no commands)")
        }
        var keys = Array(self.arguments.dropLast(command.count))
        if !envKey.isEmpty && !keys.isEmpty {
            throw UsageError("bad number of arguments (found conflicting environment key)")
        }
        if !envKey.isEmpty { keys = [envKey] + (envRange.isEmpty ? [] : [envRange]) }
        let (key, options) = try self.request(keys)
        let printer = global.printer
        try await global.withClient(bounded: false) { client in
            try await Self.watch(client, key, options, printer: printer, command: command)
        }
        throw ExitError(EtcdctlExit.interrupted, "watch is canceled by the server")
    }

    private func request(_ keys: [String]) throws -> (String, EtcdWatchOptions) {
        guard let key = keys.first else { throw UsageError("bad number of arguments") }
        var options: [EtcdWatchOptions] = [.requireLeader]
        if self.rev != 0 { options.append(.revision(self.rev)) }
        if keys.count == 2 {
            if self.prefix { throw UsageError("`range_end` and `--prefix` are mutually exclusive") }
            options.append(.range(end: keys[1]))
        } else if keys.count > 2 {
            throw UsageError("bad number of arguments")
        }
        if self.prefix { options.append(key.isEmpty ? .fromKey : .prefix) }
        if self.prevKV { options.append(.prevKV) }
        if self.progressNotify { options.append(.progressNotify) }
        return (key.isEmpty && self.prefix ? "\u{0}" : key, options.reduce(EtcdWatchOptions()) { [$0, $1] })
    }

    /// Prints a watch's responses (and runs `command` for each event) until the server ends it.
    private static func watch(
        _ client: EtcdClient, _ key: String, _ options: EtcdWatchOptions, printer: Printer, command: [String]
    ) async throws {
        do {
            try await client.watch(key, options: options) { responses in
                for try await response in responses {
                    if response.isProgressNotify { Printer.line("progress notify: \(response.header.revision)") }
                    try printer.watch(response)
                    guard !command.isEmpty else { continue }
                    for event in response.events {
                        let status = try await runCommand(
                            command,
                            environment: [
                                "ETCD_WATCH_REVISION": "\(response.header.revision)",
                                "ETCD_WATCH_EVENT_TYPE": "\"\(event.type)\"",
                                "ETCD_WATCH_KEY": goQuoted(event.kv.key),
                                "ETCD_WATCH_VALUE": goQuoted(event.kv.value),
                            ])
                        if status != 0 {
                            Printer.standardError(
                                "command \(goQuotedList(command)) error (exit status \(status))")
                            Foundation.exit(EtcdctlExit.error)
                        }
                    }
                }
            }
        } catch let error as EtcdClientError {
            Printer.standardError("watch was canceled (\(etcdctlMessage(error)))")
        }
    }

    /// `watch -i`: each input line is `watch [options] key [range_end] [-- command]` or `progress`.
    private func interactive(_ global: GlobalOptions, envKey: String, envRange: String) async throws {
        let printer = global.printer
        try await global.withClient(bounded: false) { client in
            try await withThrowingTaskGroup(of: Void.self) { group in
                let lines = AsyncStream<String?> { continuation in
                    Thread.detachNewThread {
                        while let line = Swift.readLine(strippingNewline: false), line.hasSuffix("\n") {
                            continuation.yield(String(line.dropLast()))
                        }
                        continuation.yield(nil)
                        continuation.finish()
                    }
                }
                for await line in lines {
                    guard let line else {
                        throw ExitError(EtcdctlExit.invalidInput, "error reading watch request line: EOF")
                    }
                    let words = argify(line)
                    guard let verb = words.first else {
                        Printer.standardError("Invalid command: \(line) (watch and progress supported)")
                        continue
                    }
                    switch verb {
                    case "watch":
                        if words.count < 2 && envKey.isEmpty {
                            Printer.standardError("Invalid command \(line) (command type or key is not provided)")
                            continue
                        }
                        let parsed: Watch
                        do {
                            parsed = try Watch.parse(Array(words.dropFirst()))
                        } catch {
                            throw UsageError(Watch.message(for: error))
                        }
                        let command = words.firstIndex(of: "--").map { Array(words[($0 + 1)...]) } ?? []
                        var keys = Array(parsed.arguments.dropLast(command.count))
                        if !envKey.isEmpty { keys = [envKey] + (envRange.isEmpty ? [] : [envRange]) + keys }
                        let request: (String, EtcdWatchOptions)
                        do {
                            request = try parsed.request(keys)
                        } catch let error as UsageError {
                            Printer.standardError("Invalid command \(line) (\(error.description))")
                            continue
                        }
                        group.addTask {
                            try await Self.watch(client, request.0, request.1, printer: printer, command: command)
                        }
                    case "progress":
                        try await withEtcdRequireLeader { try await client.requestProgress() }
                    default:
                        Printer.standardError("Invalid command \(line) (only support watch)")
                    }
                }
            }
        }
    }
}

/// Go's `%q` of a string slice: `["a" "b"]`.
func goQuotedList(_ words: [String]) -> String { "[" + words.map { goQuoted($0) }.joined(separator: " ") + "]" }
