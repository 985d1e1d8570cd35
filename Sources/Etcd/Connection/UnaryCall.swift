// SPDX-License-Identifier: Apache-2.0
import GRPCCore
import NIOCore
import NIOHPACK
import NIOHTTP2

/// What a ``FrameChannel`` queues while it connects and hands to a connection once it is ready: a
/// unary call or a stream. Event loop only.
protocol ChannelCall: AnyObject {
    var hasEnded: Bool { get }
    /// Ends the call with `error`; with `reset`, its open stream is reset.
    func end(_ error: any Error, reset: Bool)
    /// Opens the call's HTTP/2 stream on a ready connection.
    func open(on handler: FrameConnectionHandler)
}

/// One call of a ``FrameChannel``: its request, its deadline and its response as it arrives.
/// Event loop only, except its creation.
final class UnaryCall: ChannelCall, @unchecked Sendable {
    let headers: HPACKHeaders
    /// The request as one gRPC length-prefixed message, ready for its DATA frame.
    let message: ByteBuffer
    let deadline: NIODeadline?
    let maxResponseBytes: Int
    let streamOpened: AtomicFlag?

    private enum Phase { case created, started, ended }
    private var phase = Phase.created
    /// Resumed exactly once: `phase` lets only the first of `begin`'s refusal, `end` and `succeed` do it.
    private var continuation: UnsafeContinuation<ByteBuffer, any Error>?
    private var timer: Scheduled<Void>?
    private var stream: (handler: FrameConnectionHandler, id: HTTP2StreamID)?
    private var response = ByteBuffer()
    var receivedHeaders = false
    /// Received DATA bytes not yet returned to the stream's window.
    var unacknowledged = 0

    init(
        headers: HPACKHeaders, message: ByteBuffer, deadline: NIODeadline?, maxResponseBytes: Int,
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
    func begin(_ continuation: UnsafeContinuation<ByteBuffer, any Error>, on eventLoop: any EventLoop) -> Bool {
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

    func open(on handler: FrameConnectionHandler) { handler.open(self) }

    func opened(on handler: FrameConnectionHandler, streamID: HTTP2StreamID) {
        self.stream = (handler, streamID)
    }

    func append(_ bytes: ByteBuffer) { self.response.append(received: bytes) }

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
