// SPDX-License-Identifier: Apache-2.0
import Synchronization

/// The responses of one watch, in revision order; ends when the watch ends.
///
/// It throws ``EtcdClientError`` when the server ends the watch: `compacted` (with
/// ``EtcdClientError/compactRevision``) when its start revision was compacted, `noLeader` for a
/// `.requireLeader` watch whose member lost its leader, `watchCanceled` otherwise. It ends without an
/// error when the client shuts down. Cancelling the task reading it throws `CancellationError`.
public struct EtcdWatchResponses: AsyncSequence, Sendable {
    public typealias Element = EtcdWatchResponse
    public typealias Failure = any Error

    let buffer: ResponseBuffer<EtcdWatchResponse>
    /// Rewrites each response (a namespace strips its prefix from the keys).
    let transform: (@Sendable (EtcdWatchResponse) -> EtcdWatchResponse)?

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(buffer: self.buffer, transform: self.transform) }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let buffer: ResponseBuffer<EtcdWatchResponse>
        let transform: (@Sendable (EtcdWatchResponse) -> EtcdWatchResponse)?

        /// The next response, waiting for one if none has arrived; nil when the watch has ended.
        public mutating func next() async throws -> EtcdWatchResponse? {
            try await self.next(isolation: nil)
        }

        /// The next response, read on `actor` (what `for try await` passes): a consumer on an actor
        /// does not leave it to read responses that have already arrived.
        public mutating func next(isolation actor: isolated (any Actor)?) async throws -> EtcdWatchResponse? {
            guard let response = try await self.buffer.next() else { return nil }
            return self.transform?(response) ?? response
        }
    }
}

@available(*, unavailable)
extension EtcdWatchResponses.AsyncIterator: Sendable {}
