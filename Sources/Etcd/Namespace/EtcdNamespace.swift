// SPDX-License-Identifier: Apache-2.0
package import EtcdAPI
public import FoundationEssentials

extension EtcdClient {
    /// A view of this client whose keys live under `prefix` (Go's `namespace` package).
    ///
    /// ```swift
    /// let app = client.namespace("apps/billing/")
    /// try await app.put("config", value: "on")          // writes apps/billing/config
    /// let all = try await app.get("", options: .prefix)  // everything under apps/billing/, keys without it
    /// ```
    ///
    /// The view shares the client's connections, watch streams and keepalives; it costs nothing to
    /// make. See ``EtcdNamespace`` for how ranges are clamped.
    public func namespace(_ prefix: some EtcdBytes) -> EtcdNamespace {
        EtcdNamespace(client: self, prefix: prefix.etcdData)
    }
}

/// A client view whose KV, transaction, watch and lease-key calls live under a key prefix (Go's
/// `namespace.NewKV`, `NewWatcher` and `NewLease`).
///
/// Keys in requests gain the prefix; keys in responses, watch events and a lease's attached keys
/// lose it. Ranges stay inside the prefix: `.prefix` with an empty key covers the whole namespace,
/// and `.fromKey` ends at the namespace's end rather than the keyspace's. Revisions, lease IDs and
/// compaction are cluster-wide, as in Go; use ``client`` for calls that have no keys.
///
/// Unlike Go, an empty key with `.prefix` or `.fromKey` is allowed and means the whole namespace;
/// an empty key on its own is still `emptyKey`.
public struct EtcdNamespace: Sendable {
    /// The client underneath.
    public let client: EtcdClient
    /// The prefix every key of this view carries on the server.
    public let prefix: Data

    init(client: EtcdClient, prefix: Data) {
        self.client = client
        self.prefix = prefix
    }

    /// A view nested inside this one: its keys live under this prefix followed by `prefix`.
    public func namespace(_ prefix: some EtcdBytes) -> EtcdNamespace {
        EtcdNamespace(client: self.client, prefix: self.prefix + prefix.etcdData)
    }

    /// Reads a key, or a range of the namespace's keys; see ``EtcdClient/get(_:options:)``.
    public func get(_ key: some EtcdBytes, options: EtcdGetOptions = []) async throws -> EtcdGetResponse {
        let request = try self.keys.range(EtcdRequests.range(key: key.etcdData, options: options))
        return self.keys.strip(try await self.client.get(request, pageSize: options.pageSize))
    }

    /// Writes a key under the prefix; see ``EtcdClient/put(_:value:options:)``.
    @discardableResult
    public func put(
        _ key: some EtcdBytes,
        value: some EtcdBytes,
        options: EtcdPutOptions = []
    ) async throws -> EtcdPutResponse {
        let request = try self.keys.put(EtcdRequests.put(key: key.etcdData, value: value.etcdData, options: options))
        return self.keys.strip(try await self.client.put(request))
    }

    /// Deletes a key, or a range of the namespace's keys; see ``EtcdClient/delete(_:options:)``.
    @discardableResult
    public func delete(_ key: some EtcdBytes, options: EtcdDeleteOptions = []) async throws -> EtcdDeleteResponse {
        let request = try self.keys.delete(EtcdRequests.deleteRange(key: key.etcdData, options: options))
        return self.keys.strip(try await self.client.delete(request))
    }

    /// Runs a transaction whose comparisons and operations name keys of the namespace; see
    /// ``EtcdClient/txn(if:then:else:)``.
    @discardableResult
    public func txn(if compares: [EtcdCompare], then: [EtcdOp], else otherwise: [EtcdOp] = []) async throws
        -> EtcdTxnResponse
    {
        let request = try self.keys.txn(EtcdRequests.txn(compares: compares, then: then, else: otherwise))
        let readOnly = then.allSatisfy(\.isReadOnly) && otherwise.allSatisfy(\.isReadOnly)
        return self.keys.strip(try await self.client.txn(request, readOnly: readOnly))
    }

    /// Runs one operation in the namespace (Go's `Do`).
    public func `do`(_ op: EtcdOp) async throws -> EtcdOpResponse {
        switch op.kind {
        case .get(let key, let options):
            return .get(try await self.get(key, options: options))
        case .put(let key, let value, let options):
            return .put(try await self.put(key, value: value, options: options))
        case .delete(let key, let options):
            return .delete(try await self.delete(key, options: options))
        case .txn(let compares, let then, let otherwise):
            return .txn(try await self.txn(if: compares, then: then, else: otherwise))
        }
    }

    /// Watches a key or a range of the namespace for the duration of `body`; events carry keys
    /// without the prefix. See ``EtcdClient/watch(_:options:isolation:_:)`` for ordering, resumption
    /// and errors.
    public func watch<Result: Sendable>(
        _ key: some EtcdBytes,
        options: EtcdWatchOptions = [],
        isolation: isolated (any Actor)? = #isolation,
        _ body: (EtcdWatchResponses) async throws -> Result
    ) async throws -> Result {
        let keys = self.keys
        let request = try keys.watch(EtcdRequests.watchCreate(key: key.etcdData, options: options))
        return try await self.client.watch(
            request, options: options, transform: { keys.strip($0) }, isolation: isolation, body)
    }

    /// A lease's remaining time; with `attachedKeys`, only the attached keys inside the namespace,
    /// without the prefix (Go's `namespace.NewLease`). See ``EtcdClient/timeToLive(_:attachedKeys:)``.
    public func timeToLive(_ id: Int64, attachedKeys: Bool = false) async throws -> EtcdLeaseTimeToLiveResponse {
        var response = try await self.client.timeToLive(id, attachedKeys: attachedKeys)
        response.keys = response.keys.compactMap { self.keys.strip(key: $0) }
        return response
    }

    var keys: EtcdNamespaceKeys { EtcdNamespaceKeys(prefix: self.prefix) }
}

/// The key arithmetic of a namespace: adds the prefix to requests, removes it from responses.
package struct EtcdNamespaceKeys: Sendable {
    package let prefix: Data

    package init(prefix: Data) { self.prefix = prefix }

    /// The server-side interval of the namespace's `[key, end)` (Go's `prefixInterval`).
    ///
    /// An end of `"\0"` (to the end of the keyspace) becomes the end of the namespace; an empty end
    /// (a single key) stays empty. The client encodes an empty key with a range as the key `"\0"`;
    /// with the end `"\0"` too, it means the whole namespace, whose first key is the prefix itself.
    package func interval(key: Data, end: Data) -> (key: Data, end: Data) {
        let wholeSpace = key == Data([0]) && end == Data([0])
        let begin = wholeSpace ? self.prefix : self.prefix + key
        if end == Data([0]) {
            return (begin, self.prefix.isEmpty ? Data([0]) : EtcdKeys.prefixEnd(self.prefix))
        }
        if end.isEmpty { return (begin, Data()) }
        return (begin, self.prefix + end)
    }

    package func range(_ request: Etcdserverpb_RangeRequest) -> Etcdserverpb_RangeRequest {
        var request = request
        (request.key, request.rangeEnd) = self.interval(key: request.key, end: request.rangeEnd)
        return request
    }

    package func put(_ request: Etcdserverpb_PutRequest) -> Etcdserverpb_PutRequest {
        var request = request
        request.key = self.prefix + request.key
        return request
    }

    package func delete(_ request: Etcdserverpb_DeleteRangeRequest) -> Etcdserverpb_DeleteRangeRequest {
        var request = request
        (request.key, request.rangeEnd) = self.interval(key: request.key, end: request.rangeEnd)
        return request
    }

    package func watch(_ request: Etcdserverpb_WatchCreateRequest) -> Etcdserverpb_WatchCreateRequest {
        var request = request
        (request.key, request.rangeEnd) = self.interval(key: request.key, end: request.rangeEnd)
        return request
    }

    package func txn(_ request: Etcdserverpb_TxnRequest) -> Etcdserverpb_TxnRequest {
        var request = request
        request.compare = request.compare.map { compare in
            var compare = compare
            (compare.key, compare.rangeEnd) = self.interval(key: compare.key, end: compare.rangeEnd)
            return compare
        }
        request.success = request.success.map(self.op)
        request.failure = request.failure.map(self.op)
        return request
    }

    private func op(_ op: Etcdserverpb_RequestOp) -> Etcdserverpb_RequestOp {
        var op = op
        switch op.request {
        case .requestRange(let r): op.requestRange = self.range(r)
        case .requestPut(let r): op.requestPut = self.put(r)
        case .requestDeleteRange(let r): op.requestDeleteRange = self.delete(r)
        case .requestTxn(let r): op.requestTxn = self.txn(r)
        case .none: break
        }
        return op
    }

    /// The key without the prefix, or nil when it lies outside the namespace.
    package func strip(key: Data) -> Data? {
        guard key.starts(with: self.prefix) else { return nil }
        return Data(key.dropFirst(self.prefix.count))
    }

    func strip(_ kv: EtcdKeyValue) -> EtcdKeyValue {
        var kv = kv
        kv.proto.key = self.strip(key: kv.proto.key) ?? kv.proto.key
        return kv
    }

    func strip(_ response: EtcdGetResponse) -> EtcdGetResponse {
        var response = response
        response.kvs = response.kvs.map(self.strip)
        return response
    }

    func strip(_ response: EtcdPutResponse) -> EtcdPutResponse {
        var response = response
        response.prevKV = response.prevKV.map(self.strip)
        return response
    }

    func strip(_ response: EtcdDeleteResponse) -> EtcdDeleteResponse {
        var response = response
        response.prevKVs = response.prevKVs.map(self.strip)
        return response
    }

    func strip(_ response: EtcdTxnResponse) -> EtcdTxnResponse {
        var response = response
        response.responses = response.responses.map { op in
            switch op {
            case .get(let r): .get(self.strip(r))
            case .put(let r): .put(self.strip(r))
            case .delete(let r): .delete(self.strip(r))
            case .txn(let r): .txn(self.strip(r))
            }
        }
        return response
    }

    func strip(_ response: EtcdWatchResponse) -> EtcdWatchResponse {
        var response = response
        response.events = response.events.map { event in
            var event = event
            event.kv = self.strip(event.kv)
            event.prevKV = event.prevKV.map(self.strip)
            return event
        }
        return response
    }
}
