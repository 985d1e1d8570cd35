// SPDX-License-Identifier: Apache-2.0
import NIOCore
import NIOPosix
import Synchronization

/// A loopback TCP proxy in front of a member's client port, for injecting network faults (this
/// kernel has no netem, and Debian no toxiproxy): pass traffic, black-hole it, delay it, or drop
/// every connection.
///
/// ```swift
/// let bridge = try await EtcdTestBridge.start(forwardingTo: member.clientPort)
/// // point the client at bridge.endpoint, then:
/// bridge.mode = .blackhole     // connections stay open, nothing gets through either way
/// bridge.mode = .pass
/// bridge.dropConnections()     // like a reset: every open connection closes
/// await bridge.close()
/// ```
///
/// A black hole accepts connections and reads, but nothing gets through either way; what it read is
/// held and delivered when the black hole heals, as TCP would retransmit it after a partition ends,
/// unless the connection was closed meanwhile (a client's keepalive gives up on it). Go's
/// integration bridge discards instead; that loses HTTP/2 frames (window updates among them) from a
/// connection that then carries on, a failure no real network produces.
public final class EtcdTestBridge: Sendable {
    /// What the bridge does with traffic.
    public enum Mode: Sendable, Hashable {
        /// Forward both ways at once.
        case pass
        /// Accept connections and read, but forward nothing either way until healed.
        case blackhole
        /// Forward both ways after this delay.
        case delay(Duration)
    }

    /// The bridge's own port on 127.0.0.1.
    public let port: Int
    /// The member port traffic goes to.
    public let target: Int
    /// `127.0.0.1:port`, for a client's endpoints.
    public var endpoint: String { "127.0.0.1:\(self.port)" }

    private struct State {
        var mode: Mode = .pass
        var refusedPeers: Set<UInt64> = []
        var channels: [ObjectIdentifier: any Channel] = [:]
        var handlers: [ObjectIdentifier: (handler: ForwardHandler, loop: any EventLoop)] = [:]
    }
    private let state = Mutex(State())
    private let server: Mutex<(any Channel)?> = Mutex(nil)

    /// What the bridge does with traffic now; applies to open connections too.
    public var mode: Mode {
        get { self.state.withLock { $0.mode } }
        set {
            let handlers = self.state.withLock { state in
                state.mode = newValue
                return Array(state.handlers.values)
            }
            // Healed: deliver what the black hole held.
            if newValue != .blackhole {
                for (handler, loop) in handlers { loop.execute { handler.releaseHeld() } }
            }
        }
    }

    /// etcd members (raft IDs) whose peer connections this bridge closes on arrival: etcd's peer
    /// transport names the sending member in the `X-Server-From` header of each connection's first
    /// request. While the set is not empty, connections whose first request names no sender
    /// (health probes, version checks) are closed too, since etcd reuses their keep-alive
    /// connections for raft messages. Open connections are not judged again; drop them to apply a
    /// change to them. Used by ``EtcdTestCluster/isolate(_:)`` on bridges in front of peer ports.
    public var refusedPeers: Set<UInt64> {
        get { self.state.withLock { $0.refusedPeers } }
        set { self.state.withLock { $0.refusedPeers = newValue } }
    }

    private init(port: Int, target: Int) {
        self.port = port
        self.target = target
    }

    /// Starts a bridge on a free loopback port forwarding to `port` on 127.0.0.1.
    public static func start(forwardingTo port: Int) async throws -> EtcdTestBridge {
        let group = MultiThreadedEventLoopGroup.singleton
        var lastError: any Error = EtcdTestingError("no attempt")
        for _ in 0..<3 {
            let listen = try FreePorts.allocate(1)[0]
            let bridge = EtcdTestBridge(port: listen, target: port)
            do {
                let server = try await ServerBootstrap(group: group)
                    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                    .childChannelOption(.autoRead, value: false)
                    .childChannelInitializer { inbound in bridge.accept(inbound) }
                    .bind(host: "127.0.0.1", port: listen).get()
                bridge.server.withLock { $0 = server }
                return bridge
            } catch {
                lastError = error  // the port was taken meanwhile: try another
            }
        }
        throw lastError
    }

    /// Closes every open connection (both sides), as a reset would; new connections are accepted.
    public func dropConnections() {
        let channels = self.state.withLock { state in
            defer { state.channels = [:] }
            return Array(state.channels.values)
        }
        for channel in channels { channel.close(promise: nil) }
    }

    /// Stops listening and closes every connection.
    public func close() async {
        let server = self.server.withLock { server in
            defer { server = nil }
            return server
        }
        try? await server?.close().get()
        self.dropConnections()
    }

    private func track(_ channel: any Channel, _ handler: ForwardHandler) {
        let id = ObjectIdentifier(channel)
        self.state.withLock { state in
            state.channels[id] = channel
            state.handlers[id] = (handler, channel.eventLoop)
        }
        channel.closeFuture.whenComplete { _ in
            self.state.withLock { state in
                state.channels[id] = nil
                state.handlers[id] = nil
            }
        }
    }

    /// Connects the accepted connection to the member, then forwards between them.
    private func accept(_ inbound: any Channel) -> EventLoopFuture<Void> {
        let toMember = ForwardHandler(bridge: self, judgesSender: !self.refusedPeers.isEmpty)
        let toClient = ForwardHandler(bridge: self, judgesSender: false)
        self.track(inbound, toMember)
        return ClientBootstrap(group: inbound.eventLoop)
            .channelOption(.autoRead, value: false)
            .channelInitializer { outbound in outbound.pipeline.addHandler(toClient) }
            .connect(host: "127.0.0.1", port: self.target)
            .flatMap { outbound in
                self.track(outbound, toClient)
                toMember.attach(outbound)
                toClient.attach(inbound)
                return inbound.pipeline.addHandler(toMember)
            }
            .flatMapErrorThrowing { error in
                // Nothing listens behind the bridge (the member is down): drop the client, as the member would.
                inbound.close(promise: nil)
                throw error
            }
    }

    /// Forwards what one side reads to the other, as the bridge's mode says.
    private final class ForwardHandler: ChannelDuplexHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        let bridge: EtcdTestBridge
        // Both touched on the connections' event loop only.
        private var partner: (any Channel)?
        /// What arrived before the other side was connected (the member speaks first in HTTP/2), or
        /// while black-holed.
        private var pending: [ByteBuffer] = []
        /// Whether the connection's first request is still to be read for its sender (see `refusedPeers`).
        private var judgesSender: Bool
        private var head = ByteBuffer()

        init(bridge: EtcdTestBridge, judgesSender: Bool) {
            self.bridge = bridge
            self.judgesSender = judgesSender
        }

        /// Reads the sender of an etcd peer connection from its first request's headers; false
        /// when the bridge refuses that member, or the request does not name its sender.
        private func admits(_ head: ByteBuffer) -> Bool {
            let text = String(buffer: head)
            for line in text.split(separator: "\r\n") {
                let parts = line.split(separator: ":", maxSplits: 1)
                guard parts.count == 2, parts[0].lowercased() == "x-server-from",
                    let id = UInt64(parts[1].filter { $0 != " " && $0 != "\t" }, radix: 16)
                else { continue }
                return !self.bridge.refusedPeers.contains(id)
            }
            // Unnamed: a health probe (`/raft/probing`) or a version check. Its keep-alive connection
            // is reused for later raft messages of the same sender, so it cannot be let through.
            return false
        }

        /// Connects this side to the other; on the event loop.
        func attach(_ partner: any Channel) {
            self.partner = partner
            self.releaseHeld()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = Self.unwrapInboundIn(data)
            if self.judgesSender {
                // Hold the start of the connection until its request headers are complete.
                self.head.writeBuffer(&buffer)
                let complete = self.head.readableBytesView.firstRange(of: Array("\r\n\r\n".utf8)) != nil
                guard complete || self.head.readableBytes > 16384 else { return }
                self.judgesSender = false
                guard self.admits(self.head) else {
                    context.close(promise: nil)
                    return
                }
                buffer = self.head
                self.head = ByteBuffer()
            }
            guard let partner = self.partner, self.pending.isEmpty, self.bridge.mode != .blackhole else {
                self.pending.append(buffer)
                return
            }
            self.forward(buffer, to: partner)
        }

        /// Delivers what was held, once connected and not black-holed; on the event loop.
        func releaseHeld() {
            guard let partner = self.partner, self.bridge.mode != .blackhole else { return }
            let held = self.pending
            self.pending = []
            for buffer in held { self.forward(buffer, to: partner) }
        }

        private func forward(_ buffer: ByteBuffer, to partner: any Channel) {
            switch self.bridge.mode {
            case .pass:
                partner.writeAndFlush(buffer, promise: nil)
            case .blackhole:
                self.pending.append(buffer)
            case .delay(let delay):
                let nanoseconds =
                    delay.components.seconds * 1_000_000_000 + delay.components.attoseconds / 1_000_000_000
                partner.eventLoop.scheduleTask(in: .nanoseconds(nanoseconds)) {
                    partner.writeAndFlush(buffer, promise: nil)
                }
            }
        }

        func channelReadComplete(context: ChannelHandlerContext) {
            context.read()
        }

        // Reading starts once the connection is active and the handler in place (auto-read is off
        // until both sides are connected).
        func handlerAdded(context: ChannelHandlerContext) {
            if context.channel.isActive { context.read() }
        }

        func channelActive(context: ChannelHandlerContext) {
            context.read()
            context.fireChannelActive()
        }

        func channelInactive(context: ChannelHandlerContext) {
            self.partner?.close(promise: nil)
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }
}

/// Runs `body` with a bridge in front of each member of `cluster` (in the order of its members),
/// and closes them afterwards.
@discardableResult
public func withEtcdTestBridges<Result: Sendable>(
    for cluster: EtcdTestCluster,
    _ body: ([EtcdTestBridge]) async throws -> Result
) async throws -> Result {
    var bridges: [EtcdTestBridge] = []
    do {
        for member in cluster.members {
            bridges.append(try await EtcdTestBridge.start(forwardingTo: member.clientPort))
        }
        let result = try await body(bridges)
        for bridge in bridges { await bridge.close() }
        return result
    } catch {
        for bridge in bridges { await bridge.close() }
        throw error
    }
}
