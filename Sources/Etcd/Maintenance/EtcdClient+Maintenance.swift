// SPDX-License-Identifier: Apache-2.0
internal import EtcdAPI

extension EtcdClient {
    /// The status of one member, asked of that member directly.
    ///
    /// - Parameter endpoint: one of the client's endpoints, as configured (`127.0.0.1:2379`) or as
    ///   listed by ``endpoints``.
    /// - Throws: ``EtcdClientError`` `invalidArgument` when `endpoint` is not one of the client's;
    ///   `unavailable` when the member cannot be reached.
    public func status(endpoint: String) async throws -> EtcdStatusResponse {
        let connection = try self.connection(for: endpoint)
        let response = try await self.call("Status", retry: .idempotent, pinned: connection) {
            connection, options, metadata in
            try await connection.unary(
                Etcdserverpb_Maintenance.Method.Status.self, Etcdserverpb_StatusRequest(), metadata: metadata,
                options: options)
        }
        if let version = EtcdServerVersion(response.version) { connection.setServerVersion(version) }
        return EtcdStatusResponse(response)
    }

    /// What ``downgrade(_:version:)`` should do.
    public struct DowngradeAction: Sendable, Hashable {
        let proto: Etcdserverpb_DowngradeRequest.DowngradeAction
        /// Check that the cluster can be downgraded to the version.
        public static let validate = Self(proto: .validate)
        /// Start downgrading the cluster to the version.
        public static let enable = Self(proto: .enable)
        /// Cancel a downgrade in progress.
        public static let cancel = Self(proto: .cancel)
    }

    /// Validates, enables or cancels a cluster downgrade (etcd 3.5 and newer).
    ///
    /// - Returns: the cluster's current version.
    /// - Throws: ``EtcdClientError`` `notSupported` (naming the version needed) when the member runs
    ///   etcd older than 3.5; the server's downgrade errors otherwise.
    public func downgrade(_ action: DowngradeAction, version: String) async throws -> String {
        var request = Etcdserverpb_DowngradeRequest()
        request.action = action.proto
        request.version = version
        let response = try await self.call("Downgrade", retry: .mutation, minimumVersion: (.v3_5, "Downgrade")) {
            connection, options, metadata in
            try await connection.unary(
                Etcdserverpb_Maintenance.Method.Downgrade.self, request, metadata: metadata, options: options)
        }
        return response.version
    }

    /// The alarms raised in the cluster (NOSPACE when the backend quota is exhausted, CORRUPT).
    public func alarmList() async throws -> EtcdAlarmResponse {
        var request = Etcdserverpb_AlarmRequest()
        request.action = .get
        request.alarm = .none
        let response = try await self.call("Alarm", retry: .idempotent) { connection, options, metadata in
            try await connection.unary(
                Etcdserverpb_Maintenance.Method.Alarm.self, request, metadata: metadata, options: options)
        }
        return EtcdAlarmResponse(
            header: EtcdResponseHeader(response.header), alarms: response.alarms.map(EtcdAlarm.init))
    }

    /// Clears an alarm (after fixing its cause: for NOSPACE, compact and defragment first, or the
    /// alarm is raised again at the next write). Returns the alarms cleared.
    @discardableResult
    public func alarmDisarm(_ alarm: EtcdAlarm) async throws -> EtcdAlarmResponse {
        var request = Etcdserverpb_AlarmRequest()
        request.action = .deactivate
        request.memberID = alarm.memberID
        request.alarm = alarm.type.proto
        let response = try await self.call("Alarm", retry: .idempotent) { connection, options, metadata in
            try await connection.unary(
                Etcdserverpb_Maintenance.Method.Alarm.self, request, metadata: metadata, options: options)
        }
        return EtcdAlarmResponse(
            header: EtcdResponseHeader(response.header), alarms: response.alarms.map(EtcdAlarm.init))
    }

    /// Defragments one member's backend, returning the space compaction freed to the file system.
    ///
    /// The member blocks reads and writes while it defragments; do one member at a time.
    @discardableResult
    public func defragment(endpoint: String) async throws -> EtcdResponseHeader {
        let connection = try self.connection(for: endpoint)
        let response = try await self.call("Defragment", retry: .idempotent, pinned: connection) {
            connection, options, metadata in
            try await connection.unary(
                Etcdserverpb_Maintenance.Method.Defragment.self, Etcdserverpb_DefragmentRequest(), metadata: metadata,
                options: options)
        }
        return EtcdResponseHeader(response.header)
    }

    /// The hash of one member's key-value store up to `revision` (0 for the current one): equal
    /// hashes on every member at one revision mean their data agree.
    ///
    /// - Throws: ``EtcdClientError`` `compacted` or `futureRevision` for a revision out of range.
    public func hashKV(endpoint: String, revision: Int64 = 0) async throws -> EtcdHashKVResponse {
        let connection = try self.connection(for: endpoint)
        var request = Etcdserverpb_HashKVRequest()
        request.revision = revision
        let response = try await self.call("HashKV", retry: .idempotent, pinned: connection) {
            connection, options, metadata in
            try await connection.unary(
                Etcdserverpb_Maintenance.Method.HashKV.self, request, metadata: metadata, options: options)
        }
        return EtcdHashKVResponse(
            header: EtcdResponseHeader(response.header),
            hash: response.hash,
            compactRevision: response.compactRevision,
            hashRevision: response.hashRevision
        )
    }

    /// Transfers leadership to the member `target` (a voting member's ID); sent to the current
    /// leader, which must be one of the client's endpoints.
    ///
    /// - Throws: ``EtcdClientError`` `badLeaderTransferee` for an unknown or learner target;
    ///   `notLeader` when no endpoint of the client is the leader.
    @discardableResult
    public func moveLeader(to target: UInt64) async throws -> EtcdResponseHeader {
        var request = Etcdserverpb_MoveLeaderRequest()
        request.targetID = target
        // Only the leader can transfer leadership: find it among the endpoints.
        var leaderConnection: EndpointConnection?
        for connection in self.connections {
            guard let status = try? await self.status(endpoint: connection.endpoint.description) else { continue }
            if status.leader == status.header.memberID {
                leaderConnection = connection
                break
            }
        }
        guard let leaderConnection else {
            throw EtcdClientError(
                code: .notLeader,
                message: "moveLeader must be sent to the leader, and none of \(self.endpoints) is the leader now"
            )
        }
        let response = try await self.call("MoveLeader", retry: .mutation, pinned: leaderConnection) {
            connection, options, metadata in
            try await connection.unary(
                Etcdserverpb_Maintenance.Method.MoveLeader.self, request, metadata: metadata, options: options)
        }
        return EtcdResponseHeader(response.header)
    }

    /// The client's connection to `endpoint`.
    func connection(for endpoint: String) throws(EtcdClientError) -> EndpointConnection {
        let parsed = try EtcdEndpoint.parse(endpoint, tlsByDefault: self.configuration.tls != nil)
        guard let connection = self.connections.first(where: { $0.endpoint == parsed }) else {
            throw EtcdClientError(
                code: .invalidArgument,
                message: "'\(endpoint)' is not one of the client's endpoints \(self.endpoints)"
            )
        }
        return connection
    }
}
