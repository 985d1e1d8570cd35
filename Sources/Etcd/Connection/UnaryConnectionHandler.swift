// SPDX-License-Identifier: Apache-2.0
import GRPCCore
import NIOCore
import NIOHPACK
import NIOHTTP2

/// One HTTP/2 connection of a ``UnaryChannel``: opens a stream per call, writes the request as
/// HEADERS and one DATA frame, and completes the call from the response's frames. Event loop only.
///
/// It sits after `NIOHTTP2Handler` with no stream multiplexer, so it returns the flow-control
/// windows itself (swift-nio-http2 does that only for its stream channels).
final class UnaryConnectionHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    /// The receive window of the connection and of each stream (grpc-swift's default).
    static let targetWindow = 8 << 20

    private let owner: UnaryChannel
    private var context: ChannelHandlerContext?
    private var calls: [HTTP2StreamID: UnaryCall] = [:]
    private var nextStreamID: Int32 = 1
    /// Received DATA bytes not yet returned to the connection window.
    private var unacknowledged = 0
    /// The server's SETTINGS arrived.
    private var isReady = false
    /// No new streams: the server sent GOAWAY, the stream IDs ran out, or the client shuts down.
    private var isDraining = false
    private var isClosed = false
    private var flushPending = false
    /// The first connection-level error (a TLS failure, say), the cause of the connection's end.
    private var firstError: (any Error)?

    init(owner: UnaryChannel) {
        self.owner = owner
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    /// Opens a stream for `call` and writes its request; the call ends with `unavailable` when
    /// the connection takes no new streams.
    func open(_ call: UnaryCall) {
        guard !call.hasEnded else { return }
        guard let context = self.context, !self.isClosed, !self.isDraining else {
            call.end(
                RPCError(code: .unavailable, message: "the connection to \(self.owner.endpoint) is closing"),
                reset: false)
            return
        }
        let streamID = HTTP2StreamID(self.nextStreamID)
        self.nextStreamID += 2
        if self.nextStreamID > Int32.max - 2 {
            // Stream IDs never repeat on a connection: the next call needs a new one.
            self.startDraining()
        }
        self.calls[streamID] = call
        call.opened(on: self, streamID: streamID)
        call.streamOpened?.set()
        var body = context.channel.allocator.buffer(capacity: 5 + call.message.count)
        body.writeInteger(UInt8(0))  // not compressed
        body.writeInteger(UInt32(call.message.count))
        body.writeBytes(call.message)
        context.write(
            self.wrapOutboundOut(HTTP2Frame(streamID: streamID, payload: .headers(.init(headers: call.headers)))),
            promise: nil)
        context.write(
            self.wrapOutboundOut(
                HTTP2Frame(streamID: streamID, payload: .data(.init(data: .byteBuffer(body), endStream: true)))),
            promise: nil)
        if self.calls.count == 1 {
            // Nothing else in flight: nothing to share the write with.
            context.flush()
        } else {
            self.flushSoon(context)
        }
    }

    /// Flushes once the event loop has run the jobs already queued: calls that start together
    /// (their tasks resumed by one read) share one write to the socket, with no timer's delay.
    private func flushSoon(_ context: ChannelHandlerContext) {
        guard !self.flushPending else { return }
        self.flushPending = true
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let (handler, context) = loopBound.value
            handler.flushPending = false
            if !handler.isClosed { context.flush() }
        }
    }

    /// Removes a call that ended; with `reset`, tells the server the client gave up on its stream.
    func forget(_ streamID: HTTP2StreamID, reset: Bool) {
        guard self.calls.removeValue(forKey: streamID) != nil else { return }
        if reset, let context = self.context, !self.isClosed {
            context.writeAndFlush(
                self.wrapOutboundOut(HTTP2Frame(streamID: streamID, payload: .rstStream(.cancel))), promise: nil)
        }
        if self.isDraining && self.calls.isEmpty { self.context?.close(promise: nil) }
    }

    /// Takes no new calls and closes the connection once the open ones have ended.
    func drain() {
        self.isDraining = true
        if self.calls.isEmpty { self.context?.close(promise: nil) }
    }

    private func startDraining() {
        guard !self.isDraining else { return }
        self.isDraining = true
        self.owner.connectionDraining(self)
        if self.calls.isEmpty { self.context?.close(promise: nil) }
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
            case .goAway:
                // Streams above its last stream ID are closed by NIOHTTP2Handler (StreamClosedEvent).
                self.startDraining()
            default:
                break
            }
            return
        }
        switch frame.payload {
        case .data(let payload):
            // Padding counts against the windows too (its length byte included).
            let count = payload.data.readableBytes + (payload.paddingBytes.map { $0 + 1 } ?? 0)
            self.acknowledge(count, unacknowledged: &self.unacknowledged, streamID: .rootStream, context: context)
            guard let call = self.calls[frame.streamID], case .byteBuffer(let bytes) = payload.data else { return }
            call.append(bytes)
            if let length = call.announcedLength, length > call.maxResponseBytes {
                self.fail(
                    call, frame.streamID,
                    RPCError(
                        code: .resourceExhausted,
                        message: """
                            Message has exceeded the configured maximum payload size \
                            (max: \(call.maxResponseBytes), actual: \(length))
                            """),
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
            guard let call = self.calls[frame.streamID] else { return }
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
            guard let call = self.calls[frame.streamID] else { return }
            self.fail(call, frame.streamID, Self.resetError(code), reset: false)
        default:
            break
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // A stream closed while its call waits: reset by either side, or refused by a GOAWAY.
        // Frames come before their events, so a call that completed normally is already gone.
        if let closed = event as? StreamClosedEvent, let call = self.calls[closed.streamID] {
            let reason = closed.reason.map { " (\($0))" } ?? ""
            self.fail(
                call, closed.streamID,
                RPCError(
                    code: .unavailable,
                    message: "the stream to \(self.owner.endpoint) closed before its response ended\(reason)"),
                reset: false)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let streamError = error as? NIOHTTP2Errors.StreamError {
            // One stream broke the protocol; NIOHTTP2Handler has reset it. The connection stays.
            if let call = self.calls[streamError.streamID] {
                self.fail(
                    call, streamError.streamID,
                    RPCError(
                        code: .internalError, message: "HTTP/2 stream error: \(streamError.baseError)", cause: error),
                    reset: false)
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
                message: "the connection to \(self.owner.endpoint) closed" + (self.firstError.map { ": \($0)" } ?? ""),
                cause: self.firstError)
        }
        let calls = self.calls
        self.calls = [:]
        for call in calls.values { call.end(error, reset: false) }
        self.owner.connectionClosed(self, error: error)
        context.fireChannelInactive()
    }

    // MARK: Responses

    private func fail(_ call: UnaryCall, _ streamID: HTTP2StreamID, _ error: RPCError, reset: Bool) {
        self.forget(streamID, reset: reset)
        call.end(error, reset: false)
    }

    /// Completes a call from its trailers (nil when the server ended the stream with DATA).
    private func finish(_ call: UnaryCall, _ streamID: HTTP2StreamID, trailers: HPACKHeaders?) {
        self.forget(streamID, reset: false)
        guard let trailers, let text = trailers.first(name: "grpc-status"), let raw = Int(text),
            let status = Status.Code(rawValue: raw)
        else {
            call.end(
                RPCError(code: .internalError, message: "the response of \(self.owner.endpoint) has no gRPC status"),
                reset: false)
            return
        }
        guard status == .ok else {
            let message = Self.percentDecoded(trailers.first(name: "grpc-message") ?? "")
            call.end(RPCError(code: RPCError.Code(status) ?? .unknown, message: message), reset: false)
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

/// One call of a ``UnaryChannel``: its request, its deadline and its response as it arrives.
/// Event loop only, except its creation.
final class UnaryCall: @unchecked Sendable {
    let headers: HPACKHeaders
    let message: [UInt8]
    let deadline: NIODeadline?
    let maxResponseBytes: Int
    let streamOpened: AtomicFlag?

    private enum Phase { case created, started, ended }
    private var phase = Phase.created
    private var continuation: CheckedContinuation<ByteBuffer, any Error>?
    private var timer: Scheduled<Void>?
    private var stream: (handler: UnaryConnectionHandler, id: HTTP2StreamID)?
    private var response = ByteBuffer()
    var receivedHeaders = false
    /// Received DATA bytes not yet returned to the stream's window.
    var unacknowledged = 0

    init(
        headers: HPACKHeaders, message: [UInt8], deadline: NIODeadline?, maxResponseBytes: Int,
        streamOpened: AtomicFlag?
    ) {
        self.headers = headers
        self.message = message
        self.deadline = deadline
        self.maxResponseBytes = maxResponseBytes
        self.streamOpened = streamOpened
    }

    static let deadlineExceeded = RPCError(
        code: .deadlineExceeded, message: "the call's deadline passed before its response arrived")

    /// Takes the continuation and arms the deadline; false (the continuation resumed) when the
    /// call already ended: cancelled before it started, or out of time.
    func begin(_ continuation: CheckedContinuation<ByteBuffer, any Error>, on eventLoop: any EventLoop) -> Bool {
        guard self.phase == .created else {
            continuation.resume(throwing: CancellationError())
            return false
        }
        self.phase = .started
        self.continuation = continuation
        if let deadline = self.deadline {
            guard deadline > .now() else {
                self.end(Self.deadlineExceeded, reset: false)
                return false
            }
            self.timer = eventLoop.scheduleTask(deadline: deadline) {
                self.timer = nil
                self.end(Self.deadlineExceeded, reset: true)
            }
        }
        return true
    }

    var hasEnded: Bool { self.phase == .ended }

    func opened(on handler: UnaryConnectionHandler, streamID: HTTP2StreamID) {
        self.stream = (handler, streamID)
    }

    func append(_ bytes: ByteBuffer) {
        if self.response.readableBytes == 0 {
            self.response = bytes
        } else {
            var bytes = bytes
            self.response.writeBuffer(&bytes)
        }
    }

    /// The message length the response's gRPC frame announces, once its prefix has arrived.
    var announcedLength: Int? {
        self.response.getInteger(at: self.response.readerIndex + 1, as: UInt32.self).map { Int($0) }
    }

    /// The response's one uncompressed message; nil if it is anything else.
    func takeMessage() -> ByteBuffer? {
        var response = self.response
        self.response = ByteBuffer()
        guard response.readInteger(as: UInt8.self) == 0, let length = response.readInteger(as: UInt32.self),
            response.readableBytes == Int(length)
        else { return nil }
        return response
    }

    /// Ends the call with `error`; with `reset`, its open stream is reset.
    func end(_ error: any Error, reset: Bool) {
        guard self.phase != .ended else { return }
        self.phase = .ended
        self.timer?.cancel()
        self.timer = nil
        if let stream = self.stream { stream.handler.forget(stream.id, reset: reset) }
        self.continuation?.resume(throwing: error)
        self.continuation = nil
    }

    func succeed(_ message: ByteBuffer) {
        guard self.phase != .ended else { return }
        self.phase = .ended
        self.timer?.cancel()
        self.timer = nil
        self.continuation?.resume(returning: message)
        self.continuation = nil
    }
}
