public import Etcd
// SPDX-License-Identifier: Apache-2.0
internal import EtcdAPI
public import FoundationEssentials
import GRPCCore

/// etcd's server-side Lock service (v3lock): the server runs the ``EtcdMutex`` algorithm for you.
///
/// The lock is held for as long as `lease` lives: keep it alive (`EtcdClient.keepAlive(_:isolation:_:)`
/// or ``EtcdSession``) and unlock with the returned key. The key layout is the same as
/// ``EtcdMutex``'s, so both exclude each other on one name.
public struct EtcdLockService: Sendable {
    /// The client whose connection carries the calls.
    public let client: EtcdClient

    /// The Lock service of the cluster `client` talks to.
    public init(client: EtcdClient) {
        self.client = client
    }

    /// Waits until the lock `name` is held under `lease` and returns the key that owns it.
    ///
    /// Cancelling the waiting task withdraws from the queue on the server.
    ///
    /// - Throws: `EtcdClientError` `leaseNotFound` for an unknown lease; `emptyKey` for an empty name.
    public func lock(_ name: some EtcdBytes, lease: Int64) async throws -> EtcdServerLock {
        var request = V3lockpb_LockRequest()
        request.name = name.etcdData
        request.lease = lease
        if request.name.isEmpty {
            throw EtcdClientError(code: .emptyKey, message: "a lock needs a name")
        }
        let message = request
        let response = try await self.client.call("Lock", retry: .idempotent) { connection, options, metadata in
            try await connection.unary(V3lockpb_Lock.Method.Lock.self, message, metadata: metadata, options: options)
        }
        return EtcdServerLock(header: EtcdResponseHeader(response.header), key: response.key)
    }

    /// Releases a lock taken with ``lock(_:lease:)``, by its key.
    @discardableResult
    public func unlock(key: some EtcdBytes) async throws -> EtcdResponseHeader {
        var request = V3lockpb_UnlockRequest()
        request.key = key.etcdData
        let message = request
        let response = try await self.client.call("Unlock", retry: .idempotent) { connection, options, metadata in
            try await connection.unary(V3lockpb_Lock.Method.Unlock.self, message, metadata: metadata, options: options)
        }
        return EtcdResponseHeader(response.header)
    }
}

/// A lock held through ``EtcdLockService``.
public struct EtcdServerLock: Sendable {
    /// The header of the member that answered: cluster, member, revision and raft term.
    public var header: EtcdResponseHeader
    /// The key that owns the lock; pass it to ``EtcdLockService/unlock(key:)``.
    public var key: Data
    /// The key decoded as UTF-8.
    public var keyString: String { String(decoding: self.key, as: UTF8.self) }
}
