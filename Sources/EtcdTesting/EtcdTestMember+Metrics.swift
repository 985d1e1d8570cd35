// SPDX-License-Identifier: Apache-2.0
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

extension EtcdTestMember {
    /// The member's Prometheus metrics (`GET /metrics` on its client port), by name with labels, e.g.
    /// `etcd_debugging_mvcc_watcher_total` or `etcd_debugging_mvcc_watch_stream_total`.
    ///
    /// Only for plaintext members. Blocks the calling thread, for ten seconds at most.
    /// - Throws: ``EtcdTestingError`` when the member cannot be reached or does not answer in time.
    public func metrics() throws -> [String: Double] {
        let text = try Self.httpGet(port: self.clientPort, path: "/metrics")
        var values: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
                continue
            }
            values[String(line[..<space])] = value
        }
        return values
    }

    private static func httpGet(port: Int, path: String) throws -> String {
        let fd = try Loopback.socket()
        defer { close(fd) }
        // A bound on every wait below (a paused member accepts and answers nothing): on Linux the
        // send timeout bounds connect(2) too.
        var limit = timeval(tv_sec: 10, tv_usec: 0)
        for option in [SO_RCVTIMEO, SO_SNDTIMEO] {
            _ = setsockopt(fd, SOL_SOCKET, option, &limit, socklen_t(MemoryLayout<timeval>.size))
        }
        var address = Loopback.address(port: port)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            throw EtcdTestingError("cannot connect to 127.0.0.1:\(port): \(String(cString: strerror(errno)))")
        }
        let request = Array("GET \(path) HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        var written = 0
        while written < request.count {
            let n = request[written...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard n > 0 else {
                throw EtcdTestingError("write to 127.0.0.1:\(port) failed: \(String(cString: strerror(errno)))")
            }
            written += n
        }
        var response: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                throw EtcdTestingError("read from 127.0.0.1:\(port) failed: \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            response += chunk[..<n]
        }
        let text = String(decoding: response, as: UTF8.self)
        guard let bodyStart = text.range(of: "\r\n\r\n")?.upperBound else { return text }
        return String(text[bodyStart...])
    }
}
