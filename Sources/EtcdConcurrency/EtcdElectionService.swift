public import Etcd
// SPDX-License-Identifier: Apache-2.0
internal import EtcdAPI
public import FoundationEssentials
import GRPCCore

/// etcd's server-side Election service (v3election): the server runs the ``EtcdElection`` algorithm
/// for you. The key layout is the same as ``EtcdElection``'s, so both take part in one election.
public struct EtcdElectionService: Sendable {
    /// The client whose connection carries the calls.
    public let client: EtcdClient

    /// The Election service of the cluster `client` talks to.
    public init(client: EtcdClient) {
        self.client = client
    }

    /// Campaigns in election `name` under `lease` with `value`; returns once leading.
    public func campaign(_ name: some EtcdBytes, lease: Int64, value: some EtcdBytes) async throws -> EtcdLeaderKey {
        var request = V3electionpb_CampaignRequest()
        request.name = name.etcdData
        request.lease = lease
        request.value = value.etcdData
        if request.name.isEmpty {
            throw EtcdClientError(code: .emptyKey, message: "an election needs a name")
        }
        let message = request
        let response = try await self.client.call("Campaign", retry: .idempotent) { connection, options, metadata in
            try await connection.unary(
                V3electionpb_Election.Method.Campaign.self, message, metadata: metadata, options: options)
        }
        return EtcdLeaderKey(response.leader)
    }

    /// Changes the leader's value.
    ///
    /// - Throws: `EtcdClientError` `electionNotLeader` when `leader` no longer leads.
    public func proclaim(_ leader: EtcdLeaderKey, value: some EtcdBytes) async throws {
        var request = V3electionpb_ProclaimRequest()
        request.leader = leader.proto
        request.value = value.etcdData
        let message = request
        _ = try await self.client.call("Proclaim", retry: .idempotent) { connection, options, metadata in
            try await connection.unary(
                V3electionpb_Election.Method.Proclaim.self, message, metadata: metadata, options: options)
        }
    }

    /// The current leader of election `name`.
    ///
    /// - Throws: `EtcdClientError` `electionNoLeader` when nobody campaigns.
    public func leader(_ name: some EtcdBytes) async throws -> EtcdKeyValue {
        var request = V3electionpb_LeaderRequest()
        request.name = name.etcdData
        let message = request
        let response = try await self.client.call("Leader", retry: .idempotent) { connection, options, metadata in
            try await connection.unary(
                V3electionpb_Election.Method.Leader.self, message, metadata: metadata, options: options)
        }
        return EtcdKeyValue(response.kv)
    }

    /// Gives up leadership.
    public func resign(_ leader: EtcdLeaderKey) async throws {
        var request = V3electionpb_ResignRequest()
        request.leader = leader.proto
        let message = request
        _ = try await self.client.call("Resign", retry: .idempotent) { connection, options, metadata in
            try await connection.unary(
                V3electionpb_Election.Method.Resign.self, message, metadata: metadata, options: options)
        }
    }

    /// Observes election `name` for the duration of `body`: the current leader, then every change.
    ///
    /// The server sends nothing until there is a leader. The sequence throws when the stream
    /// breaks (observe again to continue). Cancelling the task reading it throws `CancellationError`.
    public func observe<Result: Sendable>(
        _ name: some EtcdBytes,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (EtcdElectionLeaders) async throws -> Result
    ) async throws -> Result {
        var request = V3electionpb_LeaderRequest()
        request.name = name.etcdData
        let message = request
        let client = self.client
        return try await EtcdElectionLeaders.observing(
            { yield in
                try await client.call("Observe", retry: .idempotent) { connection, options, metadata in
                    try await connection.election.observe(message, metadata: metadata, options: options) {
                        response in
                        for try await leader in response.messages { yield(EtcdKeyValue(leader.kv)) }
                    }
                }
            }, body)
    }
}

/// A campaign's key in an election run by ``EtcdElectionService``.
public struct EtcdLeaderKey: Sendable, Hashable {
    /// The election's name.
    public var name: Data
    /// The leader's key in etcd.
    public var key: Data
    /// The key's create revision.
    public var revision: Int64
    /// The lease the key is attached to.
    public var lease: Int64

    init(_ proto: V3electionpb_LeaderKey) {
        self.name = proto.name
        self.key = proto.key
        self.revision = proto.rev
        self.lease = proto.lease
    }

    /// A leader key as another process reported it (to resign or proclaim for it).
    public init(name: Data, key: Data, revision: Int64, lease: Int64) {
        self.name = name
        self.key = key
        self.revision = revision
        self.lease = lease
    }

    var proto: V3electionpb_LeaderKey {
        var proto = V3electionpb_LeaderKey()
        proto.name = self.name
        proto.key = self.key
        proto.rev = self.revision
        proto.lease = self.lease
        return proto
    }
}
