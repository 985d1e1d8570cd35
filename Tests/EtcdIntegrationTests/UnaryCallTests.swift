import EtcdAPI
import EtcdConcurrency
import EtcdTesting
import Foundation
import GRPCCore
import NIOCore
import NIOPosix
import SwiftProtobuf
import Testing

// SPDX-License-Identifier: Apache-2.0
@testable import Etcd

/// Unary calls travel as frames on a connection of their own (FrameChannel): what a gRPC client
/// does for them, checked against etcd.
@Suite("Unary calls", .timeLimit(.minutes(2)))
struct UnaryCallTests {
    @Test("cancelling a call the server holds resets its stream: the server withdraws it, the connection serves on")
    func cancelHeldCall() async throws {
        try await withHeldLock { client, waiter in
            let waiting = Task { try await waiter.service.lock("held", lease: waiter.lease) }
            // The server queues the waiter (its key appears); cancelling the call must make the
            // server withdraw it (the key goes), which it does only when the stream is reset.
            try await within(.seconds(10), "the waiter's key to appear and go") {
                try await client.watch("held/", options: [.prefix, .revision(waiter.from)]) { responses in
                    var queued = false
                    for try await response in responses {
                        for event in response.events where event.kv.keyString == waiter.key {
                            if event.type == .put {
                                queued = true
                                waiting.cancel()
                            } else if queued {
                                return
                            }
                        }
                    }
                }
            }
            await #expect(throws: CancellationError.self) {
                _ = try await within(.seconds(5), "the cancelled call") { try await waiting.value }
            }
            #expect(try await client.get(waiter.key).count == 0)
        }
    }

    @Test("a deadline ends a call the server holds with deadlineExceeded, and the server withdraws it")
    func deadlineOnHeldCall() async throws {
        try await withHeldLock { client, waiter in
            let start = ContinuousClock.now
            let error = await etcdErrorCode {
                try await withEtcdTimeout(.milliseconds(500)) {
                    _ = try await waiter.service.lock("held", lease: waiter.lease)
                }
            }
            #expect(error?.code == .deadlineExceeded, "\(String(describing: error))")
            #expect(ContinuousClock.now - start < .seconds(5))
            try await within(.seconds(10), "the waiter's key to be deleted") {
                try await client.watch("held/", options: [.prefix, .revision(waiter.from)]) { responses in
                    for try await response in responses {
                        if response.events.contains(where: { $0.type == .delete && $0.kv.keyString == waiter.key }) {
                            return
                        }
                    }
                }
            }
        }
    }

    /// A second locker of the server-side lock "held", which another lease holds while `body` runs.
    struct Waiter: Sendable {
        var service: EtcdLockService
        /// The waiter's lease, and the key the server queues it under.
        var lease: Int64
        var key: String
        /// The revision from which a watch sees the waiter's key come and go.
        var from: Int64
    }

    private func withHeldLock(_ body: (EtcdClient, Waiter) async throws -> Void) async throws {
        try await withEtcd { _, client in
            let service = EtcdLockService(client: client)
            try await client.withLease(ttl: 30) { first in
                try await client.withLease(ttl: 30) { second in
                    let held = try await service.lock("held", lease: first.id)
                    let from = try await client.get("held/", options: .prefix).header.revision + 1
                    let key = "held/" + String(second.id, radix: 16)
                    try await body(client, Waiter(service: service, lease: second.id, key: key, from: from))
                    try await service.unlock(key: held.key)
                }
            }
        }
    }

    @Test("responses larger than the HTTP/2 flow-control windows arrive whole, one after another")
    func responsesLargerThanTheWindows() async throws {
        try await withEtcd(configure: { $0.maxCallReceiveMessageSize = 64 << 20 }) { _, client in
            let value = [UInt8](repeating: 0x61, count: 1 << 20)
            for index in 0..<10 { try await client.put("large/\(index)", value: value) }
            // 10 MiB per response is more than a stream's 8 MiB window; three are more than the
            // connection's. Without window updates the second read would stall (and time out).
            for _ in 0..<3 {
                let response = try await withEtcdTimeout(.seconds(20)) {
                    try await client.get("large/", options: .prefix)
                }
                #expect(response.kvs.count == 10)
                #expect(response.kvs.allSatisfy { $0.valueData.count == 1 << 20 && $0.valueData.last == 0x61 })
            }
        }
    }
}

@Suite("Client connections", .timeLimit(.minutes(2)))
struct ClientConnectionTests {
    /// The sockets and files the etcd process holds open.
    private func openDescriptors(of member: EtcdTestMember) throws -> Int {
        let pid = try #require(member.processID)
        return try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count
    }

    /// One line of /proc/net/tcp: a TCP socket's two ports and its state, for loopback IPv4.
    private struct TCPSocket {
        let localPort: Int
        let remotePort: Int
        /// The kernel's state code: 0x01 established, 0x08 close-wait (the other side has closed).
        let state: Int
        let inode: String
    }

    private func tcpSockets() throws -> [TCPSocket] {
        // Read to the end: procfs reports a size of 0, and a read of one page would miss sockets.
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: "/proc/net/tcp"))
        defer { try? handle.close() }
        let table = String(decoding: try handle.readToEnd() ?? Data(), as: UTF8.self)
        return table.split(separator: "\n").dropFirst().compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count > 9,
                let local = fields[1].split(separator: ":").last.flatMap({ Int($0, radix: 16) }),
                let remote = fields[2].split(separator: ":").last.flatMap({ Int($0, radix: 16) }),
                let state = Int(fields[3], radix: 16)
            else { return nil }
            return TCPSocket(localPort: local, remotePort: remote, state: state, inode: String(fields[9]))
        }
    }

    /// The local ports of this process's established connections to `port`.
    private func ownConnections(to port: Int) throws -> Set<Int> {
        let descriptors = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")
        let inodes = Set(
            descriptors.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\($0)") }
                .filter { $0.hasPrefix("socket:[") }.map { String($0.dropFirst(8).dropLast()) })
        return Set(
            try self.tcpSockets().filter { $0.remotePort == port && $0.state == 0x01 && inodes.contains($0.inode) }
                .map(\.localPort))
    }

    @Test("shutting the client down closes its connections: etcd closes its side of each of them")
    func shutdownClosesConnections() async throws {
        try await withEtcdTestCluster(.init(members: 1)) { cluster in
            let port = cluster.members[0].clientPort
            let used = try await withEtcdClient(EtcdClient.Configuration(endpoints: cluster.clientEndpoints)) {
                client in
                try await client.put("k", value: "v")
                try await client.watch("k") { responses in
                    try await client.put("k", value: "w")
                    for try await response in responses where !response.events.isEmpty { break }
                }
                let lease = try await client.grant(ttl: 10)
                _ = try await client.keepAliveOnce(lease.id)
                return try self.ownConnections(to: port)
            }
            #expect(!used.isEmpty, "the client holds a connection while it runs")
            // etcd's end of each: established or close-wait while it is open. Counting etcd's
            // descriptors instead would also count its own files and other clients (the cluster's
            // readiness probe), which come and go meanwhile.
            @Sendable func openOnEtcdsSide() throws -> Int {
                try self.tcpSockets().filter {
                    $0.localPort == port && used.contains($0.remotePort) && ($0.state == 0x01 || $0.state == 0x08)
                }.count
            }
            // The server sees the sockets close shortly after the client closed them.
            try await within(.seconds(10), "etcd to close its side of the client's connections") {
                while try openOnEtcdsSide() > 0 { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(try openOnEtcdsSide() == 0)
        }
    }

    @Test("when a connection's stream IDs run out, calls go on over a new connection and the drained one closes")
    func streamIDsRunOut() async throws {
        try await withEtcd { cluster, client in
            let member = cluster.members[0]
            try await client.put("ids/seed", value: "v")
            let connection = try #require(client.connections.first)
            var settings = connection.frameChannel.settings
            settings.lastStreamID = 9  // five calls per connection: streams 1, 3, 5, 7 and 9
            let channel = FrameChannel(
                eventLoop: connection.loopExecutor.eventLoop, settings: settings, endpoint: "ids test")
            defer { channel.shutdown() }
            let before = try self.openDescriptors(of: member)
            @Sendable func put(_ i: Int) async throws {
                var request = Etcdserverpb_PutRequest()
                request.key = Data("ids/\(i)".utf8)
                request.value = Data("v\(i)".utf8)
                _ = try await channel.call(
                    path: "/etcdserverpb.KV/Put", message: try (request.serializedBytes() as GRPCFramedMessage).buffer,
                    metadata: Metadata(),
                    timeout: .seconds(10), maxResponseBytes: 1 << 20, streamOpened: nil)
            }
            // One after another: three connections.
            for i in 0..<12 { try await put(i) }
            // At once: calls that queue for a new connection beyond its last stream ID go on another.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 12..<24 { group.addTask { try await put(i) } }
                try await group.waitForAll()
            }
            let written = try await client.get("ids/", options: .prefix).kvs.filter { $0.keyString != "ids/seed" }
            #expect(Set(written.map(\.valueString)) == Set((0..<24).map { "v\($0)" }))
            // Each drained connection closed once its last call ended: the server holds one more
            // socket than before (the connection still taking calls), not one per connection made.
            let after = try await within(.seconds(10), "etcd to see the drained connections close") {
                while true {
                    let count = try self.openDescriptors(of: member)
                    if count <= before + 1 { return count }
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            #expect(after <= before + 1)
        }
    }

    @Test("an idle connection answers etcd's keepalive PINGs by itself, so etcd keeps it open")
    func idleConnectionAnswersServerPings() async throws {
        // etcd pings a connection it has read nothing from for --grpc-keepalive-interval and closes
        // it when nothing arrives within --grpc-keepalive-timeout. The client holds a PING's
        // acknowledgement back for its next write, at most PingAnsweringHandler.ackDelay: with no
        // next write, the acknowledgement must still go out.
        try await withEtcd(
            // A timeout well above the acknowledgement's 10 ms: a machine busy with other tests can
            // delay the client's event loop, or etcd's reading, by a good part of a second.
            arguments: ["--grpc-keepalive-interval", "1s", "--grpc-keepalive-timeout", "2s"],
            configure: { $0.keepAlive = nil }  // the client's own PINGs would keep the connection busy
        ) { cluster, client in
            let port = cluster.members[0].clientPort
            try await client.put("idle", value: "v")
            let connections = try self.ownConnections(to: port)
            #expect(!connections.isEmpty)
            // The client now writes nothing. Two connections that send no acknowledgement, opened one
            // after the other, show etcd's keepalive at work: it pings each and then closes it. By the
            // time the second closes, the client's connection has been idle for longer than etcd let
            // either of them stay silent.
            for attempt in 1...2 {
                let frames = try await within(.seconds(20), "etcd to close a connection that ignores its PINGs") {
                    try await self.silentConnectionFrames(port: port)
                }
                #expect(frames.contains(.ping), "etcd pinged silent connection \(attempt): \(frames)")
            }
            let afterIdling = try self.ownConnections(to: port)
            #expect(afterIdling == connections, "etcd kept the client's idle connection")
            try await client.put("idle", value: "w")
            let afterCall = try self.ownConnections(to: port)
            #expect(afterCall == connections, "the next call used the same connection")
        }
    }

    /// An HTTP/2 frame's type and flags, as a silent connection received it.
    private struct ReceivedFrame: Equatable, CustomStringConvertible {
        let type: UInt8
        let flags: UInt8
        /// A PING that asks for an answer (not itself an acknowledgement).
        static let ping = ReceivedFrame(type: 0x6, flags: 0)
        var description: String { "type \(self.type) flags \(self.flags)" }
    }

    /// Opens an HTTP/2 connection to `port` that acknowledges the server's SETTINGS and then sends
    /// nothing more; returns the frames received until the server closed it.
    private func silentConnectionFrames(port: Int) async throws -> [ReceivedFrame] {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(
            host: "127.0.0.1", port: port
        ) { channel in
            channel.eventLoop.makeCompletedFuture {
                try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
            }
        }
        var received: [UInt8] = []
        try await channel.executeThenClose { inbound, outbound in
            let emptySettings: [UInt8] = [0, 0, 0, 0x4, 0, 0, 0, 0, 0]
            try await outbound.write(ByteBuffer(bytes: Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + emptySettings))
            do {
                for try await chunk in inbound {
                    if received.isEmpty {
                        let settingsAcknowledgement: [UInt8] = [0, 0, 0, 0x4, 0x1, 0, 0, 0, 0]
                        // etcd may have closed the connection already (on a very busy machine):
                        // what it sent is still read to the end.
                        try? await outbound.write(ByteBuffer(bytes: settingsAcknowledgement))
                    }
                    received += chunk.readableBytesView
                }
            } catch let error as IOError where error.errnoCode == ECONNRESET {
                // Closed by a reset rather than an orderly end: closed all the same.
            }
        }
        var frames: [ReceivedFrame] = []
        var offset = 0
        while offset + 9 <= received.count {
            let length = Int(received[offset]) << 16 | Int(received[offset + 1]) << 8 | Int(received[offset + 2])
            frames.append(ReceivedFrame(type: received[offset + 3], flags: received[offset + 4]))
            offset += 9 + length
        }
        return frames
    }
}
