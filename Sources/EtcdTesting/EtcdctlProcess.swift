// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization

/// An `etcdctl` running in the background, started by ``EtcdTestCluster/startEtcdctl(_:)``: its
/// output line by line, and signals to end it. It is killed when the value is released.
public final class EtcdctlProcess: Sendable {
    /// What etcdctl prints (standard output and error), line by line; ends when it exits.
    public let lines: AsyncStream<String>
    private let process: Mutex<Process>
    private let exit: AsyncStream<Int32>
    private let exitContinuation: AsyncStream<Int32>.Continuation

    init(executable: String, arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("ETCD") }
            .merging(["ETCDCTL_API": "3"]) { $1 }
        process.standardInput = FileHandle.nullDevice
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        let (lines, lineContinuation) = AsyncStream.makeStream(of: String.self)
        let (exit, exitContinuation) = AsyncStream.makeStream(of: Int32.self, bufferingPolicy: .bufferingNewest(1))
        let pending = Mutex(Data())
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if data.isEmpty {
                handle.readabilityHandler = nil
                let rest = pending.withLock { $0 }
                if !rest.isEmpty { lineContinuation.yield(String(decoding: rest, as: UTF8.self)) }
                lineContinuation.finish()
                return
            }
            let complete = pending.withLock { buffer -> [String] in
                buffer.append(data)
                var lines: [String] = []
                while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                    lines.append(String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self))
                    buffer = Data(buffer[buffer.index(after: newline)...])
                }
                return lines
            }
            for line in complete { lineContinuation.yield(line) }
        }
        process.terminationHandler = { process in
            exitContinuation.yield(process.terminationStatus)
            exitContinuation.finish()
        }
        try process.run()
        self.lines = lines
        self.process = Mutex(process)
        self.exit = exit
        self.exitContinuation = exitContinuation
    }

    deinit {
        self.process.withLock { process in
            if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
        }
    }

    /// The process ID.
    public var processID: Int32 { self.process.withLock { $0.processIdentifier } }

    /// Sends `signal` (SIGINT and SIGTERM make `etcdctl lock` and `elect` let go cleanly).
    public func send(_ signal: Int32) {
        _ = Foundation.kill(self.processID, signal)
    }

    /// Waits for the process to exit and returns its status; nil if it runs on after `timeout`.
    public func waitForExit(timeout: Duration) async -> Int32? {
        if let status = self.process.withLock({ $0.isRunning ? nil : $0.terminationStatus }) { return status }
        let exit = self.exit
        return await withTaskGroup(of: Int32?.self) { group in
            group.addTask {
                for await status in exit { return status }
                return nil
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            return await group.next() ?? nil
        }
    }
}
