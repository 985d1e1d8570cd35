// SPDX-License-Identifier: Apache-2.0
// transport-probe: what a gRPC unary call to etcd costs over swift-nio-http2 when the transport
// is nothing but frames on one HTTP/2 channel, with no child channel, NIOAsyncChannel, async
// sequence or GRPCCore executor per call: one continuation per call, a dictionary from stream ID
// to continuation, and the call's body on the connection's event loop (as swift-etcd runs it).
//
// It is a measurement for issue 8, not a client: no TLS, no retries, no failover,
// requests encoded by hand. It prints a JSON line with peer-bench's timing fields, so it can run
// beside peer-bench and etcd-swift-bench on the same server (benchmarks/transport-probe/run).
//
//   transport-probe --endpoints 127.0.0.1:2379 --clients 16 --total 20000 put
//   transport-probe --endpoints 127.0.0.1:2379 --clients 16 --total 20000 range --consistency s
//   --via grpccore     the same frames as a ClientTransport under GRPCCore's GRPCClient
//   --deadline-ms N    each call gets a deadline (a timer and a cancellation handler per call)
import Foundation
import GRPCCore
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import Synchronization

/// Starts unary calls as HTTP/2 frames and completes them from the response frames. Event loop only.
final class UnaryCallHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    private var context: ChannelHandlerContext?
    private var nextStreamID = 1
    private struct Call {
        var continuation: CheckedContinuation<ByteBuffer, any Error>
        var body = ByteBuffer()
        var token: Int
        var timer: Scheduled<Void>?
        var unacknowledged = 0
    }
    private var calls: [HTTP2StreamID: Call] = [:]
    /// The stream of each call, by the token its task holds (to cancel it).
    private var streams: [Int: HTTP2StreamID] = [:]
    /// Inbound DATA bytes not yet returned to the connection window (see `Frames.acknowledge`).
    private var unacknowledgedBytes = 0
    private let authority: String

    init(authority: String) { self.authority = authority }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func start(
        path: String, message: ByteBuffer, token: Int, timeout: TimeAmount?,
        _ continuation: CheckedContinuation<ByteBuffer, any Error>
    ) {
        guard let context = self.context, context.channel.isActive else {
            continuation.resume(throwing: ProbeError.connectionClosed)
            return
        }
        let streamID = HTTP2StreamID(self.nextStreamID)
        self.nextStreamID += 2
        var headers = Frames.requestHeaders(path: path, authority: self.authority)
        var timer: Scheduled<Void>?
        if let timeout {
            headers.add(name: "grpc-timeout", value: "\(timeout.nanoseconds / 1_000_000)m")
            timer = context.eventLoop.scheduleTask(in: timeout) { self.end(streamID, ProbeError.deadlineExceeded) }
        }
        self.calls[streamID] = Call(continuation: continuation, token: token, timer: timer)
        self.streams[token] = streamID
        var framed = context.channel.allocator.buffer(capacity: 5 + message.readableBytes)
        framed.writeGRPCMessage(message.readableBytesView)
        Frames.writeRequest(on: context, streamID: streamID, headers: headers, body: framed)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = self.unwrapInboundIn(data)
        switch frame.payload {
        case .data(let payload):
            let received = payload.data.readableBytes
            Frames.acknowledge(received, unacknowledged: &self.unacknowledgedBytes, streamID: .rootStream, on: context)
            if case .byteBuffer(var bytes) = payload.data, var call = self.calls[frame.streamID] {
                call.body.writeBuffer(&bytes)
                if !payload.endStream {
                    Frames.acknowledge(
                        received, unacknowledged: &call.unacknowledged, streamID: frame.streamID, on: context)
                }
                self.calls[frame.streamID] = call
            }
            if payload.endStream { self.finish(frame.streamID, status: nil) }
        case .headers(let payload):
            if payload.endStream { self.finish(frame.streamID, status: payload.headers.first(name: "grpc-status")) }
        case .rstStream:
            self.end(frame.streamID, ProbeError.reset, reset: false)
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        let calls = self.calls
        self.calls = [:]
        for call in calls.values { call.continuation.resume(throwing: ProbeError.connectionClosed) }
    }

    /// Cancels the call its task knows by `token` (the task was cancelled).
    func cancel(token: Int) {
        if let streamID = self.streams[token] { self.end(streamID, CancellationError()) }
    }

    /// Ends a call early: resets its stream and fails it.
    private func end(_ streamID: HTTP2StreamID, _ error: any Error, reset: Bool = true) {
        guard let call = self.calls.removeValue(forKey: streamID) else { return }
        self.streams.removeValue(forKey: call.token)
        call.timer?.cancel()
        if reset, let context = self.context {
            let frame = HTTP2Frame(streamID: streamID, payload: .rstStream(.cancel))
            context.writeAndFlush(self.wrapOutboundOut(frame), promise: nil)
        }
        call.continuation.resume(throwing: error)
    }

    private func finish(_ streamID: HTTP2StreamID, status: String?) {
        guard var call = self.calls.removeValue(forKey: streamID) else { return }
        self.streams.removeValue(forKey: call.token)
        call.timer?.cancel()
        guard status == "0", call.body.readableBytes >= 5 else {
            call.continuation.resume(throwing: ProbeError.status(status))
            return
        }
        call.body.moveReaderIndex(forwardBy: 5)
        call.continuation.resume(returning: call.body)
    }
}

enum ProbeError: Error { case reset, connectionClosed, deadlineExceeded, status(String?) }

/// Runs jobs on an event loop (as swift-etcd's EventLoopTaskExecutor does).
final class LoopExecutor: TaskExecutor {
    let loop: any EventLoop
    init(_ loop: any EventLoop) { self.loop = loop }
    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        self.loop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}

/// Protobuf by hand: a length-delimited field, and a varint field.
extension ByteBuffer {
    mutating func writeVarint(_ value: Int) {
        var value = UInt64(value)
        while value >= 0x80 {
            self.writeInteger(UInt8(value & 0x7f | 0x80))
            value >>= 7
        }
        self.writeInteger(UInt8(value))
    }
    mutating func writeField(_ number: Int, _ bytes: some Collection<UInt8>) {
        self.writeVarint(number << 3 | 2)
        self.writeVarint(bytes.count)
        self.writeBytes(bytes)
    }
}

func cpuSeconds() -> (user: Double, system: Double) {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return (
        Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6,
        Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
    )
}

func usage() -> Never {
    FileHandle.standardError.write(
        Data(
            "usage: transport-probe --endpoints HOST:PORT [--clients N] [--total N] [--via frames|grpccore] [--deadline-ms N] put|range [--consistency l|s] [--key KEY]\n"
                .utf8))
    exit(2)
}

// Flags.
var options = [
    "--endpoints": "127.0.0.1:2379", "--clients": "1", "--total": "10000", "--consistency": "l", "--key": "bench-key",
    "--via": "frames", "--deadline-ms": "0",
]
var operation = ""
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    if options[argument] != nil {
        guard let value = arguments.popFirst() else { usage() }
        options[argument] = value
    } else if argument == "put" || argument == "range" {
        operation = argument
    } else {
        usage()
    }
}
let endpointParts = options["--endpoints"]!.split(separator: ":")
guard !operation.isEmpty, endpointParts.count == 2, let port = Int(endpointParts[1]),
    let clients = Int(options["--clients"]!),
    let total = Int(options["--total"]!), clients > 0, total > 0
else { usage() }
let host = String(endpointParts[0])
let chosenOperation = operation
let serializable = options["--consistency"] == "s"
let rangeKey = options["--key"]!

// One connection, one event loop.
let viaGRPCCore = options["--via"] == "grpccore"
let loop = MultiThreadedEventLoopGroup.singleton.next()
let handler = UnaryCallHandler(authority: options["--endpoints"]!)
let streamsHandler = GRPCStreamsHandler(authority: options["--endpoints"]!)
let channel = try await ClientBootstrap(group: loop).channelInitializer { channel in
    channel.eventLoop.makeCompletedFuture {
        var configuration = NIOHTTP2Handler.ConnectionConfiguration()
        // etcd (gRPC-Go) sends a PING per response for bandwidth estimation.
        configuration.controlFrameRateLimit.maximumCount = 100_000_000
        try channel.pipeline.syncOperations.addHandler(
            NIOHTTP2Handler(mode: .client, connectionConfiguration: configuration, streamConfiguration: .init()))
        if viaGRPCCore {
            try channel.pipeline.syncOperations.addHandler(streamsHandler)
        } else {
            try channel.pipeline.syncOperations.addHandler(handler)
        }
    }
}.connect(host: host, port: port).get()
let executor = LoopExecutor(loop)
let deadlineMilliseconds = Int(options["--deadline-ms"]!) ?? 0
let callTimeout: TimeAmount? = deadlineMilliseconds > 0 ? .milliseconds(Int64(deadlineMilliseconds)) : nil
let tokens = Atomic<Int>(0)
let grpcOptions: CallOptions = {
    var options = CallOptions.defaults
    if deadlineMilliseconds > 0 { options.timeout = .milliseconds(deadlineMilliseconds) }
    return options
}()
let grpc = GRPCClient(transport: FrameTransport(channel: channel, handler: streamsHandler))
let connections = Task { try await grpc.runConnections() }

let value = [UInt8](repeating: UInt8(ascii: "v"), count: 256)
func call(_ path: String, _ message: ByteBuffer) async throws -> ByteBuffer {
    try await withTaskExecutorPreference(executor) {
        if viaGRPCCore {
            let parts = path.split(separator: "/")
            let descriptor = MethodDescriptor(fullyQualifiedService: String(parts[0]), method: String(parts[1]))
            let bytes = try await grpc.unary(
                request: ClientRequest(message: Array(message.readableBytesView)), descriptor: descriptor,
                serializer: PassThrough(), deserializer: PassThrough(), options: grpcOptions
            ) { try $0.message }
            return ByteBuffer(bytes: bytes)
        }
        // With a deadline, each call also arms a timer and a cancellation handler, as a client must.
        guard let timeout = callTimeout else {
            return try await withCheckedThrowingContinuation { continuation in
                if loop.inEventLoop {
                    handler.start(path: path, message: message, token: 0, timeout: nil, continuation)
                } else {
                    loop.execute { handler.start(path: path, message: message, token: 0, timeout: nil, continuation) }
                }
            }
        }
        let token = tokens.add(1, ordering: .relaxed).newValue
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                if loop.inEventLoop {
                    handler.start(path: path, message: message, token: token, timeout: timeout, continuation)
                } else {
                    loop.execute {
                        handler.start(path: path, message: message, token: token, timeout: timeout, continuation)
                    }
                }
            }
        } onCancel: {
            loop.execute { handler.cancel(token: token) }
        }
    }
}
func request(_ index: Int) -> (String, ByteBuffer) {
    var message = ByteBuffer()
    switch chosenOperation {
    case "put":
        message.writeField(1, Array(String(format: "%08d", index % 100_000).utf8))  // key
        message.writeField(2, value)  // value
        return ("/etcdserverpb.KV/Put", message)
    default:
        message.writeField(1, Array(rangeKey.utf8))  // key
        if serializable {
            message.writeVarint(7 << 3)  // serializable = true
            message.writeVarint(1)
        }
        return ("/etcdserverpb.KV/Range", message)
    }
}

let next = Atomic<Int>(0)
let errors = Atomic<Int>(0)
let cpuBefore = cpuSeconds()
let start = ContinuousClock.now
let latencies = try await withThrowingTaskGroup(of: [Duration].self) { group in
    for _ in 0..<clients {
        group.addTask {
            var latencies: [Duration] = []
            while true {
                let index = next.add(1, ordering: .relaxed).oldValue
                if index >= total { return latencies }
                let (path, message) = request(index)
                let began = ContinuousClock.now
                do {
                    let response = try await call(path, message)
                    if response.readableBytes == 0 { errors.add(1, ordering: .relaxed) }  // a header at least
                } catch {
                    if errors.add(1, ordering: .relaxed).oldValue == 0 {
                        FileHandle.standardError.write(Data("transport-probe: first error: \(error)\n".utf8))
                    }
                }
                latencies.append(ContinuousClock.now - began)
            }
        }
    }
    var all: [Duration] = []
    for try await latencies in group { all += latencies }
    return all.sorted()
}
let seconds = Double((ContinuousClock.now - start) / .milliseconds(1)) / 1000
let cpuAfter = cpuSeconds()
grpc.beginGracefulShutdown()
try await channel.close().get()
func milliseconds(_ quantile: Double) -> Double {
    Double(latencies[min(latencies.count - 1, Int(Double(latencies.count) * quantile))] / .microseconds(1)) / 1000
}
let user = cpuAfter.user - cpuBefore.user
let system = cpuAfter.system - cpuBefore.system
let line: [String: Any] = [
    "client": viaGRPCCore ? "transport-probe-grpccore" : "transport-probe", "deadline_ms": deadlineMilliseconds,
    "op": operation, "total": total,
    "errors": errors.load(ordering: .relaxed),
    "conns": 1, "clients": clients, "seconds": seconds, "ops_per_sec": Double(total) / seconds,
    "p50_ms": milliseconds(0.5), "p99_ms": milliseconds(0.99), "cpu_user_s": user, "cpu_sys_s": system,
    "cpu_us_per_op": (user + system) / Double(total) * 1e6,
]
let json = try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys])
print(String(decoding: json, as: UTF8.self))
