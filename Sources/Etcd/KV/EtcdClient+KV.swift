// SPDX-License-Identifier: Apache-2.0
internal import EtcdAPI
import FoundationEssentials
import GRPCCore
import SwiftProtobuf

extension EtcdClient {
    /// Reads a key, or a range of keys with `.prefix`, `.fromKey` or `.range(end:)`.
    ///
    /// Linearizable by default (the answer reflects every write acknowledged before the call);
    /// `.serializable` answers from the member's local state. Retried on another endpoint after a
    /// transport failure. With `.paged(pageSize:)` the range is read in pages at one revision.
    ///
    /// - Throws: ``EtcdClientError``: `emptyKey` or `invalidArgument` before sending; `compacted` or
    ///   `futureRevision` for a revision the store no longer or not yet has; `responseTooLarge` when the
    ///   result exceeds ``Configuration/maxCallReceiveMessageSize``.
    public func get(_ key: some EtcdBytes, options: EtcdGetOptions = []) async throws -> EtcdGetResponse {
        try await self.get(EtcdRequests.range(key: key.etcdData, options: options), pageSize: options.pageSize)
    }

    func get(_ request: Etcdserverpb_RangeRequest, pageSize: Int?) async throws -> EtcdGetResponse {
        if let pageSize, !request.countOnly {
            return try await self.pagedRange(request, pageSize: pageSize)
        }
        return EtcdGetResponse(try await self.range(request))
    }

    func range(_ request: Etcdserverpb_RangeRequest) async throws -> Etcdserverpb_RangeResponse {
        try await self.call("Range", retry: .idempotent) { connection, options, metadata in
            try await connection.unary(Etcdserverpb_KV.Method.Range.self, request, metadata: metadata, options: options)
        }
    }

    /// Reads a range page by page at the revision of the first page, so the pages form one snapshot.
    private func pagedRange(_ base: Etcdserverpb_RangeRequest, pageSize: Int) async throws -> EtcdGetResponse {
        let wanted = base.limit  // 0: all
        var request = base
        request.limit = wanted > 0 ? min(Int64(pageSize), wanted) : Int64(pageSize)
        let first = try await self.range(request)
        var result = EtcdGetResponse(first)
        var more = first.more
        request.revision = first.header.revision > 0 && base.revision == 0 ? first.header.revision : base.revision
        while more, let last = result.kvs.last, wanted == 0 || Int64(result.kvs.count) < wanted {
            var next = last.keyData
            next.append(0)
            request.key = next
            let remaining = wanted > 0 ? wanted - Int64(result.kvs.count) : Int64(pageSize)
            request.limit = min(Int64(pageSize), remaining)
            let page = try await self.range(request)
            result.kvs += page.kvs.map(EtcdKeyValue.init)
            more = page.more
        }
        result.more = wanted > 0 && Int64(result.kvs.count) < result.count
        return result
    }

    /// Writes a key.
    ///
    /// A put is retried only when it provably never reached a server, so it is never applied twice.
    ///
    /// - Throws: ``EtcdClientError``: `emptyKey` before sending; `requestTooLarge` when the request
    ///   exceeds the client's or the server's limit; `leaseNotFound` for an unknown lease;
    ///   `keyNotFound` with `.ignoreValue`/`.ignoreLease` on a missing key.
    @discardableResult
    public func put(
        _ key: some EtcdBytes,
        value: some EtcdBytes,
        options: EtcdPutOptions = []
    ) async throws -> EtcdPutResponse {
        try await self.put(EtcdRequests.put(key: key.etcdData, value: value.etcdData, options: options))
    }

    func put(_ request: Etcdserverpb_PutRequest) async throws -> EtcdPutResponse {
        try self.checkSendSize(request, estimate: request.key.count + request.value.count, method: "Put")
        let response = try await self.call("Put", retry: .mutation) { connection, options, metadata in
            try await connection.unary(Etcdserverpb_KV.Method.Put.self, request, metadata: metadata, options: options)
        }
        return EtcdPutResponse(response)
    }

    /// Deletes a key, or a range of keys with `.prefix`, `.fromKey` or `.range(end:)`.
    ///
    /// - Throws: ``EtcdClientError``: `emptyKey` or `invalidArgument` before sending.
    @discardableResult
    public func delete(_ key: some EtcdBytes, options: EtcdDeleteOptions = []) async throws -> EtcdDeleteResponse {
        try await self.delete(EtcdRequests.deleteRange(key: key.etcdData, options: options))
    }

    func delete(_ request: Etcdserverpb_DeleteRangeRequest) async throws -> EtcdDeleteResponse {
        let response = try await self.call("DeleteRange", retry: .mutation) { connection, options, metadata in
            try await connection.unary(
                Etcdserverpb_KV.Method.DeleteRange.self, request, metadata: metadata, options: options)
        }
        return EtcdDeleteResponse(response)
    }

    /// Discards the store's history before `revision`; older revisions can no longer be read or watched.
    ///
    /// - Parameters:
    ///   - revision: the oldest revision to keep.
    ///   - physical: wait until the compaction is physically applied to the backend.
    /// - Throws: ``EtcdClientError``: `compacted` if the revision is already compacted, `futureRevision`
    ///   if it is newer than the store.
    @discardableResult
    public func compact(_ revision: Int64, physical: Bool = false) async throws -> EtcdCompactResponse {
        let request = try EtcdRequests.compaction(revision: revision, physical: physical)
        let response = try await self.call("Compact", retry: .idempotent) { connection, options, metadata in
            try await connection.unary(
                Etcdserverpb_KV.Method.Compact.self, request, metadata: metadata, options: options)
        }
        return EtcdCompactResponse(response)
    }

    /// Runs one operation (Go's `Do`).
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

    /// Runs a transaction: if every comparison holds, the `then` operations, else the `else` ones, atomically.
    ///
    /// ```swift
    /// let response = try await client.txn(
    ///     if: [.value("k") == "v"],
    ///     then: [.put("k", value: "XYZ")],
    ///     else: [.put("k", value: "ABC")]
    /// )
    /// ```
    ///
    /// A transaction of gets only is retried like a get; one that writes is retried only when it
    /// provably never reached a server.
    ///
    /// - Throws: ``EtcdClientError``: `tooManyOps` beyond the server's `--max-txn-ops`,
    ///   `duplicateKey` when a branch writes a key twice; nothing is applied in either case.
    @discardableResult
    public func txn(if compares: [EtcdCompare], then: [EtcdOp], else otherwise: [EtcdOp] = []) async throws
        -> EtcdTxnResponse
    {
        let readOnly = then.allSatisfy(\.isReadOnly) && otherwise.allSatisfy(\.isReadOnly)
        return try await self.txn(EtcdRequests.txn(compares: compares, then: then, else: otherwise), readOnly: readOnly)
    }

    func txn(_ request: Etcdserverpb_TxnRequest, readOnly: Bool) async throws -> EtcdTxnResponse {
        let estimate =
            request.success.reduce(0) { $0 + Self.estimatedSize($1) }
            + request.failure.reduce(0) { $0 + Self.estimatedSize($1) }
        try self.checkSendSize(request, estimate: estimate, method: "Txn")
        let response = try await self.call("Txn", retry: readOnly ? .idempotent : .mutation) {
            connection, options, metadata in
            try await connection.unary(Etcdserverpb_KV.Method.Txn.self, request, metadata: metadata, options: options)
        }
        return EtcdTxnResponse(response)
    }

    private static func estimatedSize(_ op: Etcdserverpb_RequestOp) -> Int {
        switch op.request {
        case .requestPut(let put): return put.key.count + put.value.count
        case .requestTxn(let txn):
            return txn.success.reduce(0) { $0 + estimatedSize($1) } + txn.failure.reduce(0) { $0 + estimatedSize($1) }
        default: return 0
        }
    }

    /// Refuses a request larger than ``Configuration/maxCallSendMessageSize`` before it is sent.
    ///
    /// `estimate` is the size of the request's large fields; the exact size is computed only near the limit.
    func checkSendSize(_ request: some SwiftProtobuf.Message, estimate: Int, method: String) throws(EtcdClientError) {
        let limit = self.configuration.maxCallSendMessageSize
        guard estimate + 1024 >= limit else { return }
        let size = (try? request.serializedBytes() as [UInt8])?.count ?? estimate
        if size > limit {
            throw EtcdClientError(
                code: .requestTooLarge,
                message: """
                    the \(method) request is \(size) bytes, over the client's send limit of \(limit) bytes \
                    (Configuration.maxCallSendMessageSize); etcd's own limit is --max-request-bytes (1.5 MiB by default)
                    """
            )
        }
    }
}

extension EtcdClient {
    /// Reads a range as a server-side stream of chunks (etcd's RangeStream, etcd 3.7 and newer),
    /// calling `body` for each chunk in key order.
    ///
    /// For servers older than 3.7 use ``get(_:options:)`` with `.paged(pageSize:)`, which gives the
    /// same consistent snapshot with ordinary range calls.
    ///
    /// - Throws: ``EtcdClientError`` `notSupported` (naming the version needed) when the member runs
    ///   etcd older than 3.7.
    public func getStream(
        _ key: some EtcdBytes,
        options: EtcdGetOptions = [],
        _ body: @escaping @Sendable (EtcdGetResponse) async throws -> Void
    ) async throws {
        if options.pageSize != nil {
            throw EtcdRequests.invalid(".paged(pageSize:) does not apply to getStream; the server chooses the chunks")
        }
        let request = try EtcdRequests.range(key: key.etcdData, options: options)
        try await self.call(
            "RangeStream", retry: .idempotent, minimumVersion: (.v3_7, "RangeStream")
        ) {
            connection, options, metadata in
            try await connection.kv.rangeStream(request, metadata: metadata, options: options) { response in
                for try await chunk in response.messages {
                    try await body(EtcdGetResponse(chunk.rangeResponse))
                }
            }
        }
    }
}
