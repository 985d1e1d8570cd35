// SPDX-License-Identifier: Apache-2.0
package import EtcdAPI
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// The connection to one etcd member: a gRPC client, the service stubs, and what we know of the member.
package final class EndpointConnection: Sendable {
    let endpoint: EtcdEndpoint
    let grpc: GRPCClient<TrackingTransport>
    let kv: Etcdserverpb_KV.Client<TrackingTransport>
    let maintenance: Etcdserverpb_Maintenance.Client<TrackingTransport>
    let auth: Etcdserverpb_Auth.Client<TrackingTransport>
    let watch: Etcdserverpb_Watch.Client<TrackingTransport>
    let lease: Etcdserverpb_Lease.Client<TrackingTransport>
    let cluster: Etcdserverpb_Cluster.Client<TrackingTransport>
    package let lock: V3lockpb_Lock.Client<TrackingTransport>
    package let election: V3electionpb_Election.Client<TrackingTransport>

    private struct State {
        var unhealthyUntil: ContinuousClock.Instant?
        var consecutiveFailures = 0
        /// Whether a task probes the endpoint (see `EtcdClient.leave`).
        var probing = false
        var serverVersion: EtcdServerVersion?
    }
    private let state = Mutex(State())
    /// The event loop every TCP connection to the endpoint uses, as a task executor: unary calls
    /// prefer it, so their continuations resume on the connection's thread instead of hopping to
    /// Swift's pool and back.
    package let loopExecutor: EventLoopTaskExecutor

    init(
        endpoint: EtcdEndpoint,
        configuration: EtcdClient.Configuration,
        metrics: EtcdClientMetrics?,
        logger: Logger
    ) throws(EtcdClientError) {
        self.endpoint = endpoint
        // One loop of NIO's shared group per endpoint, chosen now (round robin), so the executor is
        // known before the first connection exists.
        let eventLoop = MultiThreadedEventLoopGroup.singleton.next()
        self.loopExecutor = EventLoopTaskExecutor(eventLoop)
        let target: any ResolvableTarget
        switch endpoint.host {
        case .ipv4(let host): target = .ipv4(address: host, port: endpoint.port)
        case .ipv6(let host): target = .ipv6(address: host, port: endpoint.port)
        case .dns(let host): target = .dns(host: host, port: endpoint.port)
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
            let keepAlive = configuration.keepAlive.map {
                PingAnsweringHandler.KeepAlive(time: .init($0.time), timeout: .init($0.timeout))
            }
            let handshakeTimeout = TimeAmount(configuration.dialTimeout)
            config.channelDebuggingCallbacks.onCreateTCPConnection = { channel in
                PingAnsweringHandler.install(on: channel, keepAlive: keepAlive, handshakeTimeout: handshakeTimeout)
            }
            if let serverName = configuration.tls?.serverName, endpoint.useTLS {
                config.http2.authority = serverName
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
            let interceptors: [any ClientInterceptor] =
                observability.isEnabled
                ? [
                    ObservabilityInterceptor(
                        metrics: metrics, tracer: observability.tracer,
                        logger: observability.logRequests ? logger : nil, endpoint: endpoint.description)
                ] : []
            self.grpc = GRPCClient(transport: TrackingTransport(base: transport), interceptors: interceptors)
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
        self.auth = .init(wrapping: self.grpc)
        self.watch = .init(wrapping: self.grpc)
        self.lease = .init(wrapping: self.grpc)
        self.cluster = .init(wrapping: self.grpc)
        self.lock = .init(wrapping: self.grpc)
        self.election = .init(wrapping: self.grpc)
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
