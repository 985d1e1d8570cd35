// SPDX-License-Identifier: Apache-2.0
import EtcdAPI
import Foundation
import GRPCCore
import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2
import SwiftProtobuf
import Synchronization
import Testing

@testable import Etcd

@Suite("Unary call encoding")
struct FrameChannelTests {
    @Test("grpc-timeout has at most 8 digits, in the finest unit that fits, rounded up")
    func grpcTimeout() {
        #expect(FrameChannel.grpcTimeout(.nanoseconds(1)) == "1n")
        #expect(FrameChannel.grpcTimeout(.milliseconds(50)) == "50000000n")
        #expect(FrameChannel.grpcTimeout(.milliseconds(500)) == "500000u")
        #expect(FrameChannel.grpcTimeout(.seconds(5)) == "5000000u")
        #expect(FrameChannel.grpcTimeout(.seconds(100)) == "100000m")
        #expect(FrameChannel.grpcTimeout(.seconds(1_000_000)) == "1000000S")
        #expect(FrameChannel.grpcTimeout(.nanoseconds(100_000_000_100)) == "100001m")
        #expect(FrameChannel.grpcTimeout(.seconds(10_000_000_000)) == "2562048H", "beyond Int64 nanoseconds")
        #expect(FrameChannel.grpcTimeout(.zero) == "1n", "a deadline that has passed still travels as one")
    }

    @Test("a request is serialized after its gRPC prefix, byte for byte what framing its serialized bytes gives")
    func framedMessage() throws {
        var request = Etcdserverpb_PutRequest()
        request.key = Data("key".utf8)
        request.value = Data(repeating: 7, count: 300)
        request.prevKv = true
        let bytes: [UInt8] = try request.serializedBytes()
        let framed = try (request.serializedBytes() as GRPCFramedMessage).buffer
        #expect(framed.getInteger(at: 0, as: UInt8.self) == 0, "not compressed")
        #expect(framed.getInteger(at: 1, as: UInt32.self) == UInt32(bytes.count))
        #expect(Array(framed.readableBytesView.dropFirst(5)) == bytes)
        #expect(Array(GRPCFramedMessage([9, 8] as [UInt8]).buffer.readableBytesView) == [0, 0, 0, 0, 2, 9, 8])
        let empty = try (Etcdserverpb_RangeRequest().serializedBytes() as GRPCFramedMessage)
        #expect(Array(empty.buffer.readableBytesView) == [0, 0, 0, 0, 0])
        #expect(empty.count == 0)
    }

    @Test("grpc-message is percent-decoded; text without escapes is left alone")
    func percentDecoding() {
        #expect(FrameConnectionHandler.percentDecoded("etcdserver: key not found") == "etcdserver: key not found")
        #expect(FrameConnectionHandler.percentDecoded("a%20b%25c") == "a b%c")
        #expect(FrameConnectionHandler.percentDecoded("caf%C3%A9") == "café")
        #expect(FrameConnectionHandler.percentDecoded("50%") == "50%", "an unfinished escape stays as it is")
    }

    @Test("a non-200 HTTP status and a reset stream map to gRPC's codes")
    func statusMapping() {
        let ok: HPACKHeaders = [":status": "200"]
        #expect(FrameConnectionHandler.httpStatusError(ok) == nil)
        let cases: [(String, RPCError.Code)] = [
            ("400", .internalError), ("401", .unauthenticated), ("403", .permissionDenied), ("404", .unimplemented),
            ("429", .unavailable), ("503", .unavailable), ("500", .unknown),
        ]
        for (status, code) in cases {
            let headers: HPACKHeaders = [":status": status]
            #expect(FrameConnectionHandler.httpStatusError(headers)?.code == code, "HTTP \(status)")
        }
        #expect(FrameConnectionHandler.resetError(.refusedStream).code == .unavailable)
        #expect(FrameConnectionHandler.resetError(.cancel).code == .cancelled)
        #expect(FrameConnectionHandler.resetError(.enhanceYourCalm).code == .resourceExhausted)
        #expect(FrameConnectionHandler.resetError(.protocolError).code == .internalError)
    }
}

/// The frame connection's handling of what a server sends, with the server scripted: frames go in
/// and out of an `NIOAsyncTestingChannel` (no `NIOHTTP2Handler`, so stream-closed events are fired
/// by hand as it would fire them). etcd never sent GOAWAY in any scenario tried against it.
@Suite("Frame connection against a scripted server", .timeLimit(.minutes(1)))
struct FrameConnectionScriptTests {
    private let channel = NIOAsyncTestingChannel()
    private let handler: FrameConnectionHandler

    init() async throws {
        let settings = FrameChannel.Settings(
            address: .tcp(host: "127.0.0.1", port: 1), authority: "127.0.0.1:1", sslContext: nil, serverHostname: nil,
            dialTimeout: .seconds(1), keepAlive: nil, initialBackoff: .seconds(1), maxBackoff: .seconds(1))
        let owner = FrameChannel(eventLoop: self.channel.testingEventLoop, settings: settings, endpoint: "test")
        self.handler = FrameConnectionHandler(owner: owner)
        try await self.channel.pipeline.addHandler(self.handler)
        try await self.channel.connect(to: .init(ipAddress: "127.0.0.1", port: 1))
        // The server's SETTINGS make the connection ready; the client grows the connection window.
        try await self.channel.writeInbound(HTTP2Frame(streamID: .rootStream, payload: .settings(.settings([]))))
        let update = try await self.channel.waitForOutboundWrite(as: HTTP2Frame.self)
        guard case .windowUpdate = update.payload else { throw TestFailure("expected WINDOW_UPDATE, got \(update)") }
    }

    struct TestFailure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// Starts `call` on the connection's event loop; the task ends with the call.
    private func begin(_ call: UnaryCall) -> Task<ByteBuffer, any Error> {
        let loop = self.channel.testingEventLoop
        let handler = self.handler
        return Task {
            try await withUnsafeThrowingContinuation { continuation in
                loop.execute {
                    guard call.begin(continuation, on: loop) else { return }
                    handler.open(call)
                }
            }
        }
    }

    /// Opens `call`'s stream on the connection's event loop; the task ends with the stream.
    private func begin(_ call: StreamCall) -> Task<Void, any Error> {
        let loop = self.channel.testingEventLoop
        let handler = self.handler
        return Task {
            try await withCheckedThrowingContinuation { continuation in
                loop.execute {
                    guard call.begin(continuation) else { return }
                    handler.openStream(call)
                }
            }
        }
    }

    /// Starts a unary call on the connection and waits until its request is written.
    private func start() async throws -> (Task<ByteBuffer, any Error>, HTTP2StreamID) {
        let task = self.begin(
            UnaryCall(
                headers: [":path": "/test"], message: GRPCFramedMessage([1, 2, 3]).buffer, deadline: nil,
                maxResponseBytes: 1024,
                streamOpened: nil))
        let headers = try await self.channel.waitForOutboundWrite(as: HTTP2Frame.self)
        let data = try await self.channel.waitForOutboundWrite(as: HTTP2Frame.self)
        guard case .headers = headers.payload, case .data(let body) = data.payload, body.endStream else {
            throw TestFailure("expected HEADERS and a DATA frame that ends the stream, got \(headers), \(data)")
        }
        guard case .byteBuffer(let bytes) = body.data, Array(bytes.readableBytesView) == [0, 0, 0, 0, 3, 1, 2, 3] else {
            throw TestFailure("expected the request as one gRPC message, got \(body.data)")
        }
        return (task, headers.streamID)
    }

    /// Answers the call on `streamID`: response headers, `message` as one gRPC frame (flagged
    /// compressed if asked), and `trailers`, or none with the DATA frame ending the stream.
    private func respond(
        on streamID: HTTP2StreamID, message: [UInt8], compressed: Bool = false,
        trailers: HPACKHeaders? = ["grpc-status": "0"]
    ) async throws {
        var body = ByteBuffer()
        body.writeInteger(UInt8(compressed ? 1 : 0))
        body.writeInteger(UInt32(message.count))
        body.writeBytes(message)
        try await self.channel.writeInbound(
            HTTP2Frame(streamID: streamID, payload: .headers(.init(headers: [":status": "200"]))))
        try await self.channel.writeInbound(
            HTTP2Frame(streamID: streamID, payload: .data(.init(data: .byteBuffer(body), endStream: trailers == nil))))
        if let trailers {
            try await self.channel.writeInbound(
                HTTP2Frame(streamID: streamID, payload: .headers(.init(headers: trailers, endStream: true))))
        }
    }

    @Test(
        "GOAWAY: a call below its last stream ID completes, one above fails with its reason, no new call starts, then the connection closes"
    )
    func goAway() async throws {
        let (first, firstStream) = try await self.start()
        let (second, secondStream) = try await self.start()
        try await self.channel.writeInbound(
            HTTP2Frame(
                streamID: .rootStream,
                payload: .goAway(
                    lastStreamID: firstStream, errorCode: .enhanceYourCalm,
                    opaqueData: ByteBuffer(string: "too_many_pings"))))
        // NIOHTTP2Handler closes the streams the GOAWAY refused.
        self.channel.pipeline.fireUserInboundEventTriggered(
            StreamClosedEvent(streamID: secondStream, reason: .refusedStream))
        let refused = await #expect(throws: RPCError.self) { _ = try await second.value }
        #expect(refused?.code == .unavailable)
        #expect(refused?.message.contains("too_many_pings") == true, "\(String(describing: refused))")

        let late = self.begin(
            UnaryCall(
                headers: [:], message: GRPCFramedMessage([UInt8]()).buffer, deadline: nil, maxResponseBytes: 1024,
                streamOpened: nil))
        let closing = await #expect(throws: RPCError.self) { _ = try await late.value }
        #expect(closing?.message.contains("is closing") == true)
        #expect(self.channel.isActive, "a call is still open")

        try await self.respond(on: firstStream, message: [7, 8, 9])
        #expect(Array(try await first.value.readableBytesView) == [7, 8, 9])
        #expect(!self.channel.isActive, "its last call done, the drained connection closes")
    }

    @Test(
        "malformed answers end their calls with internalError: no grpc-status, no trailers, a compressed message; the connection serves on"
    )
    func malformedAnswers() async throws {
        // Trailers without grpc-status.
        let (first, firstStream) = try await self.start()
        try await self.respond(on: firstStream, message: [1], trailers: ["x-other": "1"])
        let noStatus = await #expect(throws: RPCError.self) { _ = try await first.value }
        #expect(noStatus?.code == .internalError)
        #expect(noStatus?.message.contains("no gRPC status") == true, "\(String(describing: noStatus))")

        // The stream ended by its DATA frame: no trailers at all.
        let (second, secondStream) = try await self.start()
        try await self.respond(on: secondStream, message: [2], trailers: nil)
        let noTrailers = await #expect(throws: RPCError.self) { _ = try await second.value }
        #expect(noTrailers?.code == .internalError)

        // A compressed message, which the client never asked for.
        let (third, thirdStream) = try await self.start()
        try await self.respond(on: thirdStream, message: [3], compressed: true)
        let compressed = await #expect(throws: RPCError.self) { _ = try await third.value }
        #expect(compressed?.code == .internalError)
        #expect(compressed?.message.contains("not one gRPC message") == true, "\(String(describing: compressed))")

        let (fourth, fourthStream) = try await self.start()
        try await self.respond(on: fourthStream, message: [4])
        #expect(Array(try await fourth.value.readableBytesView) == [4])
        #expect(self.channel.isActive)
    }

    @Test("calls started together share writes, at most four requests to a write; a lone call is written at once")
    func requestsShareWrites() async throws {
        let recorder = FlushRecorder()
        try await self.channel.pipeline.addHandler(recorder, position: .first)
        // Six calls begun in one job of the event loop, as tasks resumed by one read are.
        let (continuations, sink) = AsyncStream.makeStream(of: UnsafeContinuation<ByteBuffer, any Error>.self)
        let tasks = (0..<6).map { _ in
            Task { try await withUnsafeThrowingContinuation { sink.yield($0) } }
        }
        var gathered: [UnsafeContinuation<ByteBuffer, any Error>] = []
        for await continuation in continuations {
            gathered.append(continuation)
            if gathered.count == tasks.count { break }
        }
        let loop = self.channel.testingEventLoop
        let handler = self.handler
        let started = gathered
        try await loop.executeInContext {
            for (index, continuation) in started.enumerated() {
                let call = UnaryCall(
                    headers: [":path": "/test"], message: GRPCFramedMessage([UInt8(index)]).buffer, deadline: nil,
                    maxResponseBytes: 1024,
                    streamOpened: nil)
                if call.begin(continuation, on: loop) { handler.open(call) }
            }
        }
        await loop.run()
        // Frames per flush (HEADERS and DATA per request): the first call had the connection to
        // itself; the next four fill a write; the sixth goes out once the loop has run its queue.
        let framesPerFlush = try await loop.executeInContext { recorder.framesPerFlush }
        #expect(framesPerFlush == [2, 8, 2])

        // Each call's answer is its own request's byte (which task holds which call is not known).
        for index in tasks.indices {
            try await self.respond(on: HTTP2StreamID(2 * index + 1), message: [UInt8(index)])
        }
        var answers: [UInt8] = []
        for task in tasks { answers += Array(try await task.value.readableBytesView) }
        #expect(answers.sorted() == (0..<6).map { UInt8($0) })
    }

    @Test(
        "a stream's requests queued while their hop to the loop is pending go out in order, in one DATA frame and one flush"
    )
    func streamRequestsShareWrites() async throws {
        let recorder = FlushRecorder()
        try await self.channel.pipeline.addHandler(recorder, position: .first)
        let loop = self.channel.testingEventLoop
        let call = StreamCall(headers: [":path": "/test"], maxMessageBytes: 1024, onMessage: { _ in true })
        let running = self.begin(call)
        let headers = try await self.channel.waitForOutboundWrite(as: HTTP2Frame.self)
        guard case .headers = headers.payload else { throw TestFailure("expected HEADERS, got \(headers)") }

        // Only the first request schedules a hop; the ones queued before it runs ride along.
        let outbox = Outbox()
        let hops = [[1], [2, 3], [4, 5, 6]].map { outbox.add($0) }
        #expect(hops == [true, false, false])
        try await loop.executeInContext { call.send(outbox.takeAll(), allocator: ByteBufferAllocator()) }
        #expect(outbox.add([7]), "after the hop took them, the next request schedules a new one")

        let data = try await self.channel.waitForOutboundWrite(as: HTTP2Frame.self)
        guard case .data(let body) = data.payload, case .byteBuffer(var bytes) = body.data, !body.endStream else {
            throw TestFailure("expected one DATA frame of requests, got \(data)")
        }
        var messages: [[UInt8]] = []
        while let flag = bytes.readInteger(as: UInt8.self), let length = bytes.readInteger(as: UInt32.self) {
            #expect(flag == 0)
            let message = bytes.readBytes(length: Int(length))
            messages.append(try #require(message))
        }
        #expect(messages == [[1], [2, 3], [4, 5, 6]])
        let framesPerFlush = try await loop.executeInContext { recorder.framesPerFlush }
        #expect(framesPerFlush == [1, 1])

        try await loop.executeInContext { call.end(CancellationError(), reset: true) }
        await #expect(throws: CancellationError.self) { try await running.value }
    }

    @Test(
        "a stream whose consumer is full holds its window: no WINDOW_UPDATE for it while held, then one for all it received"
    )
    func streamWindowHeldWhileConsumerIsFull() async throws {
        let loop = self.channel.testingEventLoop
        let consumerFull = Atomic(false)
        let received = Atomic(0)
        let call = StreamCall(
            headers: [":path": "/test"], maxMessageBytes: 2 << 20,
            onMessage: { _ in
                received.add(1, ordering: .relaxed)
                return !consumerFull.load(ordering: .relaxed)
            })
        let running = self.begin(call)
        let headers = try await self.channel.waitForOutboundWrite(as: HTTP2Frame.self)
        let streamID = headers.streamID
        try await self.channel.writeInbound(
            HTTP2Frame(streamID: streamID, payload: .headers(.init(headers: [":status": "200"]))))
        let message = 1 << 20
        func send(_ count: Int) async throws {
            for _ in 0..<count {
                var body = ByteBuffer()
                body.writeInteger(UInt8(0))
                body.writeInteger(UInt32(message))
                body.writeRepeatingByte(7, count: message)
                try await self.channel.writeInbound(
                    HTTP2Frame(streamID: streamID, payload: .data(.init(data: .byteBuffer(body)))))
            }
        }
        /// The window the client returned for the stream since the last look (the connection's apart).
        func returned() async throws -> Int {
            var total = 0
            while let frame = try await self.channel.readOutbound(as: HTTP2Frame.self) {
                if frame.streamID == streamID, case .windowUpdate(let increment) = frame.payload { total += increment }
            }
            return total
        }

        // Consumer with room: the window comes back once half of it (4 MiB) has arrived.
        try await send(5)
        #expect(try await returned() == 4 * (message + 5))
        // Consumer full: nothing comes back, whatever arrives.
        consumerFull.store(true, ordering: .relaxed)
        try await send(4)
        #expect(received.load(ordering: .relaxed) == 9, "every message is still handed on")
        #expect(try await returned() == 0)
        // Room again: everything not yet returned comes back at once.
        consumerFull.store(false, ordering: .relaxed)
        try await loop.executeInContext { call.releaseWindow() }
        #expect(try await returned() == 5 * (message + 5))

        try await loop.executeInContext { call.end(CancellationError(), reset: true) }
        await #expect(throws: CancellationError.self) { try await running.value }
    }

    @Test(
        "a stream message over the limit goes to onOversize as its start and length, in order; its rest is dropped as it arrives, and the stream goes on"
    )
    func streamMessageOverLimit() async throws {
        let loop = self.channel.testingEventLoop
        let seen = Mutex<[String]>([])
        let call = StreamCall(
            headers: [":path": "/test"], maxMessageBytes: 1024,
            onMessage: { message in
                seen.withLock { $0.append("whole \(Array(message.readableBytesView))") }
                return true
            },
            onOversize: { start, length in
                let bytes = Array(start.readableBytesView)
                let counting = bytes == (0..<bytes.count).map { UInt8(truncatingIfNeeded: $0) }
                seen.withLock {
                    $0.append("oversize \(bytes.count) of \(length), \(counting ? "its first bytes" : "other bytes")")
                }
                return true
            })
        let running = self.begin(call)
        let headers = try await self.channel.waitForOutboundWrite(as: HTTP2Frame.self)
        let streamID = headers.streamID
        try await self.channel.writeInbound(
            HTTP2Frame(streamID: streamID, payload: .headers(.init(headers: [":status": "200"]))))
        func send(_ body: ByteBuffer) async throws {
            try await self.channel.writeInbound(
                HTTP2Frame(streamID: streamID, payload: .data(.init(data: .byteBuffer(body)))))
        }
        func message(_ bytes: [UInt8]) -> ByteBuffer {
            var body = ByteBuffer()
            body.writeInteger(UInt8(0))
            body.writeInteger(UInt32(bytes.count))
            body.writeBytes(bytes)
            return body
        }
        // A message before, the oversize one in frames of 100 bytes (its start arrives over three of
        // them), and a message after it in the frame with its last bytes.
        var all = message([1])
        all.writeImmutableBuffer(message((0..<3000).map { UInt8(truncatingIfNeeded: $0) }))
        all.writeImmutableBuffer(message([2, 3]))
        while all.readableBytes > 0 {
            try await send(all.readSlice(length: min(100, all.readableBytes))!)
        }
        let order = seen.withLock { $0 }
        #expect(order == ["whole [1]", "oversize 256 of 3000, its first bytes", "whole [2, 3]"])
        #expect(!(try await loop.executeInContext { call.hasPartialMessage }))
        #expect(try await loop.executeInContext { !call.hasEnded }, "the stream goes on")

        try await loop.executeInContext { call.end(CancellationError(), reset: true) }
        await #expect(throws: CancellationError.self) { try await running.value }
    }

    @Test("a trailers-only error answer and a non-200 status end their calls with the mapped codes")
    func errorAnswers() async throws {
        let (first, firstStream) = try await self.start()
        try await self.channel.writeInbound(
            HTTP2Frame(
                streamID: firstStream,
                payload: .headers(
                    .init(
                        headers: [":status": "200", "grpc-status": "5", "grpc-message": "etcdserver%3A key not found"],
                        endStream: true))))
        let notFound = await #expect(throws: RPCError.self) { _ = try await first.value }
        #expect(notFound?.code == .notFound)
        #expect(notFound?.message == "etcdserver: key not found")

        let (second, secondStream) = try await self.start()
        try await self.channel.writeInbound(
            HTTP2Frame(streamID: secondStream, payload: .headers(.init(headers: [":status": "503"], endStream: true))))
        let unavailable = await #expect(throws: RPCError.self) { _ = try await second.value }
        #expect(unavailable?.code == .unavailable)

        // The connection still serves.
        let (third, thirdStream) = try await self.start()
        try await self.respond(on: thirdStream, message: [])
        #expect(try await third.value.readableBytes == 0)
    }
}

/// Counts the frames written between flushes.
private final class FlushRecorder: ChannelOutboundHandler, @unchecked Sendable {
    typealias OutboundIn = HTTP2Frame
    private var written = 0
    private(set) var framesPerFlush: [Int] = []

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        self.written += 1
        context.write(data, promise: promise)
    }

    func flush(context: ChannelHandlerContext) {
        if self.written > 0 { self.framesPerFlush.append(self.written) }
        self.written = 0
        context.flush()
    }
}
