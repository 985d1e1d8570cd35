// SPDX-License-Identifier: Apache-2.0
package import EtcdAPI
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import NIOCore
import NIOPosix
package import NIOSSL
import SwiftProtobuf
import Synchronization

/// The connection to one etcd member: unary calls, watch and lease keepalive on a ``FrameChannel``;
/// snapshot, range stream and election observe through a gRPC client and its stubs; and what we
/// know of the member.
package final class EndpointConnection: Sendable {
    let endpoint: EtcdEndpoint
    /// Unary calls, the watch and the lease keepalive streams (see ``unary(_:_:metadata:options:)`` and
    /// ``stream(_:metadata:options:onResponse:requests:)``).
    let frameChannel: FrameChannel
    private let observer: CallObserver?
    let grpc: GRPCClient<TrackingTransport>
    let kv: Etcdserverpb_KV.Client<TrackingTransport>
    let maintenance: Etcdserverpb_Maintenance.Client<TrackingTransport>
    package let election: V3electionpb_Election.Client<TrackingTransport>

    private struct State {
        var unhealthyUntil: ContinuousClock.Instant?
        var consecutiveFailures = 0
        /// Whether a task probes the endpoint (see `EtcdClient.leave`).
        var probing = false
        var serverVersion: EtcdServerVersion?
    }
    private let state = Mutex(State())
    /// The event loop every TCP connection to the endpoint uses (the client's, shared by all its
    /// endpoints), as a task executor.
    package let loopExecutor: EventLoopTaskExecutor
    /// Whether ``run(logger:)`` has started the gRPC client.
    private let started = Atomic(false)

    init(
        endpoint: EtcdEndpoint,
        configuration: EtcdClient.Configuration,
        metrics: EtcdClientMetrics?,
        logger: Logger,
        executor: EventLoopTaskExecutor
    ) throws(EtcdClientError) {
        self.endpoint = endpoint
        self.loopExecutor = executor
        let eventLoop = executor.eventLoop
        let target: any ResolvableTarget
        switch endpoint.host {
        case .ipv4(let host): target = .ipv4(address: host, port: endpoint.port)
        case .ipv6(let host): target = .ipv6(address: host, port: endpoint.port)
        case .dns(let host): target = .dns(host: host, port: endpoint.port)
        case .unix(let path): target = .unixDomainSocket(path: path)
        }
        let security: HTTP2ClientTransport.Posix.TransportSecurity
        if endpoint.useTLS {
            let tls = configuration.tls ?? .init()
            if (tls.certificateFile == nil) != (tls.keyFile == nil) {
                throw EtcdClientError(
                    code: .invalidConfiguration,
                    message: "TLS needs both a client certificate file and its key file, or neither"
                )
            }
            security = .tls { config in
                if let ca = tls.trustedCAFile {
                    config.trustRoots = .certificates([.file(path: ca, format: .pem)])
                }
                if let cert = tls.certificateFile, let key = tls.keyFile {
                    config.certificateChain = [.file(path: cert, format: .pem)]
                    config.privateKey = .file(path: key, format: .pem)
                }
                config.serverCertificateVerification = tls.insecureSkipVerify ? .noVerification : .fullVerification
            }
        } else {
            security = .plaintext
        }
        // One keepalive state for both connections, so a "too many pings" back-off applies to both.
        let keepAlive = configuration.keepAlive.map {
            PingAnsweringHandler.KeepAlive(time: .init($0.time), timeout: .init($0.timeout))
        }
        let transportConfig = HTTP2ClientTransport.Posix.Config.defaults { config in
            // Keepalive PINGs are sent by PingAnsweringHandler (see there why not by grpc-swift).
            config.connection.keepalive = nil
            config.connection.maxIdleTime = nil
            // Flush coalescing delays a lone request by up to 100 µs; measured with etcd-swift-bench on
            // etcd 3.4 it cost 26% of watch throughput (one sequential writer) and gained nothing at 16
            // concurrent clients, so it is off.
            config.connection.flushCoalescing = nil
            config.backoff = .init(
                initial: configuration.retry.initialBackoff,
                max: configuration.retry.maxBackoff,
                multiplier: 1.6,
                jitter: 0.2
            )
            let handshakeTimeout = TimeAmount(configuration.dialTimeout)
            config.channelDebuggingCallbacks.onCreateTCPConnection = { channel in
                PingAnsweringHandler.install(on: channel, keepAlive: keepAlive, handshakeTimeout: handshakeTimeout)
            }
            if let serverName = configuration.tls?.serverName, endpoint.useTLS {
                config.http2.authority = serverName
            } else if case .unix = endpoint.host {
                // A socket has no host name: `localhost`, also for TLS, as on the frame connection.
                config.http2.authority = endpoint.hostString
            }
        }
        do {
            let transport = try HTTP2ClientTransport.Posix(
                target: target,
                transportSecurity: security,
                config: transportConfig,
                eventLoopGroup: eventLoop
            )
            let observability = configuration.observability
            self.observer =
                observability.isEnabled
                ? CallObserver(
                    metrics: metrics, tracer: observability.tracer,
                    logger: observability.logRequests ? logger : nil, endpoint: endpoint.description) : nil
            let interceptors: [any ClientInterceptor] =
                self.observer.map { [ObservabilityInterceptor(observer: $0)] } ?? []
            self.grpc = GRPCClient(transport: TrackingTransport(base: transport), interceptors: interceptors)
            self.frameChannel = FrameChannel(
                eventLoop: eventLoop,
                settings: try Self.frameSettings(
                    endpoint: endpoint, configuration: configuration, keepAlive: keepAlive),
                endpoint: endpoint.description
            )
        } catch {
            throw EtcdClientError(
                code: .invalidConfiguration,
                message: "cannot set up the connection to \(endpoint): \(error)",
                cause: error,
                endpoint: endpoint.description
            )
        }
        self.kv = .init(wrapping: self.grpc)
        self.maintenance = .init(wrapping: self.grpc)
        self.election = .init(wrapping: self.grpc)
    }

    /// Runs the endpoint's gRPC client until it is shut down; returns at once if it was started
    /// already (`EtcdClient.run()` and `setEndpoints` may both start a connection added before
    /// `run()`).
    ///
    /// Throws grpc-swift's `RuntimeError` `clientIsStopped` if it was shut down before it started.
    func run(logger: Logger) async throws {
        guard self.started.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else {
            return
        }
        logger.debug("etcd connection starting", metadata: ["etcd_endpoint": "\(self.endpoint)"])
        try await self.grpc.runConnections()
    }

    /// Sends one unary call on the endpoint's ``FrameChannel``, observed as configured.
    ///
    /// `options` gives the timeout and the receive limit; the current call's
    /// `TrackingTransport.streamOpened` flag is set once the request is written.
    /// - Throws: `RPCError` or `CancellationError`, as a grpc-swift call would.
    package func unary<Method: EtcdMethod>(
        _ method: Method.Type,
        _ request: Method.Input,
        metadata: Metadata,
        options: CallOptions
    ) async throws -> Method.Output {
        var metadata = metadata
        let finish = self.observer?.begin(Method.descriptor, metadata: &metadata)
        do {
            let message: ByteBuffer
            do {
                message = try (request.serializedBytes() as GRPCFramedMessage).buffer
            } catch {
                throw RPCError(
                    code: .internalError, message: "cannot encode the \(Method.descriptor.method) request: \(error)",
                    cause: error)
            }
            let response = try await self.frameChannel.call(
                path: Method.path,
                message: message,
                metadata: metadata,
                timeout: options.timeout,
                maxResponseBytes: options.maxResponseMessageBytes ?? Int(UInt32.max),
                streamOpened: TrackingTransport.streamOpened
            )
            let output = try Self.decode(
                response, as: Method.Output.self, method: Method.descriptor.method, self.endpoint)
            finish?.finish(nil)
            return output
        } catch {
            finish?.finish(error)
            throw error
        }
    }

    /// Decodes one response; an unreadable one is an internal error naming the method and endpoint.
    static func decode<Message: SwiftProtobuf.Message>(
        _ bytes: ByteBuffer, as: Message.Type, method: String, _ endpoint: EtcdEndpoint
    ) throws -> Message {
        var message = Message()
        do {
            try message.merge(serializedBytes: bytes.readableBytesSpan)
        } catch {
            throw RPCError(
                code: .internalError, message: "cannot decode the \(method) response of \(endpoint): \(error)",
                cause: error)
        }
        return message
    }

    /// Runs a bidirectional stream on the endpoint's ``FrameChannel`` until the server ends it,
    /// observed as configured.
    ///
    /// `requests` sends the requests while the stream runs; each response is handed to
    /// `onResponse` on the connection's event loop, so it must not block. Throwing from
    /// `onResponse` resets the stream and ends the call with that error.
    /// - Throws: `RPCError`, whatever `onResponse` throws, or `CancellationError`.
    package func stream<Method: EtcdMethod, Output>(
        _ method: Method.Type,
        metadata: Metadata,
        options: CallOptions,
        onResponse: @escaping @Sendable (Output) throws -> Void,
        requests: @escaping @Sendable (_ send: @escaping @Sendable (Method.Input) -> Void) async -> Void
    ) async throws where Output == Method.Output {
        let endpoint = self.endpoint
        let name = Method.descriptor.method
        try await self.streamResponseBytes(
            method, metadata: metadata, options: options,
            onResponse: { bytes in
                try onResponse(Self.decode(bytes, as: Output.self, method: name, endpoint))
                return true
            },
            requests: requests
        )
    }

    /// ``stream(_:metadata:options:onResponse:requests:)``, handing each response over as its
    /// serialized bytes, for a caller that decodes it elsewhere (``decode(_:as:method:_:)``).
    ///
    /// `onResponse` returns `false` when the caller's buffer is full: the stream's window is then
    /// held, so the server stops sending soon, until the caller calls `windowRelease`. With
    /// `onOversizeResponse`, a response over the receive limit does not end the stream: its first
    /// bytes and its length go there instead, in order with the other responses.
    func streamResponseBytes<Method: EtcdMethod>(
        _ method: Method.Type,
        metadata: Metadata,
        options: CallOptions,
        onResponse: @escaping @Sendable (ByteBuffer) throws -> Bool,
        onOversizeResponse: (@Sendable (_ start: ByteBuffer, _ length: Int) throws -> Bool)? = nil,
        windowRelease: StreamWindowRelease? = nil,
        requests: @escaping @Sendable (_ send: @escaping @Sendable (Method.Input) -> Void) async -> Void
    ) async throws {
        var metadata = metadata
        let finish = self.observer?.begin(Method.descriptor, metadata: &metadata)
        do {
            try await self.frameChannel.stream(
                path: Method.path,
                metadata: metadata,
                maxMessageBytes: options.maxResponseMessageBytes ?? Int(UInt32.max),
                onMessage: onResponse,
                onOversize: onOversizeResponse,
                windowRelease: windowRelease,
                requests: { send in
                    // A request that cannot be encoded is a bug of ours; it is not sent.
                    await requests { request in
                        if let bytes: [UInt8] = try? request.serializedBytes() { send(bytes) }
                    }
                }
            )
            finish?.finish(nil)
        } catch {
            finish?.finish(error)
            throw error
        }
    }

    /// Where and how ``frameChannel`` connects: the same host, TLS settings, authority and
    /// keepalive as the gRPC transport.
    private static func frameSettings(
        endpoint: EtcdEndpoint,
        configuration: EtcdClient.Configuration,
        keepAlive: PingAnsweringHandler.KeepAlive?
    ) throws -> FrameChannel.Settings {
        let address: FrameChannel.Settings.Address
        var serverHostname: String?
        var authority = "\(endpoint.hostString):\(endpoint.port)"
        switch endpoint.host {
        case .ipv4(let host), .ipv6(let host): address = .tcp(host: host, port: endpoint.port)
        case .dns(let name):
            address = .tcp(host: name, port: endpoint.port)
            serverHostname = name
        case .unix(let path):
            address = .unix(path: path)
            serverHostname = endpoint.hostString
            authority = endpoint.hostString
        }
        var sslContext: NIOSSLContext?
        if endpoint.useTLS {
            let tls = configuration.tls ?? .init()
            sslContext = try tls.makeSSLContext(applicationProtocols: ["grpc-exp", "h2"])
            if let serverName = tls.serverName {
                authority = serverName
                serverHostname = tls.serverHostname
            }
        }
        return FrameChannel.Settings(
            address: address,
            authority: authority,
            sslContext: sslContext,
            serverHostname: serverHostname,
            dialTimeout: TimeAmount(configuration.dialTimeout),
            keepAlive: keepAlive,
            initialBackoff: configuration.retry.initialBackoff,
            maxBackoff: configuration.retry.maxBackoff
        )
    }

    /// Whether the endpoint may be used: it has not failed, or a probe has answered since it did.
    var isHealthy: Bool { self.state.withLock { $0.unhealthyUntil == nil } }

    /// When the endpoint is next probed; nil while it is healthy. When every endpoint has failed,
    /// the client uses the one probed soonest.
    var unhealthyUntil: ContinuousClock.Instant? { self.state.withLock { $0.unhealthyUntil } }

    /// Leaves the endpoint after a failure until a probe answers; probes back off from 0.5 s,
    /// doubling up to 5 s. Returns whether the caller must start the probe (none runs yet).
    func markUnhealthy() -> Bool {
        self.state.withLock { state in
            state.consecutiveFailures += 1
            let exponent = min(state.consecutiveFailures - 1, 4)
            let pause = Duration.milliseconds(500) * (1 << exponent)
            state.unhealthyUntil = .now + min(pause, .seconds(5))
            if state.probing { return false }
            state.probing = true
            return true
        }
    }

    /// Puts the endpoint back into use after a call or a probe got through.
    func markHealthy() {
        self.state.withLock { state in
            if state.unhealthyUntil != nil || state.consecutiveFailures != 0 {
                state.unhealthyUntil = nil
                state.consecutiveFailures = 0
            }
        }
    }

    /// Records that the probe task ended (the endpoint was removed, or the client stopped).
    func probeEnded() {
        self.state.withLock { $0.probing = false }
    }

    /// Ends the probe if the endpoint is healthy; false when it failed again meanwhile, so the
    /// probe must go on (no other probe is started while this one runs).
    func probeEndsIfHealthy() -> Bool {
        self.state.withLock { state in
            guard state.unhealthyUntil == nil else { return false }
            state.probing = false
            return true
        }
    }

    var knownServerVersion: EtcdServerVersion? { self.state.withLock { $0.serverVersion } }

    func setServerVersion(_ version: EtcdServerVersion) {
        self.state.withLock { $0.serverVersion = version }
    }
}

/// An event loop as a Swift task executor (swift-nio 2.101 has no such conformance).
package final class EventLoopTaskExecutor: TaskExecutor, Sendable {
    let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) { self.eventLoop = eventLoop }

    package func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        self.eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }

    /// Whether the caller runs on this event loop (for tests).
    package var isCurrent: Bool { self.eventLoop.inEventLoop }
}

extension EtcdClient.Configuration.TLS {
    /// A client TLS context for these settings: the trusted CA file (else the system's roots), the
    /// client certificate and key, verification unless skipped, and `applicationProtocols` offered
    /// by ALPN.
    ///
    /// - Throws: NIOSSL's errors for files it cannot read or parse.
    package func makeSSLContext(applicationProtocols: [String]) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let ca = self.trustedCAFile {
            configuration.trustRoots = .file(ca)
        }
        if let certificate = self.certificateFile, let key = self.keyFile {
            configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(certificate).map { .certificate($0) }
            configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
        }
        configuration.certificateVerification = self.insecureSkipVerify ? .none : .fullVerification
        configuration.applicationProtocols = applicationProtocols
        return try NIOSSLContext(configuration: configuration)
    }

    /// ``serverName`` without a trailing `:port`, as grpc-swift strips it for SNI and for checking
    /// the server's certificate; `nil` when no server name is set.
    package var serverHostname: String? {
        guard let name = self.serverName else { return nil }
        guard let colon = name.lastIndex(of: ":"), !name[name.index(after: colon)...].isEmpty,
            name[name.index(after: colon)...].allSatisfy(\.isNumber)
        else { return name }
        return String(name[..<colon])
    }
}
