// SPDX-License-Identifier: Apache-2.0
public import Etcd
import Synchronization

/// A KV view that never answers with an older revision than one it has already seen (Go's
/// `ordering.NewKV`).
///
/// Serializable reads are answered by whichever member serves them, and a member that is behind
/// (slow, or cut off from the leader) answers from the past. After reading revision 100 from one
/// member, a read from a lagging member could report revision 90: time going backwards for the
/// application. This view remembers the highest revision seen in any response (reads, writes and
/// transactions), and when a read or transaction comes back older, it calls the violation handler:
/// returning from it retries the call (the client sends each call to the next healthy endpoint),
/// throwing from it fails the call.
///
/// The default handler (Go's `NewOrderViolationSwitchEndpointClosure`) retries up to five times per
/// endpoint and then fails with `noGreaterRevision`.
public final class EtcdOrderingKV: Sendable {
    /// A response older than one already seen.
    public struct Violation: Sendable {
        /// The revision of the response that came back.
        public var revision: Int64
        /// The highest revision seen before the call.
        public var previousRevision: Int64
        /// How many violations this call has had, counting this one (1 for the first).
        public var attempt: Int
    }

    /// Decides what happens after a ``Violation``: return to retry the call, throw to fail it.
    public typealias ViolationHandler = @Sendable (Violation) async throws -> Void

    /// The client underneath.
    public let client: EtcdClient
    private let onViolation: ViolationHandler
    private let highest = Atomic<Int64>(0)

    /// Wraps `client`; `onViolation` decides what a stale response leads to (by default: retry up to
    /// five times per endpoint, then `noGreaterRevision`).
    public init(client: EtcdClient, onViolation: ViolationHandler? = nil) {
        self.client = client
        let limit = 5 * max(1, client.endpoints.count)
        self.onViolation =
            onViolation ?? { violation in
                if violation.attempt > limit {
                    throw EtcdClientError(
                        code: .noGreaterRevision,
                        message: """
                            no member answered with revision \(violation.previousRevision) or newer after \
                            \(violation.attempt) tries (the newest answer had \(violation.revision)); the members \
                            reached are behind the cluster: check for partitions, or read linearizably
                            """
                    )
                }
            }
    }

    /// The highest revision seen so far.
    public var revision: Int64 { self.highest.load(ordering: .acquiring) }

    /// Reads like `EtcdClient.get(_:options:)`, never older than a revision seen before.
    public func get(_ key: some EtcdBytes, options: EtcdGetOptions = []) async throws -> EtcdGetResponse {
        try await self.ordered {
            try await self.client.get(key, options: options)
        } revision: {
            $0.header.revision
        }
    }

    /// Runs a transaction like `EtcdClient.txn(if:then:else:)`; a read-only transaction answered
    /// from an older revision is retried like a get.
    @discardableResult
    public func txn(if compares: [EtcdCompare], then: [EtcdOp], else otherwise: [EtcdOp] = []) async throws
        -> EtcdTxnResponse
    {
        try await self.ordered {
            try await self.client.txn(if: compares, then: then, else: otherwise)
        } revision: {
            $0.header.revision
        }
    }

    /// Writes a key and remembers the write's revision, so later reads see at least the write.
    @discardableResult
    public func put(_ key: some EtcdBytes, value: some EtcdBytes, options: EtcdPutOptions = []) async throws
        -> EtcdPutResponse
    {
        let response = try await self.client.put(key, value: value, options: options)
        self.observe(response.header.revision)
        return response
    }

    /// Deletes like `EtcdClient.delete(_:options:)` and remembers the revision.
    @discardableResult
    public func delete(_ key: some EtcdBytes, options: EtcdDeleteOptions = []) async throws -> EtcdDeleteResponse {
        let response = try await self.client.delete(key, options: options)
        self.observe(response.header.revision)
        return response
    }

    private func ordered<Response>(
        _ call: () async throws -> Response,
        revision: (Response) -> Int64
    ) async throws -> Response {
        let previous = self.revision
        var attempt = 0
        while true {
            let response = try await call()
            let got = revision(response)
            if got >= previous {
                self.observe(got)
                return response
            }
            attempt += 1
            try await self.onViolation(Violation(revision: got, previousRevision: previous, attempt: attempt))
        }
    }

    private func observe(_ revision: Int64) {
        var current = self.highest.load(ordering: .relaxed)
        while revision > current {
            let (exchanged, original) = self.highest.compareExchange(
                expected: current, desired: revision, ordering: .acquiringAndReleasing)
            if exchanged { return }
            current = original
        }
    }
}
