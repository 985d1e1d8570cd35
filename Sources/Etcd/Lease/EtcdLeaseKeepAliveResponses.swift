// SPDX-License-Identifier: Apache-2.0

/// The acknowledged renewals of one lease, in order; ends when the lease is lost.
///
/// Every acknowledgement is delivered, however slowly the sequence is read: renewals never wait
/// for the reader. The sequence throws ``EtcdClientError`` `leaseNotFound` when the server says the
/// lease is gone (revoked, or expired) twice, the second time to a renewal sent half a second after
/// the first answer (etcd 3.5 before 3.5.3 and 3.4 before 3.4.20 say so for a lease whose grant
/// they have not applied yet), and `leaseExpired` when no renewal was acknowledged before its
/// deadline. It ends without an error when the client shuts down. Cancelling the task reading it
/// throws `CancellationError`.
public struct EtcdLeaseKeepAliveResponses: AsyncSequence, Sendable {
    public typealias Element = EtcdLeaseKeepAliveResponse
    public typealias Failure = any Error

    /// The lease being kept alive, with its current state.
    public let lease: EtcdLease
    let buffer: ResponseBuffer<EtcdLeaseKeepAliveResponse>

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(buffer: self.buffer) }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let buffer: ResponseBuffer<EtcdLeaseKeepAliveResponse>

        /// The next acknowledged renewal, waiting for one if none has arrived; nil when the sequence has ended.
        public mutating func next() async throws -> EtcdLeaseKeepAliveResponse? {
            try await self.next(isolation: nil)
        }

        /// The next acknowledged renewal, read on `actor` (what `for try await` passes): a consumer on
        /// an actor does not leave it to read renewals that have already arrived.
        public mutating func next(
            isolation actor: isolated (any Actor)?
        ) async throws -> EtcdLeaseKeepAliveResponse? {
            try await self.buffer.next()
        }
    }
}

@available(*, unavailable)
extension EtcdLeaseKeepAliveResponses.AsyncIterator: Sendable {}
