// SPDX-License-Identifier: Apache-2.0
public import CoreMetrics
import Logging
public import Tracing

extension EtcdClient {
    /// Everything an ``EtcdClient`` needs to reach a cluster: endpoints, timeouts, limits, TLS, credentials.
    ///
    /// Defaults follow etcd's Go client, except that keepalive pings are on: without them a
    /// black-holed or paused member would hang a watch forever.
    public struct Configuration: Sendable {
        /// The cluster's client URLs: `host:port`, `http://host:port` or `https://host:port`, or a
        /// Unix domain socket as Go's client takes it: `unix://path` or `unixs://path` (TLS).
        ///
        /// `https://` and `unixs://` endpoints use TLS; bare `host:port` endpoints use TLS when
        /// ``tls`` is set. etcd listens on `unix://localhost:2379` as a socket file named
        /// `localhost:2379` in its working folder: give `unix://` with that file's path
        /// (`unix:///var/lib/etcd/localhost:2379`), or the same relative path when this process
        /// shares etcd's folder. Over `unixs://` the server's certificate is checked for
        /// ``TLS/serverName`` if set, else for `localhost`.
        public var endpoints: [String]
        /// How long to keep trying to reach an endpoint before a call without its own deadline fails with `unavailable`.
        public var dialTimeout: Duration
        /// HTTP/2 keepalive pings that detect dead connections; `nil` turns them off.
        ///
        /// While a call or stream is open and nothing has been read for `time`, the client sends a
        /// PING; if nothing is read within `timeout` after it, the connection is closed and its calls
        /// move to another endpoint. No PING is sent on a connection without calls. etcd refuses
        /// PINGs more often than its `--grpc-keepalive-min-time` (default 5 s) and then closes the
        /// connection ("too many pings"); the client then doubles `time` for that endpoint, as
        /// gRPC-Go does, and its calls and watches carry on over a new connection. Keep `time` at or
        /// above the server's minimum to spare those reconnections.
        public var keepAlive: KeepAlive?
        /// The largest request the client sends, in bytes (Go's default: 2 MiB). Larger requests fail
        /// with `requestTooLarge` before anything is sent.
        public var maxCallSendMessageSize: Int
        /// The largest response the client accepts, in bytes (Go's default: 2 GiB - 1). A larger
        /// response fails with `responseTooLarge`; page large ranges with `.paged(pageSize:)`. A watch
        /// response over it ends that watch alone.
        public var maxCallReceiveMessageSize: Int
        /// TLS settings; `nil` means plaintext for endpoints without an `https://` scheme.
        public var tls: TLS?
        /// User name and password; the client exchanges them for a token and sends it with every request.
        public var authentication: Authentication?
        /// Refuse clusters older than etcd 3.2, as the Go client's `RejectOldCluster` does.
        public var rejectOldCluster: Bool
        /// Backoff between retries of calls that are safe to retry.
        public var retry: Retry
        /// How many responses a watch buffers for a consumer that reads slower than they arrive.
        ///
        /// When a watch's buffer is full, that watch alone is suspended on the server; once its
        /// consumer has read half of the buffer it is resumed from the revision after the last buffered
        /// event. Memory stays bounded, other watches are not held up, and no event is lost (unless the
        /// revisions are compacted meanwhile; then the watch ends with `compacted`).
        public var watchBufferSize: Int
        /// Metrics, tracing and request logging; all off by default, and then they cost nothing.
        public var observability: Observability
        /// How often ``EtcdClient/run()`` replaces the endpoints with the cluster's client URLs
        /// (``EtcdClient/sync()``); `nil`, the default as in Go, never.
        public var autoSyncInterval: Duration?

        /// Creates a configuration for the given endpoints (default: `127.0.0.1:2379`).
        public init(endpoints: [String] = ["127.0.0.1:2379"]) {
            self.endpoints = endpoints
            self.dialTimeout = .seconds(5)
            self.keepAlive = .init()
            self.maxCallSendMessageSize = 2 * 1024 * 1024
            self.maxCallReceiveMessageSize = Int(Int32.max)
            self.tls = nil
            self.authentication = nil
            self.rejectOldCluster = false
            self.retry = .init()
            self.watchBufferSize = 1024
            self.observability = .init()
            self.autoSyncInterval = nil
        }

        /// HTTP/2 keepalive: a ping after ``time`` without activity, the connection closed when no
        /// answer comes within ``timeout``.
        ///
        /// Pings are only sent while calls or streams are open: etcd (like any gRPC-Go server)
        /// closes connections that ping while idle.
        public struct KeepAlive: Sendable, Hashable {
            /// How long a connection with open calls may be silent before the client pings it (Go's
            /// `DialKeepAliveTime`).
            public var time: Duration
            /// How long the client waits for the ping's answer before it closes the connection (Go's
            /// `DialKeepAliveTimeout`).
            public var timeout: Duration
            /// Keepalive with the given interval and timeout.
            public init(time: Duration = .seconds(30), timeout: Duration = .seconds(10)) {
                self.time = time
                self.timeout = timeout
            }
        }

        /// TLS for the connection to etcd: the CA to trust, an optional client certificate, and checks to relax for tests.
        public struct TLS: Sendable, Hashable {
            /// PEM file with the CA certificates that sign the servers' certificates; `nil` trusts the system's roots.
            public var trustedCAFile: String?
            /// PEM file with the client certificate chain, for mutual TLS.
            public var certificateFile: String?
            /// PEM file with the client certificate's private key.
            public var keyFile: String?
            /// The name to verify the server's certificate against (and send as SNI), instead of the endpoint's host.
            public var serverName: String?
            /// Accept any server certificate. Only for tests.
            public var insecureSkipVerify: Bool

            /// TLS with the given files; with none, the server is verified against the system's roots and
            /// no client certificate is sent.
            public init(
                trustedCAFile: String? = nil,
                certificateFile: String? = nil,
                keyFile: String? = nil,
                serverName: String? = nil,
                insecureSkipVerify: Bool = false
            ) {
                self.trustedCAFile = trustedCAFile
                self.certificateFile = certificateFile
                self.keyFile = keyFile
                self.serverName = serverName
                self.insecureSkipVerify = insecureSkipVerify
            }
        }

        /// Credentials for etcd's authentication.
        public struct Authentication: Sendable, Hashable, CustomStringConvertible {
            /// The etcd user to authenticate as.
            public var username: String
            /// The user's password; never logged or shown in ``description``.
            public var password: String
            /// Credentials for `username`.
            public init(username: String, password: String) {
                self.username = username
                self.password = password
            }
            /// Never shows the password.
            public var description: String { "Authentication(username: \(self.username), password: <redacted>)" }
        }

        /// What the client reports about its calls, through grpc-swift interceptors installed only
        /// when something here is set.
        ///
        /// With a metrics factory (`MetricsSystem.factory` for the bootstrapped backend, such as
        /// swift-prometheus): `etcd_client_requests_total` (a counter by `method`, such as
        /// `etcdserverpb.KV/Range`, and gRPC status `code`, such as `ok` or `unavailable`),
        /// `etcd_client_request_duration_seconds` (a timer by `method`; a stream counts until it ends),
        /// `etcd_client_watches` (open watches) and `etcd_client_leases` (leases kept alive).
        /// With a tracer (`InstrumentationSystem.tracer` for the bootstrapped one): a client span per
        /// RPC named by its method, with the trace context sent in the request metadata. With
        /// `logRequests`: a log line per RPC at `debug` (and its start at `trace`) through the client's
        /// logger, with an `etcd_request_id`, the method, the endpoint, the status and the duration.
        /// Request contents, tokens and passwords are never recorded.
        public struct Observability: Sendable {
            /// Where metrics go; `nil` records none.
            public var metricsFactory: (any MetricsFactory)?
            /// Where spans go; `nil` records none.
            public var tracer: (any Tracer)?
            /// Whether each RPC is logged through the client's logger.
            public var logRequests: Bool

            /// Observability with the given metrics factory, tracer and request logging; the defaults record nothing.
            public init(
                metricsFactory: (any MetricsFactory)? = nil, tracer: (any Tracer)? = nil, logRequests: Bool = false
            ) {
                self.metricsFactory = metricsFactory
                self.tracer = tracer
                self.logRequests = logRequests
            }

            var isEnabled: Bool { self.metricsFactory != nil || self.tracer != nil || self.logRequests }
        }

        /// Backoff between retries: jittered exponential from ``initialBackoff`` up to ``maxBackoff``.
        public struct Retry: Sendable, Hashable {
            /// The wait before the first retry (and the first reconnection attempt); later waits grow
            /// exponentially up to ``maxBackoff``.
            public var initialBackoff: Duration
            /// The longest wait between two retries.
            public var maxBackoff: Duration
            /// Backoff with the given bounds.
            public init(initialBackoff: Duration = .milliseconds(25), maxBackoff: Duration = .seconds(1)) {
                self.initialBackoff = initialBackoff
                self.maxBackoff = maxBackoff
            }
        }
    }
}

/// One parsed client URL (package-wide: etcdctl-swift reads a member's `/metrics` at it).
package struct EtcdEndpoint: Sendable, Hashable, CustomStringConvertible {
    package enum Host: Sendable, Hashable {
        case ipv4(String)
        case ipv6(String)
        case dns(String)
        /// A Unix domain socket's path (the endpoint's port is 0).
        case unix(String)
    }
    package var host: Host
    package var port: Int
    package var useTLS: Bool

    /// The host for `:authority` and TLS: a Unix socket's is `localhost`, as Go's client uses.
    package var hostString: String {
        switch self.host {
        case .ipv4(let h), .dns(let h): return h
        case .ipv6(let h): return "[\(h)]"
        case .unix: return "localhost"
        }
    }

    package var description: String {
        if case .unix(let path) = self.host { return "\(self.useTLS ? "unixs" : "unix")://\(path)" }
        return "\(self.useTLS ? "https" : "http")://\(self.hostString):\(self.port)"
    }

    /// Parses `host:port`, `http://host:port` or `https://host:port` (a trailing `/` is allowed),
    /// or `unix://path` and `unixs://path` (the path is everything after `://`, as in Go's client).
    package static func parse(_ text: String, tlsByDefault: Bool) throws(EtcdClientError) -> EtcdEndpoint {
        func fail(_ why: String) -> EtcdClientError {
            EtcdClientError(
                code: .invalidConfiguration,
                message:
                    "invalid endpoint '\(text)': \(why); use host:port, http://host:port, https://host:port or unix://path"
            )
        }
        var rest = Substring(text.trimmingWhitespace())
        if rest.isEmpty { throw fail("it is empty") }
        var useTLS = tlsByDefault
        if let schemeEnd = rest.firstIndex(of: ":"), rest[schemeEnd...].hasPrefix("://") {
            let scheme = rest[..<schemeEnd].lowercased()
            rest = rest[rest.index(schemeEnd, offsetBy: 3)...]
            switch scheme {
            case "http": useTLS = false
            case "https": useTLS = true
            case "unix", "unixs":
                guard !rest.isEmpty else { throw fail("the socket's path is missing") }
                return EtcdEndpoint(host: .unix(String(rest)), port: 0, useTLS: scheme == "unixs")
            default: throw fail("unknown scheme '\(scheme)'")
            }
        }
        while rest.hasSuffix("/") { rest = rest.dropLast() }
        if rest.contains("/") || rest.contains("?") || rest.contains("@") {
            throw fail("paths, queries and user info are not supported")
        }
        let hostPart: Substring
        let portPart: Substring
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw fail("unterminated IPv6 address") }
            hostPart = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            guard after.hasPrefix(":") else { throw fail("missing port") }
            portPart = after.dropFirst()
        } else {
            guard let colon = rest.lastIndex(of: ":") else { throw fail("missing port") }
            hostPart = rest[..<colon]
            portPart = rest[rest.index(after: colon)...]
            if hostPart.contains(":") { throw fail("IPv6 addresses must be in brackets") }
        }
        guard !hostPart.isEmpty else { throw fail("missing host") }
        guard let port = Int(portPart), (1...65535).contains(port) else {
            throw fail("port '\(portPart)' is not a number from 1 to 65535")
        }
        let host: Host
        if rest.hasPrefix("[") {
            host = .ipv6(String(hostPart))
        } else if Self.isIPv4(hostPart) {
            host = .ipv4(String(hostPart))
        } else {
            let allowed = hostPart.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." || $0 == "_" }
            guard allowed, hostPart.allSatisfy(\.isASCII) else { throw fail("'\(hostPart)' is not a valid host name") }
            host = .dns(String(hostPart))
        }
        return EtcdEndpoint(host: host, port: port, useTLS: useTLS)
    }

    private static func isIPv4(_ text: Substring) -> Bool {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4
            && parts.allSatisfy { part in
                !part.isEmpty && part.count <= 3 && part.allSatisfy(\.isNumber) && (Int(part) ?? 256) <= 255
            }
    }
}

extension String {
    fileprivate func trimmingWhitespace() -> Substring {
        var s = Substring(self)
        while s.first?.isWhitespace == true { s = s.dropFirst() }
        while s.last?.isWhitespace == true { s = s.dropLast() }
        return s
    }
}
