// SPDX-License-Identifier: Apache-2.0
internal import EtcdAPI

extension EtcdClient {
    /// The cluster's members.
    ///
    /// - Parameter linearizable: read the list through the leader, so it includes every change
    ///   committed before the call (etcd 3.5+; without it the answering member's view is returned).
    /// - Throws: ``EtcdClientError`` `notSupported` for `linearizable: true` against etcd older than 3.5.
    public func memberList(linearizable: Bool = false) async throws -> EtcdMemberListResponse {
        var request = Etcdserverpb_MemberListRequest()
        request.linearizable = linearizable
        let response = try await self.call(
            "MemberList", retry: .idempotent,
            minimumVersion: linearizable ? (.v3_5, "a linearizable member list") : nil
        ) { connection, options, metadata in
            try await connection.unary(
                Etcdserverpb_Cluster.Method.MemberList.self, request, metadata: metadata, options: options)
        }
        return EtcdMemberListResponse(header: response.header, members: response.members)
    }

    /// Adds a member with the given peer URLs (start its etcd with `--initial-cluster-state existing`
    /// afterwards); as a learner, it catches up without voting until promoted.
    ///
    /// - Throws: ``EtcdClientError`` `invalidArgument` for no or malformed URLs (before anything is
    ///   sent); `peerURLExists`; `tooManyLearners`; `memberNotEnoughStarted` when the cluster could
    ///   not keep a quorum.
    public func memberAdd(peerURLs: [String], isLearner: Bool = false) async throws -> EtcdMemberListResponse {
        try Self.checkPeerURLs(peerURLs)
        var request = Etcdserverpb_MemberAddRequest()
        request.peerUrls = peerURLs
        request.isLearner = isLearner
        let response = try await self.call("MemberAdd", retry: .mutation) { connection, options, metadata in
            try await connection.unary(
                Etcdserverpb_Cluster.Method.MemberAdd.self, request, metadata: metadata, options: options)
        }
        return EtcdMemberListResponse(header: response.header, members: response.members, added: response.member)
    }

    /// Removes a member.
    ///
    /// - Throws: ``EtcdClientError`` `memberNotFound`; `memberNotEnoughStarted` when the cluster
    ///   could not keep a quorum.
    public func memberRemove(_ id: UInt64) async throws -> EtcdMemberListResponse {
        var request = Etcdserverpb_MemberRemoveRequest()
        request.id = id
        let response = try await self.call("MemberRemove", retry: .mutation) { connection, options, metadata in
            try await connection.unary(
                Etcdserverpb_Cluster.Method.MemberRemove.self, request, metadata: metadata, options: options)
        }
        return EtcdMemberListResponse(header: response.header, members: response.members)
    }

    /// Changes a member's peer URLs.
    ///
    /// - Throws: ``EtcdClientError`` `memberNotFound`; `peerURLExists`.
    public func memberUpdate(_ id: UInt64, peerURLs: [String]) async throws -> EtcdMemberListResponse {
        try Self.checkPeerURLs(peerURLs)
        var request = Etcdserverpb_MemberUpdateRequest()
        request.id = id
        request.peerUrls = peerURLs
        let response = try await self.call("MemberUpdate", retry: .idempotent) { connection, options, metadata in
            try await connection.unary(
                Etcdserverpb_Cluster.Method.MemberUpdate.self, request, metadata: metadata, options: options)
        }
        return EtcdMemberListResponse(header: response.header, members: response.members)
    }

    /// Promotes a learner to a voting member.
    ///
    /// - Throws: ``EtcdClientError`` `learnerNotReady` while the learner is still catching up (try
    ///   again later); `memberNotLearner`; `memberNotFound`.
    public func memberPromote(_ id: UInt64) async throws -> EtcdMemberListResponse {
        var request = Etcdserverpb_MemberPromoteRequest()
        request.id = id
        let response = try await self.call("MemberPromote", retry: .mutation) { connection, options, metadata in
            try await connection.unary(
                Etcdserverpb_Cluster.Method.MemberPromote.self, request, metadata: metadata, options: options)
        }
        return EtcdMemberListResponse(header: response.header, members: response.members)
    }

    private static func checkPeerURLs(_ urls: [String]) throws(EtcdClientError) {
        if urls.isEmpty {
            throw EtcdClientError(code: .invalidArgument, message: "a member needs at least one peer URL")
        }
        for url in urls {
            guard let scheme = url.firstRange(of: "://"), ["http", "https"].contains(url[..<scheme.lowerBound]),
                url[scheme.upperBound...].contains(":")
            else {
                throw EtcdClientError(
                    code: .invalidArgument,
                    message: "'\(url)' is not a peer URL; use http://host:port or https://host:port"
                )
            }
        }
    }
}
