// SPDX-License-Identifier: Apache-2.0
import Etcd
import EtcdTesting
import Testing

@Suite("Server capabilities", .timeLimit(.minutes(2)))
struct CapabilityTests {
    @Test("status reports the member's version and sizes; the 3.6 fields only from 3.6 servers")
    func status() async throws {
        try await withEtcd { cluster, client in
            let status = try await client.status(endpoint: cluster.members[0].clientEndpoint)
            #expect(status.version == cluster.serverVersion)
            #expect(status.dbSize > 0)
            #expect(status.leader == status.header.memberID)
            #expect(status.raftIndex > 0 && status.raftTerm > 0)
            let version = try #require(EtcdServerVersion(cluster.serverVersion))
            if version < EtcdServerVersion(major: 3, minor: 6) {
                #expect(status.storageVersion == nil)
                #expect(status.dbSizeQuota == nil)
                #expect(status.downgradeInfo == nil)
            } else {
                #expect(status.dbSizeQuota != nil)
            }
            let unknown = await etcdErrorCode { _ = try await client.status(endpoint: "127.0.0.1:1") }
            #expect(unknown?.code == .invalidArgument)
        }
    }

    @Test("AuthStatus and Downgrade need etcd 3.5: older servers get notSupported naming the version")
    func gatedCalls() async throws {
        try await withEtcd { cluster, client in
            let version = try #require(EtcdServerVersion(cluster.serverVersion))
            if version < EtcdServerVersion(major: 3, minor: 5) {
                let auth = await etcdErrorCode { _ = try await client.authStatus() }
                #expect(auth?.code == .notSupported)
                #expect(auth?.message.contains("AuthStatus needs etcd 3.5 or newer") == true)
                #expect(auth?.message.contains(cluster.serverVersion) == true)
                let downgrade = await etcdErrorCode { _ = try await client.downgrade(.validate, version: "3.4.0") }
                #expect(downgrade?.code == .notSupported)
                #expect(downgrade?.message.contains("3.5") == true)
            } else {
                let status = try await client.authStatus()
                #expect(!status.enabled)
                // Validating a downgrade to the previous minor version is answered by the server itself.
                let previous = "\(version.major).\(version.minor - 1)"
                do {
                    let current = try await client.downgrade(.validate, version: previous)
                    #expect(current.hasPrefix("\(version.major).\(version.minor)"))
                } catch let error as EtcdClientError {
                    #expect(error.code != .notSupported, "the server answered: \(error)")
                }
            }
        }
    }

    @Test("RangeStream needs etcd 3.7: older servers get notSupported, and paged gets do the same job")
    func rangeStream() async throws {
        try await withEtcd { cluster, client in
            try await client.put("k", value: "v")
            let error = await etcdErrorCode { try await client.getStream("k", options: .prefix) { _ in } }
            #expect(error?.code == .notSupported)
            #expect(error?.message.contains("RangeStream needs etcd 3.7 or newer") == true)
        }
    }

    @Test("rejectOldCluster accepts 3.2 and newer")
    func rejectOldCluster() async throws {
        try await withEtcd(configure: { $0.rejectOldCluster = true }) { _, client in
            try await client.put("k", value: "v")
            #expect(try await client.get("k").count == 1)
        }
    }
}
