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

    private let process = Mutex<EtcdTestProcess?>(nil)
    /// Sockets holding the member's client and peer ports while it is stopped (``holdPorts()``).
    private let heldPorts = Mutex<[Int32]>([])

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

    private var current: EtcdTestProcess? { self.process.withLock { $0 } }

    /// Whether the process is alive (it may be paused).
    public var isRunning: Bool { self.current?.isRunning ?? false }

    /// The process ID while running.
    public var processID: Int32? { self.current.flatMap { $0.isRunning ? $0.processID : nil } }

    /// Starts the process (again, after ``kill()`` or ``stop()``); its data folder is kept, so a
    /// restarted member rejoins with its data. Its output is appended to ``logFile``.
    public func start() throws {
        try self.process.withLock { process in
            if process?.isRunning == true { return }
            self.releasePorts()
            // etcd reads ETCD_* variables as flags; keep the test runner's (ETCD_BINARY, ...) away from it.
            process = try EtcdTestProcess(
                self.binary,
                self.arguments,
                environment: ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("ETCD_") },
                output: .file(self.logFile)
            )
        }
    }

    /// Kills the process with SIGKILL (a crash) and waits until it is gone.
    ///
    /// Its client and peer ports stay held for it until ``start()``, bound but not listening:
    /// connections to them are refused, and another process's search for a free port passes them
    /// over.
    public func kill() async throws {
        try await self.signalAndWait(SIGKILL)
    }

    /// Stops the process with SIGTERM (a clean shutdown) and waits until it is gone; SIGKILL after 10 s.
    ///
    /// Its ports stay held for it until ``start()``, as after ``kill()``.
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
        guard let process = self.current, process.isRunning else {
            throw EtcdTestingError("member \(self.name) is not running")
        }
        process.send(signal)
    }

    private func signalAndWait(_ signal: Int32) async throws {
        guard let process = self.current, process.isRunning else { return }
        process.send(SIGCONT)  // a paused process cannot handle SIGTERM
        process.send(signal)
        if await process.waitForExit(timeout: .seconds(10)) == nil {
            process.send(SIGKILL)
            guard await process.waitForExit(timeout: .seconds(10)) != nil else {
                throw EtcdTestingError("member \(self.name) (pid \(process.processID)) did not exit after SIGKILL")
            }
        }
        self.holdPorts()
    }

    /// Holds the stopped member's client and peer ports until it starts again, so that another
    /// process looking for a free port does not take one meanwhile (this process's own free ports
    /// already pass them over): its restart would then fail. Connections to them are still refused.
    private func holdPorts() {
        let held = [self.clientPort, self.peerPort].compactMap { Loopback.hold(port: $0) }
        let previous = self.heldPorts.withLock { ports in
            defer { ports = held }
            return ports
        }
        for fd in previous { close(fd) }
    }

    /// Lets the ports go: before the member starts, and when its cluster is removed.
    func releasePorts() {
        let held = self.heldPorts.withLock { ports in
            defer { ports = [] }
            return ports
        }
        for fd in held { close(fd) }
    }

    /// How many of the member's ports are held for it while it is stopped (for tests).
    var heldPortCount: Int { self.heldPorts.withLock { $0.count } }

    deinit { self.releasePorts() }

    /// Waits until the process has exited; `false` if it is still running after `timeout`.
    public func waitForExit(timeout: Duration) async -> Bool {
        guard let process = self.current else { return true }
        return await process.waitForExit(timeout: timeout) != nil
    }

    /// The last lines the member printed.
    public func logTail(lines: Int = 20) -> String {
        guard let data = FileManager.default.contents(atPath: self.logFile) else { return "" }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").suffix(lines).joined(separator: "\n")
    }
}
