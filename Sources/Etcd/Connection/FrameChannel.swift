// SPDX-License-Identifier: Apache-2.0
import Foundation
import GRPCCore
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
internal import NIOSSL
import Synchronization

/// Unary RPCs, the watch stream and the lease keepalive stream of one endpoint, sent as HTTP/2
/// frames on a connection of the channel's own.
///
/// The other streams (snapshot, range stream, election observe) stay on grpc-swift; this path
/// exists for CPU. Measured on etcd 3.4 with `benchmarks/transport-probe`
/// (`benchmarks/TRANSPORT-PROBE.md`), a unary call through grpc-swift-nio-transport and GRPCCore
/// cost 150-180 µs of client CPU at 16 concurrent callers, where the same call written as frames on
/// one HTTP/2 channel cost 50-65 µs, as much as etcd's Go client. The difference is per-call
/// machinery (a child channel, an async channel, a producer sequence and an executor task group per
/// call); here a call is one object, one continuation and an entry in a dictionary, and its frames
/// are written on the connection's loop. A watch or keepalive response likewise goes from the DATA
/// frames to its handler on the loop, with no async sequence in between.
///
/// What the channel keeps of a gRPC client: a connection is made on demand, bounded by the dial
/// timeout, with TLS when the endpoint asks for it, and `PingAnsweringHandler` for etcd's PINGs,
/// keepalive and a server that never answers; a failed connection attempt fails the waiting calls
/// with `unavailable` and new calls fail fast until the back-off has passed; a GOAWAY lets the
/// calls in flight finish while new ones go to a new connection; deadlines travel as
/// `grpc-timeout` and end the call locally with `deadlineExceeded`; task cancellation resets the
/// stream and throws `CancellationError`. Errors are `RPCError`s with the codes and messages
/// grpc-swift uses, so `EtcdClientError.from` maps them the same way.
///
/// Every piece of state is touched only on `eventLoop`.
final class FrameChannel: @unchecked Sendable {
    /// How to reach the endpoint.
    struct Settings: Sendable {
        /// Where the server listens.
        enum Address: Sendable {
            case tcp(host: String, port: Int)
            case unix(path: String)
        }
        var address: Address
        /// `:authority`, and (without its port) the TLS server name.
        var authority: String
        var sslContext: NIOSSLContext?
        var serverHostname: String?
        var dialTimeout: TimeAmount
        var keepAlive: PingAnsweringHandler.KeepAlive?
        var initialBackoff: Duration
        var maxBackoff: Duration
        /// The last client stream ID a connection uses (HTTP/2 allows up to 2^31 - 1); the call
        /// after it goes on a new connection while the old one drains. Lowered only by tests.
        var lastStreamID: Int32 = .max
    }

    let eventLoop: any EventLoop
    let settings: Settings
    /// The endpoint, for messages.
    let endpoint: String

    private enum State {
        case idle
        case connecting(FrameConnectionHandler, [any ChannelCall])
        case ready(FrameConnectionHandler)
        /// The last attempt failed; calls fail with its error until the back-off has passed.
        case backingOff(RPCError, until: NIODeadline)
        case shutDown
    }
    private var state = State.idle
    private var failedAttempts = 0

    init(eventLoop: any EventLoop, settings: Settings, endpoint: String) {
        self.eventLoop = eventLoop
        self.settings = settings
        self.endpoint = endpoint
    }

    /// Sends one request on `path` and returns the serialized response; `message` is the request
    /// as one gRPC length-prefixed message (see ``GRPCFramedMessage``).
    ///
    /// - Throws: `RPCError` (the server's status, or unavailable / deadlineExceeded /
    ///   resourceExhausted from the client), or `CancellationError` when the task is cancelled.
    func call(
        path: String,
        message: ByteBuffer,
        metadata: Metadata,
        timeout: Duration?,
        maxResponseBytes: Int,
        streamOpened: AtomicFlag?
    ) async throws -> ByteBuffer {
        try Task.checkCancellation()
        let call = UnaryCall(
            headers: self.headers(path: path, metadata: metadata, timeout: timeout),
            message: message,
            deadline: timeout.map { .now() + TimeAmount($0) },
            maxResponseBytes: maxResponseBytes,
            streamOpened: streamOpened
        )
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { continuation in
                if self.eventLoop.inEventLoop {
                    self.start(call, continuation)
                } else {
                    self.eventLoop.execute { self.start(call, continuation) }
                }
            }
        } onCancel: {
            self.eventLoop.execute { call.end(CancellationError(), reset: true) }
        }
    }

    /// Runs one bidirectional stream on `path` until the server ends it: `requests` sends the
    /// requests (each a serialized message) while it runs; each response message is handed to
    /// `onMessage` on the event loop (it must not block). When `onMessage` returns `false` (its
    /// consumer is full) the stream's window is held until `windowRelease` is called. A message over
    /// `maxMessageBytes` ends the stream, unless `onOversize` takes it (see ``StreamCall``).
    ///
    /// - Throws: `RPCError` (the server's status, or unavailable when the connection breaks),
    ///   whatever `onMessage` throws, or `CancellationError` when the task is cancelled.
    func stream(
        path: String,
        metadata: Metadata,
        maxMessageBytes: Int,
        onMessage: @escaping @Sendable (ByteBuffer) throws -> Bool,
        onOversize: (@Sendable (_ start: ByteBuffer, _ length: Int) throws -> Bool)? = nil,
        windowRelease: StreamWindowRelease?,
        requests: @escaping @Sendable (_ send: @escaping @Sendable ([UInt8]) -> Void) async -> Void
    ) async throws {
        try Task.checkCancellation()
        let call = StreamCall(
            headers: self.headers(path: path, metadata: metadata, timeout: nil),
            maxMessageBytes: maxMessageBytes,
            onMessage: onMessage,
            onOversize: onOversize
        )
        let eventLoop = self.eventLoop
        windowRelease?.bind { eventLoop.execute { call.releaseWindow() } }
        let allocator = ByteBufferAllocator()
        let outbox = Outbox()
        try await withTaskCancellationHandler {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    // One hop to the loop carries every request sent before it runs, written in one
                    // frame: a renewal round of thousands of leases, or thousands of watches created
                    // at once, costs a few writes instead of one each. Hops run in order, so
                    // finishSending comes after the last request.
                    await requests { message in
                        if outbox.add(message) {
                            eventLoop.execute { call.send(outbox.takeAll(), allocator: allocator) }
                        }
                    }
                    eventLoop.execute { call.finishSending() }
                }
                defer { group.cancelAll() }
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                    eventLoop.execute {
                        guard call.begin(continuation) else { return }
                        self.dispatch(call)
                    }
                }
            }
        } onCancel: {
            eventLoop.execute { call.end(CancellationError(), reset: true) }
        }
    }

    /// Refuses new calls and closes the connection once its calls have ended.
    func shutdown() {
        self.eventLoop.execute {
            let state = self.state
            self.state = .shutDown
            switch state {
            case .connecting(let handler, let calls):
                for call in calls { call.end(Self.shutDownError, reset: false) }
                handler.drain()
            case .ready(let handler):
                handler.drain()
            case .idle, .backingOff, .shutDown:
                break
            }
        }
    }

    private static let shutDownError = RPCError(code: .unavailable, message: "the client is shut down")

    private func headers(path: String, metadata: Metadata, timeout: Duration?) -> HPACKHeaders {
        var headers: HPACKHeaders = [
            ":method": "POST", ":scheme": self.settings.sslContext == nil ? "http" : "https", ":path": path,
            ":authority": self.settings.authority, "content-type": "application/grpc", "te": "trailers",
            "user-agent": "swift-etcd",
        ]
        if let timeout {
            headers.add(name: "grpc-timeout", value: Self.grpcTimeout(timeout))
        }
        for (key, value) in metadata {
            // HTTP/2 header names are lower case (a propagator may inject "X-B3-TraceId").
            let key =
                key.utf8.contains(where: { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") })
                ? key.lowercased() : key
            switch value {
            case .string(let text): headers.add(name: key, value: text)
            case .binary(let bytes): headers.add(name: key, value: Data(bytes).base64EncodedString())
            }
        }
        return headers
    }

    /// A `grpc-timeout` value: at most 8 digits, in the finest unit that fits, rounded up; at least 1n.
    static func grpcTimeout(_ timeout: Duration) -> String {
        let (seconds, attoseconds) = timeout.components
        let nanoseconds =
            seconds >= 9_000_000_000 ? Int64.max : max(seconds * 1_000_000_000 + attoseconds / 1_000_000_000, 1)
        let units: [(String, Int64)] = [
            ("n", 1), ("u", 1000), ("m", 1_000_000), ("S", 1_000_000_000), ("M", 60_000_000_000),
            ("H", 3_600_000_000_000),
        ]
        for (unit, size) in units {
            let amount = nanoseconds / size + (nanoseconds % size == 0 ? 0 : 1)
            if amount < 100_000_000 { return "\(amount)\(unit)" }
        }
        return "99999999H"
    }

    // MARK: On the event loop

    private func start(_ call: UnaryCall, _ continuation: UnsafeContinuation<ByteBuffer, any Error>) {
        guard call.begin(continuation, on: self.eventLoop) else { return }
        self.dispatch(call)
    }

    /// Opens the call on the ready connection, or queues it while one is made.
    private func dispatch(_ call: any ChannelCall) {
        switch self.state {
        case .ready(let handler):
            call.open(on: handler)
        case .connecting(let handler, var calls):
            calls.append(call)
            self.state = .connecting(handler, calls)
        case .idle:
            self.connect(with: call)
        case .backingOff(let error, let until):
            if NIODeadline.now() < until {
                call.end(error, reset: false)
            } else {
                self.connect(with: call)
            }
        case .shutDown:
            call.end(Self.shutDownError, reset: false)
        }
    }

    private func connect(with call: any ChannelCall) {
        let settings = self.settings
        let handler = FrameConnectionHandler(owner: self)
        self.state = .connecting(handler, [call])
        let bootstrap = ClientBootstrap(group: self.eventLoop)
            .connectTimeout(settings.dialTimeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    if let context = settings.sslContext {
                        try pipeline.addHandler(
                            NIOSSLClientHandler(context: context, serverHostname: settings.serverHostname))
                    }
                    var configuration = NIOHTTP2Handler.ConnectionConfiguration()
                    configuration.initialSettings = [
                        HTTP2Setting(parameter: .enablePush, value: 0),
                        HTTP2Setting(parameter: .initialWindowSize, value: FrameConnectionHandler.targetWindow),
                        HTTP2Setting(parameter: .maxFrameSize, value: 1 << 14),
                        HTTP2Setting(parameter: .maxHeaderListSize, value: HPACKDecoder.defaultMaxHeaderListSize),
                    ]
                    // Our header blocks are fixed and well-formed, and of the server's we read only
                    // :status, grpc-status and grpc-message. Validating each block cost 5-10% of the
                    // client's CPU per call (range at 16 and 64 clients, A/B on etcd 3.4).
                    configuration.headerBlockValidation = .disabled
                    configuration.contentLengthValidation = .disabled
                    let http2 = NIOHTTP2Handler(
                        mode: .client, connectionConfiguration: configuration, streamConfiguration: .init())
                    try pipeline.addHandler(http2)
                    try pipeline.addHandler(
                        PingAnsweringHandler(
                            keepAlive: settings.keepAlive, handshakeTimeout: settings.dialTimeout,
                            openCalls: { [weak handler] in handler?.hasOpenCalls ?? false }),
                        position: .before(http2)
                    )
                    try pipeline.addHandler(handler)
                }
            }
        let connected: EventLoopFuture<any Channel>
        switch settings.address {
        case .tcp(let host, let port):
            connected = bootstrap.channelOption(.socketOption(.tcp_nodelay), value: 1).connect(host: host, port: port)
        case .unix(let path):
            // A Unix socket has no Nagle delay to turn off, and refuses TCP_NODELAY.
            connected = bootstrap.connect(unixDomainSocketPath: path)
        }
        connected.whenFailure { error in
            self.connectionFailed(handler, error: error)
        }
    }

    /// The server's SETTINGS arrived: the connection takes calls.
    func connectionReady(_ handler: FrameConnectionHandler) {
        switch self.state {
        case .connecting(let connecting, let calls) where connecting === handler:
            self.state = .ready(handler)
            self.failedAttempts = 0
            // Through dispatch: should the connection run out of stream IDs, the rest go to a new one.
            for call in calls { self.dispatch(call) }
        case .shutDown:
            handler.drain()
        default:
            break
        }
    }

    /// The connection takes no new calls (GOAWAY, or its stream IDs ran out): the next call connects anew.
    func connectionDraining(_ handler: FrameConnectionHandler) {
        if case .ready(let ready) = self.state, ready === handler { self.state = .idle }
    }

    /// The connection closed; if it never became ready, the attempt failed.
    func connectionClosed(_ handler: FrameConnectionHandler, error: RPCError) {
        switch self.state {
        case .connecting(let connecting, _) where connecting === handler:
            self.connectionFailed(handler, error: error)
        case .ready(let ready) where ready === handler:
            self.state = .idle
        default:
            break
        }
    }

    private func connectionFailed(_ handler: FrameConnectionHandler, error: any Error) {
        guard case .connecting(let connecting, let calls) = self.state, connecting === handler else { return }
        let rpcError =
            error as? RPCError
            ?? RPCError(code: .unavailable, message: "could not connect to \(self.endpoint): \(error)", cause: error)
        self.failedAttempts += 1
        let backoff = min(
            self.settings.initialBackoff * pow(1.6, Double(min(self.failedAttempts - 1, 32))), self.settings.maxBackoff)
        self.state = .backingOff(rpcError, until: .now() + TimeAmount(backoff))
        for call in calls { call.end(rpcError, reset: false) }
    }
}

/// The requests of one stream that wait for the hop to its event loop.
final class Outbox: Sendable {
    private let state = Mutex<(messages: [[UInt8]], hopPending: Bool)>(([], false))

    /// Queues `message`; true when the caller must schedule the hop that takes it (none is pending).
    func add(_ message: [UInt8]) -> Bool {
        self.state.withLock { state in
            state.messages.append(message)
            defer { state.hopPending = true }
            return !state.hopPending
        }
    }

    /// Every queued request, in order; the next ``add(_:)`` schedules a new hop.
    func takeAll() -> [[UInt8]] {
        self.state.withLock { state in
            state.hopPending = false
            let messages = state.messages
            state.messages = []
            return messages
        }
    }
}
