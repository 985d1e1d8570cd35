// SPDX-License-Identifier: Apache-2.0
import NIOCore
import NIOHTTP2

/// Answers the server's HTTP/2 PING frames before they reach `NIOHTTP2Handler`.
///
/// gRPC-Go servers (etcd among them) send a PING for bandwidth estimation whenever data arrives, so
/// a busy client receives hundreds of PINGs a second. swift-nio-http2 1.46 treats more than 200
/// inbound control frames in 30 s as a denial-of-service attack and closes the connection, failing
/// every call in flight ("Stream unexpectedly closed"); grpc-swift-nio-transport does not expose that
/// limit. This handler sits between TLS (if any) and the HTTP/2 handler, acknowledges each non-ACK
/// PING itself and removes it from the byte stream; every other frame, PING acknowledgements for our
/// own keepalive pings included, passes through unchanged.
final class PingAnsweringHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private static let frameHeaderSize = 9
    private static let pingType: UInt8 = 0x6
    private static let ackFlag: UInt8 = 0x1
    private static let pingPayloadSize = 8

    /// The start of a frame split across reads (at most a header, or a whole PING frame).
    private var partial: ByteBuffer?
    /// How many bytes of the current frame (not a PING) are still to be passed through.
    private var passThrough = 0
    /// PINGs answered on this connection; visible to tests through ``answeredPings``.
    private(set) var answeredPings = 0

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = self.unwrapInboundIn(data)
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
            let isPing = type == Self.pingType && flags & Self.ackFlag == 0 && length == Self.pingPayloadSize
            guard isPing else {
                self.passThrough = Self.frameHeaderSize + length
                continue
            }
            guard end - cursor >= Self.frameHeaderSize + length else { break }
            if cursor > forwardFrom, let slice = buffer.getSlice(at: forwardFrom, length: cursor - forwardFrom) {
                context.fireChannelRead(self.wrapInboundOut(slice))
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
        if answered { context.flush() }
    }

    /// Installs the handler in front of the HTTP/2 handler of a new connection.
    static func install(on channel: any Channel) -> EventLoopFuture<Void> {
        channel.eventLoop.makeCompletedFuture {
            let sync = channel.pipeline.syncOperations
            let http2 = try sync.handler(type: NIOHTTP2Handler.self)
            try sync.addHandler(PingAnsweringHandler(), position: .before(http2))
        }
    }
}
