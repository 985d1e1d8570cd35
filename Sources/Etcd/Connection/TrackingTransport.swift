// SPDX-License-Identifier: Apache-2.0
import GRPCCore
import GRPCNIOTransportHTTP2
import Synchronization

/// A flag tasks can share: set once, read any time.
final class AtomicFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { self.value.store(true, ordering: .relaxed) }
    var isSet: Bool { self.value.load(ordering: .relaxed) }
}

/// The HTTP/2 transport, setting the current call's ``streamOpened`` flag once a stream exists.
///
/// A mutation may only be retried when it provably never left the client; a call whose stream was
/// never opened (no connection, connection refused, channel in transient failure) qualifies.
package struct TrackingTransport: ClientTransport {
    /// Set when the current call opened a stream to the server: by this transport for grpc-swift's
    /// calls, by `FrameConnectionHandler` for the frame path's.
    @TaskLocal static var streamOpened: AtomicFlag?

    package typealias Bytes = HTTP2ClientTransport.Posix.Bytes

    let base: HTTP2ClientTransport.Posix

    package var retryThrottle: RetryThrottle? { self.base.retryThrottle }

    package func connect() async throws { try await self.base.connect() }

    package func beginGracefulShutdown() { self.base.beginGracefulShutdown() }

    package func config(forMethod descriptor: MethodDescriptor) -> MethodConfig? {
        self.base.config(forMethod: descriptor)
    }

    package func withStream<T: Sendable>(
        descriptor: MethodDescriptor,
        options: CallOptions,
        _ closure: (RPCStream<Inbound, Outbound>, ClientContext) async throws -> T
    ) async throws -> T {
        let flag = Self.streamOpened
        return try await self.base.withStream(descriptor: descriptor, options: options) { stream, context in
            flag?.set()
            return try await closure(stream, context)
        }
    }
}
