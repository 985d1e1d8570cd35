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
            #expect(try self.writtenAll(channel) == expectedAcks, "chunk size \(chunkSize)")
            #expect(handler.answeredPings == 2)
            _ = try channel.finish()
        }
    }
}
