// SPDX-License-Identifier: Apache-2.0
// The same frames as UnaryCallHandler, under GRPCCore: a ClientTransport whose streams are a small
// buffer and a writer, no child channel or NIOAsyncChannel. Measures what GRPCCore's own per-call
// work (its executor, request and response types) adds on top of the frames.
import GRPCCore
import NIOCore
import NIOHPACK
import NIOHTTP2
import Synchronization

/// One call's inbound parts, from the event loop to the calling task.
final class InboundParts: AsyncSequence, AsyncIteratorProtocol, @unchecked Sendable {
    typealias Element = RPCResponsePart<[UInt8]>
    private struct State {
        var items: [Element] = []
        var ended: (any Error)?? = nil
        var waiter: CheckedContinuation<Element?, any Error>?
    }
    private let state = Mutex(State())

    func push(_ part: Element) {
        let waiter = self.state.withLock { state -> CheckedContinuation<Element?, any Error>? in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.items.append(part)
            return nil
        }
        waiter?.resume(returning: part)
    }

    func finish(_ error: (any Error)?) {
        let waiter = self.state.withLock { state -> CheckedContinuation<Element?, any Error>? in
            state.ended = .some(error)
            defer { state.waiter = nil }
            return state.items.isEmpty ? state.waiter : nil
        }
        if let error { waiter?.resume(throwing: error) } else { waiter?.resume(returning: nil) }
    }

    func makeAsyncIterator() -> InboundParts { self }

    func next() async throws -> Element? {
        try await withCheckedThrowingContinuation { continuation in
            let now = self.state.withLock { state -> Result<Element?, any Error>? in
                if !state.items.isEmpty { return .success(state.items.removeFirst()) }
                if let ended = state.ended { return ended.map { .failure($0) } ?? .success(nil) }
                state.waiter = continuation
                return nil
            }
            if let now { continuation.resume(with: now) }
        }
    }
}

/// Collects the request's metadata and messages; on finish, sends them as frames.
final class OutboundParts: ClosableRPCWriterProtocol, @unchecked Sendable {
    typealias Element = RPCRequestPart<[UInt8]>
    private let parts = Mutex<(Metadata, [[UInt8]])>(([:], []))
    private let send: @Sendable (Metadata, [[UInt8]]) -> Void
    init(send: @escaping @Sendable (Metadata, [[UInt8]]) -> Void) { self.send = send }

    func write(_ element: Element) async throws {
        self.parts.withLock { parts in
            switch element {
            case .metadata(let metadata): parts.0 = metadata
            case .message(let message): parts.1.append(message)
            }
        }
    }
    func write(contentsOf elements: some Sequence<Element>) async throws {
        for element in elements { try await self.write(element) }
    }
    func finish() async {
        let (metadata, messages) = self.parts.withLock { $0 }
        self.send(metadata, messages)
    }
    func finish(throwing error: any Error) async {}
}

/// A ClientTransport over one HTTP/2 channel with a GRPCStreamsHandler.
struct FrameTransport: ClientTransport {
    typealias Bytes = [UInt8]
    let channel: any Channel
    let handler: GRPCStreamsHandler

    /// connect() runs until beginGracefulShutdown(), as GRPCClient expects.
    let shutdown = AsyncStream.makeStream(of: Void.self)

    var retryThrottle: RetryThrottle? { nil }
    func connect() async throws { for await _ in self.shutdown.stream {} }
    func beginGracefulShutdown() { self.shutdown.continuation.finish() }
    func config(forMethod descriptor: MethodDescriptor) -> MethodConfig? { nil }

    func withStream<T: Sendable>(
        descriptor: MethodDescriptor,
        options: CallOptions,
        _ closure: (RPCStream<Inbound, Outbound>, ClientContext) async throws -> T
    ) async throws -> T {
        let inbound = InboundParts()
        let loop = self.channel.eventLoop
        let handler = self.handler
        let path = "/" + descriptor.fullyQualifiedMethod
        let outbound = OutboundParts { metadata, messages in
            if loop.inEventLoop {
                handler.start(path: path, metadata: metadata, messages: messages, inbound: inbound)
            } else {
                loop.execute { handler.start(path: path, metadata: metadata, messages: messages, inbound: inbound) }
            }
        }
        let stream = RPCStream(
            descriptor: descriptor,
            inbound: RPCAsyncSequence(wrapping: inbound),
            outbound: RPCWriter.Closable(wrapping: outbound)
        )
        return try await closure(stream, ClientContext(descriptor: descriptor, remotePeer: "", localPeer: ""))
    }
}

/// Streams as frames: HEADERS and DATA out; response HEADERS, DATA and trailers into InboundParts.
final class GRPCStreamsHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    private var context: ChannelHandlerContext?
    private var nextStreamID = 1
    private var streams: [HTTP2StreamID: (inbound: InboundParts, body: ByteBuffer, unacknowledged: Int)] = [:]
    private var unacknowledgedBytes = 0
    private let authority: String

    init(authority: String) { self.authority = authority }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func start(path: String, metadata: Metadata, messages: [[UInt8]], inbound: InboundParts) {
        guard let context = self.context, context.channel.isActive else {
            inbound.finish(RPCError(code: .unavailable, message: "closed"))
            return
        }
        let streamID = HTTP2StreamID(self.nextStreamID)
        self.nextStreamID += 2
        self.streams[streamID] = (inbound, ByteBuffer(), 0)
        var headers = Frames.requestHeaders(path: path, authority: self.authority)
        for (key, value) in metadata {
            if case .string(let string) = value { headers.add(name: key, value: string) }
        }
        var framed = context.channel.allocator.buffer(capacity: 5 + (messages.first?.count ?? 0))
        for message in messages { framed.writeGRPCMessage(message) }
        Frames.writeRequest(on: context, streamID: streamID, headers: headers, body: framed)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = self.unwrapInboundIn(data)
        switch frame.payload {
        case .data(let payload):
            let received = payload.data.readableBytes
            Frames.acknowledge(received, unacknowledged: &self.unacknowledgedBytes, streamID: .rootStream, on: context)
            guard var stream = self.streams[frame.streamID] else { return }
            if case .byteBuffer(var bytes) = payload.data { stream.body.writeBuffer(&bytes) }
            if !payload.endStream {
                Frames.acknowledge(
                    received, unacknowledged: &stream.unacknowledged, streamID: frame.streamID, on: context)
            }
            // Deframe whole messages.
            while stream.body.readableBytes >= 5,
                let length = stream.body.getInteger(at: stream.body.readerIndex + 1, as: UInt32.self),
                stream.body.readableBytes >= 5 + Int(length)
            {
                stream.body.moveReaderIndex(forwardBy: 5)
                stream.inbound.push(.message(stream.body.readBytes(length: Int(length))!))
            }
            self.streams[frame.streamID] = stream
        case .headers(let payload):
            guard let stream = self.streams[frame.streamID] else { return }
            if payload.endStream {
                self.streams.removeValue(forKey: frame.streamID)
                let code = payload.headers.first(name: "grpc-status").flatMap(Int.init) ?? 2
                let status = Status(
                    code: Status.Code(rawValue: code) ?? .unknown,
                    message: payload.headers.first(name: "grpc-message") ?? "")
                stream.inbound.push(.status(status, [:]))
                stream.inbound.finish(nil)
            } else {
                stream.inbound.push(.metadata([:]))
            }
        case .rstStream:
            self.streams.removeValue(forKey: frame.streamID)?.inbound.finish(
                RPCError(code: .unavailable, message: "reset"))
        default:
            break
        }
    }
}

/// Bytes in, bytes out: the probe encodes requests by hand.
struct PassThrough: MessageSerializer, MessageDeserializer {
    func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes { Bytes(message) }
    func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> [UInt8] {
        serializedMessageBytes.withUnsafeBytes { Array($0) }
    }
}
