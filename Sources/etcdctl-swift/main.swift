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

struct EtcdctlSwift: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "etcdctl-swift",
        abstract: "A simple command line client for etcd3, on swift-etcd.",
        subcommands: [Get.self, Put.self, Del.self, Version.self]
    )
}

/// `version`
struct Version: EtcdctlCommand {
    static let configuration = CommandConfiguration(abstract: "Prints the version of etcdctl")
    func run(_ global: GlobalOptions) async throws {
        Printer.line("etcdctl version: 3.5.0 (etcdctl-swift)")
        Printer.line("API version: 3.5")
    }
}

extension GlobalOptions {
    var printer: Printer { Printer(format: self.writeOut, hex: self.hex) }

    /// Runs `body` with a client for these flags; the command timeout bounds the calls (not the dial).
    func withClient<Result: Sendable>(_ body: @escaping @Sendable (EtcdClient) async throws -> Result) async throws
        -> Result
    {
        let configuration = try self.configuration()
        let timeout = self.commandTimeout
        return try await withEtcdClient(configuration) { client in
            try await withEtcdTimeout(timeout) { try await body(client) }
        }
    }
}

/// etcdctl's exit codes.
enum EtcdctlExit {
    static let error: Int32 = 1
    static let badFeature: Int32 = 4
    static let badArgs: Int32 = 128
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
    fail(error.description, code: EtcdctlExit.badArgs)
}
let command: any ParsableCommand
do {
    command = try EtcdctlSwift.parseAsRoot(rest)
} catch {
    if EtcdctlSwift.exitCode(for: error) == .success {
        Printer.line(EtcdctlSwift.fullMessage(for: error))
        exit(0)
    }
    // cobra's wording for flag errors, and its exit code (etcdctl's ExitError).
    var message = EtcdctlSwift.message(for: error)
    if message.hasPrefix("Unknown option '"), message.hasSuffix("'") {
        message = "unknown flag: " + message.dropFirst("Unknown option '".count).dropLast()
    }
    fail(message, code: EtcdctlExit.error)
}
guard let runnable = command as? any EtcdctlCommand else {
    Printer.line(EtcdctlSwift.helpMessage())
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
    } catch let error as EtcdClientError {
        fail(etcdctlMessage(error), code: EtcdctlExit.error)
    } catch {
        fail("\(error)", code: EtcdctlExit.error)
    }
    exit(0)
}

await execute(runnable, global)
