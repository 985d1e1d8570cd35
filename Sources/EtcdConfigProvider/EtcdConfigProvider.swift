// SPDX-License-Identifier: Apache-2.0
public import Configuration
public import Etcd
import Foundation
import Logging
public import ServiceLifecycle
import Synchronization

/// A swift-configuration provider that reads the keys under an etcd prefix and keeps them current
/// with a watch, so a service reloads its configuration when etcd changes.
///
/// ```swift
/// let provider = try await EtcdConfigProvider(client: etcd, prefix: "config/billing/")
/// let config = ConfigReader(provider: provider)
/// // config/billing/http/port = "8080" in etcd:
/// let port = config.int(forKey: "http.port", default: 80)
/// try await config.watchInt(forKey: "http.port") { updates in for await port in updates { ... } }
/// // Run the provider (a ServiceLifecycle Service) to follow changes:
/// let group = ServiceGroup(services: [etcd, provider, app], logger: logger)
/// ```
///
/// A configuration key's components are joined with `/` after the prefix: `http.port` (components
/// `http`, `port`) is the etcd key `config/billing/http/port`. Values are etcd's bytes, read as
/// UTF-8 text and converted to the type asked for: integers, decimals, booleans (`true`/`false`,
/// `yes`/`no`, `1`/`0`), and arrays as comma-separated lists; `bytes` is the raw value. A value that
/// does not convert is an error for that key, as with swift-configuration's other providers.
///
/// The provider reads the prefix once when created; ``run()`` follows it with one watch from the
/// revision after that read, so no change is missed. Changes reach `watch` subscribers in revision
/// order. If the watch falls behind a compaction, the prefix is read again and watching resumes.
public final class EtcdConfigProvider: ConfigProvider, Service, Sendable {
    /// `EtcdConfigProvider[<prefix>]`, the name swift-configuration shows in its access reports.
    public let providerName: String
    /// The client reading etcd.
    public let client: EtcdClient
    /// The etcd prefix the configuration lives under.
    public let prefix: String
    private let isSecret: @Sendable (String) -> Bool
    private let logger: Logger

    private struct State {
        var values: [String: Data]
        var revision: Int64
        var valueWatchers: [String: [UUID: (ConfigType, AsyncStream<Result<LookupResult, any Error>>.Continuation)]] =
            [:]
        var snapshotWatchers: [UUID: AsyncStream<any ConfigSnapshot>.Continuation] = [:]
    }
    private let state: Mutex<State>

    /// Reads every key under `prefix` (a linearizable read) and returns a provider serving them.
    ///
    /// - Parameters:
    ///   - client: the client that reads and watches the prefix; it must be running while the provider is used.
    ///   - prefix: the etcd prefix the configuration lives under, such as `config/billing/`.
    ///   - isSecret: which configuration keys (in etcd's form, without the prefix, such as
    ///     `db/password`) hold secrets, so access logs redact them.
    ///   - logger: where the provider says when it reads the prefix again after a compaction; silent by default.
    /// - Throws: `EtcdClientError` when the prefix cannot be read.
    public init(
        client: EtcdClient,
        prefix: String,
        isSecret: @escaping @Sendable (String) -> Bool = { _ in false },
        logger: Logger = Logger(label: "swift-etcd", factory: { _ in SwiftLogNoOpLogHandler() })
    ) async throws {
        self.client = client
        self.prefix = prefix
        self.isSecret = isSecret
        self.logger = logger
        self.providerName = "EtcdConfigProvider[\(prefix)]"
        let (values, revision) = try await Self.read(client: client, prefix: prefix)
        self.state = Mutex(State(values: values, revision: revision))
    }

    private static func read(client: EtcdClient, prefix: String) async throws -> ([String: Data], Int64) {
        let response = try await client.get(prefix, options: [.prefix, .paged(pageSize: 1000)])
        var values: [String: Data] = [:]
        for kv in response.kvs { values[String(kv.keyString.dropFirst(prefix.count))] = kv.valueData }
        return (values, response.header.revision)
    }

    /// The etcd key (without the prefix) of a configuration key.
    static func name(_ key: AbsoluteConfigKey) -> String { key.components.joined(separator: "/") }

    // MARK: ConfigProvider

    public func value(forKey key: AbsoluteConfigKey, type: ConfigType) throws -> LookupResult {
        let name = Self.name(key)
        let data = self.state.withLock { $0.values[name] }
        return try self.lookup(name, data, type)
    }

    /// Reads the key from etcd (linearizable) rather than from the watched copy.
    nonisolated(nonsending) public func fetchValue(forKey key: AbsoluteConfigKey, type: ConfigType) async throws
        -> LookupResult
    {
        let name = Self.name(key)
        let response = try await self.client.get(self.prefix + name)
        return try self.lookup(name, response.kvs.first?.valueData, type)
    }

    nonisolated(nonsending) public func watchValue<Return: ~Copyable>(
        forKey key: AbsoluteConfigKey,
        type: ConfigType,
        updatesHandler:
            nonisolated(nonsending) (_ updates: ConfigUpdatesAsyncSequence<Result<LookupResult, any Error>, Never>)
            async throws
            -> Return
    ) async throws -> Return {
        let name = Self.name(key)
        let (stream, continuation) = AsyncStream.makeStream(
            of: Result<LookupResult, any Error>.self, bufferingPolicy: .bufferingNewest(1))
        let id = UUID()
        self.state.withLock { state in
            state.valueWatchers[name, default: [:]][id] = (type, continuation)
            let data = state.values[name]
            continuation.yield(Result { try self.lookup(name, data, type) })
        }
        defer {
            self.state.withLock { $0.valueWatchers[name]?[id] = nil }
            continuation.finish()
        }
        return try await updatesHandler(ConfigUpdatesAsyncSequence(stream))
    }

    /// The values as last read or watched, at one revision (an ``EtcdConfigSnapshot``).
    public func snapshot() -> any ConfigSnapshot {
        self.state.withLock { self.makeSnapshot($0) }
    }

    nonisolated(nonsending) public func watchSnapshot<Return: ~Copyable>(
        updatesHandler:
            nonisolated(nonsending) (_ updates: ConfigUpdatesAsyncSequence<any ConfigSnapshot, Never>) async throws ->
            Return
    ) async throws -> Return {
        let (stream, continuation) = AsyncStream.makeStream(
            of: (any ConfigSnapshot).self, bufferingPolicy: .bufferingNewest(1))
        let id = UUID()
        self.state.withLock { state in
            state.snapshotWatchers[id] = continuation
            continuation.yield(self.makeSnapshot(state))
        }
        defer {
            self.state.withLock { $0.snapshotWatchers[id] = nil }
            continuation.finish()
        }
        return try await updatesHandler(ConfigUpdatesAsyncSequence(stream))
    }

    /// The revision of etcd the provider's values reflect: that of its read, or of the last change
    /// under the prefix it applied since (later revisions changed nothing it has seen yet).
    public var revision: Int64 { self.state.withLock { $0.revision } }

    // MARK: Service

    /// Follows the prefix until cancelled or graceful shutdown, applying each change and telling
    /// the keys' and snapshots' watchers.
    ///
    /// - Throws: `EtcdClientError` when the watch fails for another reason than compaction
    ///   (permission denied, for example).
    public func run() async throws {
        try await cancelWhenGracefulShutdown {
            while true {
                let revision = self.revision
                do {
                    try await self.client.watch(self.prefix, options: [.prefix, .revision(revision + 1)]) { responses in
                        for try await response in responses {
                            self.apply(response)
                        }
                    }
                    return  // the client shut down
                } catch let error as EtcdClientError where error.code == .compacted {
                    // Fell behind a compaction: read everything again, then watch from there.
                    self.logger.debug(
                        "etcd configuration watch compacted; reading the prefix again",
                        metadata: ["etcd_prefix": "\(self.prefix)"])
                    let (values, revision) = try await Self.read(client: self.client, prefix: self.prefix)
                    self.replace(values, revision: revision)
                }
            }
        }
    }

    private func apply(_ response: EtcdWatchResponse) {
        var changed = Set<String>()
        self.state.withLock { state in
            for event in response.events {
                let name = String(event.kv.keyString.dropFirst(self.prefix.count))
                state.values[name] = event.type == .put ? event.kv.valueData : nil
                changed.insert(name)
            }
            // The last event's revision, not the header's: a watch catching up gets 1,000 revisions
            // per response, each headed with etcd's current revision. (Progress notifications,
            // without events, do not move it either: etcd before 3.4.25 and 3.5.8 sends them to
            // watches still catching up.)
            if let last = response.events.last?.kv.modRevision { state.revision = max(state.revision, last) }
            if !changed.isEmpty { self.notify(changed, state) }
        }
    }

    private func replace(_ values: [String: Data], revision: Int64) {
        self.state.withLock { state in
            let changed = Set(values.keys).union(state.values.keys).filter { values[$0] != state.values[$0] }
            state.values = values
            state.revision = revision
            if !changed.isEmpty { self.notify(changed, state) }
        }
    }

    private func notify(_ changed: Set<String>, _ state: State) {
        for name in changed {
            for (type, continuation) in state.valueWatchers[name, default: [:]].values {
                let data = state.values[name]
                continuation.yield(Result { try self.lookup(name, data, type) })
            }
        }
        if !state.snapshotWatchers.isEmpty {
            let snapshot = self.makeSnapshot(state)
            for continuation in state.snapshotWatchers.values { continuation.yield(snapshot) }
        }
    }

    private func makeSnapshot(_ state: State) -> EtcdConfigSnapshot {
        EtcdConfigSnapshot(
            providerName: self.providerName, prefix: self.prefix, values: state.values, revision: state.revision,
            isSecret: self.isSecret)
    }

    private func lookup(_ name: String, _ data: Data?, _ type: ConfigType) throws -> LookupResult {
        try EtcdConfigSnapshot.lookup(
            encodedKey: self.prefix + name, data: data, type: type, isSecret: self.isSecret(name))
    }
}

/// The provider's values at one etcd revision.
public struct EtcdConfigSnapshot: ConfigSnapshot {
    /// `EtcdConfigProvider[<prefix>]`, the name swift-configuration shows in its access reports.
    public let providerName: String
    let prefix: String
    let values: [String: Data]
    /// The etcd revision these values are etcd's state at (the provider's ``EtcdConfigProvider/revision``
    /// when the snapshot was taken).
    public let revision: Int64
    let isSecret: @Sendable (String) -> Bool

    public func value(forKey key: AbsoluteConfigKey, type: ConfigType) throws -> LookupResult {
        let name = EtcdConfigProvider.name(key)
        return try Self.lookup(
            encodedKey: self.prefix + name, data: self.values[name], type: type, isSecret: self.isSecret(name))
    }

    static func lookup(encodedKey: String, data: Data?, type: ConfigType, isSecret: Bool) throws -> LookupResult {
        guard let data else { return LookupResult(encodedKey: encodedKey, value: nil) }
        let content = try Self.convert(data, to: type, key: encodedKey)
        return LookupResult(encodedKey: encodedKey, value: ConfigValue(content, isSecret: isSecret))
    }

    /// Converts an etcd value to the type asked for.
    static func convert(_ data: Data, to type: ConfigType, key: String) throws -> ConfigContent {
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        func fail() -> EtcdConfigError { EtcdConfigError(key: key, type: type) }
        func list() -> [String] {
            text.isEmpty ? [] : text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        }
        func bool(_ text: String) -> Bool? {
            switch text.lowercased() {
            case "true", "yes", "1": true
            case "false", "no", "0": false
            default: nil
            }
        }
        switch type {
        case .string: return .string(String(decoding: data, as: UTF8.self))
        case .int: guard let value = Int(text) else { throw fail() }; return .int(value)
        case .double: guard let value = Double(text) else { throw fail() }; return .double(value)
        case .bool: guard let value = bool(text) else { throw fail() }; return .bool(value)
        case .bytes: return .bytes([UInt8](data))
        case .stringArray: return .stringArray(list())
        case .intArray:
            let values = list().compactMap { Int($0) }
            guard values.count == list().count else { throw fail() }
            return .intArray(values)
        case .doubleArray:
            let values = list().compactMap { Double($0) }
            guard values.count == list().count else { throw fail() }
            return .doubleArray(values)
        case .boolArray:
            let values = list().compactMap(bool)
            guard values.count == list().count else { throw fail() }
            return .boolArray(values)
        case .byteChunkArray:
            return .byteChunkArray(list().map { [UInt8]($0.utf8) })
        }
    }
}

/// A value in etcd that does not convert to the type the configuration reader asked for.
public struct EtcdConfigError: Error, CustomStringConvertible, Sendable {
    /// The etcd key.
    public var key: String
    /// The type asked for.
    public var type: ConfigType

    public var description: String {
        "the etcd value of \(self.key) is not a valid \(self.type); fix the value in etcd or read it with another type"
    }
}
