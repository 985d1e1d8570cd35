// SPDX-License-Identifier: Apache-2.0
public import Etcd

/// A lease kept alive for as long as a process takes part in locks and elections (Go's
/// `concurrency.Session`).
///
/// Keys a session creates are attached to its lease, so they vanish when the session ends: closed,
/// or lost because its process stopped renewing (crashed, partitioned) for the TTL. ``lease``
/// tells whether the session is still alive; ``waitUntilLost()`` is Go's `Done()`.
public final class EtcdSession: Sendable {
    /// The default TTL of a session's lease, in seconds, as in Go.
    public static let defaultTTL: Int64 = 60

    /// The client the session's requests go through.
    public let client: EtcdClient
    /// The session's lease and its state.
    public let lease: EtcdLease
    /// The TTL the session asked for, in seconds.
    public let ttl: Int64

    /// Starts a session: grants a lease with `ttl` (or adopts `leaseID`) and keeps it alive in the
    /// client's background.
    ///
    /// - Parameters:
    ///   - client: the client that grants the lease and keeps it alive.
    ///   - ttl: the lease's time to live in seconds; the session is lost this long after its
    ///     process stops renewing.
    ///   - leaseID: an existing lease to use instead of granting one (Go's `WithLease`).
    /// - Throws: `EtcdClientError`: `invalidArgument` for a TTL that is not positive; the grant's errors.
    public init(client: EtcdClient, ttl: Int64 = EtcdSession.defaultTTL, leaseID: Int64? = nil) async throws {
        guard ttl > 0 else {
            throw EtcdClientError(code: .invalidArgument, message: "a session's TTL must be positive, got \(ttl)")
        }
        self.client = client
        self.ttl = ttl
        if let leaseID {
            self.lease = try client.keepAliveInBackground(leaseID)
        } else {
            let grant = try await client.grant(ttl: ttl)
            self.lease = try client.keepAliveInBackground(grant.id)
        }
    }

    /// The session's lease ID; the keys of its locks and campaigns are named after it.
    public var leaseID: Int64 { self.lease.id }

    /// Whether the session's lease is lost (revoked, expired, or its deadline passed unrenewed).
    public var isLost: Bool { self.lease.state == .lost }

    /// Waits until the session's lease is lost and returns why (Go's `Done()`).
    public func waitUntilLost() async throws -> EtcdClientError {
        try await self.lease.waitUntilLost()
    }

    /// Stops renewing the lease without revoking it (Go's `Orphan`): its keys stay until the TTL runs out.
    public func orphan() {
        self.lease.stopKeepAlive()
    }

    /// Ends the session: stops renewing and revokes the lease, deleting every key attached to it
    /// (locks held are released, campaigns withdrawn).
    ///
    /// The revoke is bounded by the session's TTL (after which the lease is gone anyway) and runs
    /// even when the calling task is cancelled.
    public func close() async throws {
        self.orphan()
        let (client, id, ttl) = (self.client, self.leaseID, self.ttl)
        // Detached: no caller deadline or cancellation may stop the revoke.
        try await Task.detached {
            do {
                try await withEtcdTimeout(.seconds(ttl)) { try await client.revoke(id) }
            } catch let error as EtcdClientError where error.code == .leaseNotFound {
                // Already gone: that is what closing wanted.
            }
        }.value
    }
}

extension EtcdClient {
    /// Runs `body` with a new session and closes it afterwards (revoking its lease), also when
    /// `body` throws or is cancelled.
    ///
    /// ```swift
    /// try await client.withSession(ttl: 10) { session in
    ///     try await EtcdMutex(session: session, name: "jobs/cleanup").withLock { ... }
    /// }
    /// ```
    @discardableResult
    public func withSession<Result: Sendable>(
        ttl: Int64 = EtcdSession.defaultTTL,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (EtcdSession) async throws -> Result
    ) async throws -> Result {
        let session = try await EtcdSession(client: self, ttl: ttl)
        let result: Result
        do {
            result = try await body(session)
        } catch {
            try? await session.close()
            throw error
        }
        try await session.close()
        return result
    }
}
