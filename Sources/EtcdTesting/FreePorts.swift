// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// TCP sockets on 127.0.0.1, for the test support's own small needs (free ports, /metrics).
enum Loopback {
    static func socket() throws -> Int32 {
        #if canImport(Glibc)
            let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
            let fd = Darwin.socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw EtcdTestingError("socket() failed: errno \(errno)") }
        return fd
    }

    static func address(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }

    /// A socket that holds `port` on 127.0.0.1 without listening; nil when the port is taken.
    ///
    /// Connections to the port are refused as if nothing were there, and no socket can bind the
    /// port without `SO_REUSEADDR` meanwhile: free-port probes (ours, in any process, and most
    /// others') pass it over. The hold sets `SO_REUSEADDR` itself, so that connections of the
    /// port's last owner waiting in `TIME_WAIT` do not keep it from binding, and so that the port's
    /// owner (etcd sets the option too) can bind it again while it is held.
    static func hold(port: Int) -> Int32? {
        guard let fd = try? Self.socket() else { return nil }
        var one: Int32 = 1
        let bound =
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size)) == 0
            && withUnsafePointer(to: Self.address(port: port)) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
                }
            }
        if bound { return fd }
        close(fd)
        return nil
    }
}

enum FreePorts {
    /// The last 10,000 ports this process handed out, oldest first, so that it does not hand one
    /// out again soon: a stopped member's port stays its own until it restarts.
    private static let handedOut = Mutex<(ports: Set<Int>, order: [Int])>(([], []))
    private static let remembered = 10_000

    /// Asks for `count` distinct free TCP ports on 127.0.0.1, outside the kernel's ephemeral range.
    ///
    /// The kernel gives outgoing connections local ports from its ephemeral range
    /// (`/proc/sys/net/ipv4/ip_local_port_range`), and binding port 0 gets one from there too. A
    /// member's port from that range could become some connection's local port while the member is
    /// stopped, and its restart would then fail. So ports come from 10000–65535 outside that range,
    /// each tried with a bind, and from the kernel's choice only where that range leaves too few.
    /// None of the process's last 10,000 ports is handed out again. All sockets stay bound until
    /// every port is known; another process could still bind one before etcd does, which the
    /// launcher detects and retries.
    static func allocate(_ count: Int) throws -> [Int] {
        var sockets: [Int32] = []
        defer { for fd in sockets { close(fd) } }
        let candidates = Self.candidates()
        var ports: [Int] = []
        while ports.count < count {
            guard
                let port = try Self.bindCandidate(candidates, besides: ports, &sockets)
                    ?? Self.bindKernelChoice(&sockets)
            else { throw EtcdTestingError("no free port on 127.0.0.1 left to hand out") }
            ports.append(port)
        }
        Self.handedOut.withLock { handedOut in
            handedOut.ports.formUnion(ports)
            handedOut.order += ports
            let excess = handedOut.order.count - Self.remembered
            if excess > 0 {
                handedOut.ports.subtract(handedOut.order.prefix(excess))
                handedOut.order.removeFirst(excess)
            }
        }
        return ports
    }

    /// The ports from 10000 to 65535 outside the kernel's ephemeral range; none when that range is
    /// unknown or they are fewer than 1,000.
    static func candidates() -> [ClosedRange<Int>] {
        guard let text = try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)
        else { return [] }
        return Self.candidates(outside: text)
    }

    /// ``candidates()`` for the ephemeral range as the kernel writes it (`"32768\t60999"`).
    static func candidates(outside ephemeralRange: String) -> [ClosedRange<Int>] {
        let bounds = ephemeralRange.split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
        guard bounds.count == 2, bounds[0] <= bounds[1] else { return [] }
        // Either side may be empty (a range from 1024, or up to 65535): no ClosedRange is made for it.
        var ranges: [ClosedRange<Int>] = []
        if bounds[0] > 10000 { ranges.append(10000...min(bounds[0] - 1, 65535)) }
        if bounds[1] < 65535 { ranges.append(max(bounds[1] + 1, 10000)...65535) }
        return ranges.reduce(0) { $0 + $1.count } >= 1000 ? ranges : []
    }

    /// Binds a socket (added to `sockets`) to a port drawn from `candidates`, not in `ports` and not
    /// handed out recently; nil when 100 draws find none.
    private static func bindCandidate(
        _ candidates: [ClosedRange<Int>], besides ports: [Int], _ sockets: inout [Int32]
    ) throws -> Int? {
        guard !candidates.isEmpty else { return nil }
        for _ in 0..<100 {
            let port = Self.random(in: candidates)
            guard !ports.contains(port), !Self.isHandedOut(port) else { continue }
            if let fd = try Self.probe(port: port) {
                sockets.append(fd)
                return port
            }
        }
        return nil
    }

    /// Binds a socket to a port of the kernel's choice that was not handed out recently. Each socket
    /// stays bound (in `sockets`), so the kernel does not offer its port again.
    private static func bindKernelChoice(_ sockets: inout [Int32]) throws -> Int? {
        for _ in 0..<100 {
            guard let fd = try Self.probe(port: 0) else {
                throw EtcdTestingError("bind() to a free port on 127.0.0.1 failed: address in use")
            }
            sockets.append(fd)
            let port = try Self.boundPort(fd)
            if !Self.isHandedOut(port) { return port }
        }
        return nil
    }

    private static func random(in ranges: [ClosedRange<Int>]) -> Int {
        var index = Int.random(in: 0..<ranges.reduce(0) { $0 + $1.count })
        for range in ranges {
            if index < range.count { return range.lowerBound + index }
            index -= range.count
        }
        preconditionFailure("index beyond the ranges")
    }

    private static func isHandedOut(_ port: Int) -> Bool { Self.handedOut.withLock { $0.ports.contains(port) } }

    /// A socket bound to `port` on 127.0.0.1 (0: the kernel's choice), or nil when it is in use.
    private static func probe(port: Int) throws -> Int32? {
        let fd = try Loopback.socket()
        var address = Loopback.address(port: port)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if bound == 0 { return fd }
        let error = errno
        close(fd)
        guard error == EADDRINUSE || error == EACCES else {
            throw EtcdTestingError("bind() to 127.0.0.1:\(port) failed: errno \(error)")
        }
        return nil
    }

    private static func boundPort(_ fd: Int32) throws -> Int {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { throw EtcdTestingError("getsockname() failed: errno \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
