// SPDX-License-Identifier: Apache-2.0
public import Etcd
import Foundation

/// One instance of a service: its address and optional metadata (Go's `endpoints.Endpoint`).
public struct EtcdServiceEndpoint: Sendable, Hashable {
    /// Where the instance listens: `host:port`, `[v6]:port`.
    public var address: String
    /// Free-form metadata for the instance, as JSON text (`nil` for none). Go writes any JSON value
    /// here; a JSON string arrives as its text, anything else as its JSON.
    public var metadata: String?

    /// An instance listening at `address`, with optional JSON `metadata`.
    public init(address: String, metadata: String? = nil) {
        self.address = address
        self.metadata = metadata
    }

    /// The value stored in etcd: Go's `{"Op":0,"Addr":...,"Metadata":...}`, which Go's resolvers and
    /// endpoint managers (3.4 and 3.5) read.
    var encoded: Data {
        var object: [String: Any] = ["Op": 0, "Addr": self.address]
        object["Metadata"] = self.metadata ?? NSNull()
        return (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
    }

    init?(decoding data: Data) {
        guard
            let object = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) as? [String: Any],
            let address = object["Addr"] as? String
        else { return nil }
        self.address = address
        switch object["Metadata"] {
        case nil, is NSNull: self.metadata = nil
        case let text as String: self.metadata = text
        case let other?:
            self.metadata = (try? JSONSerialization.data(withJSONObject: other, options: [.fragmentsAllowed]))
                .map { String(decoding: $0, as: UTF8.self) }
        }
    }
}

/// A change to the endpoints of a service (Go's `endpoints.Update`).
public struct EtcdEndpointUpdate: Sendable, Hashable {
    /// Whether the endpoint appeared (or changed) or went away.
    public enum Operation: Sendable, Hashable {
        /// The endpoint was registered or changed.
        case add
        /// The endpoint was removed (deleted, or its lease ended).
        case delete
    }
    /// Whether the endpoint was added or deleted.
    public var operation: Operation
    /// The endpoint's key in etcd (the service's target, `/`, and a name).
    public var key: String
    /// The endpoint, for `add`.
    public var endpoint: EtcdServiceEndpoint?
}

/// Registers, lists and watches the instances of a service in etcd (Go's `naming/endpoints`
/// `Manager`), with Go's key layout and values, so Go and Swift services find each other.
///
/// ```swift
/// let manager = try EtcdEndpointManager(client: client, target: "services/billing")
/// // Registered while the closure runs, kept by a lease; gone within the TTL if the process dies.
/// try await manager.withRegistration(EtcdServiceEndpoint(address: "10.0.0.7:8080"), ttl: 10) {
///     try await server.serve()
/// }
/// ```
///
/// Each endpoint is a key `target/name` whose value names its address. A gRPC client finds them
/// with ``EtcdNameResolverFactory``.
public struct EtcdEndpointManager: Sendable {
    /// The client used to reach etcd.
    public let client: EtcdClient
    /// The service's name in etcd, the prefix of its endpoints' keys (without the trailing `/`).
    public let target: String

    /// A manager for the service `target`.
    ///
    /// - Throws: `EtcdClientError` `invalidArgument` for an empty target.
    public init(client: EtcdClient, target: String) throws(EtcdClientError) {
        guard !target.isEmpty else {
            throw EtcdClientError(
                code: .invalidArgument, message: "an endpoint manager needs a target, such as \"services/billing\"")
        }
        self.client = client
        self.target = target
    }

    /// The key an endpoint is stored under by default: the target, `/`, and the address.
    public func key(for endpoint: EtcdServiceEndpoint) -> String { "\(self.target)/\(endpoint.address)" }

    /// Adds (or replaces) an endpoint under `key` (default: ``key(for:)``), attached to `lease` if given.
    ///
    /// - Throws: `EtcdClientError` `invalidArgument` when the key is not under `target/`;
    ///   `leaseNotFound` for an unknown lease.
    public func add(_ endpoint: EtcdServiceEndpoint, key: String? = nil, lease: Int64? = nil) async throws {
        let key = key ?? self.key(for: endpoint)
        try self.check(key)
        guard !endpoint.address.isEmpty else {
            throw EtcdClientError(
                code: .invalidArgument, message: "an endpoint needs an address, such as \"10.0.0.7:8080\"")
        }
        try await self.client.put(key, value: endpoint.encoded, options: lease.map { .lease($0) } ?? [])
    }

    /// Removes the endpoint stored under `key`.
    public func delete(key: String) async throws {
        try self.check(key)
        try await self.client.delete(key)
    }

    /// Removes `endpoint`, stored under ``key(for:)``.
    public func delete(_ endpoint: EtcdServiceEndpoint) async throws {
        try await self.delete(key: self.key(for: endpoint))
    }

    /// The service's endpoints now, by key. Values that are not endpoints are skipped, as in Go.
    public func list() async throws -> [String: EtcdServiceEndpoint] {
        let response = try await self.client.get("\(self.target)/", options: .prefix)
        return Self.decode(response.kvs)
    }

    /// Keeps `endpoint` registered for the duration of `body`, attached to a lease of `ttl`
    /// seconds kept alive meanwhile, and removes it afterwards, also when `body` throws or is
    /// cancelled. If the process dies, the lease expires and the endpoint disappears within `ttl`.
    @discardableResult
    public func withRegistration<Result: Sendable>(
        _ endpoint: EtcdServiceEndpoint,
        key: String? = nil,
        ttl: Int64 = 10,
        isolation: isolated (any Actor)? = #isolation,
        _ body: () async throws -> Result
    ) async throws -> Result {
        try await self.client.withLease(ttl: ttl) { lease in
            try await self.add(endpoint, key: key, lease: lease.id)
            return try await body()
        }
    }

    /// Watches the service's endpoints for the duration of `body`: the first batch adds every
    /// current endpoint, later batches carry each change (Go's `NewWatchChannel`).
    public func watch<Result: Sendable>(
        isolation: isolated (any Actor)? = #isolation,
        _ body: (EtcdEndpointUpdates) async throws -> Result
    ) async throws -> Result {
        let prefix = "\(self.target)/"
        let initial = try await self.client.get(prefix, options: .prefix)
        let first = Self.decode(initial.kvs).sorted { $0.key < $1.key }.map {
            EtcdEndpointUpdate(operation: .add, key: $0.key, endpoint: $0.value)
        }
        return try await self.client.watch(prefix, options: [.prefix, .revision(initial.header.revision + 1)]) {
            responses in
            try await body(EtcdEndpointUpdates(initial: first, responses: responses))
        }
    }

    /// Watches the service's endpoints as complete lists: the current endpoints, then the whole list
    /// again after each change, by key.
    public func watchEndpoints<Result: Sendable>(
        isolation: isolated (any Actor)? = #isolation,
        _ body: (EtcdEndpointLists) async throws -> Result
    ) async throws -> Result {
        try await self.watch { updates in try await body(EtcdEndpointLists(updates: updates)) }
    }

    private func check(_ key: String) throws(EtcdClientError) {
        guard key.hasPrefix("\(self.target)/"), key.count > self.target.count + 1 else {
            throw EtcdClientError(
                code: .invalidArgument,
                message: "endpoint keys must be prefixed with '\(self.target)/', got '\(key)'"
            )
        }
    }

    static func decode(_ kvs: [EtcdKeyValue]) -> [String: EtcdServiceEndpoint] {
        var endpoints: [String: EtcdServiceEndpoint] = [:]
        for kv in kvs {
            if let endpoint = EtcdServiceEndpoint(decoding: kv.valueData) { endpoints[kv.keyString] = endpoint }
        }
        return endpoints
    }
}

/// Batches of endpoint changes; see ``EtcdEndpointManager/watch(isolation:_:)``. Ends with the
/// watch's error (`compacted`, for example) or when the client shuts down.
public struct EtcdEndpointUpdates: AsyncSequence, Sendable {
    public typealias Element = [EtcdEndpointUpdate]
    let initial: [EtcdEndpointUpdate]
    let responses: EtcdWatchResponses

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(initial: self.initial.isEmpty ? nil : self.initial, responses: self.responses.makeAsyncIterator())
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        var initial: [EtcdEndpointUpdate]?
        var responses: EtcdWatchResponses.AsyncIterator

        /// The next batch of changes, waiting for one; nil when the watch has ended.
        public mutating func next() async throws -> [EtcdEndpointUpdate]? {
            try await self.next(isolation: nil)
        }

        /// The next batch of changes, read on `actor` (what `for try await` passes) without leaving it.
        public mutating func next(isolation actor: isolated (any Actor)?) async throws -> [EtcdEndpointUpdate]? {
            if let initial = self.initial {
                self.initial = nil
                return initial
            }
            while let response = try await self.responses.next(isolation: actor) {
                let updates = response.events.compactMap { event -> EtcdEndpointUpdate? in
                    if event.type == .delete {
                        return EtcdEndpointUpdate(operation: .delete, key: event.kv.keyString, endpoint: nil)
                    }
                    // Values that are not endpoints are skipped, as in Go.
                    guard let endpoint = EtcdServiceEndpoint(decoding: event.kv.valueData) else { return nil }
                    return EtcdEndpointUpdate(operation: .add, key: event.kv.keyString, endpoint: endpoint)
                }
                if !updates.isEmpty { return updates }
            }
            return nil
        }
    }
}

/// The complete endpoint list after each change; see ``EtcdEndpointManager/watchEndpoints(isolation:_:)``.
public struct EtcdEndpointLists: AsyncSequence, Sendable {
    public typealias Element = [String: EtcdServiceEndpoint]
    let updates: EtcdEndpointUpdates

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(updates: self.updates.makeAsyncIterator()) }

    public struct AsyncIterator: AsyncIteratorProtocol {
        var updates: EtcdEndpointUpdates.AsyncIterator
        var current: [String: EtcdServiceEndpoint] = [:]
        var first = true

        /// The endpoint list after the next change, waiting for one; nil when the watch has ended.
        public mutating func next() async throws -> [String: EtcdServiceEndpoint]? {
            try await self.next(isolation: nil)
        }

        /// The endpoint list after the next change, read on `actor` (what `for try await` passes)
        /// without leaving it.
        public mutating func next(
            isolation actor: isolated (any Actor)?
        ) async throws -> [String: EtcdServiceEndpoint]? {
            if self.first {
                self.first = false
                // With no endpoints yet there is no initial batch: the empty list is the first answer.
                if self.updates.initial == nil { return [:] }
            }
            guard let batch = try await self.updates.next(isolation: actor) else { return nil }
            for update in batch {
                switch update.operation {
                case .add: self.current[update.key] = update.endpoint
                case .delete: self.current[update.key] = nil
                }
            }
            return self.current
        }
    }
}
