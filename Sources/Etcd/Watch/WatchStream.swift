// SPDX-License-Identifier: Apache-2.0
internal import EtcdAPI
import FoundationEssentials
import GRPCCore
import Logging
import NIOCore
import SwiftProtobuf
import Synchronization

/// One watch of a user: what to watch, where it has got to, and its buffer.
final class WatchEntry: Sendable {
    let key: Data
    let rangeEnd: Data
    let startRevision: Int64
    let prevKV: Bool
    let filters: [Etcdserverpb_WatchCreateRequest.FilterType]
    let progressNotify: Bool
    let createdNotify: Bool
    let fragment: Bool
    let buffer: ResponseBuffer<EtcdWatchResponse>

    enum Phase {
        /// Not registered on the server (not connected yet, disconnected, or about to resume).
        case pending
        /// A create request with this ID is out, or the server confirmed it.
        case registered(id: Int64)
        /// Cancelled on the server because the consumer's buffer is full.
        case suspended
        case finished
    }

    struct State {
        var phase = Phase.pending
        /// The revision to resume from; 0 until known (then the watch starts at `startRevision`).
        var nextRevision: Int64 = 0
        var fragments: [Mvccpb_Event] = []
        var created = false
        /// The caller stopped waiting for the confirmation (out of time, or cancelled): a wait that
        /// begins only now returns at once instead of missing its wake-up.
        var stoppedWaiting = false
        var createdWaiters: [CheckedContinuation<Void, Never>] = []
        var deliveredCreated = false
        /// How many auth refusals of this watch led to a fresh token since it was last created.
        var authRetries = 0
    }
    let state = Mutex(State())

    init(
        request: Etcdserverpb_WatchCreateRequest, createdNotify: Bool, bufferLimit: Int,
        onDrained: @escaping @Sendable () -> Void
    ) {
        self.key = request.key
        self.rangeEnd = request.rangeEnd
        self.startRevision = request.startRevision
        self.prevKV = request.prevKv
        self.filters = request.filters
        self.progressNotify = request.progressNotify
        self.createdNotify = createdNotify
        self.fragment = request.fragment
        self.buffer = ResponseBuffer<EtcdWatchResponse>(limit: bufferLimit, onDrained: onDrained)
    }

    /// The create request to (re-)register the watch under `id`, from where it has got to.
    func createRequest(id: Int64) -> Etcdserverpb_WatchRequest {
        var create = Etcdserverpb_WatchCreateRequest()
        create.key = self.key
        create.rangeEnd = self.rangeEnd
        let next = self.state.withLock { $0.nextRevision }
        create.startRevision = next > 0 ? next : self.startRevision
        create.prevKv = self.prevKV
        create.filters = self.filters
        create.progressNotify = self.progressNotify
        create.fragment = self.fragment
        create.watchID = id
        var request = Etcdserverpb_WatchRequest()
        request.createRequest = create
        return request
    }

    /// Waits until the server has confirmed the watch once (or it ended).
    ///
    /// Not ``OneTimeEvent``: this is lighter per watch. With it, 10,000 watches used about 0.4 KB
    /// more memory each (`watch-scale`, five runs each way).
    func waitUntilCreated() async {
        await withCheckedContinuation { continuation in
            let now = self.state.withLock { state -> Bool in
                if state.created || state.stoppedWaiting || self.buffer.isFinished { return true }
                state.createdWaiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    /// Ends the wait for the server's confirmation, now and for a wait that has not begun yet.
    func stopWaitingForCreation() {
        self.state.withLock { $0.stoppedWaiting = true }
        self.wakeCreatedWaiters()
    }

    func wakeCreatedWaiters() {
        let waiters = self.state.withLock { state in
            defer { state.createdWaiters = [] }
            return state.createdWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func finish(throwing error: (any Error)?) {
        self.state.withLock { $0.phase = .finished }
        self.buffer.finish(throwing: error)
        self.wakeCreatedWaiters()
    }
}

/// One bidirectional Watch stream shared by every watch with the same stream options.
///
/// The stream lives in a background task of ``EtcdClient/run()``. When it breaks it is opened again
/// (on another endpoint if need be) and every watch is registered again from the revision after the
/// last one it delivered, so no event is lost or repeated.
final class WatchStream: Sendable {
    let requireLeader: Bool
    private let client: EtcdClient

    private struct State {
        var entries: [ObjectIdentifier: WatchEntry] = [:]
        var byID: [Int64: WatchEntry] = [:]
        var nextID: Int64 = 1
        /// IDs of create requests the server has not answered yet, in the order sent (it answers in
        /// order, so the answered one is nearly always the first: thousands of watches created at
        /// once cost no scan each).
        var pendingCreates = CircularBuffer<Int64>()
        var outbound: AsyncStream<Etcdserverpb_WatchRequest>.Continuation?
    }
    private let state = Mutex(State())

    init(client: EtcdClient, requireLeader: Bool) {
        self.client = client
        self.requireLeader = requireLeader
    }

    var watchCount: Int { self.state.withLock { $0.entries.count } }

    // MARK: Watches

    func add(_ entry: WatchEntry) {
        self.state.withLock { state in
            state.entries[ObjectIdentifier(entry)] = entry
            Self.register(entry, &state)
        }
    }

    /// Registers a pending watch on the current stream, if connected.
    private static func register(_ entry: WatchEntry, _ state: inout State) {
        guard let outbound = state.outbound else { return }
        let id = state.nextID
        state.nextID += 1
        entry.state.withLock { $0.phase = .registered(id: id) }
        state.byID[id] = entry
        state.pendingCreates.append(id)
        outbound.yield(entry.createRequest(id: id))
    }

    func remove(_ entry: WatchEntry) {
        self.state.withLock { state in
            state.entries[ObjectIdentifier(entry)] = nil
            let phase = entry.state.withLock { state in
                defer { state.phase = .finished }
                return state.phase
            }
            if case .registered(let id) = phase { Self.cancelOnServer(id, &state) }
        }
        entry.buffer.finish()
    }

    /// Forgets watch `id` on this stream and asks the server to cancel it.
    private static func cancelOnServer(_ id: Int64, _ state: inout State) {
        state.byID[id] = nil
        var cancel = Etcdserverpb_WatchCancelRequest()
        cancel.watchID = id
        var request = Etcdserverpb_WatchRequest()
        request.cancelRequest = cancel
        state.outbound?.yield(request)
    }

    /// The consumer has caught up: register a suspended watch again.
    func resume(_ entry: WatchEntry) {
        self.state.withLock { state in
            guard state.entries[ObjectIdentifier(entry)] != nil else { return }
            let suspended = entry.state.withLock { state -> Bool in
                guard case .suspended = state.phase else { return false }
                state.phase = .pending
                return true
            }
            if suspended { Self.register(entry, &state) }
        }
    }

    /// Asks the server for a progress notification on this stream (etcd 3.4+).
    func requestProgress() -> Bool {
        self.state.withLock { state in
            guard let outbound = state.outbound else { return false }
            var request = Etcdserverpb_WatchRequest()
            request.progressRequest = Etcdserverpb_WatchProgressRequest()
            outbound.yield(request)
            return true
        }
    }

    // MARK: The stream

    /// What the connection hands the stream's task: a response, or the start of one over the receive limit.
    private enum Received {
        case response(ByteBuffer)
        case tooLarge(start: ByteBuffer, length: Int)

        var cost: Int {
            switch self {
            case .response(let bytes): bytes.readableBytes
            case .tooLarge(let start, _): start.readableBytes
            }
        }
    }

    /// Received bytes the stream's task may fall behind by before the stream's window is held:
    /// beyond it, the server can send at most one more window (``FrameConnectionHandler/targetWindow``).
    static let receivedLimit = 4 << 20

    /// Keeps the stream open until cancelled (the client shuts down), then ends every watch.
    func run() async {
        var attempt = 0
        while !Task.isCancelled {
            let connection = self.client.pickConnection()
            let (requests, outbound) = AsyncStream.makeStream(of: Etcdserverpb_WatchRequest.self)
            self.state.withLock { state in
                state.outbound = outbound
                for entry in state.entries.values {
                    let pending = entry.state.withLock { state -> Bool in
                        if case .pending = state.phase { return true }
                        return false
                    }
                    if pending { Self.register(entry, &state) }
                }
            }
            var failure: EtcdClientError?
            let receivedMessages = AtomicFlag()
            let receivedRefusal = AtomicFlag()
            do {
                var metadata = try await self.client.streamMetadata()
                if self.requireLeader { metadata.addString("true", forKey: "hasleader") }
                var options = CallOptions.defaults
                options.maxResponseMessageBytes = self.client.configuration.maxCallReceiveMessageSize
                // The connection's event loop only queues each response's bytes; this task decodes
                // and handles them in arrival order (as Go's client does in its watch stream's
                // goroutine), so the loop goes back to reading, and to the connection's other calls,
                // while the watches' consumers are woken from here. What arrived before the stream
                // ended is handled before it is reopened. When this task falls behind (it gets no
                // CPU) by `receivedLimit` bytes, the stream's flow-control window is held until it
                // has caught up: the server waits, instead of the client's memory growing.
                let windowRelease = StreamWindowRelease()
                let received = ResponseBuffer<Received>(
                    limit: Self.receivedLimit, cost: \.cost, onDrained: { windowRelease() })
                let endpoint = connection.endpoint
                let (streamMetadata, streamOptions) = (metadata, options)
                let error = await withTaskGroup(of: (any Error)?.self) { group -> (any Error)? in
                    group.addTask {
                        defer { received.finish() }
                        do {
                            try await connection.streamResponseBytes(
                                Etcdserverpb_Watch.Method.Watch.self, metadata: streamMetadata, options: streamOptions,
                                onResponse: { bytes in
                                    receivedMessages.set()
                                    return received.push(.response(bytes))
                                },
                                onOversizeResponse: { start, length in
                                    receivedMessages.set()
                                    return received.push(.tooLarge(start: start, length: length))
                                },
                                windowRelease: windowRelease,
                                requests: { send in
                                    for await request in requests { send(request) }
                                }
                            )
                            return nil
                        } catch {
                            return error
                        }
                    }
                    // A response that cannot be read, or a refusal that needs a fresh token, ends
                    // the stream (its later responses are not read) and is the error reported.
                    var handlingError: (any Error)?
                    while let item = try? await received.next() {
                        if let hold = self.client.watchStreamHold.withLock({ $0 }) { await hold.wait() }
                        let bytes: ByteBuffer
                        switch item {
                        case .response(let response):
                            bytes = response
                        case .tooLarge(let start, let length):
                            self.tooLarge(start: start, length: length, endpoint: endpoint)
                            continue
                        }
                        do {
                            let message = try EndpointConnection.decode(
                                bytes, as: Etcdserverpb_WatchResponse.self, method: "Watch", endpoint)
                            if let restart = self.handle(message) {
                                receivedRefusal.set()
                                handlingError = restart
                            }
                        } catch {
                            handlingError = error
                        }
                        if handlingError != nil { break }
                    }
                    group.cancelAll()
                    let streamError = await group.next() ?? nil
                    return handlingError ?? streamError
                }
                if let error { throw error }
            } catch {
                if Task.isCancelled { break }
                let mapped = EtcdClientError.from(error, endpoint: connection.endpoint.description)
                failure = mapped as? EtcdClientError
            }
            outbound.finish()
            if let failure, failure.code == .requestTooLarge, let rpc = failure.cause as? RPCError,
                let (_, limit) = EtcdClientError.serverReceiveLimit(rpc)
            {
                self.endCreates(over: limit, endpoint: connection.endpoint)
            }
            self.disconnected()
            if receivedMessages.isSet {
                attempt = 0
                connection.markHealthy()
            }
            if Task.isCancelled { break }
            if receivedRefusal.isSet {
                // handle() asked for a fresh token: reopen, registering the watches again.
                self.client.forgetToken()
                failure = nil
            }
            if let failure {
                self.client.logger.debug(
                    "etcd watch stream broke; reopening",
                    metadata: [
                        "etcd_endpoint": "\(connection.endpoint)", "etcd_code": "\(failure.code)",
                        "etcd_error": "\(failure.message)",
                    ]
                )
                switch failure.code {
                case .noLeader where self.requireLeader:
                    // A .requireLeader watch ends rather than waits when its member has no leader.
                    self.finishAll(throwing: failure)
                case .invalidAuthToken, .authOldRevision:
                    self.client.forgetToken()
                case .unavailable:
                    self.client.leave(connection)
                default:
                    if self.client.connections.count > 1 { self.client.leave(connection) }
                }
                if failure.isTLSFailure || failure.code == .authFailed || failure.code == .userEmpty
                    || failure.code == .permissionDenied
                {
                    // Configuration problems: reopening cannot help these watches.
                    self.finishAll(throwing: failure)
                }
            }
            attempt += 1
            let backoff = min(
                self.client.configuration.retry.initialBackoff * (1 << min(attempt, 10)),
                self.client.configuration.retry.maxBackoff
            )
            do { try await Task.sleep(for: attempt == 1 ? .zero : backoff) } catch { break }
        }
        self.state.withLock { state in
            state.outbound?.finish()
            state.outbound = nil
        }
        self.finishAll(throwing: nil)
    }

    /// The server ended the stream because a request was over its gRPC receive limit: the watches
    /// whose create request is over `limit` end with `requestTooLarge` (registered again, they would
    /// meet the same refusal, and break the stream for every other watch each time).
    private func endCreates(over limit: Int, endpoint: EtcdEndpoint) {
        let refused = self.state.withLock { state -> [(WatchEntry, Int)] in
            var refused: [(WatchEntry, Int)] = []
            for (id, entry) in state.byID {
                let size = (try? entry.createRequest(id: id).serializedBytes() as [UInt8])?.count ?? 0
                if size > limit { refused.append((entry, size)) }
            }
            for (entry, _) in refused { state.entries[ObjectIdentifier(entry)] = nil }
            return refused
        }
        for (entry, size) in refused {
            self.client.logger.debug("etcd refused a watch as too large", metadata: ["etcd_endpoint": "\(endpoint)"])
            entry.finish(
                throwing: EtcdClientError(
                    code: .requestTooLarge,
                    message: """
                        \(endpoint) refused the watch: its create request is \(size) bytes, over the server's gRPC \
                        limit of \(limit) bytes (etcd's --max-request-bytes plus 512 KiB); watch a shorter key or \
                        range, or raise --max-request-bytes on every member
                        """,
                    endpoint: endpoint.description
                ))
        }
    }

    /// The stream is gone: every registered watch must be registered again on the next one.
    private func disconnected() {
        self.state.withLock { state in
            state.outbound = nil
            state.byID = [:]
            state.pendingCreates.removeAll()
            for entry in state.entries.values {
                entry.state.withLock { state in
                    if case .registered = state.phase { state.phase = .pending }
                    state.fragments = []
                }
            }
        }
    }

    func finishAll(throwing error: EtcdClientError?) {
        let entries = self.state.withLock { state in
            defer {
                state.entries = [:]
                state.byID = [:]
            }
            return Array(state.entries.values)
        }
        for entry in entries { entry.finish(throwing: error) }
    }

    /// Handles one response; returns an error when the stream must be reopened (a stale auth token).
    private func handle(_ message: Etcdserverpb_WatchResponse) -> EtcdClientError? {
        if message.watchID == -1 && message.created && message.canceled {
            // etcd 3.4 reports a refused create without its watch ID: it is the oldest unanswered one.
            let entry = self.state.withLock { state -> WatchEntry? in
                guard !state.pendingCreates.isEmpty else { return nil }
                return state.byID[state.pendingCreates.removeFirst()]
            }
            guard let entry else { return nil }
            return self.refused(entry, message)
        }
        if message.watchID == -1 {
            // A progress response to requestProgress(): for every watch of this stream. In etcd 3.4 it
            // may overtake events still queued for a watch, so it does not move resume revisions.
            let entries = self.state.withLock { Array($0.byID.values) }
            for entry in entries {
                _ = entry.buffer.push(EtcdWatchResponse(header: message.header, events: [], created: false))
            }
            return nil
        }
        if message.created {
            self.state.withLock { state in
                if state.pendingCreates.first == message.watchID {
                    state.pendingCreates.removeFirst()
                } else if let index = state.pendingCreates.firstIndex(of: message.watchID) {
                    state.pendingCreates.remove(at: index)
                }
            }
        }
        guard let entry = self.state.withLock({ $0.byID[message.watchID] }) else { return nil }

        if message.created {
            if message.canceled {
                // Refused at creation (etcd 3.5 reports the watch ID): compacted, permission, auth.
                return self.refused(entry, message)
            }
            let notify = entry.state.withLock { state -> Bool in
                if state.nextRevision == 0 && entry.startRevision == 0 {
                    // A watch "from now" starts after the revision current at creation.
                    state.nextRevision = message.header.revision + 1
                }
                state.created = true
                state.authRetries = 0
                defer { state.deliveredCreated = true }
                return entry.createdNotify && !state.deliveredCreated
            }
            entry.wakeCreatedWaiters()
            if notify {
                self.deliver(
                    entry, id: message.watchID, EtcdWatchResponse(header: message.header, events: [], created: true))
            }
            return nil
        }
        if message.canceled {
            self.end(entry, id: message.watchID, message)
            return nil
        }
        // Reassemble fragments and advance the resume revision under one lock.
        let events = entry.state.withLock { state -> [Mvccpb_Event]? in
            if message.fragment {
                state.fragments += message.events
                return nil
            }
            let events = state.fragments.isEmpty ? message.events : state.fragments + message.events
            state.fragments = []
            if let last = events.last {
                state.nextRevision = last.kv.modRevision + 1
            } else {
                // This watch's own progress notification: everything up to the header revision was sent.
                state.nextRevision = max(state.nextRevision, message.header.revision + 1)
            }
            return events
        }
        guard let events else { return nil }
        self.deliver(
            entry, id: message.watchID, EtcdWatchResponse(header: message.header, events: events, created: false))
        return nil
    }

    /// A create the server refused. Auth refusals may come from a token the member no longer knows
    /// (expired, or a restarted member; etcd 3.5 then answers "permission denied"): the stream is
    /// reopened with a fresh token, a few times, before the refusal is believed.
    private func refused(_ entry: WatchEntry, _ message: Etcdserverpb_WatchResponse) -> EtcdClientError? {
        let error = EtcdClientError.fromServerMessage(message.cancelReason)
        self.client.logger.debug("etcd refused a watch", metadata: ["etcd_code": "\(error.code)"])
        let authRefusal: Set<EtcdClientError.Code> = [
            .invalidAuthToken, .authOldRevision, .permissionDenied, .userEmpty,
        ]
        if message.compactRevision == 0, authRefusal.contains(error.code),
            self.client.configuration.authentication != nil
        {
            let retry = entry.state.withLock { state in
                state.authRetries += 1
                return state.authRetries <= 3
            }
            if retry { return error }
        }
        self.end(entry, id: message.watchID, message)
        return nil
    }

    private func deliver(_ entry: WatchEntry, id: Int64, _ response: EtcdWatchResponse) {
        guard !entry.buffer.push(response) else { return }
        // The consumer is behind: stop the server sending more until it catches up.
        self.state.withLock { state in
            guard state.byID[id] === entry else { return }
            entry.state.withLock { $0.phase = .suspended }
            Self.cancelOnServer(id, &state)
        }
        self.client.logger.debug("etcd watch consumer is slow; watch suspended until it catches up")
    }

    /// A response over the receive limit, of which only the start arrived: the watch it was for
    /// ends with `responseTooLarge` and is cancelled on the server (resuming it would meet the same
    /// response again); the stream and its other watches go on. When the start does not say which
    /// watch it was for, every watch of the stream ends, as the Go client's do.
    private func tooLarge(start: ByteBuffer, length: Int, endpoint: EtcdEndpoint) {
        let limit = self.client.configuration.maxCallReceiveMessageSize
        func error(_ what: String) -> EtcdClientError {
            EtcdClientError(
                code: .responseTooLarge,
                message: """
                    a watch response of \(length) bytes from \(endpoint) is larger than the client's receive \
                    limit of \(limit) bytes (Configuration.maxCallReceiveMessageSize), so \(what); raise the \
                    limit, or watch with .fragment so that etcd splits a large revision's events (a single \
                    event over the limit still cannot arrive)
                    """,
                endpoint: endpoint.description
            )
        }
        guard let id = Self.watchID(startOf: start) else {
            self.client.logger.debug("etcd watch response over the receive limit, for an unknown watch")
            self.finishAll(throwing: error("every watch of its stream was ended"))
            return
        }
        let entry = self.state.withLock { state -> WatchEntry? in
            guard let entry = state.byID[id] else { return nil }
            Self.cancelOnServer(id, &state)
            state.entries[ObjectIdentifier(entry)] = nil
            return entry
        }
        guard let entry else { return }  // a watch already cancelled: its late response is not wanted
        let next = entry.state.withLock { $0.nextRevision }
        let from = next > 0 ? "the events from revision \(next) on" : "its events"
        self.client.logger.debug("etcd watch response over the receive limit; the watch ends")
        entry.finish(throwing: error("the watch was cancelled and \(from) were not delivered"))
    }

    /// The watch ID of a serialized `WatchResponse`, read from its first bytes: etcd writes the
    /// fields in number order, the header (1) and then the watch ID (2, left out when 0). Nil when
    /// the bytes do not say.
    static func watchID(startOf bytes: ByteBuffer) -> Int64? {
        var bytes = bytes
        func varint() -> UInt64? {
            var value: UInt64 = 0
            for shift in stride(from: UInt64(0), to: 64, by: 7) {
                guard let byte = bytes.readInteger(as: UInt8.self) else { return nil }
                value |= UInt64(byte & 0x7f) << shift
                if byte & 0x80 == 0 { return value }
            }
            return nil
        }
        while let tag = varint() {
            switch (tag >> 3, tag & 7) {
            case (1, 2):
                guard let length = varint(), length <= UInt64(bytes.readableBytes) else { return nil }
                bytes.moveReaderIndex(forwardBy: Int(length))
            case (2, 0):
                return varint().map { Int64(bitPattern: $0) }
            case (let field, _) where field > 2:
                return 0
            default:
                return nil
            }
        }
        return nil
    }

    private func end(_ entry: WatchEntry, error: EtcdClientError) {
        self.state.withLock { state in
            if case .registered(let id) = entry.state.withLock({ $0.phase }) { state.byID[id] = nil }
            state.entries[ObjectIdentifier(entry)] = nil
        }
        entry.finish(throwing: error)
    }

    private func end(_ entry: WatchEntry, id: Int64, _ message: Etcdserverpb_WatchResponse) {
        self.client.logger.debug(
            "etcd cancelled a watch",
            metadata: [
                "etcd_reason": "\(message.cancelReason)", "etcd_created": "\(message.created)",
                "etcd_compact_revision": "\(message.compactRevision)",
            ]
        )
        let error: EtcdClientError
        if message.compactRevision > 0 {
            var compacted = EtcdClientError(
                code: .compacted,
                message: """
                    etcdserver: mvcc: required revision has been compacted; the watch's next revision was \
                    compacted at \(message.compactRevision): read the current state again and watch from there
                    """
            )
            compacted.compactRevision = message.compactRevision
            error = compacted
        } else {
            error = EtcdClientError.fromServerMessage(message.cancelReason)
        }
        self.end(entry, error: error)
    }
}
