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
