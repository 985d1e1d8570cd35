// SPDX-License-Identifier: Apache-2.0

/// The deadline that calls of an ``EtcdClient`` made inside ``withEtcdTimeout(_:_:)`` share.
enum EtcdCallDeadline {
    @TaskLocal static var current: ContinuousClock.Instant?
}

/// Runs `body` with a deadline for every etcd call it makes, like a Go `context.WithTimeout`.
///
/// Each call (with its retries and failovers) ends by the deadline, successfully or with
/// `deadlineExceeded`. Nested deadlines keep the earlier one.
///
/// ```swift
/// let response = try await withEtcdTimeout(.seconds(5)) { try await client.get("config/") }
/// ```
@discardableResult
public func withEtcdTimeout<Result>(
    _ timeout: Duration,
    isolation: isolated (any Actor)? = #isolation,
    _ body: () async throws -> Result
) async throws -> Result {
    try await withEtcdDeadline(.now + timeout, isolation: isolation, body)
}

/// Runs `body` with a deadline for every etcd call it makes; see ``withEtcdTimeout(_:isolation:_:)``.
@discardableResult
public func withEtcdDeadline<Result>(
    _ deadline: ContinuousClock.Instant,
    isolation: isolated (any Actor)? = #isolation,
    _ body: () async throws -> Result
) async throws -> Result {
    let effective = EtcdCallDeadline.current.map { min($0, deadline) } ?? deadline
    return try await EtcdCallDeadline.$current.withValue(effective, operation: body, isolation: isolation)
}

/// Whether calls of an ``EtcdClient`` made inside ``withEtcdRequireLeader(_:isolation:_:)`` require a leader.
enum EtcdRequireLeader {
    @TaskLocal static var current = false
}

/// Runs `body` so that every etcd call it makes requires the member to have a leader, like Go's
/// `clientv3.WithRequireLeader(ctx)`.
///
/// A member cut off from the rest of its cluster keeps accepting calls and holds them until its
/// election times out; with this, it answers at once with `noLeader` instead. Reads and other
/// idempotent calls then move to another endpoint within their deadline (writes fail with
/// `noLeader`, which means they were not applied); with no other endpoint to move to, the call
/// fails with `noLeader` at once. Watches created inside `body` get ``EtcdWatchOptions/requireLeader``.
///
/// ```swift
/// let response = try await withEtcdRequireLeader { try await client.get("config/", options: .prefix) }
/// ```
@discardableResult
public func withEtcdRequireLeader<Result>(
    isolation: isolated (any Actor)? = #isolation,
    _ body: () async throws -> Result
) async throws -> Result {
    try await EtcdRequireLeader.$current.withValue(true, operation: body, isolation: isolation)
}
