// SPDX-License-Identifier: Apache-2.0
import GRPCCore
import GRPCNIOTransportHTTP2
import Synchronization

/// Records, per call, whether a stream was ever opened to the server.
///
/// A mutation may only be retried when it provably never left the client; a call whose stream was
/// never opened (no connection, connection refused, channel in transient failure) qualifies.
final class StreamOpenedFlag: Sendable {
    private let opened = Atomic<Bool>(false)
    func markOpened() { self.opened.store(true, ordering: .relaxed) }
    var wasOpened: Bool { self.opened.load(ordering: .relaxed) }

    @TaskLocal static var current: StreamOpenedFlag?
}

/// The HTTP/2 transport, marking the current call's ``StreamOpenedFlag`` once a stream exists.
struct TrackingTransport: ClientTransport {
    typealias Bytes = HTTP2ClientTransport.Posix.Bytes

    let base: HTTP2ClientTransport.Posix

    var retryThrottle: RetryThrottle? { self.base.retryThrottle }

    func connect() async throws { try await self.base.connect() }

    func beginGracefulShutdown() { self.base.beginGracefulShutdown() }

    func config(forMethod descriptor: MethodDescriptor) -> MethodConfig? {
        self.base.config(forMethod: descriptor)
    }

    func withStream<T: Sendable>(
        descriptor: MethodDescriptor,
        options: CallOptions,
        _ closure: (RPCStream<Inbound, Outbound>, ClientContext) async throws -> T
    ) async throws -> T {
        let flag = StreamOpenedFlag.current
        return try await self.base.withStream(descriptor: descriptor, options: options) { stream, context in
            flag?.markOpened()
            return try await closure(stream, context)
        }
    }
}
