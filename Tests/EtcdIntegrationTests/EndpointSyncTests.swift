// SPDX-License-Identifier: Apache-2.0
import Etcd
import EtcdTesting
import Foundation
import Synchronization
import Testing

/// A membership change retried while etcd's strict reconfiguration check refuses it (`unhealthy`:
/// the members have not all been connected for long enough, as right after the cluster starts).
private func retryingUnhealthy<T: Sendable>(_ change: @escaping @Sendable () async throws -> T) async throws -> T {
    try await within(.seconds(20), "a membership change to be accepted") {
        while true {
            do {
                return try await change()
            } catch let error as EtcdClientError where error.code == .unhealthy {
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }
}

@Suite("Endpoint sync", .timeLimit(.minutes(3)))
struct EndpointSyncTests {
    @Test("sync replaces one endpoint with every started voting member's URLs, and the new connections serve")
    func sync() async throws {
        try await withEtcdTestCluster(.init(members: 3)) { cluster in
            let all = Set(cluster.members.map(\.clientURL))
            try await withEtcdClient(.init(endpoints: [cluster.members[0].clientEndpoint])) { client in
                #expect(client.endpoints.count == 1)
                try await client.sync()
                #expect(Set(client.endpoints) == all)

                // A learner that has not started (no name, no client URL yet) is left out.
                let joining = try cluster.makeJoiningMember()
                let learner = try await retryingUnhealthy {
                    try await client.memberAdd(peerURLs: [joining.peerURL], isLearner: true).added
                }
                try await client.sync()
                #expect(Set(client.endpoints) == all)
                if let learner { _ = try await retryingUnhealthy { try await client.memberRemove(learner.id) } }

                // The endpoint the client started with dies: the synced ones carry on.
                try await client.put("after-sync", value: "1")
                try await cluster.members[0].kill()
                let read = try await withEtcdTimeout(.seconds(10)) {
                    try await client.get("after-sync", options: .serializable)
                }
                #expect(read.kvs.first?.valueString == "1")
            }
        }
    }

    @Test("autoSyncInterval follows members as they are removed; bad endpoint lists are refused")
    func autoSync() async throws {
        try await withEtcdTestCluster(.init(members: 3)) { cluster in
            var configuration = EtcdClient.Configuration(endpoints: [cluster.members[0].clientEndpoint])
            configuration.autoSyncInterval = .milliseconds(200)
            try await withEtcdClient(configuration) { client in
                // The client has no event for this; the endpoint list is checked until it changes, bounded.
                try await within(.seconds(10), "auto-sync to find all three members") {
                    while client.endpoints.count != 3 { try await Task.sleep(for: .milliseconds(50)) }
                }
                // Remove a follower (removing the leader adds an election, which is not under test here).
                var removed: EtcdTestMember?
                var removedID: UInt64 = 0
                for member in cluster.members.dropFirst() {
                    let status = try await client.status(endpoint: member.clientURL)
                    if status.leader != status.header.memberID {
                        removed = member
                        removedID = status.header.memberID
                        break
                    }
                }
                let follower = try #require(removed)
                let id = removedID
                // Removed through another member: the member being removed may stop before it
                // answers ("server stopped"), leaving the removal's outcome unknown to its caller.
                try await withEtcdClient(.init(endpoints: [cluster.members[0].clientEndpoint])) { admin in
                    _ = try await retryingUnhealthy { try await admin.memberRemove(id) }
                }
                try await within(.seconds(10), "auto-sync to drop the removed member") {
                    while client.endpoints.count != 2 { try await Task.sleep(for: .milliseconds(50)) }
                }
                #expect(!client.endpoints.contains(follower.clientURL))
                try await client.put("k", value: "v")

                let empty = await etcdErrorCode { try client.setEndpoints([]) }
                #expect(empty?.code == .invalidConfiguration)
                let malformed = await etcdErrorCode { try client.setEndpoints(["ftp://x:1"]) }
                #expect(malformed?.code == .invalidConfiguration)
                #expect(client.endpoints.count == 2)
            }
        }
    }

    @Test("endpoints set before run() are each started once, and serve gRPC-stream calls")
    func setEndpointsBeforeRun() async throws {
        try await withEtcdTestCluster { cluster in
            let started = Mutex<[String]>([])
            let logger = hookedLogger { line in
                if line.message == "etcd connection starting", let endpoint = line.metadata["etcd_endpoint"] {
                    started.withLock { $0.append("\(endpoint)") }
                }
            }
            let endpoint = cluster.members[0].clientEndpoint
            let client = try EtcdClient(configuration: .init(endpoints: ["127.0.0.1:1"]), logger: logger)
            // Before run(), the new connection is both in the list run() starts and queued to start.
            try client.setEndpoints([endpoint])
            let running = Task { try await client.run() }
            do {
                // A snapshot streams through the connection's gRPC client, which only serves once started.
                let path = FileManager.default.temporaryDirectory.appendingPathComponent("swift-etcd-\(UUID())").path
                defer { try? FileManager.default.removeItem(atPath: path) }
                let snapshot = try await within(.seconds(10), "a snapshot through the set endpoint") {
                    try await client.snapshot(to: path)
                }
                #expect(snapshot.size > 0)
            } catch {
                client.shutdown()
                throw error
            }
            client.shutdown()
            try await within(.seconds(10), "run() to return after shutdown") { try await running.value }
            #expect(started.withLock { $0 } == ["http://\(endpoint)"])
        }
    }

    @Test("setEndpoints when shutdown() comes while it runs changes nothing and throws unavailable")
    func setEndpointsWhileShuttingDown() async throws {
        // setEndpoints logs this line after its arguments are checked and before it replaces the list.
        let changing = try clientShuttingDown(at: "etcd endpoints changing", .init(endpoints: ["127.0.0.1:1"]))
        let error = await etcdErrorCode { try changing.setEndpoints(["127.0.0.1:2"]) }
        #expect(error?.code == .unavailable)
        // A connection swapped in after shutdown() read the list would never be shut down.
        #expect(changing.endpoints == ["http://127.0.0.1:1"])
    }
}
