// SPDX-License-Identifier: Apache-2.0
import Foundation

/// An `etcdctl` running in the background, started by ``EtcdTestCluster/startEtcdctl(_:)``: its
/// output line by line, and signals to end it. It is killed when the value is released.
public final class EtcdctlProcess: Sendable {
    /// What etcdctl prints (standard output and error), line by line; ends when it exits.
    public let lines: AsyncStream<String>
    private let process: EtcdTestProcess

    init(executable: String, arguments: [String]) throws {
        let process = try EtcdTestProcess(
            executable,
            arguments,
            environment: ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("ETCD") }
                .merging(["ETCDCTL_API": "3"]) { $1 },
            output: .pipe
        )
        let (lines, continuation) = AsyncStream.makeStream(of: String.self)
        let reader = Thread {
            var pending: [UInt8] = []
            process.readOutput { chunk in
                pending += chunk
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    continuation.yield(String(decoding: pending[..<newline], as: UTF8.self))
                    pending.removeSubrange(...newline)
                }
            }
            if !pending.isEmpty { continuation.yield(String(decoding: pending, as: UTF8.self)) }
            continuation.finish()
        }
        reader.start()
        self.lines = lines
        self.process = process
    }

    deinit {
        self.process.send(SIGKILL)
    }

    /// The process ID.
    public var processID: Int32 { self.process.processID }

    /// Sends `signal` (SIGINT and SIGTERM make `etcdctl lock` and `elect` let go cleanly).
    public func send(_ signal: Int32) {
        self.process.send(signal)
    }

    /// Waits for the process to exit and returns its status (the exit code, or 128 + the signal that
    /// ended it); nil if it runs on after `timeout`.
    public func waitForExit(timeout: Duration) async -> Int32? {
        await self.process.waitForExit(timeout: timeout)
    }
}
