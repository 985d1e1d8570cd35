// SPDX-License-Identifier: Apache-2.0
import GRPCCore
import NIOCore
import NIOHPACK
import NIOHTTP2
import Synchronization

/// A bidirectional stream of a ``FrameChannel`` (the watch stream): requests written as they come,
/// each response message handed to `onMessage` on the event loop as soon as it is whole.
/// Event loop only, except its creation.
///
/// `onMessage` runs on the connection's event loop, so it must not block; throwing from it resets
/// the stream and ends the call with that error. Returning `false` says its consumer is full: the
/// stream's flow-control window is then held (the server can send what the window still allows,
/// then waits) until ``releaseWindow()``.
///
/// A message over `maxMessageBytes` ends the call with resourceExhausted, unless `onOversize` is
/// given: it is then handed the message's first ``oversizeStart`` bytes and its length, in order
/// with the other messages, and the rest of the message is dropped as it arrives (never held).
final class StreamCall: ChannelCall, @unchecked Sendable {
    let headers: HPACKHeaders
    let maxMessageBytes: Int
    private let onMessage: @Sendable (ByteBuffer) throws -> Bool
    private let onOversize: (@Sendable (_ start: ByteBuffer, _ length: Int) throws -> Bool)?

    /// How many of an oversize message's first bytes `onOversize` gets: enough for the fields that
    /// say whom it is for (a watch response's header and watch ID take under 64).
    static let oversizeStart = 256

    private enum Phase { case created, started, ended }
    private var phase = Phase.created
    private var continuation: CheckedContinuation<Void, any Error>?
    private var stream: (handler: FrameConnectionHandler, id: HTTP2StreamID)?
    /// Requests sent before the stream opened, and whether the client's side ended then.
    private var pending: [ByteBuffer] = []
    private var sendingFinished = false
    /// Received bytes not yet cut into messages.
    private var inbound = ByteBuffer()
    /// Bytes of an oversize message still to arrive, to be dropped.
    private var skipping = 0
    var receivedHeaders = false
    /// Received DATA bytes not yet returned to the stream's window.
    var unacknowledged = 0
    /// The consumer is full: received bytes are not returned to the stream's window.
    private(set) var isWindowHeld = false

    init(
        headers: HPACKHeaders,
        maxMessageBytes: Int,
        onMessage: @escaping @Sendable (ByteBuffer) throws -> Bool,
        onOversize: (@Sendable (_ start: ByteBuffer, _ length: Int) throws -> Bool)? = nil
    ) {
        self.headers = headers
        self.maxMessageBytes = maxMessageBytes
        self.onMessage = onMessage
        self.onOversize = onOversize
    }

    /// Takes the continuation; false (the continuation resumed) when the call was cancelled first.
    func begin(_ continuation: CheckedContinuation<Void, any Error>) -> Bool {
        guard self.phase == .created else {
            continuation.resume(throwing: CancellationError())
            return false
        }
        self.phase = .started
        self.continuation = continuation
        return true
    }

    var hasEnded: Bool { self.phase == .ended }

    func open(on handler: FrameConnectionHandler) { handler.openStream(self) }

    /// The stream is open: returns the requests to write after its headers, and whether to end the
    /// client's side after them.
    func opened(on handler: FrameConnectionHandler, streamID: HTTP2StreamID) -> ([ByteBuffer], Bool) {
        self.stream = (handler, streamID)
        defer { self.pending = [] }
        return (self.pending, self.sendingFinished)
    }

    /// Sends requests (serialized messages), in order, now or once the stream is open: one DATA
    /// frame and one flush for all of them.
    func send(_ messages: [[UInt8]], allocator: ByteBufferAllocator) {
        guard self.phase != .ended, !self.sendingFinished, !messages.isEmpty else { return }
        let framed = allocator.grpcMessages(messages)
        if let stream = self.stream {
            stream.handler.write(framed, on: stream.id, endStream: false)
        } else {
            self.pending.append(framed)
        }
    }

    /// Ends the client's side of the stream (no more requests).
    func finishSending() {
        guard self.phase != .ended, !self.sendingFinished else { return }
        self.sendingFinished = true
        if let stream = self.stream {
            stream.handler.write(ByteBuffer(), on: stream.id, endStream: true)
        }
    }

    /// Takes received bytes and hands on every message now whole.
    /// - Throws: `RPCError` for a message over the limit (without `onOversize`) or compressed;
    ///   whatever `onMessage` or `onOversize` throws.
    func receive(_ bytes: ByteBuffer) throws {
        self.inbound.append(received: bytes)
        if self.skipping > 0 {
            let dropped = min(self.skipping, self.inbound.readableBytes)
            self.inbound.moveReaderIndex(forwardBy: dropped)
            self.skipping -= dropped
            if self.skipping > 0 { return }
        }
        while let flag = self.inbound.getInteger(at: self.inbound.readerIndex, as: UInt8.self),
            let length = self.inbound.getInteger(at: self.inbound.readerIndex + 1, as: UInt32.self)
        {
            guard Int(length) <= self.maxMessageBytes else {
                guard let onOversize = self.onOversize else {
                    throw RPCError.messageTooLarge(max: self.maxMessageBytes, actual: Int(length))
                }
                let startCount = min(Int(length), Self.oversizeStart)
                guard self.inbound.readableBytes >= 5 + startCount else { return }
                self.inbound.moveReaderIndex(forwardBy: 5)
                let start = self.inbound.getSlice(at: self.inbound.readerIndex, length: startCount)!
                let present = min(Int(length), self.inbound.readableBytes)
                self.inbound.moveReaderIndex(forwardBy: present)
                self.skipping = Int(length) - present
                if try !onOversize(start, Int(length)) { self.isWindowHeld = true }
                if self.skipping > 0 { return }
                continue
            }
            guard flag == 0 else {
                throw RPCError(
                    code: .internalError, message: "the server sent a compressed message, which was not asked for")
            }
            guard self.inbound.readableBytes >= 5 + Int(length) else { return }
            self.inbound.moveReaderIndex(forwardBy: 5)
            let message = self.inbound.readSlice(length: Int(length))!
            if try !self.onMessage(message) { self.isWindowHeld = true }
        }
    }

    /// The consumer has room again: the bytes received meanwhile go back to the stream's window.
    func releaseWindow() {
        guard self.isWindowHeld else { return }
        self.isWindowHeld = false
        // The handler ignores a stream that has ended (it has forgotten it).
        if let stream = self.stream { stream.handler.releaseWindow(of: self, stream.id) }
    }

    /// Whether a message has begun and not ended (the stream must not end here).
    var hasPartialMessage: Bool { self.inbound.readableBytes > 0 || self.skipping > 0 }

    func end(_ error: any Error, reset: Bool) {
        guard self.phase != .ended else { return }
        self.phase = .ended
        self.pending = []
        if let stream = self.stream { stream.handler.forgetStream(stream.id, reset: reset) }
        self.continuation?.resume(throwing: error)
        self.continuation = nil
    }

    /// The server ended the stream with status OK.
    func succeed() {
        guard self.phase != .ended else { return }
        self.phase = .ended
        self.continuation?.resume()
        self.continuation = nil
    }
}

/// Gives a stream's held window back from its consumer's side, off the event loop: the consumer's
/// buffer calls it once it has room again (``StreamCall/releaseWindow()``, on the loop).
final class StreamWindowRelease: Sendable {
    private let action = Mutex<(@Sendable () -> Void)?>(nil)

    init() {}

    /// What a release does: set by ``FrameChannel`` when the stream starts.
    func bind(_ action: @escaping @Sendable () -> Void) { self.action.withLock { $0 = action } }

    func callAsFunction() { self.action.withLock { $0 }?() }
}
