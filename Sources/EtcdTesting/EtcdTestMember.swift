// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization

/// One etcd process of an ``EtcdTestCluster``: its ports, its data folder, and control over its life.
public final class EtcdTestMember: Sendable {
    /// The member's name in the cluster (`m0`, `m1`, ...).
    public let name: String
    /// `http` or `https`.
    public let clientScheme: String
    /// The loopback port clients connect to.
    public let clientPort: Int
    /// The loopback port peers connect to.
    public let peerPort: Int
    /// The member's data folder (removed with the cluster).
    public let dataDirectory: String
    /// Where the member's output goes; its tail is included in startup errors.
    public let logFile: String
    let binary: String
    let arguments: [String]

    /// The endpoint for clients: `127.0.0.1:port`, or `https://127.0.0.1:port` when the member serves TLS.
    public var clientEndpoint: String {
        self.clientScheme == "https" ? self.clientURL : "127.0.0.1:\(self.clientPort)"
    }
    /// `http://127.0.0.1:port` or `https://127.0.0.1:port` for clients.
    public var clientURL: String { "\(self.clientScheme)://127.0.0.1:\(self.clientPort)" }
    /// `http://host:port` for peers.
    public var peerURL: String { "http://127.0.0.1:\(self.advertisedPeerPort)" }
    /// The peer port the cluster knows the member by: a peer bridge's when the cluster has them
    /// (``EtcdTestCluster/Configuration/peerBridges``), else ``peerPort``.
    public let advertisedPeerPort: Int

    private struct State {
        var process: Process?
        var pid: Int32 = 0
        var running = false
        var nextWaiterID = 0
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
    }
    private let state = Mutex(State())

    init(
        name: String,
        clientScheme: String,
        clientPort: Int,
        peerPort: Int,
        advertisedPeerPort: Int? = nil,
        dataDirectory: String,
        binary: String,
        arguments: [String]
    ) {
        self.advertisedPeerPort = advertisedPeerPort ?? peerPort
        self.name = name
        self.clientScheme = clientScheme
        self.clientPort = clientPort
        self.peerPort = peerPort
        self.dataDirectory = dataDirectory
        self.logFile = dataDirectory + ".log"
        self.binary = binary
        self.arguments = arguments
    }

    /// Whether the process is alive (it may be paused).
    public var isRunning: Bool { self.state.withLock { $0.running } }

    /// The process ID while running.
    public var processID: Int32? { self.state.withLock { $0.running ? $0.pid : nil } }

    /// Starts the process (again, after ``kill()`` or ``stop()``); its data folder is kept, so a
    /// restarted member rejoins with its data.
    public func start() throws {
        if self.isRunning { return }
        if !FileManager.default.fileExists(atPath: self.logFile) {
            _ = FileManager.default.createFile(atPath: self.logFile, contents: nil)
        }
        guard let log = FileHandle(forWritingAtPath: self.logFile) else {
            throw EtcdTestingError("cannot write \(self.logFile)")
        }
        _ = try? log.seekToEnd()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: self.binary)
        process.arguments = self.arguments
        // etcd reads ETCD_* variables as flags; keep the test runner's (ETCD_BINARY, ...) away from it.
        process.environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("ETCD_") }
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        process.terminationHandler = { [weak self] _ in
            try? log.close()
            self?.didExit()
        }
        try process.run()
        self.state.withLock { state in
            state.process = process
            state.pid = process.processIdentifier
            state.running = true
        }
    }

    private func didExit() {
        let waiters = self.state.withLock { state in
            state.running = false
            state.process = nil
            let waiters = state.waiters.values
            state.waiters = [:]
            return Array(waiters)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Kills the process with SIGKILL (a crash) and waits until it is gone.
    public func kill() async throws {
        try await self.signalAndWait(SIGKILL)
    }

    /// Stops the process with SIGTERM (a clean shutdown) and waits until it is gone; SIGKILL after 10 s.
    public func stop() async throws {
        try await self.signalAndWait(SIGTERM)
    }

    /// Freezes the process with SIGSTOP: its sockets stay open but it answers nothing.
    public func pause() throws {
        try self.signal(SIGSTOP)
    }

    /// Lets a paused process continue (SIGCONT).
    public func resume() throws {
        try self.signal(SIGCONT)
    }

    /// Stops the process if it runs, then starts it again. Wait for the cluster with
    /// ``EtcdTestCluster/waitUntilHealthy(timeout:)`` before relying on it.
    public func restart() async throws {
        if self.isRunning { try await self.stop() }
        try self.start()
    }

    private func signal(_ signal: Int32) throws {
        guard let pid = self.processID else { throw EtcdTestingError("member \(self.name) is not running") }
        guard Foundation.kill(pid, signal) == 0 else {
            throw EtcdTestingError("kill(\(pid), \(signal)) failed for member \(self.name): errno \(errno)")
        }
    }

    private func signalAndWait(_ signal: Int32) async throws {
        guard let pid = self.processID else { return }
        _ = Foundation.kill(pid, SIGCONT)  // a paused process cannot handle SIGTERM
        _ = Foundation.kill(pid, signal)
        if await self.waitForExit(timeout: .seconds(10)) { return }
        _ = Foundation.kill(pid, SIGKILL)
        if await self.waitForExit(timeout: .seconds(10)) { return }
        throw EtcdTestingError("member \(self.name) (pid \(pid)) did not exit after SIGKILL")
    }

    /// Waits until the process has exited; `false` if it is still running after `timeout`.
    public func waitForExit(timeout: Duration) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await self.exited()
                return !Task.isCancelled || !self.isRunning
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return !self.isRunning
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first || !self.isRunning
        }
    }

    private func exited() async {
        let id = self.state.withLock { state -> Int in
            state.nextWaiterID += 1
            return state.nextWaiterID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = self.state.withLock { state -> Bool in
                    if !state.running || Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = self.state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume()
        }
    }

    /// The last lines the member printed.
    public func logTail(lines: Int = 20) -> String {
        guard let data = FileManager.default.contents(atPath: self.logFile) else { return "" }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").suffix(lines).joined(separator: "\n")
    }
}
