// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Dispatch
import Etcd
import EtcdConcurrency
import Foundation

/// `lock <lockname> [exec-command arg1 arg2 ...]`
struct Lock: EtcdctlCommand {
    static let configuration = CommandConfiguration(abstract: "Acquires a named lock")
    @Option(parsing: .unconditional, help: "timeout for session") var ttl: Int64 = 10
    @Argument var arguments: [String] = []

    func run(_ global: GlobalOptions) async throws {
        guard let name = self.arguments.first else {
            throw UsageError("lock takes a lock name argument and an optional command to execute")
        }
        let command = Array(self.arguments.dropFirst())
        // concurrency.WithTTL ignores a TTL that is not positive, leaving the session's default of 60 s.
        let ttl = self.ttl > 0 ? self.ttl : 60
        let printer = global.printer
        try await global.withClient(bounded: false) { client in
            let session = try await EtcdSession(client: client, ttl: ttl)
            let mutex = EtcdMutex(session: session, name: name)
            // Interrupted while waiting: the place in the queue is given up (by cancellation).
            if try await untilInterrupted({ try await mutex.lock() }) == .interrupted {
                throw ExitError(EtcdctlExit.error, "context canceled")
            }
            if !command.isEmpty {
                let environment = [
                    "ETCD_LOCK_KEY": mutex.key, "ETCD_LOCK_REV": "\(mutex.header?.revision ?? 0)",
                ]
                let status = try await runCommand(command, environment: environment)
                try await mutex.unlock()
                try? await session.close()
                // etcdctl 3.5 exits with the command's status (3.4 with 1).
                if status != 0 { throw ExitError(status, "exit status \(status)") }
                return
            }
            let held = try await client.get(mutex.key)
            guard !held.kvs.isEmpty else { throw ExitError(EtcdctlExit.error, "lock lost on init") }
            try printer.get(held)
            if try await untilInterrupted({ _ = try await session.waitUntilLost() }) == .finished {
                throw ExitError(EtcdctlExit.error, "session expired")
            }
            try await mutex.unlock()
            try? await session.close()
        }
    }
}

/// `elect <election-name> [proposal]`, or `elect -l <election-name>` to observe.
struct Elect: EtcdctlCommand {
    static let configuration = CommandConfiguration(abstract: "Observes and participates in leader election")
    @Flag(name: .shortAndLong, help: "observation mode") var listen = false
    @Argument var arguments: [String] = []

    func run(_ global: GlobalOptions) async throws {
        guard self.arguments.count == 1 || self.arguments.count == 2 else {
            throw UsageError("elect takes one election name argument and an optional proposal argument")
        }
        let name = self.arguments[0]
        let printer = global.printer
        if self.arguments.count == 1 {
            guard self.listen else { throw UsageError("no proposal argument but -l not set") }
            try await global.withClient(bounded: false) { client in
                let session = try await EtcdSession(client: client)
                let election = EtcdElection(session: session, name: name)
                let ended = try await untilInterrupted {
                    try await election.observe { leaders in
                        for try await leader in leaders { try printer.leader(leader) }
                    }
                }
                try? await session.close()
                if ended == .finished { throw ExitError(EtcdctlExit.error, "elect: observer lost") }
            }
            return
        }
        guard !self.listen else { throw UsageError("proposal given but -l is set") }
        let proposal = self.arguments[1]
        try await global.withClient(bounded: false) { client in
            let session = try await EtcdSession(client: client)
            let election = EtcdElection(session: session, name: name)
            if try await untilInterrupted({ try await election.campaign(proposal) }) == .interrupted {
                throw ExitError(EtcdctlExit.error, "context canceled")
            }
            try printer.get(try await client.get(election.key ?? ""))
            if try await untilInterrupted({ _ = try await session.waitUntilLost() }) == .finished {
                throw ExitError(EtcdctlExit.error, "elect: session expired")
            }
            try await election.resign()
            try? await session.close()
        }
    }
}

/// How ``untilInterrupted(_:)`` ended.
enum Outcome {
    case finished
    case interrupted
}

/// Runs `body` until it returns or SIGINT/SIGTERM arrives; on a signal, `body` is cancelled.
func untilInterrupted(_ body: @escaping @Sendable () async throws -> Void) async throws -> Outcome {
    try await withThrowingTaskGroup(of: Outcome.self) { group in
        group.addTask {
            try await body()
            return .finished
        }
        group.addTask {
            await Signals.next()
            return .interrupted
        }
        let first = try await group.next() ?? .interrupted
        group.cancelAll()
        return first
    }
}

/// SIGINT and SIGTERM, as an awaitable event.
enum Signals {
    nonisolated(unsafe) private static let sources: [any DispatchSourceSignal] = [SIGINT, SIGTERM].map { number in
        signal(number, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
        source.setEventHandler { Self.arrived.signal() }
        source.resume()
        return source
    }
    private static let arrived = OneTimeEvent()

    /// Returns when a signal arrives (or arrived before), or when the task is cancelled.
    static func next() async {
        _ = Self.sources
        await Self.arrived.wait()
    }
}

/// Runs a command with the process's output, adding `environment`; returns its exit status.
func runCommand(_ command: [String], environment: [String: String]) async throws -> Int32 {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = command
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    return try await withCheckedThrowingContinuation { continuation in
        process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
        do {
            try process.run()
        } catch {
            process.terminationHandler = nil
            continuation.resume(throwing: ExitError(EtcdctlExit.error, "\(error)"))
        }
    }
}
