// SPDX-License-Identifier: Apache-2.0
internal import EtcdAPI
import GRPCCore
import Logging
import Synchronization

/// Keeps leases alive over one LeaseKeepAlive stream per client.
///
/// The stream lives in a background task of ``EtcdClient/run()``, started with the first kept lease.
/// Each lease is renewed every TTL/3; acknowledgements go to every reader of that lease, into
/// unbounded buffers, so a slow reader never delays a renewal or loses a response. When the stream
/// breaks, or a renewal goes unanswered for too long, the stream is opened again on another
/// endpoint and every lease is renewed at once. A lease ends for everyone when the server answers
/// TTL <= 0 (`leaseNotFound`) twice, the second time to a renewal sent at least
/// ``notFoundRecheckDelay`` after the first such answer, or when its deadline passes without renewal
/// (`leaseExpired`).
final class Lessor: Sendable {
    /// How often due renewals are sent and deadlines checked.
    static let tick = Duration.milliseconds(250)

    /// How long after a TTL <= 0 answer the lease is asked about again before it is given up.
    ///
    /// etcd 3.5 before 3.5.3 and 3.4 before 3.4.20 (etcd-io/etcd#13675) answer a renewal with TTL 0
    /// when the member that handles it has not yet applied the lease's grant: a lease just granted
    /// through another member, or any lease on a leader still applying entries after an election.
    /// Applying takes milliseconds, so a renewal sent this much later gets the true answer.
    static let notFoundRecheckDelay = Duration.milliseconds(500)

    /// The longest wait before the keepalive stream is opened again after it failed (the retry
    /// configuration's backoff grows up to this, not beyond).
    ///
    /// While a cluster elects a leader every member refuses the stream (`noLeader`), so the attempts
    /// fail one after the other; the first one after the election must come soon, as leases have
    /// waited through the whole election. etcd's Go client waits this long before every attempt.
    static let maxReopenDelay = Duration.milliseconds(500)

    private struct Entry {
        let lease: EtcdLease
        /// Readers of keepalive responses, by token.
        var readers: [Int: ResponseBuffer<EtcdLeaseKeepAliveResponse>] = [:]
        /// Holders that only want the lease kept (no responses), by token.
        var keepers: Set<Int> = []
        /// When the next renewal is due.
        var nextSend: ContinuousClock.Instant
        /// When the oldest renewal not yet acknowledged was sent.
        var unansweredSince: ContinuousClock.Instant?
        /// When each renewal not yet answered on the current stream was sent, oldest first. etcd
        /// answers a stream's renewals one by one, in order, so an answer is for the first of these.
        var sentOnStream: [ContinuousClock.Instant] = []
        /// When the server first answered TTL <= 0 since the last renewal it acknowledged.
        var notFoundSince: ContinuousClock.Instant?
        /// The lease's deadline when last read: the tick compares with it instead of reading the
        /// lease (a lock and a cache miss per lease), and reads the lease only once it has passed.
        var deadlineSeen: ContinuousClock.Instant

        init(lease: EtcdLease, nextSend: ContinuousClock.Instant) {
            self.lease = lease
            self.nextSend = nextSend
            self.deadlineSeen = lease.deadline
        }

        var isUnused: Bool { self.readers.isEmpty && self.keepers.isEmpty }

        enum Check { case expired, due, stuck, waiting }

        /// What a tick at `now` must do for this entry: end the lease, renew it, or nothing; or
        /// (with `canFailOver`) whether its oldest renewal has waited so long that the stream looks stuck.
        ///
        /// `mutating` (it updates ``deadlineSeen``) also lets a dictionary's entry be checked in
        /// place (its `_modify` accessor) instead of copied out, which retains every reference it holds.
        mutating func check(at now: ContinuousClock.Instant, canFailOver: Bool) -> Check {
            if now >= self.deadlineSeen {
                self.deadlineSeen = self.lease.deadline
                if now >= self.deadlineSeen { return .expired }
            }
            if canFailOver, let since = self.sentOnStream.first {
                // Acknowledgements take milliseconds; an election takes about a second.
                let ttl = self.lease.ttl.map { Duration.seconds($0) } ?? .seconds(6)
                if now - since > min(max(ttl / 6, .seconds(1)), .seconds(3)) { return .stuck }
            }
            return self.nextSend <= now ? .due : .waiting
        }
    }

    private struct State {
        var entries: [Int64: Entry] = [:]
        var nextToken = 0
        var outbound: AsyncStream<Etcdserverpb_LeaseKeepAliveRequest>.Continuation?
        var started = false
        var shutDown = false
    }
    private let state = Mutex(State())
    /// Whether the client has more than one endpoint to move a stuck stream to.
    /// Whether the client has more than one endpoint now (it changes with `sync()`).
    private let canFailOver: @Sendable () -> Bool

    init(canFailOver: @escaping @Sendable () -> Bool) {
        self.canFailOver = canFailOver
    }

    /// A registration made by ``keep(_:ttl:since:reader:client:)``, for ``release(_:)``.
    struct Token: Sendable {
        let id: Int64
        let token: Int
    }

    // MARK: Registrations

    /// Starts (or joins) keeping lease `id` alive; with `reader`, its acknowledgements are pushed there.
    ///
    /// - Parameters:
    ///   - ttl: the lease's TTL when known (just granted), which sets the first deadline.
    ///   - since: when the lease was known to have `ttl` left.
    func keep(
        _ id: Int64,
        ttl: Int64?,
        since: ContinuousClock.Instant,
        reader: ResponseBuffer<EtcdLeaseKeepAliveResponse>?,
        client: EtcdClient
    ) -> (EtcdLease, Token) {
        let unknownTTLDeadline = max(client.configuration.dialTimeout, .seconds(5))
        let (lease, token, start, shutDown) = self.state.withLock { state in
            let token = state.nextToken
            state.nextToken += 1
            var entry =
                state.entries[id]
                ?? Entry(
                    lease: EtcdLease(id: id, ttl: ttl, since: since, unknownTTLDeadline: unknownTTLDeadline),
                    nextSend: .now
                )
            if let reader { entry.readers[token] = reader } else { entry.keepers.insert(token) }
            let isNew = state.entries[id] == nil
            state.entries[id] = entry
            if isNew, let outbound = state.outbound, !state.shutDown {
                // Renew at once: the first acknowledgement tells us the TTL.
                Self.send(id, &state.entries[id]!, outbound)
            }
            defer { state.started = true }
            return (entry.lease, Token(id: id, token: token), !state.started, state.shutDown)
        }
        if shutDown {
            // The client is shut down: nothing will renew the lease, and the readers end now.
            reader?.finish()
        } else if start {
            client.runInBackground { await self.run(client: client) }
        }
        return (lease, token)
    }

    /// Ends a registration; the lease is no longer renewed once nobody holds it.
    func release(_ token: Token) {
        let reader = self.state.withLock { state -> ResponseBuffer<EtcdLeaseKeepAliveResponse>? in
            guard var entry = state.entries[token.id] else { return nil }
            let reader = entry.readers.removeValue(forKey: token.token)
            entry.keepers.remove(token.token)
            state.entries[token.id] = entry.isUnused ? nil : entry
            return reader
        }
        reader?.finish()
    }

    /// The lease ended for `reason` (revoked by this client, or found gone): ends every registration.
    func end(_ id: Int64, _ reason: EtcdClientError) {
        guard let entry = self.state.withLock({ $0.entries.removeValue(forKey: id) }) else { return }
        entry.lease.end(reason)
        for reader in entry.readers.values { reader.finish(throwing: reason) }
    }

    /// Ends every reader without an error (the client shuts down); leases are no longer renewed.
    func finishAll() {
        let entries = self.state.withLock { state in
            state.shutDown = true
            defer { state.entries = [:] }
            return Array(state.entries.values)
        }
        for entry in entries {
            entry.lease.setStop(nil)
            for reader in entry.readers.values { reader.finish() }
        }
    }

    var keptCount: Int { self.state.withLock { $0.entries.count } }

    // MARK: The stream

    private static func send(
        _ id: Int64,
        _ entry: inout Entry,
        _ outbound: AsyncStream<Etcdserverpb_LeaseKeepAliveRequest>.Continuation
    ) {
        let now = ContinuousClock.now
        var request = Etcdserverpb_LeaseKeepAliveRequest()
        request.id = id
        outbound.yield(request)
        if entry.unansweredSince == nil { entry.unansweredSince = now }
        entry.sentOnStream.append(now)
        // Until answered, ask again after a second (or a third of the TTL, if shorter).
        let ttl = entry.lease.ttl.map { Duration.seconds($0) / 3 } ?? .seconds(1)
        entry.nextSend = now + min(ttl, .seconds(1))
    }

    /// Keeps the stream open until cancelled (the client shuts down).
    private func run(client: EtcdClient) async {
        var attempt = 0
        while !Task.isCancelled {
            let connection = client.pickConnection()
            let (requests, outbound) = AsyncStream.makeStream(of: Etcdserverpb_LeaseKeepAliveRequest.self)
            let openedAt = ContinuousClock.now
            self.state.withLock { state in
                state.outbound = outbound
                // A new stream renews every lease at once.
                for id in Array(state.entries.keys) {
                    state.entries[id]!.nextSend = openedAt
                    state.entries[id]!.sentOnStream = []
                }
            }
            var failure: EtcdClientError?
            let received = AtomicFlag()
            do {
                var metadata = try await client.streamMetadata()
                // A member that loses its leader ends the stream (noLeader) instead of keeping it silent.
                metadata.addString("true", forKey: "hasleader")
                let streamMetadata = metadata
                // The ticker runs beside the call, not in its response handler: etcd sends the
                // response headers only with the first answer, which needs a renewal sent first.
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        // Answers are handled on the connection's event loop as they arrive (handle()
                        // does not block: it records the renewal and wakes the lease's readers).
                        try await connection.stream(
                            Etcdserverpb_Lease.Method.LeaseKeepAlive.self, metadata: streamMetadata, options: .defaults,
                            onResponse: { message in
                                received.set()
                                self.handle(message, logger: client.logger)
                            },
                            requests: { send in
                                for await request in requests { send(request) }
                            }
                        )
                        throw EtcdClientError(
                            code: .unavailable,
                            message: "\(connection.endpoint) ended the lease keepalive stream",
                            endpoint: connection.endpoint.description
                        )
                    }
                    group.addTask {
                        while true {
                            try self.tick(endpoint: connection.endpoint.description)
                            client.metrics?.recordLeases(self.keptCount)
                            try await Task.sleep(for: Self.tick)
                        }
                    }
                    try await group.next()
                    group.cancelAll()
                }
            } catch {
                if Task.isCancelled { break }
                failure = EtcdClientError.from(error, endpoint: connection.endpoint.description) as? EtcdClientError
            }
            outbound.finish()
            self.state.withLock { $0.outbound = nil }
            if Task.isCancelled { break }
            if received.isSet {
                attempt = 0
                connection.markHealthy()
            }
            if let failure {
                client.logger.debug(
                    "etcd lease keepalive stream broke; reopening",
                    metadata: ["etcd_endpoint": "\(connection.endpoint)", "etcd_code": "\(failure.code)"]
                )
                switch failure.code {
                case .invalidAuthToken, .authOldRevision:
                    client.forgetToken()
                case .unavailable:
                    client.leave(connection)
                default:
                    if client.connections.count > 1 { client.leave(connection) }
                }
                if failure.isTLSFailure || failure.code == .authFailed || failure.code == .userEmpty {
                    // Configuration problems: reopening cannot help, and leases must not look kept.
                    self.endAll(failure)
                }
            }
            attempt += 1
            let backoff = min(
                client.configuration.retry.initialBackoff * (1 << min(attempt, 10)),
                client.configuration.retry.maxBackoff,
                Self.maxReopenDelay
            )
            // Renewals continue at once on another endpoint; the same one is retried with a backoff,
            // during which leases whose deadline passes still end on time.
            let resumeAt = ContinuousClock.now + (attempt == 1 ? .zero : backoff)
            do {
                while ContinuousClock.now < resumeAt {
                    try await Task.sleep(until: min(resumeAt, .now + Self.tick))
                    self.endExpired()
                    client.metrics?.recordLeases(self.keptCount)
                }
            } catch { break }
        }
        self.state.withLock { state in
            state.outbound?.finish()
            state.outbound = nil
        }
        self.finishAll()
        client.metrics?.recordLeases(0)
    }

    /// Sends due renewals and ends leases whose deadline passed. Throws to reopen the stream when a
    /// renewal sent on it went unanswered for too long (the member or its leader is gone).
    private func tick(endpoint: String) throws {
        let now = ContinuousClock.now
        var expired: [Entry] = []
        var stuck = false
        // With one endpoint, reopening cannot help and would drop answers in flight. Asked once per
        // tick, not once per lease.
        let canFailOver = self.canFailOver()
        self.state.withLock { state in
            guard let outbound = state.outbound else { return }
            // Read every entry in place first, then change the few that need it: changing the
            // dictionary while iterating it would copy all of it, and taking each entry out would
            // copy its references (cache misses on every lease, every tick).
            var due: [Int64] = []
            var ended: [Int64] = []
            var index = state.entries.startIndex
            while index != state.entries.endIndex {
                let id = state.entries.keys[index]
                switch state.entries.values[index].check(at: now, canFailOver: canFailOver) {
                case .expired: ended.append(id)
                case .due: due.append(id)
                case .stuck:
                    stuck = true
                    if state.entries.values[index].nextSend <= now { due.append(id) }
                case .waiting: break
                }
                state.entries.formIndex(after: &index)
            }
            for id in ended { expired.append(state.entries.removeValue(forKey: id)!) }
            for id in due { Self.send(id, &state.entries[id]!, outbound) }
        }
        Self.end(expired)
        if stuck {
            throw EtcdClientError(
                code: .unavailable,
                message: "a lease renewal sent to \(endpoint) went unanswered; reopening the keepalive stream",
                endpoint: endpoint
            )
        }
    }

    /// Ends the leases whose deadline passed (while no stream is open).
    private func endExpired() {
        let now = ContinuousClock.now
        let expired = self.state.withLock { state -> [Entry] in
            let ids = state.entries.filter { now >= $0.value.lease.deadline }.map(\.key)
            return ids.compactMap { state.entries.removeValue(forKey: $0) }
        }
        Self.end(expired)
    }

    private static func end(_ expired: [Entry]) {
        for entry in expired {
            let reason = entry.lease.expired(entry.lease.deadline)
            entry.lease.end(reason)
            for reader in entry.readers.values { reader.finish(throwing: reason) }
        }
    }

    private func handle(_ message: Etcdserverpb_LeaseKeepAliveResponse, logger: Logger) {
        if message.ttl <= 0 {
            self.handleNotFound(message.id, logger: logger)
            return
        }
        let readers = self.state.withLock { state -> [ResponseBuffer<EtcdLeaseKeepAliveResponse>]? in
            guard let index = state.entries.index(forKey: message.id) else { return nil }
            // Changed in place: a copy taken out and written back would copy its arrays too.
            return Self.renew(&state.entries.values[index], ttl: message.ttl)
        }
        guard let readers, !readers.isEmpty else { return }
        let response = EtcdLeaseKeepAliveResponse(message)
        for reader in readers { _ = reader.push(response) }
    }

    /// Records the server's acknowledgement of `entry`'s oldest renewal on the stream; returns its readers.
    private static func renew(_ entry: inout Entry, ttl: Int64) -> [ResponseBuffer<EtcdLeaseKeepAliveResponse>] {
        let sentAt = entry.unansweredSince ?? .now
        if !entry.sentOnStream.isEmpty { entry.sentOnStream.removeFirst() }
        entry.unansweredSince = entry.sentOnStream.first
        entry.notFoundSince = nil
        entry.nextSend = sentAt + .seconds(ttl) / 3
        entry.lease.renewed(ttl: ttl, sentAt: sentAt)
        // The first renewal may move the deadline earlier (it replaces a guess).
        entry.deadlineSeen = entry.lease.deadline
        return entry.readers.isEmpty ? [] : Array(entry.readers.values)
    }

    /// The server answered a renewal of lease `id` with TTL <= 0. The first such answer schedules
    /// another renewal ``notFoundRecheckDelay`` later; the answer to that one, if also TTL <= 0, ends
    /// the lease. Answers to renewals sent in between change nothing.
    private func handleNotFound(_ id: Int64, logger: Logger) {
        enum Outcome { case notKept, recheck, wait, gone }
        let now = ContinuousClock.now
        let outcome = self.state.withLock { state -> Outcome in
            guard var entry = state.entries[id] else { return .notKept }
            let sentAt = entry.sentOnStream.isEmpty ? nil : entry.sentOnStream.removeFirst()
            // The server answered: the stream is not stuck on this lease.
            entry.unansweredSince = entry.sentOnStream.first
            defer { state.entries[id] = entry }
            guard let since = entry.notFoundSince else {
                entry.notFoundSince = now
                entry.nextSend = now + Self.notFoundRecheckDelay
                return .recheck
            }
            guard let sentAt, sentAt >= since + Self.notFoundRecheckDelay else { return .wait }
            return .gone
        }
        switch outcome {
        case .notKept, .wait:
            return
        case .recheck:
            Self.logAskingAgain(id, logger)
        case .gone:
            self.end(
                id,
                EtcdClientError(
                    code: .leaseNotFound,
                    message: """
                        etcdserver: requested lease not found: lease \(id) was revoked or has expired, \
                        and its keys are deleted; grant a new lease
                        """
                )
            )
        }
    }

    /// The debug line for a TTL 0 answer that is to be checked with another renewal.
    static func logAskingAgain(_ id: Int64, _ logger: Logger) {
        logger.debug(
            "etcd answered a lease renewal with TTL 0; asking again before giving the lease up",
            metadata: ["etcd_lease_id": "\(id)"]
        )
    }

    private func endAll(_ reason: EtcdClientError) {
        let ids = self.state.withLock { Array($0.entries.keys) }
        for id in ids { self.end(id, reason) }
    }
}
