// SPDX-License-Identifier: Apache-2.0
package import EtcdAPI
package import FoundationEssentials

/// Builds wire requests from keys and options, with the checks the client makes before sending.
package enum EtcdRequests {
    static func emptyKey() -> EtcdClientError {
        EtcdClientError(code: .emptyKey, message: "etcdserver: key is not provided")
    }

    static func invalid(_ message: String) -> EtcdClientError {
        EtcdClientError(code: .invalidArgument, message: message)
    }

    /// Applies a range option to a key: returns the key to send (an empty key with a range means
    /// "from the start of the keyspace", as in the Go client) and the range end.
    static func applyRange(key: Data, range: EtcdRangeSpec?) throws(EtcdClientError) -> (key: Data, end: Data?) {
        guard let range else {
            if key.isEmpty { throw Self.emptyKey() }
            return (key, nil)
        }
        switch range.kind {
        case .prefix:
            if key.isEmpty { return (Data([0]), Data([0])) }
            return (key, EtcdKeys.prefixEnd(key))
        case .fromKey:
            return (key.isEmpty ? Data([0]) : key, Data([0]))
        case .end(let end):
            if key.isEmpty { throw Self.emptyKey() }
            if end.isEmpty {
                throw Self.invalid(
                    ".range(end:) needs a non-empty end key; use .fromKey for everything from the key on")
            }
            // A range end of "\0" means "to the end of the keyspace".
            if end == Data([0]) || key.lexicographicallyPrecedes(end) { return (key, end) }
            throw Self.invalid("the range end must sort after the key, or the range [key, end) is empty")
        }
    }

    package static func range(key: Data, options: EtcdGetOptions) throws(EtcdClientError) -> Etcdserverpb_RangeRequest {
        if let conflict = options.conflicts.first { throw Self.invalid(conflict) }
        let (key, end) = try Self.applyRange(key: key, range: options.range)
        var request = Etcdserverpb_RangeRequest()
        request.key = key
        if let end { request.rangeEnd = end }
        if let revision = options.revision {
            if revision < 0 { throw Self.invalid("revision must not be negative, got \(revision)") }
            request.revision = revision
        }
        if let limit = options.limit {
            if limit < 0 { throw Self.invalid("limit must not be negative, got \(limit)") }
            request.limit = limit
        }
        if let sort = options.sort {
            if end == nil {
                throw Self.invalid("sorting needs a range of keys: add .prefix, .fromKey or .range(end:)")
            }
            var order = sort.order
            // etcd returns keys in ascending key order anyway; asking for it explicitly only makes the
            // server sort the whole range (the Go client drops it too).
            if sort.target == .key && order == .ascending { order = .none }
            request.sortTarget = Etcdserverpb_RangeRequest.SortTarget(rawValue: sort.target.raw) ?? .key
            request.sortOrder = Etcdserverpb_RangeRequest.SortOrder(rawValue: order.raw) ?? .none
        }
        if let pageSize = options.pageSize {
            if pageSize <= 0 { throw Self.invalid(".paged(pageSize:) needs a positive page size, got \(pageSize)") }
            if end == nil {
                throw Self.invalid(".paged(pageSize:) needs a range of keys: add .prefix, .fromKey or .range(end:)")
            }
            if request.sortOrder != .none {
                throw Self.invalid(".paged(pageSize:) pages in key order; it cannot be combined with another sort")
            }
        }
        request.serializable = options.serializable ?? false
        request.keysOnly = options.keysOnly ?? false
        request.countOnly = options.countOnly ?? false
        for (name, value) in [
            ("minModRevision", options.minModRevision), ("maxModRevision", options.maxModRevision),
            ("minCreateRevision", options.minCreateRevision), ("maxCreateRevision", options.maxCreateRevision),
        ] {
            if let value, value < 0 { throw Self.invalid("\(name) must not be negative, got \(value)") }
        }
        request.minModRevision = options.minModRevision ?? 0
        request.maxModRevision = options.maxModRevision ?? 0
        request.minCreateRevision = options.minCreateRevision ?? 0
        request.maxCreateRevision = options.maxCreateRevision ?? 0
        return request
    }

    package static func put(key: Data, value: Data, options: EtcdPutOptions) throws(EtcdClientError)
        -> Etcdserverpb_PutRequest
    {
        if key.isEmpty { throw Self.emptyKey() }
        var request = Etcdserverpb_PutRequest()
        request.key = key
        request.value = value
        request.lease = options.lease ?? 0
        request.prevKv = options.prevKV ?? false
        request.ignoreValue = options.ignoreValue ?? false
        request.ignoreLease = options.ignoreLease ?? false
        if request.ignoreValue && !value.isEmpty {
            throw EtcdClientError(code: .valueProvided, message: "etcdserver: value is provided")
        }
        if request.ignoreLease && request.lease != 0 {
            throw EtcdClientError(code: .leaseProvided, message: "etcdserver: lease is provided")
        }
        return request
    }

    package static func deleteRange(key: Data, options: EtcdDeleteOptions) throws(EtcdClientError)
        -> Etcdserverpb_DeleteRangeRequest
    {
        if let conflict = options.conflicts.first { throw Self.invalid(conflict) }
        let (key, end) = try Self.applyRange(key: key, range: options.range)
        var request = Etcdserverpb_DeleteRangeRequest()
        request.key = key
        if let end { request.rangeEnd = end }
        request.prevKv = options.prevKV ?? false
        return request
    }

    package static func txn(compares: [EtcdCompare], then: [EtcdOp], else otherwise: [EtcdOp]) throws(EtcdClientError)
        -> Etcdserverpb_TxnRequest
    {
        var request = Etcdserverpb_TxnRequest()
        if compares.contains(where: { $0.proto.key.isEmpty }) { throw Self.emptyKey() }
        request.compare = compares.map(\.proto)
        request.success = try then.map { op throws(EtcdClientError) in try op.makeRequestOp() }
        request.failure = try otherwise.map { op throws(EtcdClientError) in try op.makeRequestOp() }
        return request
    }

    package static func compaction(revision: Int64, physical: Bool) throws(EtcdClientError)
        -> Etcdserverpb_CompactionRequest
    {
        if revision <= 0 { throw Self.invalid("compaction needs a positive revision, got \(revision)") }
        var request = Etcdserverpb_CompactionRequest()
        request.revision = revision
        request.physical = physical
        return request
    }
}
