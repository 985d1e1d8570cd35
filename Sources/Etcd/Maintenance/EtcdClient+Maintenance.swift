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
            try await connection.maintenance.status(Etcdserverpb_StatusRequest(), metadata: metadata, options: options)
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
            try await connection.maintenance.downgrade(request, metadata: metadata, options: options)
        }
        return response.version
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
