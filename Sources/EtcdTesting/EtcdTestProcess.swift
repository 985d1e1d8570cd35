// SPDX-License-Identifier: Apache-2.0
import Dispatch
import Etcd
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A child process started with `posix_spawn`: etcd members, etcdctl, and the tools under test.
///
/// The test support does not use Foundation's `Process`. On Linux, Swift 6.3's `Process.run()` can
/// crash the whole test process while it lists the open descriptors (swift-corelibs-foundation
/// PR #5472), and a test run holds many descriptors open.
///
/// The child gets standard input, output and error, and nothing else: every other descriptor is
/// closed in it, so it never holds the test's sockets open. Its signals start at their defaults,
/// unblocked.
///
/// A thread of its own waits for the exit (`waitpid`). Waiting therefore never blocks one of Swift's
/// cooperative threads.
public final class EtcdTestProcess: Sendable {
    /// Where standard input comes from.
    public enum Input: Sendable {
        /// `/dev/null`.
        case null
        /// A file, read from its start.
        case file(String)
        /// A pipe: write to it with ``writeInput(_:)``, and end it with ``closeInput()``. The test
        /// process then ignores SIGPIPE, so a write to a process that has exited throws instead of
        /// ending the test run.
        case pipe
    }

    /// Where standard output or standard error goes.
    public enum Output: Sendable {
        /// `/dev/null`.
        case null
        /// A file, appended to; created when missing.
        case file(String)
        /// The process's output pipe, read with ``readOutput(_:)``. Standard output and standard
        /// error share it when both are `.pipe`.
        case pipe
    }

    /// The process ID.
    public let processID: Int32
    /// The executable's path.
    public let executable: String

    private struct State {
        var status: Int32?
        var inputFD: Int32?
        var outputFD: Int32?
    }
    /// What the reaping thread shares with the value.
    private final class Shared: Sendable {
        let state: Mutex<State>
        let exitGroup = DispatchGroup()
        /// Signalled once the process has exited and `status` is set.
        let exited = OneTimeEvent()
        init(_ state: State) { self.state = Mutex(state) }
    }
    private let shared: Shared

    /// Starts `executable` with `arguments`.
    ///
    /// - Parameters:
    ///   - executable: The program's path.
    ///   - arguments: Its arguments, without the program's name.
    ///   - environment: The child's whole environment; by default the test process's.
    ///   - input: Standard input; `/dev/null` by default.
    ///   - output: Standard output; `/dev/null` by default.
    ///   - error: Standard error; the same as `output` when nil.
    /// - Throws: ``EtcdTestingError`` when the executable cannot be started or a file cannot be
    ///   opened.
    public init(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String] = ProcessInfo.processInfo.environment,
        input: Input = .null,
        output: Output = .null,
        error: Output? = nil
    ) throws {
        self.executable = executable
        #if !os(Linux)
            throw EtcdTestingError("EtcdTestProcess starts processes on Linux only")
        #else
            let error = error ?? output
            var opened: [Int32] = []  // the parent's ends and files, closed once the child has them
            defer { for fd in opened { close(fd) } }

            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }

            func openFile(_ path: String, _ flags: Int32) throws -> Int32 {
                let fd = open(path, flags | O_CLOEXEC, 0o644)
                guard fd >= 0 else { throw EtcdTestingError("cannot open \(path): \(Self.describe(errno))") }
                opened.append(fd)
                return fd
            }
            func makePipe() throws -> (read: Int32, write: Int32) {
                var fds: [Int32] = [0, 0]
                guard pipe(&fds) == 0 else { throw EtcdTestingError("cannot make a pipe: \(Self.describe(errno))") }
                // Children spawned meanwhile by other threads close them anyway (see below).
                for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
                return (fds[0], fds[1])
            }

            // The parent's ends of its pipes, kept once the child runs; closed if it cannot start.
            var inputFD: Int32?
            var outputFD: Int32?
            func closeParentEnds() {
                if let inputFD { close(inputFD) }
                if let outputFD { close(outputFD) }
            }
            do {
                var pipeWriteEnd: Int32?
                switch input {
                case .null:
                    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
                case .file(let path):
                    posix_spawn_file_actions_adddup2(&actions, try openFile(path, O_RDONLY), 0)
                case .pipe:
                    // Writing to a pipe whose reader has exited raises SIGPIPE, which would end the whole
                    // test process; ignored, the write fails with EPIPE instead. (Children start with
                    // every signal at its default, so this does not reach them.)
                    _ = signal(SIGPIPE, SIG_IGN)
                    let ends = try makePipe()
                    opened.append(ends.read)
                    inputFD = ends.write
                    posix_spawn_file_actions_adddup2(&actions, ends.read, 0)
                }
                for (target, destination) in [(Int32(1), output), (Int32(2), error)] {
                    switch destination {
                    case .null:
                        posix_spawn_file_actions_addopen(&actions, target, "/dev/null", O_WRONLY, 0)
                    case .file(let path):
                        let fd = try openFile(path, O_WRONLY | O_CREAT | O_APPEND)
                        posix_spawn_file_actions_adddup2(&actions, fd, target)
                    case .pipe:
                        if pipeWriteEnd == nil {
                            let ends = try makePipe()
                            outputFD = ends.read
                            pipeWriteEnd = ends.write
                            opened.append(ends.write)
                        }
                        posix_spawn_file_actions_adddup2(&actions, pipeWriteEnd!, target)
                    }
                }
                try Self.closeOtherDescriptors(&actions)
            } catch {
                closeParentEnds()
                throw error
            }

            var attributes = posix_spawnattr_t()
            posix_spawnattr_init(&attributes)
            defer { posix_spawnattr_destroy(&attributes) }
            var all = sigset_t()
            sigfillset(&all)
            posix_spawnattr_setsigdefault(&attributes, &all)
            var none = sigset_t()
            sigemptyset(&none)
            posix_spawnattr_setsigmask(&attributes, &none)
            posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

            let argv = ([executable] + arguments).map { strdup($0) } + [nil]
            let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
            defer {
                for pointer in argv { free(pointer) }
                for pointer in envp { free(pointer) }
            }
            var pid: pid_t = 0
            let result = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
            guard result == 0 else {
                closeParentEnds()
                throw EtcdTestingError("cannot start \(executable): \(Self.describe(result))")
            }
            let processID = pid
            self.processID = processID
            self.shared = Shared(State(inputFD: inputFD, outputFD: outputFD))

            // Reap the child on a thread of its own.
            let shared = self.shared
            shared.exitGroup.enter()
            let thread = Thread {
                var status: Int32 = 0
                var result = waitpid(processID, &status, 0)
                while result == -1 && errno == EINTR { result = waitpid(processID, &status, 0) }
                let code = result == -1 ? -1 : Self.shellStatus(status)
                shared.state.withLock { $0.status = code }
                shared.exitGroup.leave()
                shared.exited.signal()
            }
            thread.name = "EtcdTestProcess \(processID)"
            thread.start()
        #endif
    }

    deinit {
        self.shared.state.withLock { state in
            if let fd = state.inputFD { close(fd) }
            if let fd = state.outputFD { close(fd) }
        }
    }

    /// Whether the process has not exited yet (it may be stopped).
    public var isRunning: Bool { self.shared.state.withLock { $0.status == nil } }

    /// The exit status as a shell reports it (the exit code, or 128 + the signal that ended the
    /// process); nil while it runs.
    public var exitStatus: Int32? { self.shared.state.withLock { $0.status } }

    /// Sends `signal` unless the process has exited.
    public func send(_ signal: Int32) {
        // Under the lock: once the process is reaped its ID may be another process's.
        self.shared.state.withLock { state in
            if state.status == nil { _ = kill(self.processID, signal) }
        }
    }

    /// Waits up to `timeout` for the process to exit; its ``exitStatus``, or nil if it runs on.
    public func waitForExit(timeout: Duration) async -> Int32? {
        await self.shared.exited.wait(until: .now + timeout)
        return self.exitStatus
    }

    /// Blocks the calling thread until the process exits, and returns its ``exitStatus``. Not for
    /// Swift's cooperative threads: use ``waitForExit(timeout:)`` there.
    public func waitUntilExit() -> Int32 {
        self.shared.exitGroup.wait()
        return self.exitStatus ?? -1
    }

    /// Writes `bytes` to standard input (``Input/pipe``).
    /// - Throws: ``EtcdTestingError`` when the input is not a pipe, is closed, or the write fails.
    public func writeInput(_ bytes: some Collection<UInt8>) throws {
        guard let fd = self.shared.state.withLock({ $0.inputFD }) else {
            throw EtcdTestingError("standard input of \(self.executable) is not an open pipe")
        }
        var remaining = Array(bytes)[...]
        while !remaining.isEmpty {
            let written = remaining.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                throw EtcdTestingError("cannot write to \(self.executable): \(Self.describe(errno))")
            }
            remaining = remaining.dropFirst(written)
        }
    }

    /// Closes standard input (``Input/pipe``): the process reads end of file.
    public func closeInput() {
        let fd = self.shared.state.withLock { state -> Int32? in
            defer { state.inputFD = nil }
            return state.inputFD
        }
        if let fd { close(fd) }
    }

    /// Reads the output pipe (``Output/pipe``) until the process and its children have closed it,
    /// handing each chunk to `body` as it arrives. Blocks the calling thread; one reader only.
    public func readOutput(_ body: ([UInt8]) -> Void) {
        guard let fd = self.shared.state.withLock({ $0.outputFD }) else { return }
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            body(Array(buffer[..<count]))
        }
        self.shared.state.withLock { state in
            if let fd = state.outputFD { close(fd) }
            state.outputFD = nil
        }
    }

    /// Everything the process writes to its output pipe, up to end of file. Blocks like
    /// ``readOutput(_:)``.
    public func readOutputToEnd() -> [UInt8] {
        var output: [UInt8] = []
        self.readOutput { output += $0 }
        return output
    }

    /// Runs `executable` to its end on a thread of its own and returns its exit status and what it
    /// wrote to standard output and error (combined), within `timeout`.
    ///
    /// - Throws: ``EtcdTestingError`` when it cannot start, or when it runs past `timeout` (it is
    ///   then killed).
    public static func run(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String] = ProcessInfo.processInfo.environment,
        input: Input = .null,
        timeout: Duration
    ) async throws -> (status: Int32, output: String) {
        let process = try EtcdTestProcess(executable, arguments, environment: environment, input: input, output: .pipe)
        let output = Mutex<[UInt8]>([])
        let done = DispatchGroup()
        done.enter()
        let reader = Thread {
            process.readOutput { chunk in output.withLock { $0 += chunk } }
            done.leave()
        }
        reader.start()
        guard let status = await process.waitForExit(timeout: timeout) else {
            process.send(SIGKILL)
            throw EtcdTestingError("'\(executable) \(arguments.joined(separator: " "))' ran past \(timeout)")
        }
        // A child it left behind may hold the pipe open: wait for the end of its output, briefly.
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                _ = done.wait(timeout: .now() + .seconds(5))
                continuation.resume()
            }
        }
        return (status, String(decoding: output.withLock { $0 }, as: UTF8.self))
    }

    private static func shellStatus(_ status: Int32) -> Int32 {
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }

    private static func describe(_ code: Int32) -> String {
        String(cString: strerror(code))
    }

    #if os(Linux)
        /// Adds "close every descriptor from 3 up" to `actions`.
        private static func closeOtherDescriptors(_ actions: inout posix_spawn_file_actions_t) throws {
            // glibc 2.34+; Swift's Glibc module does not import the GNU extensions, so look it up.
            typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
            guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np")
            else {
                throw EtcdTestingError(
                    "this C library lacks posix_spawn_file_actions_addclosefrom_np (glibc 2.34 or newer is needed)")
            }
            let result = unsafeBitCast(symbol, to: CloseFrom.self)(&actions, 3)
            guard result == 0 else {
                throw EtcdTestingError("posix_spawn_file_actions_addclosefrom_np: \(Self.describe(result))")
            }
        }
    #endif
}
