// SPDX-License-Identifier: Apache-2.0
package import EtcdAPI

/// The result of ``EtcdClient/get(_:options:)``.
public struct EtcdGetResponse: Sendable {
    /// The header of the member that answered: cluster, member, revision and raft term.
    public var header: EtcdResponseHeader
    /// The keys found, in the requested order (empty with `countOnly`).
    public var kvs: [EtcdKeyValue]
    /// Whether more keys are in the range than `limit` returned.
    public var more: Bool
    /// How many keys are in the range, regardless of `limit`.
    public var count: Int64

    package init(_ proto: Etcdserverpb_RangeResponse) {
        self.header = EtcdResponseHeader(proto.header)
        self.kvs = proto.kvs.map(EtcdKeyValue.init)
        self.more = proto.more
        self.count = proto.count
    }
}

/// The result of ``EtcdClient/put(_:value:options:)``.
public struct EtcdPutResponse: Sendable {
    /// The header of the member that answered: cluster, member, revision and raft term.
    public var header: EtcdResponseHeader
    /// The key's previous value, with `prevKV` and when the key existed.
    public var prevKV: EtcdKeyValue?

    package init(_ proto: Etcdserverpb_PutResponse) {
        self.header = EtcdResponseHeader(proto.header)
        self.prevKV = proto.hasPrevKv ? EtcdKeyValue(proto.prevKv) : nil
    }
}

/// The result of ``EtcdClient/delete(_:options:)``.
public struct EtcdDeleteResponse: Sendable {
    /// The header of the member that answered: cluster, member, revision and raft term.
    public var header: EtcdResponseHeader
    /// How many keys were deleted.
    public var deleted: Int64
    /// The deleted keys with their last values, with `prevKV`.
    public var prevKVs: [EtcdKeyValue]

    package init(_ proto: Etcdserverpb_DeleteRangeResponse) {
        self.header = EtcdResponseHeader(proto.header)
        self.deleted = proto.deleted
        self.prevKVs = proto.prevKvs.map(EtcdKeyValue.init)
    }
}

/// The result of ``EtcdClient/compact(_:physical:)``.
public struct EtcdCompactResponse: Sendable {
    /// The header of the member that answered: cluster, member, revision and raft term.
    public var header: EtcdResponseHeader
    package init(_ proto: Etcdserverpb_CompactionResponse) {
        self.header = EtcdResponseHeader(proto.header)
    }
}

/// The result of a transaction: which branch ran and the results of its operations, in order.
public struct EtcdTxnResponse: Sendable {
    /// The header of the member that answered: cluster, member, revision and raft term.
    public var header: EtcdResponseHeader
    /// `true` when every comparison held and the `then` branch ran; `false` when `else` ran.
    public var succeeded: Bool
    /// One result per operation of the branch that ran.
    public var responses: [EtcdOpResponse]

    package init(_ proto: Etcdserverpb_TxnResponse) {
        self.header = EtcdResponseHeader(proto.header)
        self.succeeded = proto.succeeded
        self.responses = proto.responses.compactMap(EtcdOpResponse.init)
    }
}

/// The result of one ``EtcdOp``, from ``EtcdClient/do(_:)`` or inside a transaction.
public enum EtcdOpResponse: Sendable {
    /// The answer to an ``EtcdOp/get(_:options:)``.
    case get(EtcdGetResponse)
    /// The answer to an ``EtcdOp/put(_:value:options:)``.
    case put(EtcdPutResponse)
    /// The answer to an ``EtcdOp/delete(_:options:)``.
    case delete(EtcdDeleteResponse)
    /// The answer to a nested ``EtcdOp/txn(if:then:else:)``.
    case txn(EtcdTxnResponse)

    package init?(_ proto: Etcdserverpb_ResponseOp) {
        switch proto.response {
        case .responseRange(let r): self = .get(EtcdGetResponse(r))
        case .responsePut(let r): self = .put(EtcdPutResponse(r))
        case .responseDeleteRange(let r): self = .delete(EtcdDeleteResponse(r))
        case .responseTxn(let r): self = .txn(EtcdTxnResponse(r))
        case .none: return nil
        }
    }

    /// The get result, if this is one.
    public var get: EtcdGetResponse? { if case .get(let r) = self { r } else { nil } }
    /// The put result, if this is one.
    public var put: EtcdPutResponse? { if case .put(let r) = self { r } else { nil } }
    /// The delete result, if this is one.
    public var delete: EtcdDeleteResponse? { if case .delete(let r) = self { r } else { nil } }
    /// The nested transaction's result, if this is one.
    public var txn: EtcdTxnResponse? { if case .txn(let r) = self { r } else { nil } }
}
