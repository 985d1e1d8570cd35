// SPDX-License-Identifier: Apache-2.0
import CoreMetrics
import GRPCCore
import Logging
import ServiceContextModule
import Synchronization
import Tracing

/// The client's metrics, made from the configured factory once.
final class EtcdClientMetrics: Sendable {
    let factory: any MetricsFactory
    /// Open watches (each `watch` call while its body runs).
    let watches: Meter
    /// Leases the client keeps alive.
    let leases: Gauge

    init(factory: any MetricsFactory) {
        self.factory = factory
        self.watches = Meter(label: "etcd_client_watches", factory: factory)
        self.leases = Gauge(label: "etcd_client_leases", factory: factory)
    }

    func watchOpened() { self.watches.increment() }
    func watchClosed() { self.watches.decrement() }
    func recordLeases(_ count: Int) { self.leases.record(count) }

    func recordCall(method: String, code: String, duration: Duration) {
        Counter(
            label: "etcd_client_requests_total", dimensions: [("method", method), ("code", code)], factory: self.factory
        )
        .increment()
        let nanoseconds = duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000
        Timer(
            label: "etcd_client_request_duration_seconds", dimensions: [("method", method)],
            preferredDisplayUnit: .seconds, factory: self.factory
        ).recordNanoseconds(nanoseconds)
    }
}

/// Request IDs for log lines, unique in the process.
private let requestIDs = Atomic<Int>(0)

/// Starts the metrics, trace span and log line of one RPC, for both call paths: grpc-swift's (the
/// interceptor below, streams included) and ``FrameChannel``'s.
struct CallObserver: Sendable {
    let metrics: EtcdClientMetrics?
    let tracer: (any Tracer)?
    let logger: Logger?
    let endpoint: String

    /// Starts a span (its context injected into `metadata`) and logs the request; the returned
    /// ``CallFinish`` records the end.
    func begin(_ descriptor: MethodDescriptor, metadata: inout Metadata) -> CallFinish {
        let method = descriptor.fullyQualifiedMethod
        var span: (any Span)?
        if let tracer {
            let started = tracer.startSpan(method, context: ServiceContext.current ?? .topLevel, ofKind: .client)
            started.attributes["rpc.system"] = "grpc"
            started.attributes["rpc.service"] = descriptor.service.fullyQualifiedService
            started.attributes["rpc.method"] = descriptor.method
            started.attributes["server.address"] = self.endpoint
            tracer.inject(started.context, into: &metadata, using: MetadataInjector())
            span = started
        }
        var logger = self.logger
        logger?[metadataKey: "etcd_request_id"] = "\(requestIDs.wrappingAdd(1, ordering: .relaxed).newValue)"
        logger?.trace("etcd request", metadata: ["etcd_method": "\(method)", "etcd_endpoint": "\(self.endpoint)"])
        return CallFinish(method: method, endpoint: self.endpoint, metrics: self.metrics, span: span, logger: logger)
    }
}

/// Records metrics, a trace span and a log line for every RPC, streams included (which end when
/// their last response is read or the reader goes away). Installed only when configured.
struct ObservabilityInterceptor: ClientInterceptor {
    let observer: CallObserver

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingClientRequest<Input>,
        context: ClientContext,
        next: (StreamingClientRequest<Input>, ClientContext) async throws -> StreamingClientResponse<Output>
    ) async throws -> StreamingClientResponse<Output> {
        var request = request
        let finish = self.observer.begin(context.descriptor, metadata: &request.metadata)
        do {
            var response = try await next(request, context)
            switch response.accepted {
            case .success(var contents):
                contents.bodyParts = RPCAsyncSequence(
                    wrapping: ObservedSequence<Output>(base: contents.bodyParts, finish: finish))
                response.accepted = .success(contents)
            case .failure(let error):
                finish.finish(error)
            }
            return response
        } catch {
            finish.finish(error)
            throw error
        }
    }
}

/// Reports the end of one RPC once: with its status when the response stream ends or fails, or as
/// cancelled when its reader lets go of it first.
final class CallFinish: Sendable {
    let method: String
    let endpoint: String
    let metrics: EtcdClientMetrics?
    let span: (any Span)?
    let logger: Logger?
    let start = ContinuousClock.now
    private let done = Atomic(false)

    init(method: String, endpoint: String, metrics: EtcdClientMetrics?, span: (any Span)?, logger: Logger?) {
        self.method = method
        self.endpoint = endpoint
        self.metrics = metrics
        self.span = span
        self.logger = logger
    }

    func finish(_ error: (any Error)?) {
        guard !self.done.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let duration = ContinuousClock.now - self.start
        let code: String
        switch error {
        case nil: code = "ok"
        case let error as RPCError: code = "\(error.code)"
        case is CancellationError: code = "cancelled"
        default: code = "unknown"
        }
        self.metrics?.recordCall(method: self.method, code: code, duration: duration)
        if let span {
            span.attributes["rpc.grpc.status_code"] = code
            if let error {
                span.recordError(error)
                span.setStatus(SpanStatus(code: .error, message: "\(code)"))
            }
            span.end()
        }
        self.logger?.debug(
            "etcd request finished",
            metadata: [
                "etcd_method": "\(self.method)", "etcd_endpoint": "\(self.endpoint)", "etcd_code": "\(code)",
                "etcd_duration_ms":
                    "\(Double(duration.components.attoseconds) / 1e15 + Double(duration.components.seconds) * 1e3)",
            ]
        )
    }

    deinit {
        // The reader stopped before the end (a watch or keepalive stream the client closed).
        self.finish(CancellationError())
    }
}

/// A response stream that reports its end to a ``CallFinish``: its trailing metadata (the call
/// succeeded), its end, or its error.
private struct ObservedSequence<Output: Sendable>: AsyncSequence, Sendable {
    typealias Element = StreamingClientResponse<Output>.Contents.BodyPart
    let base: RPCAsyncSequence<Element, any Error>
    let finish: CallFinish

    func makeAsyncIterator() -> Iterator { Iterator(base: self.base.makeAsyncIterator(), finish: self.finish) }

    struct Iterator: AsyncIteratorProtocol {
        var base: RPCAsyncSequence<Element, any Error>.AsyncIterator
        let finish: CallFinish

        mutating func next() async throws -> Element? {
            do {
                let element = try await self.base.next()
                switch element {
                case .none, .trailingMetadata: self.finish.finish(nil)
                case .message: break
                }
                return element
            } catch {
                self.finish.finish(error)
                throw error
            }
        }
    }
}

/// Writes trace headers into gRPC metadata.
private struct MetadataInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout Metadata) {
        carrier.replaceOrAddString(value, forKey: key)
    }
}
