// SPDX-License-Identifier: Apache-2.0
import NIOCore
import NIOEmbedded
import Testing

@testable import Etcd

@Suite("Answering server PINGs")
struct PingAnsweringHandlerTests {
    private func frame(type: UInt8, flags: UInt8, stream: UInt32, payload: [UInt8]) -> [UInt8] {
        let n = payload.count
        return [UInt8(n >> 16), UInt8((n >> 8) & 0xff), UInt8(n & 0xff), type, flags]
            + [UInt8(stream >> 24), UInt8((stream >> 16) & 0xff), UInt8((stream >> 8) & 0xff), UInt8(stream & 0xff)]
            + payload
    }

    private func readAll(_ channel: EmbeddedChannel) throws -> [UInt8] {
        var bytes: [UInt8] = []
        while let buffer = try channel.readInbound(as: ByteBuffer.self) { bytes += buffer.readableBytesView }
        return bytes
    }

    private func writtenAll(_ channel: EmbeddedChannel) throws -> [UInt8] {
        var bytes: [UInt8] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { bytes += buffer.readableBytesView }
        return bytes
    }

    @Test("PINGs are answered and removed; other frames pass through in order, however the bytes are split")
    func answersPings() throws {
        let settings = frame(type: 0x4, flags: 0, stream: 0, payload: [0, 3, 0, 0, 0, 100])
        let ping1 = frame(type: 0x6, flags: 0, stream: 0, payload: [1, 2, 3, 4, 5, 6, 7, 8])
        let data = frame(type: 0x0, flags: 1, stream: 1, payload: Array(repeating: 0xab, count: 300))
        let pingAck = frame(type: 0x6, flags: 1, stream: 0, payload: [9, 9, 9, 9, 9, 9, 9, 9])
        let ping2 = frame(type: 0x6, flags: 0, stream: 0, payload: [8, 7, 6, 5, 4, 3, 2, 1])
        let headers = frame(type: 0x1, flags: 4, stream: 3, payload: [0x82, 0x86])
        let input = settings + ping1 + data + pingAck + ping2 + headers
        let expectedForwarded = settings + data + pingAck + headers
        let expectedAcks =
            frame(type: 0x6, flags: 1, stream: 0, payload: [1, 2, 3, 4, 5, 6, 7, 8])
            + frame(type: 0x6, flags: 1, stream: 0, payload: [8, 7, 6, 5, 4, 3, 2, 1])

        for chunkSize in [1, 2, 5, 9, 16, 17, 100, input.count] {
            let handler = PingAnsweringHandler()
            let channel = EmbeddedChannel(handler: handler)
            var offset = 0
            while offset < input.count {
                let end = min(offset + chunkSize, input.count)
                try channel.writeInbound(ByteBuffer(bytes: input[offset..<end]))
                offset = end
            }
            #expect(try self.readAll(channel) == expectedForwarded, "chunk size \(chunkSize)")
            channel.embeddedEventLoop.advanceTime(by: PingAnsweringHandler.ackDelay)
            #expect(try self.writtenAll(channel) == expectedAcks, "chunk size \(chunkSize)")
            #expect(handler.answeredPings == 2)
            _ = try channel.finish()
        }
    }

    @Test("an acknowledgement goes out with the next write, or by itself once ackDelay has passed")
    func acknowledgementsShareTheNextWrite() throws {
        let handler = PingAnsweringHandler()
        let channel = EmbeddedChannel(handler: handler)
        let loop = channel.embeddedEventLoop
        let request = frame(type: 0x0, flags: 1, stream: 1, payload: [1, 2, 3])
        try channel.writeInbound(
            ByteBuffer(bytes: frame(type: 0x6, flags: 0, stream: 0, payload: [1, 1, 1, 1, 1, 1, 1, 1])))
        loop.run()
        #expect(try self.writtenAll(channel).isEmpty, "not flushed by itself once the loop has run its queue")
        try channel.writeOutbound(ByteBuffer(bytes: request))
        #expect(
            try self.writtenAll(channel)
                == frame(type: 0x6, flags: 1, stream: 0, payload: [1, 1, 1, 1, 1, 1, 1, 1]) + request,
            "the acknowledgement leads the next flushed write")
        loop.advanceTime(by: PingAnsweringHandler.ackDelay)
        #expect(try self.writtenAll(channel).isEmpty, "nothing is flushed twice")

        try channel.writeInbound(
            ByteBuffer(bytes: frame(type: 0x6, flags: 0, stream: 0, payload: [2, 2, 2, 2, 2, 2, 2, 2])))
        loop.advanceTime(by: PingAnsweringHandler.ackDelay - .milliseconds(1))
        #expect(try self.writtenAll(channel).isEmpty, "it waits for a write until ackDelay has passed")
        try channel.writeInbound(
            ByteBuffer(bytes: frame(type: 0x6, flags: 0, stream: 0, payload: [3, 3, 3, 3, 3, 3, 3, 3])))
        loop.advanceTime(by: .milliseconds(1))
        #expect(
            try self.writtenAll(channel)
                == frame(type: 0x6, flags: 1, stream: 0, payload: [2, 2, 2, 2, 2, 2, 2, 2])
                + frame(type: 0x6, flags: 1, stream: 0, payload: [3, 3, 3, 3, 3, 3, 3, 3]),
            "with nothing else to write, both go out together once ackDelay has passed since the first")
        loop.advanceTime(by: PingAnsweringHandler.ackDelay)
        #expect(try self.writtenAll(channel).isEmpty, "nothing is flushed twice")
        _ = try channel.finish()
    }

    private static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    /// A handler with keepalive 1 s / 0.5 s on an embedded channel that has sent its preface.
    private func keepAliveChannel() throws -> (PingAnsweringHandler, EmbeddedChannel) {
        let handler = PingAnsweringHandler(keepAlive: .init(time: .seconds(1), timeout: .milliseconds(500)))
        let channel = EmbeddedChannel(handler: handler)
        try channel.connect(to: .init(ipAddress: "127.0.0.1", port: 1)).wait()
        try channel.writeOutbound(ByteBuffer(bytes: Self.preface + frame(type: 0x4, flags: 0, stream: 0, payload: [])))
        _ = try self.writtenAll(channel)
        return (handler, channel)
    }

    @Test("keepalive: no PING while no call is open, however long the connection is quiet")
    func noPingWhenIdle() throws {
        let (handler, channel) = try self.keepAliveChannel()
        // A call that ends both ways, split across writes.
        let request =
            frame(type: 0x1, flags: 0x4, stream: 1, payload: [0x82])
            + frame(type: 0x0, flags: 0x1, stream: 1, payload: [1, 2])
        try channel.writeOutbound(ByteBuffer(bytes: request[0..<4]))
        try channel.writeOutbound(ByteBuffer(bytes: request[4...]))
        try channel.writeInbound(ByteBuffer(bytes: frame(type: 0x1, flags: 0x5, stream: 1, payload: [0x88])))
        #expect(!handler.hasOpenStreams)
        channel.embeddedEventLoop.advanceTime(by: .seconds(10))
        #expect(handler.sentPings == 0)
        #expect(channel.isActive)
        _ = try channel.finish()
    }

    @Test(
        "keepalive: a quiet open call gets a PING after the keepalive time; no answer within the timeout closes the connection"
    )
    func pingThenClose() throws {
        let (handler, channel) = try self.keepAliveChannel()
        try channel.writeOutbound(ByteBuffer(bytes: frame(type: 0x1, flags: 0x4, stream: 1, payload: [0x82])))
        _ = try self.writtenAll(channel)
        #expect(handler.hasOpenStreams)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(900))
        #expect(handler.sentPings == 0)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(250))
        #expect(handler.sentPings == 1)
        let ping = try self.writtenAll(channel)
        #expect(ping.count == 17 && ping[3] == 0x6 && ping[4] == 0)
        // Checked every 125 ms: the PING went out at 1.0 s, so the timeout ends at 1.5 s.
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(300))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(100))
        #expect(!channel.isActive, "no answer within the timeout must close the connection")
    }

    @Test(
        "keepalive: the PING's answer keeps the connection and is not passed on; PINGs continue while the call is quiet"
    )
    func pingAnswered() throws {
        let (handler, channel) = try self.keepAliveChannel()
        try channel.writeOutbound(ByteBuffer(bytes: frame(type: 0x1, flags: 0x4, stream: 1, payload: [0x82])))
        _ = try self.writtenAll(channel)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(1250))
        let ping = try self.writtenAll(channel)
        try #require(ping.count == 17)
        try channel.writeInbound(ByteBuffer(bytes: frame(type: 0x6, flags: 0x1, stream: 0, payload: Array(ping[9...]))))
        #expect(try self.readAll(channel).isEmpty, "our own PING's acknowledgement is consumed")
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(600))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(600))
        #expect(handler.sentPings == 2)
        // The server ends the call: no more PINGs, and the outstanding one does not matter once answered by data.
        try channel.writeInbound(ByteBuffer(bytes: frame(type: 0x3, flags: 0, stream: 1, payload: [0, 0, 0, 8])))
        #expect(!handler.hasOpenStreams)
        channel.embeddedEventLoop.advanceTime(by: .seconds(5))
        #expect(handler.sentPings == 2)
        #expect(channel.isActive)
        _ = try channel.finish()
    }

    @Test(
        "a server that sends nothing within the handshake timeout has its connection closed; one that answers keeps it")
    func handshakeTimeout() throws {
        for answers in [false, true] {
            let handler = PingAnsweringHandler(handshakeTimeout: .seconds(2))
            let channel = EmbeddedChannel(handler: handler)
            try channel.connect(to: .init(ipAddress: "127.0.0.1", port: 1)).wait()
            try channel.writeOutbound(ByteBuffer(bytes: Self.preface))
            channel.embeddedEventLoop.advanceTime(by: .milliseconds(1900))
            #expect(channel.isActive)
            if answers {
                try channel.writeInbound(ByteBuffer(bytes: frame(type: 0x4, flags: 0, stream: 0, payload: [])))
            }
            channel.embeddedEventLoop.advanceTime(by: .milliseconds(200))
            #expect(channel.isActive == answers)
            if answers { _ = try channel.finish() }
        }
    }

    @Test("keepalive: a GOAWAY for too many pings doubles the interval for the endpoint's later connections")
    func tooManyPings() throws {
        let keepAlive = PingAnsweringHandler.KeepAlive(time: .seconds(1), timeout: .milliseconds(500))
        let handler = PingAnsweringHandler(keepAlive: keepAlive)
        let channel = EmbeddedChannel(handler: handler)
        try channel.connect(to: .init(ipAddress: "127.0.0.1", port: 1)).wait()
        // Another GOAWAY (NO_ERROR) changes nothing.
        let graceful = frame(type: 0x7, flags: 0, stream: 0, payload: [0, 0, 0, 1, 0, 0, 0, 0])
        try channel.writeInbound(ByteBuffer(bytes: graceful))
        #expect(keepAlive.time == .seconds(1))
        let calm =
            frame(type: 0x7, flags: 0, stream: 0, payload: [0, 0, 0, 1, 0, 0, 0, 0xb] + Array("too_many_pings".utf8))
        try channel.writeInbound(ByteBuffer(bytes: calm))
        #expect(keepAlive.time == .seconds(2))
        #expect(try self.readAll(channel) == graceful + calm, "GOAWAY frames are passed on")
        // A new connection to the endpoint shares the settings: it waits the doubled time.
        let next = PingAnsweringHandler(keepAlive: keepAlive)
        let nextChannel = EmbeddedChannel(handler: next)
        try nextChannel.connect(to: .init(ipAddress: "127.0.0.1", port: 1)).wait()
        try nextChannel.writeOutbound(
            ByteBuffer(bytes: Self.preface + frame(type: 0x4, flags: 0, stream: 0, payload: [])))
        try nextChannel.writeOutbound(ByteBuffer(bytes: frame(type: 0x1, flags: 0x4, stream: 1, payload: [0x82])))
        _ = try self.writtenAll(nextChannel)
        nextChannel.embeddedEventLoop.advanceTime(by: .milliseconds(1500))
        #expect(next.sentPings == 0)
        nextChannel.embeddedEventLoop.advanceTime(by: .milliseconds(750))
        #expect(next.sentPings == 1)
        _ = try? channel.finish()
        _ = try? nextChannel.finish()
    }

    @Test("keepalive: given openCalls, the handler asks it whether calls are open and ignores the frames")
    func openCallsDecide() throws {
        final class Open: @unchecked Sendable { var value = false }
        let open = Open()
        let handler = PingAnsweringHandler(
            keepAlive: .init(time: .seconds(1), timeout: .milliseconds(500)), openCalls: { open.value })
        let channel = EmbeddedChannel(handler: handler)
        try channel.connect(to: .init(ipAddress: "127.0.0.1", port: 1)).wait()
        // A stream opened in the frames, while openCalls says none is: no PING however long it is quiet.
        try channel.writeOutbound(
            ByteBuffer(
                bytes: Self.preface + frame(type: 0x4, flags: 0, stream: 0, payload: [])
                    + frame(type: 0x1, flags: 0x4, stream: 1, payload: [0x82])))
        _ = try self.writtenAll(channel)
        #expect(!handler.hasOpenStreams)
        channel.embeddedEventLoop.advanceTime(by: .seconds(5))
        #expect(handler.sentPings == 0)
        // openCalls says a call is open, with no frame to show it: a PING after the keepalive time.
        open.value = true
        #expect(handler.hasOpenStreams)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(1250))
        #expect(handler.sentPings == 1)
        let ping = try self.writtenAll(channel)
        #expect(ping.count == 17 && ping[3] == 0x6 && ping[4] == 0)
        _ = try? channel.finish()
    }
}
