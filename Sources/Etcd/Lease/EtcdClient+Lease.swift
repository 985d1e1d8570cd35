// SPDX-License-Identifier: Apache-2.0
internal import EtcdAPI
import GRPCCore
import Logging

extension EtcdClient {
    /// Grants a lease that expires unless kept alive; attach keys to it with `.lease(id)`.
    ///
    /// TTLs below the server's minimum (about 2 s with default settings) are raised to it; the
    /// response says what was granted.
    ///
    /// - Parameters:
    ///   - ttl: the time to live in seconds.
    ///   - id: the ID to use, or 0 to let the server choose one.
    /// - Throws: ``EtcdClientError`` `invalidArgument` for a negative TTL or ID (before anything is
    ///   sent); `leaseTTLTooLarge` above the server's maximum (9,000,000,000 s); `leaseExists` when
    ///   `id` is taken.
    public func grant(ttl: Int64, id: Int64 = 0) async throws -> EtcdLeaseGrantResponse {
        let request = try EtcdRequests.leaseGrant(ttl: ttl, id: id)
        let response = try await self.call("LeaseGrant", retry: .mutation) { connection, options, metadata in
            try await connection.unary(
                Etcdserverpb_Lease.Method.LeaseGrant.self, request, metadata: metadata, options: options)
        }
        return EtcdLeaseGrantResponse(response)
    }

    /// Revokes a lease: it ends now, and every key attached to it is deleted.
    ///
    /// Keepalives of the lease in this client end with `leaseNotFound`.
    ///
    /// - Throws: ``EtcdClientError`` `leaseNotFound` when the lease does not exist (never granted,
    ///   expired, or already revoked).
    @discardableResult
    public func revoke(_ id: Int64) async throws -> EtcdLeaseRevokeResponse {
        var request = Etcdserverpb_LeaseRevokeRequest()
        request.id = id
        // Not retried once sent: a second attempt would report leaseNotFound for a lease the first revoked.
        let response = try await self.call("LeaseRevoke", retry: .mutation) { connection, options, metadata in
            try await connection.unary(
                Etcdserverpb_Lease.Method.LeaseRevoke.self, request, metadata: metadata, options: options)
        }
        self.lessor.end(
            id,
            EtcdClientError(
                code: .leaseNotFound,
                message: "lease \(id) was revoked by this client; its keys are deleted"
            )
        )
        return EtcdLeaseRevokeResponse(response)
    }

    /// The seconds a lease has left, the TTL it was granted with, and optionally its keys.
    ///
    /// - Throws: ``EtcdClientError`` `leaseNotFound` when the lease does not exist (never granted,
    ///   expired or revoked). Go's client answers TTL -1 instead; a missing lease is an error here.
    public func timeToLive(_ id: Int64, attachedKeys: Bool = false) async throws -> EtcdLeaseTimeToLiveResponse {
        var request = Etcdserverpb_LeaseTimeToLiveRequest()
        request.id = id
        request.keys = attachedKeys
        let response = try await self.call("LeaseTimeToLive", retry: .idempotent) { connection, options, metadata in
            try await connection.unary(
                Etcdserverpb_Lease.Method.LeaseTimeToLive.self, request, metadata: metadata, options: options)
        }
        if response.ttl < 0 {
            throw EtcdClientError(
                code: .leaseNotFound,
                message:
                    "etcdserver: requested lease not found: lease \(id) does not exist (expired, revoked, or never granted)"
            )
        }
        return EtcdLeaseTimeToLiveResponse(response)
    }

    /// The IDs of every lease the cluster holds (etcd 3.3+).
    public func leases() async throws -> EtcdLeaseLeasesResponse {
        let response = try await self.call("LeaseLeases", retry: .idempotent, minimumVersion: (.v3_3, "LeaseLeases")) {
            connection, options, metadata in
            try await connection.unary(
                Etcdserverpb_Lease.Method.LeaseLeases.self, Etcdserverpb_LeaseLeasesRequest(), metadata: metadata,
                options: options)
        }
        return EtcdLeaseLeasesResponse(response)
    }

    /// Renews a lease once, on a stream of its own, and returns the renewed TTL.
    ///
    /// An answer of TTL 0 is checked once more half a second later before the lease is reported
    /// gone: etcd 3.5 before 3.5.3 and 3.4 before 3.4.20 give it for a lease whose grant the
    /// answering member has not applied yet (etcd-io/etcd#13675).
    ///
    /// - Throws: ``EtcdClientError`` `leaseNotFound` when the lease does not exist.
    public func keepAliveOnce(_ id: Int64) async throws -> EtcdLeaseKeepAliveResponse {
        var message = Etcdserverpb_LeaseKeepAliveRequest()
        message.id = id
        let request = message
        // One request on a stream the client half-closes at once: etcd answers it, sees the end
        // of the stream and ends its side, so the exchange is unary-shaped and takes the unary path.
        let renew = {
            try await self.call("LeaseKeepAlive", retry: .idempotent) { connection, options, metadata in
                try await connection.unary(
                    Etcdserverpb_Lease.Method.LeaseKeepAlive.self, request, metadata: metadata, options: options)
            }
        }
        var response = try await renew()
        if response.ttl <= 0 {
            Lessor.logAskingAgain(id, self.logger)
            try await Task.sleep(for: Lessor.notFoundRecheckDelay)
            response = try await renew()
        }
        if response.ttl <= 0 {
            throw EtcdClientError(
                code: .leaseNotFound,
                message:
                    "etcdserver: requested lease not found: lease \(id) does not exist (expired, revoked, or never granted)"
            )
        }
        return EtcdLeaseKeepAliveResponse(response)
    }

    /// Keeps a lease alive for the duration of `body`, which reads the acknowledged renewals.
    ///
    /// Renewals go out every TTL/3 on the client's one keepalive stream, shared by every lease, and
    /// continue on another endpoint when a stream or member fails. They never wait for `body` to
    /// read: acknowledgements queue up for it (one small response per TTL/3). The sequence ends with
    /// the lease (see ``EtcdLeaseKeepAliveResponses``); its ``EtcdLeaseKeepAliveResponses/lease``
    /// tells the lease's state at any time. Leaving `body` stops renewing the lease (unless another
    /// keepalive holds it); it does not revoke it.
    ///
    /// ```swift
    /// let lease = try await client.grant(ttl: 5)
    /// try await client.keepAlive(lease.id) { responses in
    ///     for try await response in responses { print("ttl:", response.ttl) }
    /// }
    /// ```
    public func keepAlive<Result: Sendable>(
        _ id: Int64,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (EtcdLeaseKeepAliveResponses) async throws -> Result
    ) async throws -> Result {
        try self.checkNotShutDown()
        let buffer = ResponseBuffer<EtcdLeaseKeepAliveResponse>(limit: nil)
        let (lease, token) = self.lessor.keep(id, ttl: nil, since: .now, reader: buffer, client: self)
        defer { self.lessor.release(token) }
        return try await body(EtcdLeaseKeepAliveResponses(lease: lease, buffer: buffer))
    }

    /// Keeps a lease alive in the client's background until it is revoked, expires, its
    /// ``EtcdLease/stopKeepAlive()`` is called, or the client shuts down (Go's `KeepAlive` with
    /// its channel left unread).
    ///
    /// The returned ``EtcdLease`` reports the lease's state.
    public func keepAliveInBackground(_ id: Int64) throws -> EtcdLease {
        try self.checkNotShutDown()
        return self.keepInBackground(id, ttl: nil, since: .now)
    }

    /// Grants a lease, keeps it alive while `body` runs, and revokes it afterwards: also when `body`
    /// throws or its task is cancelled.
    ///
    /// ```swift
    /// try await client.withLease(ttl: 10) { lease in
    ///     try await client.put("service/instance-1", value: "10.0.0.1:8080", options: .lease(lease.id))
    ///     try await serve()
    /// }   // the key is deleted here
    /// ```
    ///
    /// Check ``EtcdLease/state`` (or await ``EtcdLease/waitUntilLost()``) to learn whether the lease
    /// survived: a lease can be lost while `body` runs when no member could be reached for its TTL.
    ///
    /// - Parameters:
    ///   - ttl: the time to live in seconds; see ``grant(ttl:id:)``.
    ///   - isolation: the actor `body` runs on; the caller's, by default.
    ///   - body: runs with the lease kept alive; when it returns or throws, the lease is revoked.
    @discardableResult
    public func withLease<Result: Sendable>(
        ttl: Int64,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (EtcdLease) async throws -> Result
    ) async throws -> Result {
        let sent = ContinuousClock.now
        let grant = try await self.grant(ttl: ttl)
        let lease = self.keepInBackground(grant.id, ttl: grant.ttl, since: sent)
        do {
            let result = try await body(lease)
            lease.stopKeepAlive()
            await self.revokeAfterUse(grant.id)
            return result
        } catch {
            lease.stopKeepAlive()
            await self.revokeAfterUse(grant.id)
            throw error
        }
    }

    private func keepInBackground(_ id: Int64, ttl: Int64?, since: ContinuousClock.Instant) -> EtcdLease {
        let (lease, token) = self.lessor.keep(id, ttl: ttl, since: since, reader: nil, client: self)
        lease.setStop { [lessor = self.lessor] in lessor.release(token) }
        return lease
    }

    /// Revokes a lease at the end of its scope, even when the scope's task is cancelled, within
    /// the dial timeout. A failure is logged: the lease then expires after its TTL.
    func revokeAfterUse(_ id: Int64) async {
        let timeout = self.configuration.dialTimeout
        await Task {
            do {
                try await EtcdCallDeadline.$current.withValue(.now + timeout) {
                    _ = try await self.revoke(id)
                }
            } catch {
                self.logger.debug(
                    "etcd could not revoke a lease at the end of its scope; it expires after its TTL",
                    metadata: ["etcd_lease": "\(id)", "etcd_error": "\(error)"]
                )
            }
        }.value
    }
}

extension EtcdRequests {
    static func leaseGrant(ttl: Int64, id: Int64) throws(EtcdClientError) -> Etcdserverpb_LeaseGrantRequest {
        if ttl < 0 { throw Self.invalid("a lease's TTL must not be negative, got \(ttl)") }
        if id < 0 { throw Self.invalid("a lease ID must not be negative, got \(id); pass 0 to let etcd choose") }
        var request = Etcdserverpb_LeaseGrantRequest()
        request.ttl = ttl
        request.id = id
        return request
    }
}
