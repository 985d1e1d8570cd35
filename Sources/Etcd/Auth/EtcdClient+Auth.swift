// SPDX-License-Identifier: Apache-2.0
internal import EtcdAPI

extension EtcdClient {
    /// Whether authentication is enabled, and the auth store's revision (etcd 3.5 and newer).
    ///
    /// - Throws: ``EtcdClientError`` `notSupported` (naming the version needed) when the member runs
    ///   etcd older than 3.5.
    public func authStatus() async throws -> (enabled: Bool, authRevision: UInt64) {
        let response = try await self.call("AuthStatus", retry: .idempotent, minimumVersion: (.v3_5, "AuthStatus")) {
            connection, options, metadata in
            try await connection.auth.authStatus(Etcdserverpb_AuthStatusRequest(), metadata: metadata, options: options)
        }
        return (response.enabled, response.authRevision)
    }
}
