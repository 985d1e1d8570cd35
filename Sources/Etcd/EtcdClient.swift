// SPDX-License-Identifier: Apache-2.0
internal import EtcdAPI
import GRPCCore
public import Logging
import NIOPosix
public import ServiceLifecycle
import Synchronization

/// A client for an etcd v3 cluster, shared by a whole process.
///
/// Create it with a ``Configuration``, run ``run()`` in a task (or in a ServiceLifecycle
/// `ServiceGroup`), and call it from anywhere: it is `Sendable`. Every connection it opens lives in
/// `run()`; ``shutdown()`` or cancelling that task closes them.
///
/// ```swift
/// let client = try EtcdClient(configuration: .init(endpoints: ["127.0.0.1:2379"]))
/// try await withThrowingDiscardingTaskGroup { group in
///     group.addTask { try await client.run() }
///     try await client.put("config/feature", value: "on")
///     print(try await client.get("config/", options: .prefix).kvs)
///     client.shutdown()
/// }
/// ```
///
/// Calls made before `run()` starts wait up to the dial timeout for it. Requests are spread over the
/// endpoints round-robin; an endpoint that fails is left for a while and retried later. Reads retry on
/// another endpoint after a transport failure; writes retry only when they provably never reached a
/// server, so nothing is applied twice.
public final class EtcdClient: Sendable {
    /// The configuration the client was created with.
    public let configuration: Configuration
    let logger: Logger
    /// The client's metrics, when a metrics factory is configured.
    let metrics: EtcdClientMetrics?
    /// The endpoints' connections; replaced by ``sync()`` and ``setEndpoints(_:)``.
    private let connectionList: ConnectionList
    package var connections: [EndpointConnection] { self.connectionList.current }
    /// The event loop all of the client's connections run on (see ``taskExecutor``).
    package let executor: EventLoopTaskExecutor

    /// The thread that does this client's network I/O, as a task executor: code that makes many
    /// calls in a row runs with less latency and CPU under it.
    ///
    /// Every call's request is written and its response read on this thread. Code that awaits calls
    /// from Swift's default thread pool hands each request to this thread and gets the response
    /// back: two thread wake-ups per call. Under `withTaskExecutorPreference(client.taskExecutor)`,
    /// or in a task created with `executorPreference: client.taskExecutor`, the calling code runs
    /// on the client's thread too, with no hand-off (measured in `benchmarks/RESULTS.md`).
    ///
    /// Such code must not block (no blocking file or socket I/O, no long computation, no
    /// semaphores): while it runs, the client's other calls, watches and lease keepalives wait.
    /// All endpoints of a client share this one thread; to spread a heavy load over several
    /// threads, use several clients (each takes the next event loop of NIO's shared group).
    ///
    /// An application whose tasks never block can instead make NIO's event loops Swift's global
    /// executor, first thing in `main`, with NIOPosix's
    /// `NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()`:
    /// the client's loop is one of them, and a task resumed by it stays on it, so plain tasks'
    /// calls need no hand-off either.
    public var taskExecutor: any TaskExecutor { self.executor }
    private let nextConnection = Atomic<Int>(0)
    private let lifecycle = Mutex(Lifecycle.idle)
    /// Signalled when the lifecycle leaves `idle` (run() starts, or shutdown() comes first).
    private let leftIdle = OneTimeEvent()
    /// The auth token; nil before authenticating, "" when the cluster has auth turned off.
    private let authToken = Mutex<String?>(nil)
    /// Work that must live as long as `run()` (watch streams): queued here, run as its child tasks.
    private let background = AsyncStream.makeStream(of: (@Sendable () async -> Void).self)
    let watcher = Watcher()
    let lessor: Lessor
    /// For tests: while it holds an event, the client's watch streams handle no further message
    /// until the event is signalled, as when their task gets no CPU.
    package let watchStreamHold = Mutex<OneTimeEvent?>(nil)

    private enum Lifecycle {
        case idle
        case running
        /// `ran`: whether `run()` was called before the shutdown.
        case shutDown(ran: Bool)
    }

    /// Creates a client. Nothing is connected until ``run()``.
    ///
    /// - Throws: ``EtcdClientError`` with code `invalidConfiguration` for an empty endpoint list, a
    ///   malformed endpoint (the message names it), or inconsistent TLS settings.
    public init(
        configuration: Configuration,
        logger: Logger = Logger(label: "swift-etcd", factory: { _ in SwiftLogNoOpLogHandler() })
    ) throws(EtcdClientError) {
        if configuration.endpoints.isEmpty {
            throw EtcdClientError(
                code: .invalidConfiguration, message: "no endpoints given; add at least one host:port")
        }
        if configuration.maxCallSendMessageSize <= 0 || configuration.maxCallReceiveMessageSize <= 0 {
            throw EtcdClientError(code: .invalidConfiguration, message: "message size limits must be positive")
        }
        let metrics = configuration.observability.metricsFactory.map(EtcdClientMetrics.init(factory:))
        // One loop of NIO's shared group (round robin over clients) for all of this client's connections.
        let executor = EventLoopTaskExecutor(MultiThreadedEventLoopGroup.singleton.next())
        var seen = Set<EtcdEndpoint>()
        var connections: [EndpointConnection] = []
        for text in configuration.endpoints {
            let endpoint = try EtcdEndpoint.parse(text, tlsByDefault: configuration.tls != nil)
            guard seen.insert(endpoint).inserted else { continue }
            connections.append(
                try EndpointConnection(
                    endpoint: endpoint, configuration: configuration, metrics: metrics, logger: logger,
                    executor: executor))
        }
        self.configuration = configuration
        self.logger = logger
        self.metrics = metrics
        self.executor = executor
        let connectionList = ConnectionList(connections)
        self.connectionList = connectionList
        self.lessor = Lessor(canFailOver: { connectionList.current.count > 1 })
    }

    /// Runs the client's connections until ``shutdown()``, graceful shutdown of the service group, or cancellation.
    ///
    /// Call it once. Calls made before it starts wait for it, up to the dial timeout or their own
    /// deadline, then fail with `unavailable`. Calls in flight when shutdown begins are allowed to finish.
    /// If ``shutdown()`` comes before or while it starts, it returns without an error.
    ///
    /// - Throws: ``EtcdClientError``: `invalidArgument` when called twice; the error of a
    ///   connection that fails as a whole (failed calls and lost connections do not end it).
    public func run() async throws {
        enum Start { case run, alreadyShutDown, twice }
        let start = self.lifecycle.withLock { state -> Start in
            switch state {
            case .idle:
                state = .running
                return .run
            case .shutDown(ran: false):
                // shutdown() came first (the body of withEtcdClient may finish before run() starts).
                state = .shutDown(ran: true)
                return .alreadyShutDown
            case .running, .shutDown(ran: true):
                return .twice
            }
        }
        switch start {
        case .run: self.leftIdle.signal()
        case .alreadyShutDown: return
        case .twice:
            throw EtcdClientError(code: .invalidArgument, message: "EtcdClient.run() was called twice; call it once")
        }
        self.logger.debug("etcd client starting", metadata: ["etcd_endpoints": "\(self.connections.map(\.endpoint))"])
        if let interval = self.configuration.autoSyncInterval {
            self.runInBackground { await self.autoSync(every: interval) }
        }
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                for connection in self.connections {
                    group.addTask { try await self.runConnection(connection) }
                }
                group.addTask {
                    await withDiscardingTaskGroup { jobs in
                        for await job in self.background.stream {
                            jobs.addTask { await job() }
                        }
                        // shutdown() ended the queue: stop the background work so the connections can close.
                        jobs.cancelAll()
                    }
                }
            }
        } onGracefulShutdown: {
            self.shutdown()
        }
        self.lifecycle.withLock { $0 = .shutDown(ran: true) }
        self.logger.debug("etcd client stopped")
    }

    /// Begins a graceful shutdown: new calls fail with `unavailable`, calls in flight finish, then ``run()`` returns.
    public func shutdown() {
        self.lifecycle.withLock { state in
            switch state {
            case .idle: state = .shutDown(ran: false)
            case .running: state = .shutDown(ran: true)
            case .shutDown: break
            }
        }
        self.leftIdle.signal()
        self.background.continuation.finish()
        // Streams that never ran (shutdown before run) cannot end their watches themselves.
        self.watcher.finishAll()
        self.lessor.finishAll()
        for connection in self.connections {
            connection.grpc.beginGracefulShutdown()
            connection.frameChannel.shutdown()
        }
    }

    /// Runs one endpoint's connection until shutdown, its errors as ``EtcdClientError``.
    private func runConnection(_ connection: EndpointConnection) async throws {
        do {
            try await connection.run(logger: self.logger)
        } catch let error as RuntimeError where error.code == .clientIsStopped && self.isShutDown {
            // shutdown() came after run() started but before this connection did: nothing was
            // opened, so there is nothing to close.
        } catch {
            throw EtcdClientError.from(error, endpoint: connection.endpoint.description)
        }
    }

    /// Runs `job` as a child task of ``run()`` (queued until `run()` starts); it is cancelled at shutdown.
    func runInBackground(_ job: @escaping @Sendable () async -> Void) {
        self.background.continuation.yield(job)
    }

    /// Whether ``shutdown()`` was called.
    var isShutDown: Bool {
        if case .shutDown = self.lifecycle.withLock({ $0 }) { return true }
        return false
    }

    /// Throws `unavailable` once ``shutdown()`` was called.
    func checkNotShutDown() throws(EtcdClientError) {
        if self.isShutDown {
            throw EtcdClientError(code: .unavailable, message: "the client is shut down; create a new EtcdClient")
        }
    }

    /// The endpoints the client uses, as URLs (`http://127.0.0.1:2379`); ``sync()`` and
    /// ``setEndpoints(_:)`` change them.
    public var endpoints: [String] { self.connections.map(\.endpoint.description) }

    /// Replaces the endpoints with the cluster's current client URLs (Go's `Sync`): those of every
    /// started, voting member, so members added or removed while the client runs are followed.
    ///
    /// Connections to endpoints that stay are kept; calls and streams on removed endpoints finish
    /// or move to the remaining ones. ``Configuration/autoSyncInterval`` runs this periodically.
    ///
    /// - Throws: ``EtcdClientError``: the error of the member list; `unavailable` when it names no
    ///   started voting member with client URLs (the endpoints stay as they were).
    public func sync() async throws {
        try self.checkNotShutDown()
        let members = try await self.memberList().members
        let urls = members.filter { !$0.name.isEmpty && !$0.isLearner }.flatMap(\.clientURLs)
        guard !urls.isEmpty else {
            throw EtcdClientError(
                code: .unavailable,
                message:
                    "the member list names no started voting member with client URLs; the endpoints stay as they were"
            )
        }
        try self.setEndpoints(urls)
    }

    /// Replaces the endpoints (Go's `SetEndpoints`).
    ///
    /// - Throws: ``EtcdClientError`` `invalidConfiguration` for an empty list or a malformed
    ///   endpoint, before anything changes; `unavailable` after shutdown.
    public func setEndpoints(_ endpoints: [String]) throws(EtcdClientError) {
        try self.checkNotShutDown()
        if endpoints.isEmpty {
            throw EtcdClientError(
                code: .invalidConfiguration, message: "no endpoints given; add at least one host:port")
        }
        var parsed: [EtcdEndpoint] = []
        for text in endpoints {
            let endpoint = try EtcdEndpoint.parse(text, tlsByDefault: self.configuration.tls != nil)
            if !parsed.contains(endpoint) { parsed.append(endpoint) }
        }
        self.logger.debug("etcd endpoints changing", metadata: ["etcd_endpoints": "\(parsed)"])
        let (added, removed) = try self.connectionList.list.withLock {
            list throws(EtcdClientError) -> ([EndpointConnection], [EndpointConnection]) in
            // shutdown() sets the state before it reads the list: a list it has read is not replaced.
            try self.checkNotShutDown()
            var next: [EndpointConnection] = []
            var added: [EndpointConnection] = []
            for endpoint in parsed {
                if let existing = list.first(where: { $0.endpoint == endpoint }) {
                    next.append(existing)
                } else {
                    let connection = try EndpointConnection(
                        endpoint: endpoint, configuration: self.configuration, metrics: self.metrics,
                        logger: self.logger, executor: self.executor)
                    next.append(connection)
                    added.append(connection)
                }
            }
            let removed = list.filter { old in !next.contains { $0 === old } }
            list = next
            return (added, removed)
        }
        for connection in added {
            self.runInBackground {
                do {
                    try await self.runConnection(connection)
                } catch {
                    self.logger.warning(
                        "etcd connection stopped with an error",
                        metadata: ["etcd_endpoint": "\(connection.endpoint)", "etcd_error": "\(error)"])
                }
            }
        }
        for connection in removed {
            connection.grpc.beginGracefulShutdown()
            connection.frameChannel.shutdown()
        }
        if !added.isEmpty || !removed.isEmpty {
            self.logger.debug("etcd endpoints changed", metadata: ["etcd_endpoints": "\(parsed)"])
        }
    }

    /// Syncs the endpoints every `interval` until shutdown; failures are logged and retried next time.
    private func autoSync(every interval: Duration) async {
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: interval)
            } catch {
                return
            }
            do {
                try await withEtcdTimeout(self.configuration.dialTimeout) { try await self.sync() }
            } catch {
                self.logger.debug("etcd endpoint sync failed", metadata: ["etcd_error": "\(error)"])
            }
        }
    }
}

extension EtcdClient: Service {}

/// The client's connections, shared with the lessor (which fails over only when there is another).
final class ConnectionList: Sendable {
    let list: Mutex<[EndpointConnection]>
    init(_ connections: [EndpointConnection]) { self.list = Mutex(connections) }
    var current: [EndpointConnection] { self.list.withLock { $0 } }
}

/// Creates an ``EtcdClient``, runs it for the duration of `body`, and shuts it down afterwards.
///
/// ```swift
/// try await withEtcdClient(.init(endpoints: ["127.0.0.1:2379"])) { client in
///     try await client.put("k", value: "v")
/// }
/// ```
@discardableResult
public func withEtcdClient<Result: Sendable>(
    _ configuration: EtcdClient.Configuration,
    logger: Logger = Logger(label: "swift-etcd", factory: { _ in SwiftLogNoOpLogHandler() }),
    isolation: isolated (any Actor)? = #isolation,
    _ body: (EtcdClient) async throws -> sending Result
) async throws -> sending Result {
    let client = try EtcdClient(configuration: configuration, logger: logger)
    return try await withThrowingTaskGroup(of: Void.self, returning: Result.self) { group in
        group.addTask { try await client.run() }
        do {
            let result = try await body(client)
            client.shutdown()
            try await group.waitForAll()
            return result
        } catch {
            client.shutdown()
            group.cancelAll()
            throw error
        }
    }
}

// MARK: - Calls

extension EtcdClient {
    /// How a call may be retried.
    package enum Retry {
        /// Safe to repeat: retried on transport failures and etcd's transient errors.
        case idempotent
        /// Changes state: retried only when it provably never reached a server.
        case mutation
    }

    /// Runs one RPC against a healthy endpoint (or `pinned`), with retries, auth and deadline handling.
    ///
    /// `body` runs on the caller's executor.
    package func call<Result: Sendable>(
        _ method: String,
        retry: Retry,
        pinned: EndpointConnection? = nil,
        minimumVersion: (EtcdServerVersion, String)? = nil,
        _ body: (EndpointConnection, CallOptions, Metadata) async throws -> Result
    ) async throws -> Result {
        try await self.waitUntilRunning()
        let deadline = EtcdCallDeadline.current
        // Without a caller deadline, transport failures are retried for the dial timeout.
        let retryUntil = deadline ?? (.now + self.configuration.dialTimeout)
        var attempt = 0
        var reauthenticated = false
        var lastError: EtcdClientError?
        let requireLeader = EtcdRequireLeader.current
        while true {
            try Task.checkCancellation()
            let connection = pinned ?? self.pickConnection()
            var options = CallOptions.defaults
            // grpc-swift-nio-transport sizes its inbound message decoder from maxRequestMessageBytes
            // (default 4 MiB), so that is the receive limit; the send limit is checked by checkSendSize.
            options.maxRequestMessageBytes = self.configuration.maxCallReceiveMessageSize
            options.maxResponseMessageBytes = self.configuration.maxCallReceiveMessageSize
            options.waitForReady = false
            if let deadline {
                let remaining = deadline - .now
                if remaining <= .zero {
                    throw EtcdClientError(
                        code: .deadlineExceeded,
                        message: "\(method): deadline exceeded" + (lastError.map { " after: \($0.message)" } ?? ""),
                        cause: lastError,
                        endpoint: connection.endpoint.description
                    )
                }
                options.timeout = remaining
            }
            let streamOpened = AtomicFlag()
            do {
                var metadata: Metadata = [:]
                if let token = try await self.currentToken(method: method) {
                    metadata.addString(token, forKey: "token")
                }
                if requireLeader { metadata.addString("true", forKey: "hasleader") }
                if minimumVersion != nil || self.configuration.rejectOldCluster {
                    let version = try await self.serverVersion(of: connection, options: options, metadata: metadata)
                    if let (minimum, feature) = minimumVersion, version < minimum {
                        throw EtcdClientError(
                            code: .notSupported,
                            message: """
                                \(feature) needs etcd \(minimum.major).\(minimum.minor) or newer; \(connection.endpoint) \
                                runs \(version)
                                """,
                            endpoint: connection.endpoint.description
                        )
                    }
                }
                // The body runs on the caller's executor; only the call's frames go to the
                // connection's event loop (FrameChannel). Hopping the whole body to the loop saved
                // nothing with one caller and, from plain tasks, cost 8-15% of throughput and about 10%
                // more CPU per operation at 16 and 64 (etcd-swift-bench put, etcd 3.4): the loop, which
                // does every connection's I/O, also ran each call's encoding and two task switches.
                let result = try await TrackingTransport.$streamOpened.withValue(streamOpened) {
                    try await body(connection, options, metadata)
                }
                connection.markHealthy()
                return result
            } catch {
                // gRPC may report a cancelled task as an RPC error; callers see CancellationError.
                if Task.isCancelled { throw CancellationError() }
                let mapped = EtcdClientError.from(error, endpoint: connection.endpoint.description)
                guard var etcdError = mapped as? EtcdClientError else { throw mapped }
                if etcdError.code == .responseTooLarge {
                    etcdError.message = """
                        the response of \(method) from \(connection.endpoint) is larger than the client's receive \
                        limit of \(self.configuration.maxCallReceiveMessageSize) bytes \
                        (Configuration.maxCallReceiveMessageSize); raise the limit, or read the range in pages \
                        with .paged(pageSize:)
                        """
                    throw etcdError
                }
                let authTurnedOn = etcdError.code == .userEmpty && self.authToken.withLock { $0 == "" }
                if etcdError.code == .invalidAuthToken || etcdError.code == .authOldRevision || authTurnedOn,
                    self.configuration.authentication != nil, !reauthenticated
                {
                    // The token expired, the member restarted and forgot it, or auth was turned on
                    // since we found it off: authenticate once more.
                    reauthenticated = true
                    self.authToken.withLock { $0 = nil }
                    self.logger.debug(
                        "etcd token rejected; authenticating again", metadata: ["etcd_method": "\(method)"])
                    continue
                }
                if self.isShutDown { throw etcdError }
                if etcdError.isTLSFailure {
                    self.leave(connection)
                    throw etcdError
                }
                let transportFailure = etcdError.code == .unavailable
                if transportFailure { self.leave(connection) }
                let retryable: Bool
                switch retry {
                case .idempotent: retryable = transportFailure || etcdError.isTransientServerError
                case .mutation: retryable = transportFailure && !streamOpened.isSet
                }
                guard retryable else { throw etcdError }
                if requireLeader && etcdError.code == .noLeader && (pinned != nil || self.connections.count < 2) {
                    // The caller asked to fail fast when the member has no leader, and no other member is in reach.
                    throw etcdError
                }
                let backoff = self.backoff(attempt: attempt)
                if ContinuousClock.now + backoff >= retryUntil {
                    // Out of time: the caller's deadline, or without one the dial timeout.
                    guard deadline != nil else { throw etcdError }
                    throw EtcdClientError(
                        code: .deadlineExceeded,
                        message: "\(method): deadline exceeded; last error: \(etcdError.message)",
                        cause: etcdError,
                        endpoint: connection.endpoint.description
                    )
                }
                self.logger.debug(
                    "etcd call failed; retrying",
                    metadata: [
                        "etcd_method": "\(method)", "etcd_endpoint": "\(connection.endpoint)",
                        "etcd_code": "\(etcdError.code)", "etcd_attempt": "\(attempt)",
                    ]
                )
                lastError = etcdError
                attempt += 1
                if pinned == nil && self.connections.count > 1 && !transportFailure {
                    // etcd's "no leader"-type answers are the member's, not the network's: try another.
                    self.leave(connection)
                }
                try await Task.sleep(for: backoff)
            }
        }
    }

    private func backoff(attempt: Int) -> Duration {
        let retry = self.configuration.retry
        // The first retry after a failover goes out immediately: another endpoint is likely fine.
        if attempt == 0 && self.connections.count > 1 { return .zero }
        let exponent = min(attempt, 16)
        let base = min(retry.initialBackoff * (1 << exponent), retry.maxBackoff)
        return base * Double.random(in: 0.8...1.2)
    }

    /// The next healthy endpoint round-robin; when none is healthy, the one that recovers first.
    func pickConnection() -> EndpointConnection {
        let connections = self.connections
        let count = connections.count
        if count == 1 { return connections[0] }
        let start = self.nextConnection.wrappingAdd(1, ordering: .relaxed).oldValue
        for offset in 0..<count {
            let connection = connections[(start &+ offset) % count]
            if connection.isHealthy { return connection }
        }
        let now = ContinuousClock.now
        return connections.min { ($0.unhealthyUntil ?? now) < ($1.unhealthyUntil ?? now) }!
    }

    /// Stops using `connection` after a failure until a probe finds it answering again.
    ///
    /// The probe runs as a background task of ``run()``: a Status call with `hasleader` set, so a
    /// member that answers but has lost its leader stays left too. It backs off from 0.5 s to 5 s
    /// and ends when the endpoint answers, a call through it succeeds, or the endpoint is removed.
    func leave(_ connection: EndpointConnection) {
        guard connection.markUnhealthy() else { return }
        self.runInBackground { await self.probe(connection) }
    }

    private func probe(_ connection: EndpointConnection) async {
        var options = CallOptions.defaults
        options.timeout = min(self.configuration.dialTimeout, .seconds(5))
        options.waitForReady = false
        var metadata: Metadata = [:]
        metadata.addString("true", forKey: "hasleader")
        repeat {
            guard let next = connection.unhealthyUntil else { continue }
            do {
                try await Task.sleep(until: next, clock: .continuous)
            } catch {
                connection.probeEnded()
                return
            }
            guard self.connections.contains(where: { $0 === connection }) else {
                connection.probeEnded()
                return
            }
            guard connection.unhealthyUntil != nil else { continue }  // a call got through meanwhile
            do {
                _ = try await connection.unary(
                    Etcdserverpb_Maintenance.Method.Status.self, .init(), metadata: metadata, options: options)
                connection.markHealthy()
                self.logger.debug("etcd endpoint answers again", metadata: ["etcd_endpoint": "\(connection.endpoint)"])
            } catch {
                if Task.isCancelled {
                    connection.probeEnded()
                    return
                }
                _ = connection.markUnhealthy()
            }
        } while !connection.probeEndsIfHealthy()
    }

    /// Waits for ``run()`` to start (calls may race with it), up to the dial timeout.
    private func waitUntilRunning() async throws {
        // A running client's calls return here, reading no deadline or clock.
        if case .running = self.lifecycle.withLock({ $0 }) { return }
        let deadline = min(
            EtcdCallDeadline.current ?? .now + self.configuration.dialTimeout, .now + self.configuration.dialTimeout)
        self.logger.debug("etcd call waits for run() to start")
        while true {
            switch self.lifecycle.withLock({ $0 }) {
            case .running: return
            case .shutDown:
                throw EtcdClientError(code: .unavailable, message: "the client is shut down; create a new EtcdClient")
            case .idle:
                if ContinuousClock.now >= deadline {
                    throw EtcdClientError(
                        code: .unavailable,
                        message: "the client is not running: call run() (or use withEtcdClient) before making calls"
                    )
                }
                await self.leftIdle.wait(until: deadline)
                try Task.checkCancellation()
            }
        }
    }

    /// Metadata for a long-lived stream: the auth token, authenticating first if needed.
    func streamMetadata() async throws -> Metadata {
        var metadata: Metadata = [:]
        if let token = try await self.currentToken(method: "Watch") {
            metadata.addString(token, forKey: "token")
        }
        return metadata
    }

    /// Drops the auth token after the server rejected it; the next call authenticates again.
    func forgetToken() {
        self.authToken.withLock { $0 = nil }
    }

    /// The auth token to send, authenticating first when credentials are configured and no token is held.
    private func currentToken(method: String) async throws -> String? {
        guard let credentials = self.configuration.authentication, method != "Authenticate" else { return nil }
        if let token = self.authToken.withLock({ $0 }) { return token.isEmpty ? nil : token }
        var request = Etcdserverpb_AuthenticateRequest()
        request.name = credentials.username
        request.password = credentials.password
        let response: Etcdserverpb_AuthenticateResponse
        do {
            response = try await self.call("Authenticate", retry: .idempotent) { connection, options, metadata in
                try await connection.unary(
                    Etcdserverpb_Auth.Method.Authenticate.self, request, metadata: metadata, options: options)
            }
        } catch let error as EtcdClientError where error.code == .authNotEnabled {
            // As Go's client does: credentials for a cluster without auth are not an error; calls
            // go without a token until the cluster asks for one.
            self.authToken.withLock { $0 = "" }
            self.logger.debug("etcd auth is not enabled; sending no token")
            return nil
        }
        self.authToken.withLock { $0 = response.token }
        self.logger.debug("etcd authenticated", metadata: ["etcd_user": "\(credentials.username)"])
        return response.token
    }

    /// The server version of one endpoint, asked once with Maintenance Status and cached.
    func serverVersion(
        of connection: EndpointConnection,
        options: CallOptions,
        metadata: Metadata
    ) async throws -> EtcdServerVersion {
        if let version = connection.knownServerVersion {
            try self.checkNotTooOld(version, connection)
            return version
        }
        let status = try await connection.unary(
            Etcdserverpb_Maintenance.Method.Status.self, Etcdserverpb_StatusRequest(),
            metadata: metadata,
            options: options
        )
        guard let version = EtcdServerVersion(status.version) else {
            throw EtcdClientError(
                code: .internalError,
                message: "\(connection.endpoint) reported an unreadable version '\(status.version)'",
                endpoint: connection.endpoint.description
            )
        }
        connection.setServerVersion(version)
        try self.checkNotTooOld(version, connection)
        return version
    }

    private func checkNotTooOld(_ version: EtcdServerVersion, _ connection: EndpointConnection) throws(EtcdClientError)
    {
        if self.configuration.rejectOldCluster && version < .v3_2 {
            throw EtcdClientError(
                code: .oldCluster,
                message:
                    "\(connection.endpoint) runs etcd \(version); this client is set to refuse clusters older than 3.2",
                endpoint: connection.endpoint.description
            )
        }
    }
}
