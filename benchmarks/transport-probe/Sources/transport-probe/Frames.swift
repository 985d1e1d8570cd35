// SPDX-License-Identifier: Apache-2.0
// What both of the probe's handlers send: a request as HEADERS and one DATA frame, and the
// flow-control windows they must return themselves.
import NIOCore
import NIOHPACK
import NIOHTTP2

enum Frames {
    /// Received bytes at which a window is returned.
    static let windowUpdateThreshold = 32768

    /// A gRPC request's headers over plaintext HTTP/2.
    static func requestHeaders(path: String, authority: String) -> HPACKHeaders {
        [
            ":method": "POST", ":scheme": "http", ":path": path, ":authority": authority,
            "content-type": "application/grpc", "te": "trailers",
        ]
    }

    /// Writes HEADERS, then `body` (already framed) as one DATA frame that ends the stream, and flushes.
    static func writeRequest(
        on context: ChannelHandlerContext, streamID: HTTP2StreamID, headers: HPACKHeaders, body: ByteBuffer
    ) {
        context.write(NIOAny(HTTP2Frame(streamID: streamID, payload: .headers(.init(headers: headers)))), promise: nil)
        let data = HTTP2Frame(streamID: streamID, payload: .data(.init(data: .byteBuffer(body), endStream: true)))
        context.writeAndFlush(NIOAny(data), promise: nil)
    }

    /// Counts `received` bytes against a window (stream 0 for the connection's) and returns them
    /// once `unacknowledged` reaches the threshold. swift-nio-http2 returns windows only for its
    /// stream channels, so without them a connection stalls after 64 KiB of responses in all, and a
    /// stream after 64 KiB of its own.
    static func acknowledge(
        _ received: Int, unacknowledged: inout Int, streamID: HTTP2StreamID, on context: ChannelHandlerContext
    ) {
        unacknowledged += received
        guard unacknowledged >= Self.windowUpdateThreshold else { return }
        let update = HTTP2Frame(streamID: streamID, payload: .windowUpdate(windowSizeIncrement: unacknowledged))
        context.writeAndFlush(NIOAny(update), promise: nil)
        unacknowledged = 0
    }
}

extension ByteBuffer {
    /// Appends one gRPC length-prefixed message, not compressed.
    mutating func writeGRPCMessage(_ message: some Collection<UInt8>) {
        self.writeInteger(UInt8(0))
        self.writeInteger(UInt32(message.count))
        self.writeBytes(message)
    }
}
