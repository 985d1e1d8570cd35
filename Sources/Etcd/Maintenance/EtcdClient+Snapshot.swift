// SPDX-License-Identifier: Apache-2.0
import Crypto
internal import EtcdAPI
import Foundation
import GRPCCore

/// What ``EtcdClient/snapshot(to:endpoint:progress:)`` saved.
public struct EtcdSnapshot: Sendable {
    /// The file written.
    public var path: String
    /// Its size in bytes (the backend database followed by its SHA-256).
    public var size: Int64
    /// The storage version the member reported (etcd 3.6+), else nil.
    public var version: String?
}

extension EtcdClient {
    /// Streams one member's backend database to `path`, checking its SHA-256 before the file appears.
    ///
    /// The data goes to `path.part` first and is renamed when complete and verified, so `path`
    /// never holds a partial snapshot. The file is readable and writable by its owner only (mode
    /// 0600, as etcdctl writes it), since a snapshot holds every key and value. Restore it with
    /// `etcdutl snapshot restore` (or `etcdctl snapshot restore` before 3.5).
    ///
    /// - Parameters:
    ///   - path: the file to write; an existing file there is replaced once the snapshot is verified.
    ///   - endpoint: the member to snapshot; any healthy endpoint when nil.
    ///   - progress: called after each chunk with the bytes written so far and the bytes the member
    ///     says remain.
    /// - Throws: ``EtcdClientError`` `corrupt` when the checksum does not match; `invalidArgument`
    ///   when `path` cannot be written, with the system's reason (a missing folder, no permission),
    ///   or names a folder, before anything is asked of the server. A folder at `path` is never
    ///   replaced.
    @discardableResult
    public func snapshot(
        to path: String,
        endpoint: String? = nil,
        progress: (@Sendable (_ written: Int64, _ remaining: UInt64) -> Void)? = nil
    ) async throws -> EtcdSnapshot {
        let pinned = try endpoint.map { endpoint throws(EtcdClientError) in try self.connection(for: endpoint) }
        var existing = stat()
        if stat(path, &existing) == 0, existing.st_mode & S_IFMT == S_IFDIR {
            throw EtcdClientError(
                code: .invalidArgument,
                message: "cannot write the snapshot to \(path): it is a folder; give the path of a file in it")
        }
        let partial = path + ".part"
        let descriptor = open(partial, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            let reason = String(cString: strerror(errno))
            throw EtcdClientError(
                code: .invalidArgument,
                message:
                    "cannot write the snapshot file \(partial): \(reason); give a path in an existing folder this process can write to"
            )
        }
        let file = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
        do {
            let (size, version, digestMatches) = try await self.call(
                "Snapshot", retry: .idempotent, pinned: pinned
            ) {
                connection, options, metadata in
                try file.truncate(atOffset: 0)
                return try await connection.maintenance.snapshot(
                    Etcdserverpb_SnapshotRequest(), metadata: metadata, options: options
                ) { response in
                    // The stream is the database followed by its SHA-256 (32 bytes).
                    var hasher = SHA256()
                    var tail = Data()
                    var written: Int64 = 0
                    var version = ""
                    for try await message in response.messages {
                        try file.write(contentsOf: message.blob)
                        written += Int64(message.blob.count)
                        if !message.version.isEmpty { version = message.version }
                        tail.append(message.blob)
                        if tail.count > 32 {
                            hasher.update(data: tail.prefix(tail.count - 32))
                            tail = Data(tail.suffix(32))
                        }
                        progress?(written, message.remainingBytes)
                    }
                    let digest = Data(hasher.finalize())
                    return (written, version, tail.count == 32 && digest == tail)
                }
            }
            try file.synchronize()
            try file.close()
            guard digestMatches else {
                try? FileManager.default.removeItem(atPath: partial)
                throw EtcdClientError(
                    code: .corrupt,
                    message: "the snapshot's SHA-256 does not match its data; the partial file was removed, try again"
                )
            }
            // rename(2) replaces a file at `path` in one step, and refuses to replace a folder.
            guard rename(partial, path) == 0 else {
                let reason = String(cString: strerror(errno))
                throw EtcdClientError(
                    code: .invalidArgument,
                    message: "cannot move the verified snapshot from \(partial) to \(path): \(reason)")
            }
            return EtcdSnapshot(path: path, size: size, version: version.isEmpty ? nil : version)
        } catch {
            try? file.close()
            try? FileManager.default.removeItem(atPath: partial)
            throw error
        }
    }
}
