// SPDX-License-Identifier: Apache-2.0
import Synchronization

/// A lease the client keeps alive, and what is known about it: observed, not guessed.
///
/// The state follows acknowledged renewals: ``EtcdLeaseState/alive`` while renewals come back,
/// ``EtcdLeaseState/atRisk`` when none was acknowledged for half the TTL, ``EtcdLeaseState/lost``
/// once the server said the lease is gone (revoked or expired), or its deadline (the send time of
/// the last acknowledged renewal plus the TTL it granted) passed without a renewal. A lost lease
/// stays lost. The deadline is conservative: the server's own expiry is never earlier.
///
/// You get one from ``EtcdClient/withLease(ttl:isolation:_:)``,
/// ``EtcdClient/keepAliveInBackground(_:)`` or ``EtcdLeaseKeepAliveResponses/lease``.
public final class EtcdLease: Sendable, CustomStringConvertible {
    /// The lease's ID, to attach keys with `.lease(id)`.
    public let id: Int64

    private struct State {
        /// The TTL of the last acknowledged renewal (or the grant), in seconds; nil until known.
        var ttl: Int64?
        var lastRenewal: ContinuousClock.Instant
        var deadline: ContinuousClock.Instant
        var end: EtcdClientError?
        var stop: (@Sendable () -> Void)?
    }
    private let storage: Mutex<State>
    /// Signalled when the lease ends (``end(_:)``).
    private let ended = OneTimeEvent()

    /// - Parameters:
    ///   - ttl: the TTL the lease has from `since`, when known.
    ///   - since: when the lease was last known to have that TTL (at the latest, when the request was sent).
    ///   - unknownTTLDeadline: the deadline to assume until the first renewal when the TTL is unknown.
    package init(id: Int64, ttl: Int64?, since: ContinuousClock.Instant, unknownTTLDeadline: Duration) {
        self.id = id
        let deadline = since + (ttl.map { .seconds($0) } ?? unknownTTLDeadline)
        self.storage = Mutex(State(ttl: ttl, lastRenewal: since, deadline: deadline))
    }

    /// The TTL in seconds the server reported with the last acknowledged renewal (or the grant); nil before the first.
    public var ttl: Int64? { self.storage.withLock { $0.ttl } }

    /// When the lease expires unless a renewal is acknowledged before then.
    public var deadline: ContinuousClock.Instant { self.storage.withLock { $0.deadline } }

    /// The lease's state now.
    public var state: EtcdLeaseState {
        let now = ContinuousClock.now
        return self.storage.withLock { state in
            if state.end != nil || now >= state.deadline { return .lost }
            if let ttl = state.ttl, now >= state.lastRenewal + .seconds(ttl) / 2 { return .atRisk }
            return .alive
        }
    }

    /// Why the lease is lost (`leaseNotFound` when the server said so, `leaseExpired` when its
    /// deadline passed); nil while it is not.
    public var lossReason: EtcdClientError? {
        let now = ContinuousClock.now
        return self.storage.withLock { state in
            if let end = state.end { return end }
            return now >= state.deadline ? self.expired(state.deadline) : nil
        }
    }

    /// Waits until the lease is lost and returns why (see ``lossReason``).
    ///
    /// - Throws: `CancellationError` when the waiting task is cancelled.
    public func waitUntilLost() async throws -> EtcdClientError {
        while true {
            try Task.checkCancellation()
            if let reason = self.lossReason { return reason }
            // Wake at the deadline (it may move later meanwhile), or when the lease ends.
            await self.ended.wait(until: self.deadline)
        }
    }

    /// Stops keeping the lease alive, if ``EtcdClient/keepAliveInBackground(_:)`` started it;
    /// the lease then expires after its TTL unless renewed otherwise. Revoke it to end it at once.
    public func stopKeepAlive() {
        let stop = self.storage.withLock { state in
            defer { state.stop = nil }
            return state.stop
        }
        stop?()
    }

    public var description: String { "EtcdLease(id: \(self.id), state: \(self.state))" }

    // MARK: Updates from the lessor

    /// A renewal sent at `sentAt` was acknowledged with `ttl` seconds.
    package func renewed(ttl: Int64, sentAt: ContinuousClock.Instant) {
        self.storage.withLock { state in
            guard state.end == nil else { return }
            let renewedUntil = sentAt + .seconds(ttl)
            // Until the first renewal the deadline was a guess; afterwards renewals only extend it.
            state.deadline = state.ttl == nil ? renewedUntil : max(state.deadline, renewedUntil)
            state.ttl = ttl
            state.lastRenewal = max(state.lastRenewal, sentAt)
        }
    }

    /// The lease is lost for `reason` (first reason wins).
    package func end(_ reason: EtcdClientError) {
        self.storage.withLock { state in
            if state.end == nil { state.end = reason }
            state.stop = nil
        }
        self.ended.signal()
    }

    /// The error for a lease whose deadline passed without renewal.
    func expired(_ deadline: ContinuousClock.Instant) -> EtcdClientError {
        EtcdClientError(
            code: .leaseExpired,
            message: """
                lease \(self.id) was not renewed before its deadline (its TTL ran out \
                \(ContinuousClock.now - deadline) ago): it has expired on the server, or will any moment, \
                and its keys with it; grant a new lease
                """
        )
    }

    func setStop(_ stop: (@Sendable () -> Void)?) {
        self.storage.withLock { $0.stop = stop }
    }
}

/// What is known about a kept-alive lease; see ``EtcdLease``.
public struct EtcdLeaseState: Hashable, Sendable, CustomStringConvertible {
    private enum Base: String, Hashable, Sendable { case alive, atRisk, lost }
    private let base: Base

    /// A renewal was acknowledged within the last half TTL.
    public static let alive = Self(base: .alive)
    /// No renewal was acknowledged for half the TTL; the lease still has time left.
    public static let atRisk = Self(base: .atRisk)
    /// The server said the lease is gone, or its deadline passed without renewal.
    public static let lost = Self(base: .lost)

    public var description: String { self.base.rawValue }
}
