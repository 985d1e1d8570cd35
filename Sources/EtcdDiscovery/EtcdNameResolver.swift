// SPDX-License-Identifier: Apache-2.0
public import Etcd
public import GRPCCore
public import GRPCNIOTransportCore
import Glibc

/// A gRPC target whose instances are registered in etcd (Go's `etcd:///service` targets).
public struct EtcdResolvableTarget: ResolvableTarget, Sendable, Hashable {
    /// The service's name in etcd: the prefix of its endpoints' keys.
    public var target: String

    /// The service registered under `target`.
    public init(target: String) {
        self.target = target
    }

    /// Parses Go's target URI: `etcd:///services/billing` names the target `services/billing`.
    ///
    /// - Throws: `EtcdClientError` `invalidArgument` for another scheme, an authority, or an empty target.
    public init(uri: String) throws(EtcdClientError) {
        guard uri.hasPrefix("etcd:///") else {
            throw EtcdClientError(
                code: .invalidArgument,
                message: "'\(uri)' is not an etcd target; write etcd:///service-name (three slashes, no host)"
            )
        }
        let target = String(uri.dropFirst("etcd:///".count))
        guard !target.isEmpty else {
            throw EtcdClientError(
                code: .invalidArgument, message: "'\(uri)' names no service; write etcd:///service-name")
        }
        self.target = target
    }
}

extension ResolvableTarget where Self == EtcdResolvableTarget {
    /// The instances of `service` as registered in etcd; resolve it with ``EtcdNameResolverFactory``.
    public static func etcd(_ service: String) -> Self { EtcdResolvableTarget(target: service) }
}

/// Resolves ``EtcdResolvableTarget``s for grpc-swift's HTTP/2 transport from the endpoints
/// registered by ``EtcdEndpointManager`` (or by Go's `endpoints.Manager`), following them as
/// instances come and go (Go's `naming/resolver`).
///
/// ```swift
/// var resolvers = NameResolverRegistry.defaults
/// resolvers.registerFactory(EtcdNameResolverFactory(client: etcd))
/// let transport = try HTTP2ClientTransport.Posix(
///     target: .etcd("services/billing"), transportSecurity: .plaintext, resolverRegistry: resolvers)
/// ```
///
/// Each endpoint list comes with a round-robin service config by default, so calls spread over the
/// instances. When no instance is registered, resolution fails with `unavailable` and gRPC retries
/// it with backoff (an empty list would leave it on the last instances it knew).
public struct EtcdNameResolverFactory: NameResolverFactory {
    /// The targets this factory resolves: `.etcd("services/billing")`.
    public typealias Target = EtcdResolvableTarget

    /// The client reading the registrations.
    public let client: EtcdClient
    /// The service config sent with every endpoint list.
    public let serviceConfig: ServiceConfig

    /// A factory reading registrations through `client`; `serviceConfig` defaults to round robin.
    public init(client: EtcdClient, serviceConfig: ServiceConfig? = nil) {
        self.client = client
        self.serviceConfig = serviceConfig ?? ServiceConfig(loadBalancingConfig: [.roundRobin])
    }

    /// A resolver that pushes the target's endpoint list now and after every change.
    public func resolver(for target: EtcdResolvableTarget) -> NameResolver {
        let sequence = EtcdResolution(client: self.client, target: target.target, serviceConfig: self.serviceConfig)
        return NameResolver(names: RPCAsyncSequence(wrapping: sequence), updateMode: .push)
    }
}

/// A subscription per iterator: the endpoint list now, then after every change.
private struct EtcdResolution: AsyncSequence, Sendable {
    typealias Element = NameResolutionResult
    let client: EtcdClient
    let target: String
    let serviceConfig: ServiceConfig

    func makeAsyncIterator() -> AsyncThrowingStream<NameResolutionResult, any Error>.AsyncIterator {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: NameResolutionResult.self)
        let client = self.client
        let target = self.target
        let serviceConfig = self.serviceConfig
        let task = Task {
            do {
                let manager = try EtcdEndpointManager(client: client, target: target)
                try await manager.watchEndpoints { lists in
                    for try await list in lists {
                        let endpoints = list.keys.sorted().compactMap { list[$0] }.compactMap(Self.endpoint)
                        if endpoints.isEmpty {
                            // Throwing makes gRPC resolve again with backoff; an empty list would be ignored.
                            throw RPCError(
                                code: .unavailable, message: "no instances of '\(target)' are registered in etcd")
                        }
                        continuation.yield(
                            NameResolutionResult(endpoints: endpoints, serviceConfig: .success(serviceConfig)))
                    }
                }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream.makeAsyncIterator()
    }

    /// The socket addresses of a registered address: IP literals as they are, host names looked up.
    static func endpoint(_ registered: EtcdServiceEndpoint) -> Endpoint? {
        let address = registered.address
        let host: Substring
        let portText: Substring
        if address.hasPrefix("["), let close = address.firstIndex(of: "]") {
            host = address[address.index(after: address.startIndex)..<close]
            portText = address[address.index(after: close)...].dropFirst()
        } else if let colon = address.lastIndex(of: ":") {
            host = address[..<colon]
            portText = address[address.index(after: colon)...]
        } else {
            return nil
        }
        guard let port = Int(portText), (1...65535).contains(port), !host.isEmpty else { return nil }
        let addresses = Self.lookUp(String(host), port: port)
        return addresses.isEmpty ? nil : Endpoint(addresses: addresses)
    }

    private static func lookUp(_ host: String, port: Int) -> [SocketAddress] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_ADDRCONFIG
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &result) == 0, let first = result else { return [] }
        defer { freeaddrinfo(first) }
        var addresses: [SocketAddress] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let info = cursor?.pointee {
            var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            if info.ai_family == AF_INET, let raw = info.ai_addr {
                raw.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { pointer in
                    var address = pointer.pointee.sin_addr
                    inet_ntop(AF_INET, &address, &buffer, socklen_t(buffer.count))
                }
                addresses.append(.ipv4(host: Self.text(buffer), port: port))
            } else if info.ai_family == AF_INET6, let raw = info.ai_addr {
                raw.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { pointer in
                    var address = pointer.pointee.sin6_addr
                    inet_ntop(AF_INET6, &address, &buffer, socklen_t(buffer.count))
                }
                addresses.append(.ipv6(host: Self.text(buffer), port: port))
            }
            cursor = info.ai_next
        }
        // Each address once, in the resolver's order.
        var seen = Set<SocketAddress>()
        return addresses.filter { seen.insert($0).inserted }
    }

    /// The NUL-terminated text `inet_ntop` wrote into `buffer`.
    private static func text(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
