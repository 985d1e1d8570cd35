// SPDX-License-Identifier: Apache-2.0
import NIOCore
import NIOHTTP2
import Synchronization

/// Answers the server's HTTP/2 PING frames before they reach `NIOHTTP2Handler`, sends the
/// client's keepalive PINGs, and closes a connection whose server says nothing.
///
/// gRPC-Go servers (etcd among them) send a PING for bandwidth estimation whenever data arrives, so
/// a busy client receives hundreds of PINGs a second. swift-nio-http2 1.46 treats more than 200
/// inbound control frames in 30 s as a denial-of-service attack and closes the connection, failing
/// every call in flight ("Stream unexpectedly closed"); grpc-swift-nio-transport does not expose that
/// limit. This handler sits between TLS (if any) and the HTTP/2 handler, acknowledges each non-ACK
/// PING itself and removes it from the byte stream; every other frame, PING acknowledgements for our
/// own keepalive pings included, passes through unchanged.
///
/// Keepalive (gRFC A8, as gRPC-Go clients do it): while a call is open and nothing has been read for
/// the keepalive time, the handler sends a PING; if nothing at all is read within the keepalive
/// timeout after it, the connection is closed, failing its calls with `unavailable` so they can
/// move to another endpoint. Which calls are open it asks of `openCalls` when the handler above
/// the HTTP/2 handler knows (``FrameConnectionHandler`` does), and otherwise follows the frames
/// both ways (grpc-swift's connections). grpc-swift-nio-transport's own keepalive is not used:
/// without "permit without calls" it stops the timer when a connection's last call ends and never
/// restarts it, so a connection that was ever idle is never pinged again (and with it, etcd, which
/// does not permit pings without calls, closes idle connections for "too many pings").
///
/// Handshake timeout: a server that accepts the connection but never sends a byte (a black hole,
/// or something that is not an HTTP/2 server and waits for a request) would keep gRPC's connection
/// attempt, and every call waiting for it, pending forever. When nothing has been read within the
/// handshake timeout (the dial timeout) after connecting, the handler closes the connection, so
/// the attempt fails and the calls with it.
final class PingAnsweringHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private static let frameHeaderSize = 9
    private static let pingType: UInt8 = 0x6
    private static let ackFlag: UInt8 = 0x1
    private static let pingPayloadSize = 8
    private static let goAwayType: UInt8 = 0x7
    /// The GOAWAY error code a gRPC server closes with for "too many pings".
    private static let enhanceYourCalm: UInt32 = 0xb

    /// The start of a frame split across reads (at most a header, or a whole PING frame).
    private var partial: ByteBuffer?
    /// How many bytes of the current frame (not a PING) are still to be passed through.
    private var passThrough = 0
    /// PING acknowledgements are written but not yet flushed.
    private var ackUnflushed = false
    /// How long an acknowledgement waits at most for the next write before it is flushed by itself.
    ///
    /// A PING's answer has no deadline but the sender's keepalive timeout (etcd's is 20 s); gRPC-Go
    /// only times the round trip for its flow-control window estimate, which small calls do not grow.
    static let ackDelay = TimeAmount.milliseconds(10)
    /// Flushes unflushed acknowledgements when it fires; at most one is pending. A write that
    /// flushes them first leaves it pending: firing with nothing to flush costs less than a
    /// cancellation on every request.
    private var ackTimer: Scheduled<Void>?
    /// PINGs answered on this connection; visible to tests through ``answeredPings``.
    private(set) var answeredPings = 0

    /// Keepalive PING interval and timeout, shared by the connections to one endpoint; nil sends none.
    ///
    /// When the server closes a connection for "too many pings" (its minimum ping interval, etcd's
    /// `--grpc-keepalive-min-time`, 5 s by default, is longer than ``time``), the interval doubles
    /// for that endpoint's later connections, as gRPC-Go's does (gRFC A8).
    final class KeepAlive: Sendable {
        let timeout: TimeAmount
        private let interval: Mutex<TimeAmount>

        init(time: TimeAmount, timeout: TimeAmount) {
            self.interval = Mutex(time)
            self.timeout = timeout
        }

        /// The current PING interval.
        var time: TimeAmount { self.interval.withLock { $0 } }

        /// The server said "too many pings": ping half as often from now on.
        func backOff() { self.interval.withLock { $0 = $0 * 2 } }
    }
    private let keepAlive: KeepAlive?
    /// Whether the client has calls open, asked of the handler that runs them; nil when this
    /// handler follows the frames instead (``streams``).
    private let openCalls: (() -> Bool)?
    /// Streams the client opened that are not closed both ways: bit 1 set when the client ended
    /// its side, bit 2 when the server did. Only without ``openCalls``.
    private var streams: [UInt32: UInt8] = [:]
    private var lastRead = NIODeadline.now()
    /// When the unanswered keepalive PING was sent.
    private var pingSentAt: NIODeadline?
    private let pingPayload = withUnsafeBytes(of: UInt64.random(in: .min ... .max)) { Array($0) }
    private var timer: RepeatedTask?
    /// Outbound parsing: the client preface still to skip, the start of a split frame header, and
    /// the bytes of the current frame still to pass.
    private var outboundPreface = 24
    private var outboundPartial: [UInt8] = []
    private var outboundPassThrough = 0
    /// Keepalive PINGs sent; visible to tests.
    private(set) var sentPings = 0

    private let handshakeTimeout: TimeAmount?
    private var handshakeTimer: Scheduled<Void>?
    private var hasRead = false

    /// - Parameter openCalls: whether the client has calls open on the connection; without it,
    ///   the handler follows the frames it passes (parsing every write) to know.
    init(keepAlive: KeepAlive? = nil, handshakeTimeout: TimeAmount? = nil, openCalls: (() -> Bool)? = nil) {
        self.keepAlive = keepAlive
        self.handshakeTimeout = handshakeTimeout
        self.openCalls = openCalls
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = self.unwrapInboundIn(data)
        self.lastRead = context.eventLoop.now
        if !self.hasRead {
            self.hasRead = true
            self.handshakeTimer?.cancel()
            self.handshakeTimer = nil
        }
        if var partial = self.partial {
            partial.writeBuffer(&buffer)
            buffer = partial
            self.partial = nil
        }
        // Bytes in [forwardFrom, cursor) are passed on; PING frames in between are answered and cut out.
        var forwardFrom = buffer.readerIndex
        var cursor = buffer.readerIndex
        let end = buffer.writerIndex
        var answered = false

        while cursor < end {
            if self.passThrough > 0 {
                let count = min(self.passThrough, end - cursor)
                cursor += count
                self.passThrough -= count
                continue
            }
            guard end - cursor >= Self.frameHeaderSize,
                let lengthHigh = buffer.getInteger(at: cursor, as: UInt8.self),
                let lengthLow = buffer.getInteger(at: cursor + 1, as: UInt16.self),
                let type = buffer.getInteger(at: cursor + 3, as: UInt8.self),
                let flags = buffer.getInteger(at: cursor + 4, as: UInt8.self)
            else {
                break
            }
            let length = Int(lengthHigh) << 16 | Int(lengthLow)
            let isPing = type == Self.pingType && length == Self.pingPayloadSize
            if type == Self.goAwayType, length >= 8,
                buffer.getInteger(at: cursor + Self.frameHeaderSize + 4, as: UInt32.self) == Self.enhanceYourCalm
            {
                self.keepAlive?.backOff()
            }
            guard isPing else {
                if self.openCalls == nil, let stream = buffer.getInteger(at: cursor + 5, as: UInt32.self) {
                    self.track(type: type, flags: flags, stream: stream & 0x7fff_ffff, outbound: false)
                }
                self.passThrough = Self.frameHeaderSize + length
                continue
            }
            guard end - cursor >= Self.frameHeaderSize + length else { break }
            let isOurAck =
                flags & Self.ackFlag != 0
                && buffer.getBytes(at: cursor + Self.frameHeaderSize, length: Self.pingPayloadSize) == self.pingPayload
            if flags & Self.ackFlag != 0 && !isOurAck {
                // Someone else's acknowledgement (grpc-swift's): pass it on.
                self.passThrough = Self.frameHeaderSize + length
                continue
            }
            if cursor > forwardFrom, let slice = buffer.getSlice(at: forwardFrom, length: cursor - forwardFrom) {
                context.fireChannelRead(self.wrapInboundOut(slice))
            }
            if isOurAck {
                // The answer to our keepalive PING: the read above already counts; cut it out.
                cursor += Self.frameHeaderSize + length
                forwardFrom = cursor
                continue
            }
            let opaque = buffer.getSlice(at: cursor + Self.frameHeaderSize, length: Self.pingPayloadSize)!
            var ack = context.channel.allocator.buffer(capacity: Self.frameHeaderSize + Self.pingPayloadSize)
            ack.writeInteger(UInt8(0))
            ack.writeInteger(UInt16(Self.pingPayloadSize))
            ack.writeInteger(Self.pingType)
            ack.writeInteger(Self.ackFlag)
            ack.writeInteger(UInt32(0))  // stream 0
            ack.writeImmutableBuffer(opaque)
            context.write(self.wrapOutboundOut(ack), promise: nil)
            answered = true
            self.answeredPings += 1
            cursor += Self.frameHeaderSize + length
            forwardFrom = cursor
        }
        if cursor > forwardFrom, let slice = buffer.getSlice(at: forwardFrom, length: cursor - forwardFrom) {
            context.fireChannelRead(self.wrapInboundOut(slice))
        }
        if cursor < end {
            // An incomplete frame header or PING: keep it until the rest arrives.
            self.partial = buffer.getSlice(at: cursor, length: end - cursor)
        }
        if answered && !self.ackUnflushed {
            self.ackUnflushed = true
            if self.ackTimer == nil {
                // The acknowledgements go out with the next write, or by themselves within
                // `ackDelay`: the calls this read completed usually send their next requests well
                // within it, even when their tasks wait for a thread of Swift's pool first. That is
                // one write instead of two, and one read less for the server.
                let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                self.ackTimer = context.eventLoop.scheduleTask(in: Self.ackDelay) {
                    let (handler, context) = loopBound.value
                    handler.ackTimer = nil
                    guard handler.ackUnflushed else { return }
                    handler.ackUnflushed = false
                    context.flush()
                }
            }
        }
    }

    func flush(context: ChannelHandlerContext) {
        self.ackUnflushed = false
        context.flush()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if self.keepAlive != nil && self.openCalls == nil {
            let buffer = self.unwrapOutboundIn(data)
            self.scanOutbound(buffer.readableBytesView)
        }
        context.write(data, promise: promise)
    }

    /// Follows the frames the client writes (after its 24-byte preface), for the streams it opens and ends.
    private func scanOutbound(_ bytes: ByteBufferView) {
        var index = bytes.startIndex
        while index < bytes.endIndex {
            if self.outboundPreface > 0 {
                let count = min(self.outboundPreface, bytes.endIndex - index)
                self.outboundPreface -= count
                index += count
            } else if self.outboundPassThrough > 0 {
                let count = min(self.outboundPassThrough, bytes.endIndex - index)
                self.outboundPassThrough -= count
                index += count
            } else if self.outboundPartial.isEmpty && bytes.endIndex - index >= Self.frameHeaderSize {
                // The whole header is in this write (the usual case): read it where it is.
                self.outboundFrame(header: bytes[index..<(index + Self.frameHeaderSize)])
                index += Self.frameHeaderSize
            } else {
                let count = min(Self.frameHeaderSize - self.outboundPartial.count, bytes.endIndex - index)
                self.outboundPartial += bytes[index..<(index + count)]
                index += count
                guard self.outboundPartial.count == Self.frameHeaderSize else { break }
                let header = self.outboundPartial
                self.outboundPartial = []
                self.outboundFrame(header: header[...])
            }
        }
    }

    /// Tracks the frame whose 9-byte header this is, and passes its payload through.
    private func outboundFrame<Header: RandomAccessCollection<UInt8>>(header: Header) where Header.Index == Int {
        let at = header.startIndex
        let length = Int(header[at]) << 16 | Int(header[at + 1]) << 8 | Int(header[at + 2])
        let stream =
            (UInt32(header[at + 5]) << 24 | UInt32(header[at + 6]) << 16 | UInt32(header[at + 7]) << 8
                | UInt32(header[at + 8])) & 0x7fff_ffff
        self.track(type: header[at + 3], flags: header[at + 4], stream: stream, outbound: true)
        self.outboundPassThrough = length
    }

    private static let dataType: UInt8 = 0x0
    private static let headersType: UInt8 = 0x1
    private static let resetType: UInt8 = 0x3
    private static let endStreamFlag: UInt8 = 0x1

    /// Notes a stream opened (client HEADERS), ended one way (END_STREAM) or reset; called only
    /// without `openCalls`.
    private func track(type: UInt8, flags: UInt8, stream: UInt32, outbound: Bool) {
        guard self.keepAlive != nil, stream != 0 else { return }
        switch type {
        case Self.headersType, Self.dataType:
            if outbound && type == Self.headersType && self.streams[stream] == nil { self.streams[stream] = 0 }
            guard var state = self.streams[stream] else { return }
            if flags & Self.endStreamFlag != 0 { state |= outbound ? 1 : 2 }
            self.streams[stream] = state == 3 ? nil : state
        case Self.resetType:
            self.streams[stream] = nil
        default:
            break
        }
    }

    /// Whether the client has calls open on the connection.
    var hasOpenStreams: Bool { self.openCalls?() ?? !self.streams.isEmpty }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { self.startTimers(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        self.startTimers(context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.stopTimers()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.stopTimers()
    }

    private func stopTimers() {
        self.timer?.cancel()
        self.timer = nil
        self.ackTimer?.cancel()
        self.ackTimer = nil
        self.handshakeTimer?.cancel()
        self.handshakeTimer = nil
    }

    private func startTimers(context: ChannelHandlerContext) {
        if let timeout = self.handshakeTimeout, !self.hasRead, self.handshakeTimer == nil {
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            self.handshakeTimer = context.eventLoop.scheduleTask(in: timeout) {
                let (handler, context) = loopBound.value
                handler.handshakeTimer = nil
                if !handler.hasRead { context.close(promise: nil) }
            }
        }
        self.startKeepAlive(context: context)
    }

    private func startKeepAlive(context: ChannelHandlerContext) {
        guard let keepAlive = self.keepAlive, self.timer == nil else { return }
        self.lastRead = context.eventLoop.now
        // Checked four times per the shorter of the two durations, so each is kept within a quarter.
        let check = TimeAmount.nanoseconds(max(min(keepAlive.time, keepAlive.timeout).nanoseconds / 4, 10_000_000))
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        self.timer = context.eventLoop.scheduleRepeatedTask(initialDelay: check, delay: check) { _ in
            let (handler, context) = loopBound.value
            handler.checkKeepAlive(context: context)
        }
    }

    /// Sends a PING when calls are open and nothing was read for the keepalive time; closes the
    /// connection when nothing was read within the timeout after it.
    func checkKeepAlive(context: ChannelHandlerContext) {
        guard let keepAlive = self.keepAlive else { return }
        let now = context.eventLoop.now
        if let sent = self.pingSentAt {
            if self.lastRead >= sent {
                self.pingSentAt = nil
            } else {
                if now - sent >= keepAlive.timeout {
                    self.timer?.cancel()
                    self.timer = nil
                    context.close(promise: nil)
                }
                return
            }
        }
        guard now - self.lastRead >= keepAlive.time, self.hasOpenStreams else { return }
        var ping = context.channel.allocator.buffer(capacity: Self.frameHeaderSize + Self.pingPayloadSize)
        ping.writeInteger(UInt8(0))
        ping.writeInteger(UInt16(Self.pingPayloadSize))
        ping.writeInteger(Self.pingType)
        ping.writeInteger(UInt8(0))
        ping.writeInteger(UInt32(0))  // stream 0
        ping.writeBytes(self.pingPayload)
        context.writeAndFlush(self.wrapOutboundOut(ping), promise: nil)
        self.pingSentAt = now
        self.sentPings += 1
    }

    /// Installs the handler in front of the HTTP/2 handler of a new connection.
    static func install(on channel: any Channel, keepAlive: KeepAlive?, handshakeTimeout: TimeAmount?)
        -> EventLoopFuture<Void>
    {
        channel.eventLoop.makeCompletedFuture {
            let sync = channel.pipeline.syncOperations
            let http2 = try sync.handler(type: NIOHTTP2Handler.self)
            try sync.addHandler(
                PingAnsweringHandler(keepAlive: keepAlive, handshakeTimeout: handshakeTimeout), position: .before(http2)
            )
        }
    }
}
