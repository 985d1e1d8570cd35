// SPDX-License-Identifier: Apache-2.0
public import Etcd
import Synchronization

/// A leader election (Go's `concurrency.Election`), with the same key layout so Swift and Go
/// processes (and `etcdctl elect`) take part in the same elections.
///
/// Each candidate writes `<name>/<lease ID in hex>` with its value, attached to its session's lease;
/// the candidate whose key has the lowest create revision leads. A leader whose session is lost
/// loses its leadership when its lease expires, and the next candidate takes over.
public final class EtcdElection: Sendable {
    /// The session whose lease the candidate's key is attached to.
    public let session: EtcdSession
    /// The prefix of the candidates' keys: the name with a trailing `/`.
    public let prefix: String

    private struct State {
        var leaderKey: String?
        var leaderRevision: Int64 = 0
        var header: EtcdResponseHeader?
    }
    private let state: Mutex<State>

    /// An election named `name`.
    public init(session: EtcdSession, name: String) {
        self.session = session
        self.prefix = name + "/"
        self.state = Mutex(State())
    }

    /// Resumes the leadership of a previous campaign, from its key and create revision (Go's
    /// `ResumeElection`).
    public init(session: EtcdSession, name: String, leaderKey: String, leaderRevision: Int64) {
        self.session = session
        self.prefix = name + "/"
        self.state = Mutex(State(leaderKey: leaderKey, leaderRevision: leaderRevision))
    }

    /// This candidate's key, while campaigning or leading.
    public var key: String? { self.state.withLock { $0.leaderKey } }
    /// The create revision of this candidate's key, while campaigning or leading.
    public var revision: Int64 { self.state.withLock { $0.leaderRevision } }
    /// The response header of the last campaign or proclamation.
    public var header: EtcdResponseHeader? { self.state.withLock { $0.header } }

    /// Campaigns with `value` and returns once this candidate leads.
    ///
    /// - Throws: `EtcdClientError` `sessionExpired` when the session is lost before winning; the
    ///   request errors. When the calling task is cancelled, the candidacy is withdrawn and
    ///   `CancellationError` is thrown.
    public func campaign(_ value: some EtcdBytes) async throws {
        let client = self.session.client
        let key = self.prefix + String(self.session.leaseID, radix: 16)
        let response = try await client.txn(
            if: [.createRevision(key) == 0],
            then: [.put(key, value: value, options: .lease(self.session.leaseID))],
            else: [.get(key)]
        )
        var revision = response.header.revision
        self.state.withLock { state in
            state.leaderKey = key
            state.leaderRevision = revision
        }
        if !response.succeeded, let existing = response.responses.first?.get?.kvs.first {
            revision = existing.createRevision
            self.state.withLock { $0.leaderRevision = revision }
            if existing.valueData != value.etcdData {
                do {
                    try await self.proclaim(value)
                } catch {
                    try? await self.resign()
                    throw error
                }
            }
        }
        let (prefix, myRevision) = (self.prefix, revision)
        do {
            _ = try await client.cancellingOnLoss(of: self.session, "the campaign for \(prefix) ended") {
                try await Waits.deletes(client, prefix: prefix, maxCreateRevision: myRevision - 1)
            }
        } catch is CancellationError {
            await self.resignUnconditionally()
            throw CancellationError()
        } catch {
            self.state.withLock { $0.leaderKey = nil }
            throw error
        }
        self.state.withLock { $0.header = response.header }
    }

    /// Changes the leader's value without a new election.
    ///
    /// - Throws: `EtcdClientError` `electionNotLeader` when this candidate does not lead.
    public func proclaim(_ value: some EtcdBytes) async throws {
        guard let key = self.key else {
            throw EtcdClientError(code: .electionNotLeader, message: "election: not leader (\(self.prefix))")
        }
        let response = try await self.session.client.txn(
            if: [.createRevision(key) == self.revision],
            then: [.put(key, value: value, options: .lease(self.session.leaseID))]
        )
        guard response.succeeded else {
            self.state.withLock { $0.leaderKey = nil }
            throw EtcdClientError(code: .electionNotLeader, message: "election: not leader (\(self.prefix))")
        }
        self.state.withLock { $0.header = response.header }
    }

    /// Gives up leadership (or the candidacy) so the next candidate can lead. Does nothing when
    /// not campaigning.
    public func resign() async throws {
        guard let key = self.key else { return }
        let response = try await self.session.client.txn(
            if: [.createRevision(key) == self.revision],
            then: [.delete(key)]
        )
        self.state.withLock { state in
            state.header = response.header
            state.leaderKey = nil
        }
    }

    /// The current leader's key and value.
    ///
    /// - Throws: `EtcdClientError` `electionNoLeader` when nobody campaigns.
    public func leader() async throws -> EtcdKeyValue {
        let response = try await self.session.client.get(self.prefix, options: .firstCreate)
        guard let leader = response.kvs.first else {
            throw EtcdClientError(code: .electionNoLeader, message: "election: no leader (\(self.prefix))")
        }
        return leader
    }

    /// Observes the election for the duration of `body`: the sequence yields the current leader
    /// (once there is one), then every change of leader or of its value, in order.
    ///
    /// Leaving `body` stops observing. The sequence throws when the client cannot keep watching
    /// (for example `compacted` after a long disconnection) and ends when the client shuts down.
    /// Cancelling the task reading it throws `CancellationError`.
    public func observe<Result: Sendable>(
        isolation: isolated (any Actor)? = #isolation,
        _ body: (EtcdElectionLeaders) async throws -> Result
    ) async throws -> Result {
        let (client, prefix) = (self.session.client, self.prefix)
        return try await EtcdElectionLeaders.observing(
            { yield in try await Self.observeLeaders(client, prefix: prefix, yield) }, body)
    }

    /// Takes part in the election with `value`, and runs `body` once leading; resigns afterwards,
    /// also when `body` throws or is cancelled.
    ///
    /// When the session is lost while `body` runs (so another candidate may lead by now), `body`'s
    /// task is cancelled and this throws `sessionExpired` once it has returned.
    @discardableResult
    public func withLeadership<Result: Sendable>(
        _ value: some EtcdBytes,
        _ body: @escaping @Sendable () async throws -> Result
    ) async throws -> Result {
        try await self.campaign(value)
        do {
            let result = try await self.session.client.cancellingOnLoss(
                of: self.session, "the work as leader of \(self.prefix) was cancelled", body)
            await self.resignUnconditionally()
            return result
        } catch {
            await self.resignUnconditionally()
            throw error
        }
    }

    // MARK: -

    private func resignUnconditionally() async {
        let timeout = self.session.client.configuration.dialTimeout
        await Task.detached {
            _ = try? await withEtcdTimeout(timeout) { try await self.resign() }
        }.value
    }

    /// Go's `observe` loop: the first leader (waiting for one), then its changes until its key is
    /// deleted, then the next leader.
    private static func observeLeaders(
        _ client: EtcdClient,
        prefix: String,
        _ yield: @Sendable (EtcdKeyValue) -> Void
    ) async throws {
        while true {
            let current = try await client.get(prefix, options: .firstCreate)
            var leader: EtcdKeyValue
            var revision: Int64
            if let first = current.kvs.first {
                leader = first
                revision = current.header.revision
            } else {
                // No leader yet: the first put under the prefix makes one.
                let event = try await Waits.events(
                    client, key: prefix, prefix: true, from: current.header.revision, [.put])
                leader = event.kv
                revision = event.kv.modRevision
            }
            yield(leader)
            // Follow the leader's key: new values, until it is deleted.
            let deleted = try await client.watch(leader.keyData, options: .revision(revision + 1)) { responses in
                for try await response in responses {
                    for event in response.events {
                        if event.type == .delete { return true }
                        yield(event.kv)
                    }
                }
                return false
            }
            if !deleted { return }  // the client shut down
        }
    }
}

/// The leaders an election observer sees, in order; see ``EtcdElection/observe(isolation:_:)``.
public struct EtcdElectionLeaders: AsyncSequence, Sendable {
    public typealias Element = EtcdKeyValue
    public typealias Failure = any Error

    let buffer: ResponseBuffer<EtcdKeyValue>

    /// Runs `body` with the leaders that `produce` yields, produce running in a child task that
    /// ends when `body` returns; the sequence ends when `produce` returns, and throws what it throws.
    static func observing<Result: Sendable>(
        isolation: isolated (any Actor)? = #isolation,
        _ produce: @escaping @Sendable (_ yield: @escaping @Sendable (EtcdKeyValue) -> Void) async throws -> Void,
        _ body: (EtcdElectionLeaders) async throws -> Result
    ) async throws -> Result {
        let buffer = ResponseBuffer<EtcdKeyValue>(limit: nil)
        return try await withThrowingTaskGroup(of: Void.self, returning: Result.self) { group in
            group.addTask {
                do {
                    try await produce { _ = buffer.push($0) }
                    buffer.finish()
                } catch {
                    buffer.finish(throwing: error)
                }
            }
            defer { group.cancelAll() }
            return try await body(EtcdElectionLeaders(buffer: buffer))
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(buffer: self.buffer) }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let buffer: ResponseBuffer<EtcdKeyValue>

        /// The next leader, or the current leader's new value, waiting for a change; nil when
        /// observing has ended.
        public mutating func next() async throws -> EtcdKeyValue? {
            try await self.next(isolation: nil)
        }

        /// The next leader, read on `actor` (what `for try await` passes): a consumer on an actor
        /// does not leave it to read changes that have already arrived.
        public mutating func next(isolation actor: isolated (any Actor)?) async throws -> EtcdKeyValue? {
            try await self.buffer.next()
        }
    }
}

@available(*, unavailable)
extension EtcdElectionLeaders.AsyncIterator: Sendable {}
