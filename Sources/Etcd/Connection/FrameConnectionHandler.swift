// SPDX-License-Identifier: Apache-2.0
import GRPCCore
import NIOCore
import NIOHPACK
import NIOHTTP2
import SwiftProtobuf

/// One HTTP/2 connection of a ``FrameChannel``: opens a stream per call, writes the request as
/// HEADERS and one DATA frame, and completes the call from the response's frames; streams
/// (``StreamCall``) write requests as they come and hand on each response message. Event loop only.
///
/// It sits after `NIOHTTP2Handler` with no stream multiplexer, so it returns the flow-control
/// windows itself (swift-nio-http2 does that only for its stream channels).
final class FrameConnectionHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    /// The receive window of the connection and of each stream (grpc-swift's default).
    static let targetWindow = 8 << 20

    private let owner: FrameChannel
    private var context: ChannelHandlerContext?
    private var calls: [HTTP2StreamID: UnaryCall] = [:]
    private var streams: [HTTP2StreamID: StreamCall] = [:]
    private var nextStreamID: Int32 = 1
    /// The last stream ID went to a call: this connection takes no more.
    private var usedLastStreamID = false
    /// Received DATA bytes not yet returned to the connection window.
    private var unacknowledged = 0
    /// The server's SETTINGS arrived.
    private var isReady = false
    /// No new streams: the server sent GOAWAY, the stream IDs ran out, or the client shuts down.
    private var isDraining = false
    private var isClosed = false
    private var flushPending = false
    /// Requests written since the last flush.
    private var unflushed = 0
    /// At most this many requests share one write: etcd starts on them while the client encodes
    /// the rest. A/B against one write for all: put at 16 and 64 clients 5-15% faster, and etcd
    /// spends less CPU per request.
    static let requestsPerWrite = 4
    /// The first connection-level error (a TLS failure, say), the cause of the connection's end.
    private var firstError: (any Error)?
    /// Why the server said it would close the connection (its GOAWAY), for error messages.
    private var goAway: String?

    init(owner: FrameChannel) {
        self.owner = owner
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    /// Whether a unary call or a stream is open on the connection (for keepalive).
    var hasOpenCalls: Bool { !self.calls.isEmpty || !self.streams.isEmpty }

    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    /// Opens a stream for `call` and writes its request; the call ends with `unavailable` when
    /// the connection takes no new streams.
    func open(_ call: UnaryCall) {
        guard let (context, streamID) = self.newStream(for: call) else { return }
        self.calls[streamID] = call
        if self.usedLastStreamID { self.startDraining() }
        call.opened(on: self, streamID: streamID)
        call.streamOpened?.set()
        context.write(
            self.wrapOutboundOut(HTTP2Frame(streamID: streamID, payload: .headers(.init(headers: call.headers)))),
            promise: nil)
        context.write(
            self.wrapOutboundOut(
                HTTP2Frame(streamID: streamID, payload: .data(.init(data: .byteBuffer(call.message), endStream: true)))),
            promise: nil)
        self.unflushed += 1
        if self.calls.count == 1 || self.unflushed == Self.requestsPerWrite {
            // Nothing else in flight, or enough to make a write worth it.
            self.unflushed = 0
            context.flush()
        } else {
            self.flushSoon(context)
        }
    }

    /// Opens a stream for `stream`, writes its headers and the requests sent so far; it ends with
    /// `unavailable` when the connection takes no new streams.
    func openStream(_ stream: StreamCall) {
        guard let (context, streamID) = self.newStream(for: stream) else { return }
        self.streams[streamID] = stream
        if self.usedLastStreamID { self.startDraining() }
        let (pending, finished) = stream.opened(on: self, streamID: streamID)
        context.write(
            self.wrapOutboundOut(
                HTTP2Frame(streamID: streamID, payload: .headers(.init(headers: stream.headers, endStream: false)))),
            promise: nil)
        for (index, message) in pending.enumerated() {
            let last = finished && index == pending.count - 1
            context.write(
                self.wrapOutboundOut(
                    HTTP2Frame(streamID: streamID, payload: .data(.init(data: .byteBuffer(message), endStream: last)))),
                promise: nil)
        }
        if finished && pending.isEmpty {
            context.write(
                self.wrapOutboundOut(
                    HTTP2Frame(
                        streamID: streamID, payload: .data(.init(data: .byteBuffer(ByteBuffer()), endStream: true)))),
                promise: nil)
        }
        context.flush()
    }

    /// Writes one DATA frame of an open stream and flushes.
    func write(_ data: ByteBuffer, on streamID: HTTP2StreamID, endStream: Bool) {
        guard let context = self.context, !self.isClosed, self.streams[streamID] != nil else { return }
        context.writeAndFlush(
            self.wrapOutboundOut(
                HTTP2Frame(streamID: streamID, payload: .data(.init(data: .byteBuffer(data), endStream: endStream)))),
            promise: nil)
    }

    /// The context and a new stream ID for `call`; nil when the call has ended, or (ending it with
    /// `unavailable`) when the connection takes no new streams.
    private func newStream(for call: any ChannelCall) -> (ChannelHandlerContext, HTTP2StreamID)? {
        guard !call.hasEnded else { return nil }
        guard let context = self.context, !self.isClosed, !self.isDraining else {
            call.end(
                RPCError(code: .unavailable, message: "the connection to \(self.owner.endpoint) is closing"),
                reset: false)
            return nil
        }
        return (context, self.newStreamID())
    }

    /// Stream IDs never repeat on a connection: after the last one, the next call needs a new
    /// connection (the caller drains this one once it has registered the call).
    private func newStreamID() -> HTTP2StreamID {
        let streamID = self.nextStreamID
        if streamID >= self.owner.settings.lastStreamID - 1 {
            self.usedLastStreamID = true
        } else {
            self.nextStreamID += 2
        }
        return HTTP2StreamID(streamID)
    }

    /// Flushes once the event loop has run the jobs already queued: calls that start together
    /// (their tasks resumed by one read) share writes to the socket, with no timer's delay.
    private func flushSoon(_ context: ChannelHandlerContext) {
        guard !self.flushPending else { return }
        self.flushPending = true
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let (handler, context) = loopBound.value
            handler.flushPending = false
            handler.unflushed = 0
            if !handler.isClosed { context.flush() }
        }
    }

    /// Removes a call that ended; with `reset`, tells the server the client gave up on its stream.
    func forget(_ streamID: HTTP2StreamID, reset: Bool) {
        guard self.calls.removeValue(forKey: streamID) != nil else { return }
        self.forgotten(streamID, reset: reset)
    }

    /// Removes a stream that ended; with `reset`, tells the server the client gave up on it.
    func forgetStream(_ streamID: HTTP2StreamID, reset: Bool) {
        guard self.streams.removeValue(forKey: streamID) != nil else { return }
        self.forgotten(streamID, reset: reset)
    }

    private func forgotten(_ streamID: HTTP2StreamID, reset: Bool) {
        if reset, let context = self.context, !self.isClosed {
            context.writeAndFlush(
                self.wrapOutboundOut(HTTP2Frame(streamID: streamID, payload: .rstStream(.cancel))), promise: nil)
        }
        self.closeIfDrained()
    }

    /// Takes no new calls and closes the connection once the open ones have ended.
    func drain() {
        self.isDraining = true
        self.closeIfDrained()
    }

    private func startDraining() {
        guard !self.isDraining else { return }
        self.isDraining = true
        self.owner.connectionDraining(self)
        self.closeIfDrained()
    }

    private func closeIfDrained() {
        if self.isDraining && self.calls.isEmpty && self.streams.isEmpty { self.context?.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = self.unwrapInboundIn(data)
        guard frame.streamID != .rootStream else {
            switch frame.payload {
            case .settings(.settings):
                guard !self.isReady else { break }
                self.isReady = true
                // The connection window starts at 64 KiB whatever SETTINGS say; grow it once.
                let increment = Self.targetWindow - 65535
                context.writeAndFlush(
                    self.wrapOutboundOut(
                        HTTP2Frame(streamID: .rootStream, payload: .windowUpdate(windowSizeIncrement: increment))),
                    promise: nil)
                self.owner.connectionReady(self)
            case .goAway(_, let code, let data):
                // Streams above its last stream ID are closed by NIOHTTP2Handler (StreamClosedEvent).
                let text = data.map { String(buffer: $0) }.map { $0.isEmpty ? "" : ": \($0)" } ?? ""
                self.goAway = "the server sent GOAWAY (\(code)\(text))"
                self.startDraining()
            default:
                break
            }
            return
        }
        var count = 0
        if case .data(let payload) = frame.payload {
            // Every DATA frame counts against the connection window, a late one for an ended call
            // too; padding counts as well (its length byte included).
            count = payload.data.readableBytes + (payload.paddingBytes.map { $0 + 1 } ?? 0)
            self.acknowledge(count, unacknowledged: &self.unacknowledged, streamID: .rootStream, context: context)
        }
        if let call = self.calls[frame.streamID] {
            self.callRead(call, frame, count: count, context: context)
        } else if let stream = self.streams[frame.streamID] {
            self.streamRead(stream, frame, count: count, context: context)
        }
    }

    /// A frame of a unary call: the response collects until its trailers (or a DATA frame that
    /// ends the stream) complete the call.
    private func callRead(_ call: UnaryCall, _ frame: HTTP2Frame, count: Int, context: ChannelHandlerContext) {
        switch frame.payload {
        case .data(let payload):
            guard case .byteBuffer(let bytes) = payload.data else { return }
            call.append(bytes)
            if let length = call.announcedLength, length > call.maxResponseBytes {
                self.fail(
                    call, frame.streamID, .messageTooLarge(max: call.maxResponseBytes, actual: length),
                    reset: !payload.endStream)
                return
            }
            if payload.endStream {
                self.finish(call, frame.streamID, trailers: nil)
            } else {
                self.acknowledge(
                    count, unacknowledged: &call.unacknowledged, streamID: frame.streamID, context: context)
            }
        case .headers(let payload):
            if !call.receivedHeaders {
                call.receivedHeaders = true
                if let error = Self.httpStatusError(payload.headers) {
                    self.fail(call, frame.streamID, error, reset: !payload.endStream)
                } else if payload.endStream {
                    // Trailers-only: the server answered with a status and no message.
                    self.finish(call, frame.streamID, trailers: payload.headers)
                }
            } else {
                self.finish(call, frame.streamID, trailers: payload.headers)
            }
        case .rstStream(let code):
            self.fail(call, frame.streamID, Self.resetError(code), reset: false)
        default:
            break
        }
    }

    /// A frame of a stream: messages go to the stream as they become whole; its window is returned
    /// as they arrive, unless its consumer is full (``StreamCall/isWindowHeld``): then the server
    /// can send what the window still allows, and waits until the consumer has caught up.
    private func streamRead(_ stream: StreamCall, _ frame: HTTP2Frame, count: Int, context: ChannelHandlerContext) {
        let streamID = frame.streamID
        switch frame.payload {
        case .data(let payload):
            if case .byteBuffer(let bytes) = payload.data {
                do {
                    try stream.receive(bytes)
                } catch {
                    self.failStream(stream, streamID, error, reset: !payload.endStream)
                    return
                }
            }
            if payload.endStream {
                self.finishStream(stream, streamID, trailers: nil)
            } else if stream.isWindowHeld {
                stream.unacknowledged += count
            } else {
                self.acknowledge(count, unacknowledged: &stream.unacknowledged, streamID: streamID, context: context)
            }
        case .headers(let payload):
            if !stream.receivedHeaders {
                stream.receivedHeaders = true
                if let error = Self.httpStatusError(payload.headers) {
                    self.failStream(stream, streamID, error, reset: !payload.endStream)
                } else if payload.endStream {
                    self.finishStream(stream, streamID, trailers: payload.headers)
                }
            } else {
                self.finishStream(stream, streamID, trailers: payload.headers)
            }
        case .rstStream(let code):
            self.failStream(stream, streamID, Self.resetError(code), reset: false)
        default:
            break
        }
    }

    private func finishStream(_ stream: StreamCall, _ streamID: HTTP2StreamID, trailers: HPACKHeaders?) {
        self.forgetStream(streamID, reset: false)
        switch Self.status(trailers, endpoint: self.owner.endpoint) {
        case .success where stream.hasPartialMessage:
            stream.end(
                RPCError(
                    code: .internalError, message: "the stream from \(self.owner.endpoint) ended inside a message"),
                reset: false)
        case .success:
            stream.succeed()
        case .failure(let error):
            stream.end(error, reset: false)
        }
    }

    /// The call's gRPC status from its trailers (nil when the server ended the stream with DATA).
    static func status(_ trailers: HPACKHeaders?, endpoint: String) -> Result<Void, RPCError> {
        guard let trailers, let text = trailers.first(name: "grpc-status"), let raw = Int(text),
            let status = Status.Code(rawValue: raw)
        else {
            return .failure(RPCError(code: .internalError, message: "the response of \(endpoint) has no gRPC status"))
        }
        guard status == .ok else {
            let message = Self.percentDecoded(trailers.first(name: "grpc-message") ?? "")
            return .failure(RPCError(code: RPCError.Code(status) ?? .unknown, message: message))
        }
        return .success(())
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // A stream closed while its call waits: reset by either side, or refused by a GOAWAY.
        // Frames come before their events, so a call that completed normally is already gone.
        // Every call's stream closes with one; the error is made only when a call still waits.
        // Most events are others (a stream created, a window updated): comparing the type is
        // cheaper than trying the cast on each.
        if type(of: event) == StreamClosedEvent.self, let closed = event as? StreamClosedEvent {
            if let call = self.calls[closed.streamID] {
                self.fail(call, closed.streamID, self.closedEarly(closed), reset: false)
            } else if let stream = self.streams[closed.streamID] {
                self.failStream(stream, closed.streamID, self.closedEarly(closed), reset: false)
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// The error of a call whose stream closed before its response ended.
    private func closedEarly(_ closed: StreamClosedEvent) -> RPCError {
        let reason = closed.reason.map { " (\($0))" } ?? ""
        return RPCError(
            code: .unavailable,
            message: "the stream to \(self.owner.endpoint) closed before its response ended\(reason)"
                + (self.goAway.map { "; \($0)" } ?? ""))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let streamError = error as? NIOHTTP2Errors.StreamError {
            // One stream broke the protocol; NIOHTTP2Handler has reset it. The connection stays.
            let failure = RPCError(
                code: .internalError, message: "HTTP/2 stream error: \(streamError.baseError)", cause: error)
            if let call = self.calls[streamError.streamID] {
                self.fail(call, streamError.streamID, failure, reset: false)
            } else if let stream = self.streams[streamError.streamID] {
                self.failStream(stream, streamError.streamID, failure, reset: false)
            }
            return
        }
        if self.firstError == nil { self.firstError = error }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.isClosed = true
        let error: RPCError
        if !self.isReady {
            // The message grpc-swift uses, which EtcdClientError.from turns into advice about TLS.
            error = RPCError(
                code: .unavailable,
                message: "\(self.owner.endpoint) closed the connection before completing the HTTP/2 connection preface",
                cause: self.firstError)
        } else {
            error = RPCError(
                code: .unavailable,
                message: "the connection to \(self.owner.endpoint) closed"
                    + ((self.goAway ?? self.firstError.map { "\($0)" }).map { ": \($0)" } ?? ""),
                cause: self.firstError)
        }
        let calls = self.calls
        let streams = self.streams
        self.calls = [:]
        self.streams = [:]
        for call in calls.values { call.end(error, reset: false) }
        for stream in streams.values { stream.end(error, reset: false) }
        self.owner.connectionClosed(self, error: error)
        context.fireChannelInactive()
    }

    // MARK: Responses

    private func fail(_ call: UnaryCall, _ streamID: HTTP2StreamID, _ error: RPCError, reset: Bool) {
        self.forget(streamID, reset: reset)
        call.end(error, reset: false)
    }

    private func failStream(_ stream: StreamCall, _ streamID: HTTP2StreamID, _ error: any Error, reset: Bool) {
        self.forgetStream(streamID, reset: reset)
        stream.end(error, reset: false)
    }

    /// Completes a call from its trailers (nil when the server ended the stream with DATA).
    private func finish(_ call: UnaryCall, _ streamID: HTTP2StreamID, trailers: HPACKHeaders?) {
        self.forget(streamID, reset: false)
        if case .failure(let error) = Self.status(trailers, endpoint: self.owner.endpoint) {
            call.end(error, reset: false)
            return
        }
        guard let message = call.takeMessage() else {
            call.end(
                RPCError(
                    code: .internalError, message: "the response of \(self.owner.endpoint) is not one gRPC message"),
                reset: false)
            return
        }
        call.succeed(message)
    }

    /// `stream`'s consumer has room again: returns the window held meanwhile, as ``acknowledge``
    /// would have.
    func releaseWindow(of stream: StreamCall, _ streamID: HTTP2StreamID) {
        guard let context = self.context, self.streams[streamID] === stream else { return }
        self.acknowledge(0, unacknowledged: &stream.unacknowledged, streamID: streamID, context: context)
    }

    private func acknowledge(
        _ count: Int, unacknowledged: inout Int, streamID: HTTP2StreamID, context: ChannelHandlerContext
    ) {
        unacknowledged += count
        guard unacknowledged >= Self.targetWindow / 2, !self.isClosed else { return }
        context.writeAndFlush(
            self.wrapOutboundOut(
                HTTP2Frame(streamID: streamID, payload: .windowUpdate(windowSizeIncrement: unacknowledged))),
            promise: nil)
        unacknowledged = 0
    }

    /// The gRPC status for a response whose HTTP status is not 200 (gRPC's HTTP-to-status mapping).
    static func httpStatusError(_ headers: HPACKHeaders) -> RPCError? {
        let status = headers.first(name: ":status") ?? "none"
        guard status != "200" else { return nil }
        let code: RPCError.Code
        switch status {
        case "400": code = .internalError
        case "401": code = .unauthenticated
        case "403": code = .permissionDenied
        case "404": code = .unimplemented
        case "429", "502", "503", "504": code = .unavailable
        default: code = .unknown
        }
        return RPCError(code: code, message: "the server answered with HTTP status \(status)")
    }

    /// The gRPC status for a stream the server reset (gRPC's HTTP/2-to-status mapping).
    static func resetError(_ code: HTTP2ErrorCode) -> RPCError {
        let status: RPCError.Code
        switch code {
        case .refusedStream: status = .unavailable
        case .cancel: status = .cancelled
        case .enhanceYourCalm: status = .resourceExhausted
        case .inadequateSecurity: status = .permissionDenied
        default: status = .internalError
        }
        return RPCError(code: status, message: "the server reset the stream (\(code))")
    }

    /// `grpc-message` is percent-encoded.
    static func percentDecoded(_ text: String) -> String {
        guard text.utf8.contains(UInt8(ascii: "%")) else { return text }
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8)[...]
        while let byte = iterator.popFirst() {
            if byte == UInt8(ascii: "%"), iterator.count >= 2,
                let value = UInt8(String(decoding: iterator.prefix(2), as: UTF8.self), radix: 16)
            {
                bytes.append(value)
                iterator = iterator.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

extension ByteBufferAllocator {
    /// `messages` one after another, each a gRPC length-prefixed message, uncompressed.
    func grpcMessages(_ messages: some Collection<[UInt8]>) -> ByteBuffer {
        var framed = self.buffer(capacity: messages.reduce(0) { $0 + ByteBuffer.grpcPrefixSize + $1.count })
        for message in messages {
            framed.writeGRPCPrefix(length: message.count)
            framed.writeBytes(message)
        }
        return framed
    }
}

extension ByteBuffer {
    /// The size of a gRPC message's prefix: a compression flag and the message's length.
    static let grpcPrefixSize = 5

    /// Writes the prefix of an uncompressed gRPC message of `length` bytes.
    mutating func writeGRPCPrefix(length: Int) {
        self.writeInteger(UInt8(0))  // not compressed
        self.writeInteger(UInt32(truncatingIfNeeded: length))
    }
}

/// A protobuf message serialized straight into the buffer its DATA frame sends, after its gRPC
/// length prefix: `try message.serializedBytes() as GRPCFramedMessage`.
///
/// Serializing to `[UInt8]` and framing that in a `ByteBuffer` cost one allocation and one copy of
/// the message per call; swift-protobuf sizes the message first and asks for that many bytes, so
/// the prefix is known before the message is written.
struct GRPCFramedMessage: SwiftProtobufContiguousBytes {
    private static let prefixSize = ByteBuffer.grpcPrefixSize
    /// The prefix (not compressed, the length) and the message.
    private(set) var buffer: ByteBuffer

    init(repeating byte: UInt8, count: Int) {
        var buffer = ByteBufferAllocator().buffer(capacity: Self.prefixSize + count)
        buffer.writeGRPCPrefix(length: count)
        buffer.writeRepeatingByte(byte, count: count)
        self.buffer = buffer
    }

    init<S: Sequence>(_ sequence: S) where S.Element == UInt8 {
        let bytes = Array(sequence)
        self.init(repeating: 0, count: bytes.count)
        self.buffer.setBytes(bytes, at: Self.prefixSize)
    }

    var count: Int { self.buffer.readableBytes - Self.prefixSize }

    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try self.buffer.withUnsafeReadableBytes { try body(.init(rebasing: $0.dropFirst(Self.prefixSize))) }
    }

    mutating func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try self.buffer.withUnsafeMutableReadableBytes { try body(.init(rebasing: $0.dropFirst(Self.prefixSize))) }
    }
}

extension ByteBuffer {
    /// Appends `bytes`, taking them as they are while this buffer is empty (no copy).
    mutating func append(received bytes: ByteBuffer) {
        if self.readableBytes == 0 {
            self = bytes
        } else {
            var bytes = bytes
            self.writeBuffer(&bytes)
        }
    }
}

extension RPCError {
    /// A response message over the receive limit, in grpc-swift's words (which
    /// `EtcdClientError.from` maps to `responseTooLarge`).
    static func messageTooLarge(max: Int, actual: Int) -> RPCError {
        RPCError(
            code: .resourceExhausted,
            message: "Message has exceeded the configured maximum payload size (max: \(max), actual: \(actual))")
    }
}
